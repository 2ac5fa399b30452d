package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The test binary doubles as the fusematrix command.
func TestMain(m *testing.M) {
	if os.Getenv("FUSEMATRIX_TEST_MAIN") == "1" {
		fakeBisect()
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fusematrix runs the command and returns its exit code and output.
func fusematrix(t *testing.T, args ...string) (int, string) {
	t.Helper()
	exe, err := os.Executable()
	assert.NilError(t, err)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "FUSEMATRIX_TEST_MAIN=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	assert.NilError(t, err)
	return 0, string(out)
}

func readRun(t *testing.T, dir string) results.Run {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	assert.NilError(t, err)
	var run results.Run
	assert.NilError(t, json.Unmarshal(b, &run))
	return run
}

func TestUsage(t *testing.T) {
	code, out := fusematrix(t)
	assert.Equal(t, code, 2)
	assert.Check(t, is.Contains(out, "usage: fusematrix"))
	code, out = fusematrix(t, "frobnicate")
	assert.Equal(t, code, 2)
	assert.Check(t, is.Contains(out, `unknown command "frobnicate"`))
	code, _ = fusematrix(t, "matrix", "-no-such-flag")
	assert.Equal(t, code, 2)
}

// A selection that cannot work stops before anything boots, with the
// usage exit code: a run that tests nothing must not read as a pass.
func TestBadSelection(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"matrix", "-run", "("}, "error parsing regexp"},
		{[]string{"matrix", "-run", "^no-such-check$"}, `matches no check`},
		{[]string{"bench", "-scenario", "^bench/read/nosuchmode/"}, `matches no check`},
		{[]string{"caps", "-count", "1001"}, "count 1001: want 1 to 1000"},
		{[]string{"bench", "-run", "^bench/read/nosuchmode/"}, `matches no check`},
		{[]string{"caps", "-run", "^pt/"}, "caps: runs the probes only"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out := t.TempDir()
			args := append(tc.args[:1:1], append([]string{"-q", "-out", out, "-qemu", "/nonexistent/qemu"}, tc.args[1:]...)...)
			code, text := fusematrix(t, args...)
			assert.Equal(t, code, 2, text)
			assert.Check(t, is.Contains(text, tc.want))
			_, err := os.Stat(filepath.Join(out, "results.json"))
			assert.Check(t, errors.Is(err, os.ErrNotExist), "nothing written")
		})
	}
}

func TestMissingQEMU(t *testing.T) {
	code, out := fusematrix(t, "matrix", "-q", "-out", t.TempDir(), "-qemu", "/nonexistent/qemu-system-x86_64")
	assert.Equal(t, code, 1)
	assert.Check(t, is.Contains(out, "install Debian's qemu-system-x86 package"))
}

// A kernel that cannot be found or whose agent never speaks fails alone,
// with one clear line, and the kernels that ran are still written.
func TestFailingKernelsAreReported(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest with a kernel from the Debian mirror; run without -short")
	}
	for _, tc := range []struct {
		name   string
		args   []string
		kernel int    // index of the failing kernel
		err    string // what its error says
	}{
		{name: "unknown kernel", args: []string{"debian:6.99/cloud", "debian:6.12/cloud@bookworm"}, kernel: 0, err: `kernel "debian:6.99/cloud" not found; nearest: `},
		{name: "no hello", args: []string{"-append", "fusematrix.port=nope", "debian:6.12/cloud@bookworm"}, kernel: 0, err: "guest ended before the agent said hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"matrix", "-accel", "tcg", "-run", contract.ProbesOnly, "-out", out}, tc.args...)
			code, text := fusematrix(t, args...)
			assert.Equal(t, code, 1, text)
			assert.Check(t, is.Contains(text, tc.err))
			run := readRun(t, out)
			k := run.Kernels[tc.kernel]
			assert.Equal(t, k.Status, results.Error)
			assert.Check(t, is.Contains(k.Error, tc.err))
			if tc.name == "unknown kernel" {
				// What to do instead: the series that do exist.
				assert.Check(t, is.Regexp(`available cloud series: 6\.1, 6\.12(,|$)`, k.Error))
			}
			for i, other := range run.Kernels {
				if i != tc.kernel {
					assert.Check(t, other.OK(), "%s: %s", other.Name, other.Error)
					assert.Check(t, other.Result("fuse-init") != nil)
				}
			}
		})
	}
}

// SIGTERM (or Ctrl-C) stops every guest, keeps what was streamed so far,
// and exits 130.
func TestTerminateKeepsResults(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest with a kernel from the Debian mirror; run without -short")
	}
	out := t.TempDir()
	exe, err := os.Executable()
	assert.NilError(t, err)
	cmd := exec.Command(exe, "matrix", "-accel", "tcg", "-out", out, "debian:6.12/cloud@bookworm", "debian:6.1/cloud@bookworm")
	cmd.Env = append(os.Environ(), "FUSEMATRIX_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	assert.NilError(t, err)
	assert.NilError(t, cmd.Start())
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "pass fuse-init") {
			break
		}
	}
	assert.NilError(t, cmd.Process.Signal(syscall.SIGTERM))
	go io.Copy(io.Discard, stderr)
	err = cmd.Wait()
	var exit *exec.ExitError
	assert.Assert(t, errors.As(err, &exit), "%v", err)
	assert.Equal(t, exit.ExitCode(), 130)

	run := readRun(t, out)
	assert.Check(t, is.Contains(run.Kernels[0].Error, "interrupted"))
	assert.Check(t, run.Kernels[0].Result("fuse-init") != nil, "results streamed before the signal are kept")
	assert.Check(t, is.Contains(run.Kernels[1].Error, "interrupted before it ran"))
	// No QEMU of this run survives: their command lines name our folder.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		assert.Check(t, !strings.Contains(string(b), out), "left behind: %s", strings.ReplaceAll(string(b), "\x00", " "))
	}
}

// TestCatalogOverride checks that a user's catalog file, from -catalog,
// $FUSEMATRIX_CATALOG or the config directory, is layered over the
// built-in one wherever kernels are selected. Nothing here boots or
// reaches a mirror: the catalog is read before either.
func TestCatalogOverride(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	user := write("user.conf", "# mine\nmine = ./bzImage\n\n[default]\nmine\ndebian:6.12/cloud@bookworm\n[extra]\ndebian:7.3/cloud\n")
	config := write("config/fusematrix/catalog.conf", "[default]\ndebian:6.18/cloud\n")
	bad := write("bad.conf", "[default]\ndebian:6.1\ndebian:6.12 debian:7.3\n")
	overridden := "default (from " + user + "):\n  mine\n  debian:6.12/cloud@bookworm\n"
	image := write("bzImage", "not really a kernel")
	local := write("local.conf", "img = "+image+"\n[local]\nimg\n")
	// A source tree is listed with what it would build, not built.
	tree := filepath.Join(dir, "linux")
	write("linux/Makefile", "VERSION = 6\nPATCHLEVEL = 13\nSUBLEVEL = 2\nEXTRAVERSION = -rc1\n")
	write("linux/Kconfig", "")
	for _, d := range []string{"scripts/kconfig", "arch/x86"} {
		assert.NilError(t, os.MkdirAll(filepath.Join(tree, d), 0o755))
	}
	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		want   []string // in the output
		absent []string // not in it
	}{
		{
			name: "flag",
			args: []string{"kernels", "matrices", "-catalog", user},
			want: []string{
				overridden,
				"wide (from built-in kernels/catalog.conf):\n  debian:6.1/cloud@bookworm\n",
				"extra (from " + user + "):\n  debian:7.3/cloud\n",
				"named kernels:\n  mine = ./bzImage (from " + user + ")\n",
			},
		},
		{
			name: "environment",
			env:  map[string]string{"FUSEMATRIX_CATALOG": user},
			args: []string{"kernels", "matrices"},
			want: []string{overridden},
		},
		{
			name: "flag before environment",
			env:  map[string]string{"FUSEMATRIX_CATALOG": bad},
			args: []string{"kernels", "matrices", "-catalog", user},
			want: []string{overridden},
		},
		{
			name: "config directory",
			env:  map[string]string{"XDG_CONFIG_HOME": filepath.Join(dir, "config")},
			args: []string{"kernels", "matrices"},
			want: []string{"default (from " + config + "):\n  debian:6.18/cloud\n"},
		},
		{
			name: "built in only",
			args: []string{"kernels", "matrices"},
			want: []string{"default (from built-in kernels/catalog.conf):\n  debian:6.1/cloud@bookworm\n  debian:6.12/cloud@bookworm\n",
				// The catalog's clients (docs/clients.md), by name.
				"daemons (-daemon NAME):\n  bindfs = debian:bindfs@sid (from built-in kernels/catalog.conf:"},
			absent: []string{"named kernels", "extra"},
		},
		{
			name: "parse error names file and line",
			args: []string{"kernels", "matrices", "-catalog", bad},
			code: 1,
			want: []string{"fusematrix kernels matrices: " + bad + `:3: one kernel per line, no spaces: "debian:6.12 debian:7.3"`},
		},
		{
			name: "missing file",
			args: []string{"kernels", "matrices", "-catalog", filepath.Join(dir, "none.conf")},
			code: 1,
			want: []string{"catalog: open " + filepath.Join(dir, "none.conf")},
		},
		// The commands that boot kernels look their matrix up in the
		// layered catalog; an unknown one fails before anything boots.
		{
			name: "matrix",
			args: []string{"matrix", "-q", "-out", filepath.Join(dir, "out"), "-catalog", user, "-matrix", "nope"},
			code: 1,
			want: []string{`no kernel matrix "nope" in the catalog (known: default, wide, extra)`},
		},
		{
			name: "caps",
			args: []string{"caps", "-q", "-out", filepath.Join(dir, "out"), "-catalog", user, "-matrix", "nope"},
			code: 1,
			want: []string{`(known: default, wide, extra)`},
		},
		{
			name: "bench",
			args: []string{"bench", "-q", "-out", filepath.Join(dir, "out"), "-catalog", user, "-matrix", "nope"},
			code: 1,
			want: []string{`(known: default, wide, extra)`},
		},
		{
			name: "kernels list",
			args: []string{"kernels", "list", "-q", "-catalog", user, "-matrix", "nope"},
			code: 1,
			want: []string{`(known: default, wide, extra)`},
		},
		{
			name: "kernels list shows the matrix's file",
			args: []string{"kernels", "list", "-q", "-catalog", local, "-matrix", "local"},
			want: []string{"matrix local from " + local + "\n\nKERNEL ", "\nimg     " + image + " "},
		},
		{
			name:   "kernels list a source tree",
			env:    map[string]string{"XDG_CACHE_HOME": filepath.Join(dir, "cache")},
			args:   []string{"kernels", "list", "-q", "src:" + tree + ",base=tinyconfig"},
			want:   []string{"src:" + tree + ",base=tinyconfig  source " + tree + "  6.13.2-rc1  built, base tinyconfig  no (built when used)"},
			absent: []string{"error"},
		},
		{
			name: "kernels fetch",
			args: []string{"kernels", "fetch", "-q", "-catalog", user, "-matrix", "nope"},
			code: 1,
			want: []string{`(known: default, wide, extra)`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The machine's own configuration must not leak in.
			t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "empty"))
			t.Setenv("FUSEMATRIX_CATALOG", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, out := fusematrix(t, tc.args...)
			assert.Equal(t, code, tc.code, out)
			for _, s := range tc.want {
				assert.Check(t, is.Contains(out, s))
			}
			for _, s := range tc.absent {
				assert.Check(t, !strings.Contains(out, s), "%q in:\n%s", s, out)
			}
		})
	}
}

// Every command that fetches kernels takes -insecure-unsigned, and only
// that flag turns off the need for a keyring.
func TestInsecureUnsignedFlag(t *testing.T) {
	// The flags themselves: cli TestInsecureUnsignedFlag.

	// A keyring that is named but missing stops kernels fetch, flag or
	// not, before any network access.
	for _, args := range [][]string{{"kernels", "fetch"}, {"kernels", "fetch", "-insecure-unsigned"}, {"kernels", "list", "-insecure-unsigned"}} {
		cmd := append(args, "-q", "-mirror", "http://127.0.0.1:1/debian", "debian:6.1/cloud@bookworm")
		t.Setenv("FUSEMATRIX_KEYRING", filepath.Join(t.TempDir(), "missing.gpg"))
		t.Setenv("FUSEMATRIX_CACHE", t.TempDir())
		code, out := fusematrix(t, cmd...)
		assert.Equal(t, code, 1, out)
		assert.Check(t, is.Contains(out, "FUSEMATRIX_KEYRING names "), out)
		assert.Check(t, is.Contains(out, "no archive keyring"), out)
	}
}
