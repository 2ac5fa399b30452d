package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"
)

// The two shards of testdata/merge are halves of one real run of the
// default matrix, the second made on another host.
var (
	shardA = filepath.Join("testdata", "merge", "a")
	shardB = filepath.Join("testdata", "merge", "b")
)

// merge joins shards into one folder: results.json and junit.xml as one
// run would have written them (golden), every console log copied, a name
// two shards share kept apart, and each kernel's console_log following.
func TestMerge(t *testing.T) {
	out := filepath.Join(t.TempDir(), "merged")
	code, text := fusematrix(t, "merge", "-out", out, shardA, filepath.Join(shardB, "results.json"))
	assert.Equal(t, code, 0, text)
	assert.Check(t, is.Contains(text, "merged 2 runs: 2 kernels, 40 results (27 pass, 0 fail, 13 skip, 0 error)"))

	for _, name := range []string{"results.json", "junit.xml"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		assert.NilError(t, err)
		golden.Assert(t, string(b), filepath.Join("merge", "merged."+name+".golden"))
	}
	run := readRun(t, out)
	assert.Equal(t, run.Kernels[0].Name, "debian:6.1/cloud@bookworm", "kernels in version order")
	assert.Equal(t, run.Kernels[0].ConsoleLog, "01-debian-6.1-cloud-bookworm.console.log")
	assert.Equal(t, run.Kernels[1].ConsoleLog, "01-debian-6.12-cloud-bookworm.console.log")
	for name, want := range map[string]string{
		"01-debian-6.1-cloud-bookworm.console.log":  "Linux version 6.1.0-57",
		"01-debian-6.12-cloud-bookworm.console.log": "Linux version 6.12.118",
		"00-extra.kvm.console.log":                  "kvm attempt of shard a",
		"shard2-00-extra.kvm.console.log":           "kvm attempt of shard b",
	} {
		b, err := os.ReadFile(filepath.Join(out, name))
		assert.Check(t, err)
		assert.Check(t, is.Contains(string(b), want), name)
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(html), "debian:6.1/cloud@bookworm"))
	assert.Check(t, is.Contains(string(html), "debian:6.12/cloud@bookworm"))

	// The merged run compares with itself as any run does, and caps reads it.
	code, text = fusematrix(t, "compare", out, out)
	assert.Equal(t, code, 0, text)
	code, text = fusematrix(t, "caps", "-from", filepath.Join(out, "results.json"))
	assert.Equal(t, code, 0, text)

	// Merging into a folder that holds something is refused.
	code, text = fusematrix(t, "merge", "-out", out, shardA, shardB)
	assert.Equal(t, code, 2, text)
	assert.Check(t, is.Contains(text, "is not empty: give a new folder"))
}

// Input merge cannot join is a usage error: exit 2, a message naming the
// cause, and no output folder at all (nothing written half).
func TestMergeBadInput(t *testing.T) {
	bad := func(name string) string { return filepath.Join("testdata", "compare", name) }
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"truncated JSON", []string{shardA, bad("truncated.json")}, "read run testdata/compare/truncated.json: not a fusematrix run: unexpected end of JSON input"},
		{"future schema", []string{bad("future-schema.json"), shardB}, "fusematrix run of schema 2; this fusematrix reads schema 1"},
		{"same kernel twice", []string{shardA, shardB, shardA}, `kernel "debian:6.12/cloud@bookworm" is in both testdata/merge/a/results.json and testdata/merge/a/results.json: shards must not overlap`},
		{"folder without results", []string{shardA, t.TempDir()}, "results.json: no such file or directory"},
		{"nothing", nil, "fusematrix merge: no runs given"},
		{"same id twice", []string{shardA, hostileRuns(t).dup}, `result "fuse-init" appears more than once`},
		{"a FIFO", []string{hostileRuns(t).fifo, shardA}, "results.json: not a regular file (a named pipe)"},
		{"a cell's min above its max", []string{hostileRuns(t).minAboveMax}, hostileCell + `: metric "mbps_min": 1801 is above "mbps_max"`},
		{"negative MB/s", []string{hostileRuns(t).negative}, hostileCell + `: metric "mbps_min": -1600 is negative`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "merged")
			code, text := fusematrix(t, append([]string{"merge", "-out", out}, tc.args...)...)
			assert.Equal(t, code, 2, text)
			assert.Check(t, is.Contains(text, tc.want))
			_, err := os.Stat(out)
			assert.Check(t, os.IsNotExist(err), "the output folder exists")
			entries, err := os.ReadDir(filepath.Dir(out))
			assert.NilError(t, err)
			assert.Check(t, is.Len(entries, 0), "left behind: %v", entries)
		})
	}
}

// A shard's console log that is a symbolic link is not followed: a shard
// from another machine names no file of this one.
func TestMergeSymlinkedConsole(t *testing.T) {
	shard := t.TempDir()
	b, err := os.ReadFile(filepath.Join(shardA, "results.json"))
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(shard, "results.json"), b, 0o644))
	secret := filepath.Join(t.TempDir(), "secret")
	assert.NilError(t, os.WriteFile(secret, []byte("host secret"), 0o600))
	assert.NilError(t, os.Symlink(secret, filepath.Join(shard, "01-debian-6.12-cloud-bookworm.console.log")))

	out := filepath.Join(t.TempDir(), "merged")
	code, text := fusematrix(t, "merge", "-out", out, shard, shardB)
	assert.Equal(t, code, 0, text)
	assert.Check(t, is.Contains(text, `fusematrix merge: kernel "debian:6.12/cloud@bookworm": console log "01-debian-6.12-cloud-bookworm.console.log" is not a plain file beside`))
	run := readRun(t, out)
	assert.Equal(t, run.Kernels[1].ConsoleLog, "", "a console the shard did not hold as a file")
	entries, err := os.ReadDir(out)
	assert.NilError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(out, e.Name()))
		assert.NilError(t, err)
		assert.Check(t, !strings.Contains(string(b), "host secret"), e.Name())
	}
}

// copyShard copies the shard in folder from into a new folder, with extra
// files, and returns the new folder.
func copyShard(t *testing.T, from string, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(from)
	assert.NilError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		assert.NilError(t, err)
		assert.NilError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644))
	}
	for name, text := range extra {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
	}
	return dir
}

// A console log name the shard-numbered name of another shard's log
// collides with gets the next free name, and the kernel's console_log
// follows it (issue 21 row 13: merge stopped with "file exists").
func TestMergeConsoleNames(t *testing.T) {
	const kvm, console61 = "00-extra.kvm.console.log", "01-debian-6.1-cloud-bookworm.console.log"
	a := copyShard(t, shardA, map[string]string{
		"shard2-" + kvm:       "shard a's own shard2- log",
		console61:             "shard a's log of the same name as b's kernel's",
		"shard2-" + console61: "shard a's, again",
	})
	out := filepath.Join(t.TempDir(), "merged")
	code, text := fusematrix(t, "merge", "-out", out, a, shardB)
	assert.Equal(t, code, 0, text)
	run := readRun(t, out)
	assert.Equal(t, run.Kernels[0].Name, "debian:6.1/cloud@bookworm")
	assert.Equal(t, run.Kernels[0].ConsoleLog, "shard2-2-"+console61, "the kernel's console_log follows its log")
	for name, want := range map[string]string{
		kvm:                     "kvm attempt of shard a",
		"shard2-" + kvm:         "shard a's own shard2- log",
		"shard2-2-" + kvm:       "kvm attempt of shard b",
		console61:               "shard a's log of the same name",
		"shard2-" + console61:   "shard a's, again",
		"shard2-2-" + console61: "Linux version 6.1.0-57",
	} {
		b, err := os.ReadFile(filepath.Join(out, name))
		assert.Check(t, err)
		assert.Check(t, is.Contains(string(b), want), name)
	}
}

// SIGTERM during a merge removes its staging folder and exits non-zero,
// leaving no output (issue 21 row 13). The merge is held mid-way by an
// honest stall: its stderr is a pipe the test has filled, and merge warns
// there, after staging began, of a console log its shard lacks. The
// staging folder must go while merge is still stuck in that write.
func TestMergeSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			shard := t.TempDir() // results.json names a console log it does not hold
			b, err := os.ReadFile(filepath.Join(shardA, "results.json"))
			assert.NilError(t, err)
			assert.NilError(t, os.WriteFile(filepath.Join(shard, "results.json"), b, 0o644))
			parent := t.TempDir()
			out := filepath.Join(parent, "merged")

			var p [2]int
			assert.NilError(t, syscall.Pipe2(p[:], syscall.O_CLOEXEC))
			r, w := os.NewFile(uintptr(p[0]), "stderr-r"), os.NewFile(uintptr(p[1]), "stderr-w")
			defer r.Close()
			fillPipe(t, p[1])

			exe, err := os.Executable()
			assert.NilError(t, err)
			cmd := exec.Command(exe, "merge", "-out", out, shard, shardB)
			cmd.Env = append(os.Environ(), "FUSEMATRIX_TEST_MAIN=1")
			cmd.Stderr = w
			assert.NilError(t, cmd.Start())
			w.Close()
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()

			staging := func() []string {
				m, err := filepath.Glob(filepath.Join(parent, ".merged.merge-*"))
				assert.NilError(t, err)
				return m
			}
			// Until the pipe is drained merge cannot pass its warning, so
			// these waits only bound a failure.
			waitFor(t, exited, "the staging folder", func() bool { return len(staging()) > 0 })
			assert.NilError(t, cmd.Process.Signal(sig))
			waitFor(t, exited, "the staging folder to go while merge is stuck", func() bool { return len(staging()) == 0 })

			var stderr bytes.Buffer
			drained := make(chan struct{})
			go func() {
				io.Copy(&stderr, r)
				close(drained)
			}()
			err = <-exited
			<-drained
			var exit *exec.ExitError
			assert.Assert(t, errors.As(err, &exit), "merge exited 0 after %s: %s", sig, stderr.String())
			assert.Check(t, is.Equal(exit.ExitCode(), 130), stderr.String())
			assert.Check(t, is.Contains(stderr.String(), "fusematrix merge: interrupted; nothing written"))
			entries, err := os.ReadDir(parent)
			assert.NilError(t, err)
			assert.Check(t, is.Len(entries, 0), "left behind: %v", entries)
		})
	}
}

// fillPipe writes to the pipe fd until it holds all it can, so that the
// next write to it blocks until someone reads.
func fillPipe(t *testing.T, fd int) {
	t.Helper()
	assert.NilError(t, syscall.SetNonblock(fd, true))
	chunk := bytes.Repeat([]byte("x"), 4096)
	for {
		_, err := syscall.Write(fd, chunk)
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		assert.NilError(t, err)
	}
	for { // the last bytes a smaller write still fits
		_, err := syscall.Write(fd, chunk[:1])
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		assert.NilError(t, err)
	}
	assert.NilError(t, syscall.SetNonblock(fd, false))
}

// waitFor waits until cond holds, failing when the process ends first or
// after a minute, a bound on a failure and not a measure of speed.
func waitFor(t *testing.T, exited chan error, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("merge ended (%v) while waiting for %s", err, what)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after a minute", what)
		}
	}
}
