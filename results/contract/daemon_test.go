package contract

import (
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestDaemonCheck(t *testing.T) {
	good := Daemon{Name: "gcsfuse-2.1", Path: "/fusematrix/daemon/gcsfuse", Args: []string{"-f", "{backing}", "{mnt}"}}
	assert.NilError(t, good.Check())
	for _, tc := range []struct {
		name string
		edit func(*Daemon)
		want string
	}{
		{"slash in name", func(d *Daemon) { d.Name = "a/b" }, `daemon name "a/b"`},
		{"empty name", func(d *Daemon) { d.Name = "" }, `daemon name ""`},
		{"relative path", func(d *Daemon) { d.Path = "gcsfuse" }, "not absolute"},
		{"no mount point", func(d *Daemon) { d.Args = []string{"{backing}"} }, "none holds {mnt}"},
		{"environment", func(d *Daemon) { d.Env = []string{"=x"} }, "not KEY=VALUE"},
		{"wait", func(d *Daemon) { d.MountWait = 601 }, "want 0 to 600"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := good
			tc.edit(&d)
			assert.ErrorContains(t, d.Check(), tc.want)
		})
	}
}

func TestDaemonArgv(t *testing.T) {
	d := Daemon{Args: []string{"-o", "source={backing}", "{mnt}"}}
	assert.DeepEqual(t, d.Argv("/b", "/m"), []string{"-o", "source=/b", "/m"})
	assert.Check(t, d.Backed())
	assert.Check(t, !(&Daemon{Args: []string{"{mnt}"}}).Backed())
	assert.Equal(t, (&Daemon{}).Wait(), DefaultMountWait)
	assert.Equal(t, (&Daemon{MountWait: 1.5}).Wait(), 1500*time.Millisecond)
}

func TestParseDaemon(t *testing.T) {
	d, err := ParseDaemon([]byte(`{"name":"x","path":"/x","args":["{mnt}"],"passthrough":true}`))
	assert.NilError(t, err)
	assert.Check(t, d.Passthrough)
	_, err = ParseDaemon([]byte(`{"name":"x","path":"/x","args":["{backing}"]}`))
	assert.ErrorContains(t, err, "none holds {mnt}")
	_, err = ParseDaemon([]byte(`{"name":`))
	assert.ErrorContains(t, err, "daemon description")
	_, err = ParseDaemon([]byte(strings.Repeat(" ", 1<<20+1)))
	assert.ErrorContains(t, err, "larger than 1 MiB")
}

// A daemon's checks are every correctness scenario and its passthrough
// check, under its prefix, selected by the pattern against those ids.
func TestDaemonChecks(t *testing.T) {
	all, err := DaemonChecks("fs", "")
	assert.NilError(t, err)
	var scenarios int
	for _, c := range Checks() {
		if c.Kind == "scenario" {
			scenarios++
		}
	}
	assert.Check(t, is.Len(all, scenarios+1))
	assert.Check(t, is.Equal(all[len(all)-1].ID, ID("daemon/fs/passthrough")))
	for _, c := range all {
		assert.Check(t, strings.HasPrefix(string(c.ID), "daemon/fs/"), c.ID)
		assert.Check(t, c.Timeout > 0, c.ID)
	}
	some, err := DaemonChecks("fs", "integrity|passthrough$")
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual([]ID{some[0].ID, some[1].ID}, []ID{"daemon/fs/pt/integrity", "daemon/fs/passthrough"}))
	_, err = DaemonChecks("fs", "(")
	assert.ErrorContains(t, err, "scenario pattern")
}
