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
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The test binary doubles as the fusematrix command.
func TestMain(m *testing.M) {
	if os.Getenv("FUSEMATRIX_TEST_MAIN") == "1" {
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
			args := append([]string{"matrix", "-accel", "tcg", "-run", "^$", "-out", out}, tc.args...)
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
