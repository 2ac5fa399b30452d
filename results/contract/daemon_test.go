package contract

import (
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestDaemonCheck(t *testing.T) {
	good := DaemonSpec{Name: "gcsfuse-2.1", Path: "/fusematrix/daemon/gcsfuse", Args: []string{"-f", "{backing}", "{mnt}"}}
	assert.NilError(t, good.Check())
	json := good
	json.Args = []string{"-o", `opts={"cache":{"ttl":5}}`, "{mnt}"}
	assert.NilError(t, json.Check(), "braces that are no placeholder")
	for _, tc := range []struct {
		name string
		edit func(*DaemonSpec)
		want string
	}{
		{"slash in name", func(d *DaemonSpec) { d.Name = "a/b" }, `daemon name "a/b"`},
		{"empty name", func(d *DaemonSpec) { d.Name = "" }, `daemon name ""`},
		{"relative path", func(d *DaemonSpec) { d.Path = "gcsfuse" }, "not absolute"},
		{"no mount point", func(d *DaemonSpec) { d.Args = []string{"{backing}"} }, "none holds {mnt}"},
		{"environment", func(d *DaemonSpec) { d.Env = []string{"x"} }, `daemon environment "x": want KEY=VALUE`},
		{"environment without a key", func(d *DaemonSpec) { d.Env = []string{"=x"} }, `daemon environment "=x": "" is not a variable name`},
		{"environment key with a blank", func(d *DaemonSpec) { d.Env = []string{"A B=x"} }, `daemon environment "A B=x": "A B" is not a variable name`},
		{"wait", func(d *DaemonSpec) { d.MountWait = 601 }, "want 0 to 600"},
		{"stop", func(d *DaemonSpec) { d.StopWait = -1 }, "daemon stop wait -1s: want 0 to 600"},
		{"typo", func(d *DaemonSpec) { d.Args = []string{"-o", "source={backng}", "{mnt}"} }, `daemon argument "source={backng}": unknown placeholder {backng} (known: {backing}, {mnt}, {scratch})`},
		{"mount point misnamed", func(d *DaemonSpec) { d.Args = []string{"{mount}"} }, "unknown placeholder {mount}"},
		{"capitalised", func(d *DaemonSpec) { d.Args = []string{"{Backing}", "{mnt}"} }, "unknown placeholder {Backing}"},
		{"underscore", func(d *DaemonSpec) { d.Args = []string{"{backing_dir}", "{mnt}"} }, "unknown placeholder {backing_dir}"},
		{"digit", func(d *DaemonSpec) { d.Args = []string{"{mnt2}", "{mnt}"} }, "unknown placeholder {mnt2}"},
		{"setup empty", func(d *DaemonSpec) { d.Setup = [][]string{{}} }, "setup command: empty"},
		{"setup relative", func(d *DaemonSpec) { d.Setup = [][]string{{"gocryptfs", "-init"}} }, "want its program's absolute path"},
		{"setup typo", func(d *DaemonSpec) { d.Setup = [][]string{{"/bin/x", "{scrach}"}} }, `setup argument "{scrach}": unknown placeholder {scrach}`},
		{"dir escapes", func(d *DaemonSpec) { d.Dirs = []string{"../x"} }, `scratch directory "../x"`},
		{"dir dotdot", func(d *DaemonSpec) { d.Dirs = []string{".."} }, `scratch directory ".."`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := good
			tc.edit(&d)
			assert.ErrorContains(t, d.Check(), tc.want)
		})
	}
}

func TestDaemonArgv(t *testing.T) {
	d := DaemonSpec{Args: []string{"-o", "source={backing}", "{mnt}"}}
	assert.DeepEqual(t, d.Argv("/b", "/m", "/s"), []string{"-o", "source=/b", "/m"})
	assert.Check(t, d.Backed())
	assert.Check(t, !d.Scratched())
	o := DaemonSpec{Args: []string{"-o", "lowerdir={scratch}/lower,upperdir={backing}", "{mnt}"}}
	assert.DeepEqual(t, o.Argv("/b", "/m", "/s"), []string{"-o", "lowerdir=/s/lower,upperdir=/b", "/m"})
	assert.Check(t, o.Scratched())
	assert.Check(t, (&DaemonSpec{Args: []string{"{mnt}"}, Setup: [][]string{{"/bin/init", "{scratch}"}}}).Scratched())
	assert.Check(t, (&DaemonSpec{Args: []string{"{mnt}"}, Dirs: []string{"work"}}).Scratched())
	good := DaemonSpec{Name: "x", Path: "/x", Args: []string{"{scratch}", "{mnt}"}, Setup: [][]string{{"/usr/bin/gocryptfs", "-init", "{scratch}"}}, Dirs: []string{"work", "a.b_c-1"}}
	assert.NilError(t, good.Check())
	assert.Check(t, !(&DaemonSpec{Args: []string{"{mnt}"}}).Backed())
	assert.Equal(t, (&DaemonSpec{}).Wait(), DefaultMountWait)
	assert.Equal(t, (&DaemonSpec{MountWait: 1.5}).Wait(), 1500*time.Millisecond)
	assert.Equal(t, (&DaemonSpec{}).StopGrace(), DefaultStopWait)
	assert.Equal(t, (&DaemonSpec{StopWait: 90}).StopGrace(), 90*time.Second)
}

func TestParseDaemon(t *testing.T) {
	d, err := ParseDaemonSpec([]byte(`{"name":"x","path":"/x","args":["{mnt}"],"passthrough":true}`))
	assert.NilError(t, err)
	assert.Check(t, d.Passthrough)
	_, err = ParseDaemonSpec([]byte(`{"name":"x","path":"/x","args":["{backing}"]}`))
	assert.ErrorContains(t, err, "none holds {mnt}")
	_, err = ParseDaemonSpec([]byte(`{"name":`))
	assert.ErrorContains(t, err, "daemon description")
	_, err = ParseDaemonSpec([]byte(strings.Repeat(" ", 1<<20+1)))
	assert.ErrorContains(t, err, "larger than 1 MiB")
}

// A daemon's checks are those that need no reference, first, every
// correctness scenario and its passthrough check, under its prefix,
// selected by the pattern against those ids.
func TestDaemonChecks(t *testing.T) {
	all, err := DaemonChecks("fs", "")
	assert.NilError(t, err)
	var scenarios int
	for _, c := range Checks() {
		if c.Kind == "scenario" && !strings.HasPrefix(string(c.ID), URingPrefix) {
			scenarios++
		}
	}
	assert.Check(t, is.Len(all, len(DaemonOwnChecks)+scenarios+2))
	var first []ID
	for _, c := range all[:4] {
		first = append(first, c.ID)
	}
	assert.Check(t, is.DeepEqual(first, []ID{"daemon/fs/mount", "daemon/fs/read-all", "daemon/fs/write", "daemon/fs/unmount"}))
	assert.Check(t, is.Equal(all[len(all)-2].ID, ID("daemon/fs/passthrough")))
	assert.Check(t, is.Equal(all[len(all)-1].ID, ID("daemon/fs/io-uring")))
	for _, c := range all {
		assert.Check(t, strings.HasPrefix(string(c.ID), "daemon/fs/"), c.ID)
		assert.Check(t, c.Timeout > 0, c.ID)
	}
	some, err := DaemonChecks("fs", "integrity|passthrough$")
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual([]ID{some[0].ID, some[1].ID}, []ID{"daemon/fs/pt/integrity", "daemon/fs/passthrough"}))
	// Each id within the daemon is its own: "mount" is not pt/unmount-open.
	some, err = DaemonChecks("fs", "^(mount|write)$")
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual([]ID{some[0].ID, some[1].ID}, []ID{"daemon/fs/mount", "daemon/fs/write"}))
	assert.Check(t, is.Len(some, 2))
	_, err = DaemonChecks("fs", "(")
	assert.ErrorContains(t, err, "scenario pattern")
}

// A daemon's cells are its mode's: daemon/<name>/bench/<op>/<block>, read
// back by ParseCell, run only when a pattern mentions bench, and selected
// by their ids within the daemon as well as by their full ids.
func TestDaemonCells(t *testing.T) {
	cells := DaemonCells("fs")
	assert.Check(t, is.Len(cells, len(Ops)*len(Blocks)))
	for _, c := range cells {
		got, ok := ParseCell(c.ID())
		assert.Check(t, ok, c.ID())
		assert.Check(t, is.Equal(got, c))
		name, ok := c.Mode.Daemon()
		assert.Check(t, ok && name == "fs", c.Mode)
	}
	assert.Check(t, is.Equal(cells[0].ID(), ID("daemon/fs/bench/read/4096")))
	for _, bad := range []ID{"daemon/fs/pt/integrity", "daemon/fs/bench/read", "daemon/fs/bench/read/x", "daemon//bench/read/4096",
		"daemon/fs/bench/read/noop/4096", "daemon/fs/x/bench/read/4096"} {
		_, ok := ParseCell(bad)
		assert.Check(t, !ok, bad)
	}
	_, ok := Native.Daemon()
	assert.Check(t, !ok)

	ids := func(pattern string) []ID {
		cs, err := DaemonChecks("fs", pattern)
		assert.NilError(t, err)
		var out []ID
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	for _, id := range ids("") {
		_, cell := ParseCell(id)
		assert.Check(t, !cell, "%s selected by an empty pattern", id)
	}
	assert.Check(t, is.Len(ids("^bench/"), len(cells)))
	assert.DeepEqual(t, ids("^bench/write/4096$"), []ID{"daemon/fs/bench/write/4096"})
	assert.DeepEqual(t, ids("^daemon/fs/bench/read/1048576$"), []ID{"daemon/fs/bench/read/1048576"})
	assert.DeepEqual(t, ids("^pt/integrity$"), []ID{"daemon/fs/pt/integrity"})
}

// A daemon that runs in a root of its own is given paths inside it, seen
// without the root's prefix; a path outside is no path it could reach.
func TestDaemonInside(t *testing.T) {
	rooted := DaemonSpec{Name: "bindfs", Path: "/usr/bin/bindfs", Args: []string{"{backing}", "{mnt}"}, Root: "/fusematrix/sysroot/bindfs-0123"}
	assert.NilError(t, rooted.Check())
	for _, tc := range []struct{ in, want, err string }{
		{in: "/fusematrix/sysroot/bindfs-0123/run/fusematrix/pt_integrity/mnt", want: "/run/fusematrix/pt_integrity/mnt"},
		{in: "/fusematrix/sysroot/bindfs-0123/run/x/../y", want: "/run/y"},
		{in: "/run/fusematrix/pt_integrity/mnt", err: "/run/fusematrix/pt_integrity/mnt is outside the root /fusematrix/sysroot/bindfs-0123 that daemon bindfs runs in"},
		{in: "/fusematrix/sysroot/bindfs-0123", err: "outside the root"},
		{in: "/fusematrix/sysroot/bindfs-01234/x", err: "outside the root"},
	} {
		got, err := rooted.Inside(tc.in)
		if tc.err != "" {
			assert.Check(t, is.ErrorContains(err, tc.err), tc.in)
			continue
		}
		assert.Check(t, err, tc.in)
		assert.Check(t, is.Equal(got, tc.want), tc.in)
	}
	plain := DaemonSpec{Name: "x", Path: "/x", Args: []string{"{mnt}"}}
	got, err := plain.Inside("/run/fusematrix/a")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(got, "/run/fusematrix/a"))

	for _, root := range []string{"relative", "/", "/a/../b", "/a/"} {
		bad := rooted
		bad.Root = root
		assert.Check(t, is.ErrorContains(bad.Check(), "daemon root"), root)
	}
}
