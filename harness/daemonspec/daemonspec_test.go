package daemonspec

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/kernels"
	"github.com/fusematrix/fusematrix/results/contract"
)

func TestParse(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name, text string
		want       *Spec
		err        string
	}{
		{
			name: "everything",
			text: `# my file system
[daemon myfs]
binary = ./bin/myfs
args = -f -o 'fsname=my fs' {backing} {mnt}
env = RUST_LOG=debug
env = HOME=/root
file = /etc/myfs.conf
file = ./data/big:/srv/big
wait = 45s
stop = 2m
passthrough = yes
`,
			want: &Spec{Name: "myfs", Binary: "./bin/myfs", Args: []string{"-f", "-o", "fsname=my fs", "{backing}", "{mnt}"},
				Env:   []string{"RUST_LOG=debug", "HOME=/root"},
				Files: []File{{Host: "/etc/myfs.conf", Where: "d.conf:7"}, {Host: "./data/big", Guest: "/srv/big", Where: "d.conf:8"}},
				Wait:  45 * time.Second, Stop: 2 * time.Minute, Passthrough: &yes, Origin: "d.conf:2"},
		},
		{
			name: "io_uring claim",
			text: "[daemon x]\nbinary = /bin/x\nuring = yes\npassthrough = no\n",
			want: &Spec{Name: "x", Binary: "/bin/x", URing: &yes, Passthrough: &no, Origin: "d.conf:1"},
		},
		{
			name: "binary alone",
			text: "[daemon x]\nbinary = /bin/x\n",
			want: &Spec{Name: "x", Binary: "/bin/x", Origin: "d.conf:1"},
		},
		{
			name: "comments and quoted hashes",
			text: "[daemon x] # mine\nbinary = /bin/x   # the binary\nargs = -o 'fsname=a #b' \"c#d\" e\\ #f {mnt} # end\nenv = TAG=v#1\n",
			want: &Spec{Name: "x", Binary: "/bin/x", Args: []string{"-o", "fsname=a #b", "c#d", "e #f", "{mnt}"}, Env: []string{"TAG=v#1"}, Origin: "d.conf:1"},
		},
		{
			// Issue 21, row 9: as documented (SplitArgs), not dropped.
			name: "backslash in double quotes",
			text: "[daemon x]\nbinary = /bin/x\nargs = \"a\\b\" {mnt}\n",
			want: &Spec{Name: "x", Binary: "/bin/x", Args: []string{`a\b`, "{mnt}"}, Origin: "d.conf:1"},
		},
		{
			// What gocryptfs needs: its store made by a setup command that
			// reads the password, as the daemon then does.
			name: "setup, stdin and dirs",
			text: "[daemon x]\nbinary = debian:gocryptfs@sid\nargs = -fg {scratch}/store {mnt}\nsetup = /usr/bin/gocryptfs -init -q {scratch}/store\nsetup = /bin/true\nstdin = pass word # a comment\ndirs = store work\n",
			want: &Spec{Name: "x", Binary: "debian:gocryptfs@sid", Args: []string{"-fg", "{scratch}/store", "{mnt}"},
				Setup: [][]string{{"/usr/bin/gocryptfs", "-init", "-q", "{scratch}/store"}, {"/bin/true"}}, Stdin: "pass word", Dirs: []string{"store", "work"}, Origin: "d.conf:1"},
		},
		{
			name: "packages",
			text: "[daemon x]\nbinary = debian:fuse2fs@sid\nargs = {scratch}/fs.img {mnt}\npackages = e2fsprogs  coreutils\n",
			want: &Spec{Name: "x", Binary: "debian:fuse2fs@sid", Args: []string{"{scratch}/fs.img", "{mnt}"}, Packages: []string{"e2fsprogs", "coreutils"}, Origin: "d.conf:1"},
		},
		{name: "stop not a duration", text: "[daemon x]\nbinary = /bin/x\nstop = soon\n", err: `d.conf:3: stop "soon": want a duration such as 60s`},
		{name: "packages of a host binary", text: "[daemon x]\nbinary = /bin/x\npackages = e2fsprogs\n", err: "d.conf:3: packages: only for a binary from Debian's archive"},
		{name: "package with a version", text: "[daemon x]\nbinary = debian:x\npackages = e2fsprogs=1.0\n", err: `d.conf:3: packages: "e2fsprogs=1.0" is not a Debian package name`},
		{name: "setup not absolute", text: "[daemon x]\nbinary = /bin/x\nsetup = mkdir {scratch}/a\n", err: `d.conf:3: setup: setup command ["mkdir" "{scratch}/a"]: want its program's absolute path`},
		{name: "setup typo", text: "[daemon x]\nbinary = /bin/x\nsetup = /bin/mk {scrach}\n", err: "d.conf:3: setup: setup argument \"{scrach}\": unknown placeholder"},
		{name: "empty setup", text: "[daemon x]\nbinary = /bin/x\nsetup =\n", err: "d.conf:3: setup: setup command: empty"},
		{name: "empty stdin", text: "[daemon x]\nbinary = /bin/x\nstdin =\n", err: "d.conf:3: stdin: want the text"},
		{name: "dirs escape", text: "[daemon x]\nbinary = /bin/x\ndirs = a ../b\n", err: `d.conf:3: dirs: scratch directory "../b"`},
		{name: "dirs twice", text: "[daemon x]\nbinary = /bin/x\ndirs = a\ndirs = b\n", err: "d.conf:4: dirs given twice"},
		{name: "no binary", text: "[daemon x]\nargs = {mnt}\n", err: "d.conf:1: [daemon x] names no binary"},
		{name: "unknown key", text: "[daemon x]\nbinary = /bin/x\nmount = {mnt}\n", err: `d.conf:3: unknown key "mount"`},
		{name: "twice", text: "[daemon x]\nbinary = /bin/x\nbinary = /bin/y\n", err: "d.conf:3: binary given twice"},
		{name: "no key", text: "[daemon x]\nbinary /bin/x\n", err: "d.conf:2: want key = value"},
		{name: "bad wait", text: "[daemon x]\nbinary = /bin/x\nwait = 30\n", err: `d.conf:3: wait "30": want a duration`},
		{name: "bad claim", text: "[daemon x]\nbinary = /bin/x\npassthrough = maybe\n", err: `d.conf:3: passthrough "maybe": want yes or no`},
		{name: "bad io_uring claim", text: "[daemon x]\nbinary = /bin/x\nuring = often\n", err: `d.conf:3: uring "often": want yes or no`},
		{name: "bad env", text: "[daemon x]\nbinary = /bin/x\nenv = A\n", err: `d.conf:3: env "A": want KEY=VALUE`},
		// Issue 21, row 9: the key must be a variable name.
		{name: "env key with a blank", text: "[daemon x]\nbinary = /bin/x\nenv = A B=x\n",
			err: `d.conf:3: env "A B=x": "A B" is not a variable name (letters, digits and '_', not starting with a digit)`},
		{name: "env key with a digit first", text: "[daemon x]\nbinary = /bin/x\nenv = 1A=x\n", err: `d.conf:3: env "1A=x": "1A" is not a variable name`},
		{name: "env without a key", text: "[daemon x]\nbinary = /bin/x\nenv = =x\n", err: `d.conf:3: env "=x": "" is not a variable name`},
		{name: "relative guest path", text: "[daemon x]\nbinary = /bin/x\nfile = a:b\n", err: "the guest path is not absolute"},
		{name: "bad quote", text: "[daemon x]\nbinary = /bin/x\nargs = '{mnt}\n", err: "d.conf:3: args: an unterminated quote"},
		{name: "two daemons", text: "[daemon x]\nbinary = /bin/x\n[daemon y]\nbinary = /bin/y\n", err: "want one [daemon NAME] section and nothing else, found 2"},
		{name: "a matrix", text: "[default]\ndebian:6.1\n", err: "found 0 daemon(s), 1 matri(ces)"},
		{name: "not a description", text: "hello\n", err: `d.conf:1: kernel "hello" outside a [matrix]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("d.conf", strings.NewReader(tc.text))
			if tc.err != "" {
				assert.Check(t, is.ErrorContains(err, tc.err))
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want, cmpopts.IgnoreUnexported(Spec{}))
		})
	}
}

// Issue 21, row 9: a description over MaxSize is an error naming the cap;
// it used to be cut at 1 MiB without a word, and what followed the cut
// (a key, a typo) ignored. One of exactly MaxSize is read whole.
func TestParseSizeCap(t *testing.T) {
	head := "[daemon x]\nbinary = /bin/x\n"
	pad := func(n int) string { // n bytes of comment lines
		s := strings.Repeat(strings.Repeat("#", 63)+"\n", n/64)
		if n%64 > 0 {
			s += strings.Repeat("#", n%64-1) + "\n"
		}
		return s
	}
	for _, tc := range []struct {
		name, text string
		err        string
	}{
		{name: "over the cap", text: head + pad(MaxSize-len(head)) + "args = {mnt} {backng}\n", err: "d.conf: larger than the 1 MiB cap on a daemon description"},
		{name: "one byte over", text: head + pad(MaxSize-len(head)+1), err: "d.conf: larger than the 1 MiB cap on a daemon description"},
		{name: "at the cap", text: head + pad(MaxSize-len(head))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("d.conf", strings.NewReader(tc.text))
			if tc.err != "" {
				assert.Check(t, is.Error(err, tc.err))
				assert.Check(t, is.Nil(s))
				return
			}
			assert.NilError(t, err)
			assert.Check(t, is.Equal(s.Binary, "/bin/x"))
		})
	}
}

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "{mnt}", want: []string{"{mnt}"}},
		{in: "  -f  -o ro {mnt}\t{backing} ", want: []string{"-f", "-o", "ro", "{mnt}", "{backing}"}},
		{in: `-o 'source={backing},name=a b' "{mnt}"`, want: []string{"-o", "source={backing},name=a b", "{mnt}"}},
		{in: `a\ b "c\"d" 'e\f' ''`, want: []string{"a b", `c"d`, `e\f`, ""}},
		// Issue 21, row 9: in double quotes, a backslash before anything
		// but " and \ is kept (it used to be dropped).
		{in: `"a\b"`, want: []string{`a\b`}},
		{in: `"a\\b" "c\$d" "\\" "\x\""`, want: []string{`a\b`, `c\$d`, `\`, `\x"`}},
		// Outside quotes a backslash keeps the next character.
		{in: `a\b`, want: []string{"ab"}},
		// Bytes that are not UTF-8 are kept as they are.
		{in: "\xd1 \"\xff\xfe\" '\xc3'", want: []string{"\xd1", "\xff\xfe", "\xc3"}},
		{in: "", want: nil},
		{in: `'open`, err: true},
		{in: `end\`, err: true},
	} {
		got, err := SplitArgs(tc.in)
		if tc.err {
			assert.Check(t, err != nil, "%q", tc.in)
			continue
		}
		assert.Check(t, err, "%q", tc.in)
		assert.DeepEqual(t, got, tc.want)
	}
}

// Where a key is given, for errors about its value.
func TestWhere(t *testing.T) {
	s, err := Parse("d.conf", strings.NewReader("[daemon x]\n\nbinary = /bin/x\nargs = {mnt}\n"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(s.Where("binary"), "d.conf:3"))
	assert.Check(t, is.Equal(s.Where("args"), "d.conf:4"))
	assert.Check(t, is.Equal(s.Where("env"), ""))
}

// Every daemon the built-in catalog ships (docs/clients.md) is a valid
// description of a Debian package's FUSE file system, named after the
// package: a mistake here would cost a user a boot.
func TestShippedClients(t *testing.T) {
	c := kernels.DefaultCatalog
	names := c.Daemons()
	assert.Check(t, len(names) >= 8, "issue 23 asks for at least 8 clients: %v", names)
	text := kernels.CatalogText()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			sec, _ := c.Daemon(name)
			s, err := FromSection(sec)
			assert.NilError(t, err)
			ref, ok := strings.CutPrefix(s.Binary, DebianPrefix)
			assert.Assert(t, ok, "binary %q is no Debian package", s.Binary)
			r, err := kernels.ParsePackageRef(ref)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(r.Name, name), "named after its package")
			assert.Check(t, r.Suite != "", "its suite is given, not left to whatever stable is then")
			assert.Check(t, s.Program == "" || strings.HasPrefix(s.Program, "/usr/"), "program %q", s.Program)
			assert.Check(t, s.Args != nil, "its arguments are given")
			// Each says whether that version asks for passthrough, which
			// daemon/NAME/passthrough then holds it to.
			assert.Check(t, s.Passthrough != nil, "no passthrough = line: say whether this version asks for passthrough")
			spec := contract.DaemonSpec{Name: s.Name, Path: "/usr/bin/x", Args: s.Args, Env: s.Env, Setup: s.Setup, Stdin: s.Stdin, Dirs: s.Dirs}
			assert.Check(t, spec.Check())
			for _, d := range s.Dirs {
				assert.Check(t, slices.ContainsFunc(slices.Concat(s.Args, slices.Concat(s.Setup...)), func(a string) bool {
					return strings.Contains(a, contract.PlaceholderScratch+"/"+d)
				}), "dirs %s: no argument names it", d)
			}
			// A comment line right above the section says what it mounts
			// and why its arguments are what they are.
			lines := strings.Split(text, "\n")
			assert.Check(t, strings.HasPrefix(lines[sec.Line-2], "# "), "no comment above [daemon %s]", name)
		})
	}
}

// The catalog's summary names what each daemon section runs, or that it
// cannot be read and where to see why.
func TestProgram(t *testing.T) {
	c, err := kernels.DefaultCatalog.Overlay("user.conf", strings.NewReader(
		"[daemon mine]\nbinary = /bin/true\n\n[daemon broken]\nbinary = /bin/true\nnosuchkey = 1\n"))
	assert.NilError(t, err)
	for _, tc := range []struct{ name, want string }{
		{"mine", "/bin/true"},
		{"broken", "(not readable: see -daemon broken)"},
		{"bindfs", "debian:bindfs@sid"},
	} {
		sec, ok := c.Daemon(tc.name)
		assert.Assert(t, ok, tc.name)
		assert.Check(t, is.Equal(Program(sec), tc.want), tc.name)
	}
}
