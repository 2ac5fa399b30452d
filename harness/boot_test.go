package harness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fusematrix/fusematrix/harness/qemu"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// fakeGuest returns a guest whose "QEMU" is this test binary acting out mode.
func fakeGuest(t *testing.T, mode string) *guest {
	t.Helper()
	t.Setenv("FAKE_QEMU", mode)
	dir, err := shortRunDir()
	assert.NilError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	exe, err := os.Executable()
	assert.NilError(t, err)
	return &guest{
		name: "fake",
		cfg: qemu.Config{
			Binary: exe, Kernel: "/nonexistent", RunDir: dir,
			ConsoleLog:   filepath.Join(dir, "console.log"),
			StreamSocket: filepath.Join(dir, "stream.sock"),
			PortName:     contract.PortName,
			Accel:        qemu.TCG,
		},
		limits:       results.DefaultLimits,
		timeout:      20 * time.Second,
		helloTimeout: 2 * time.Second,
		checks: []contract.Check{
			{ID: "a", Kind: results.Scenario, Timeout: time.Second},
			{ID: "b", Kind: results.Scenario, Timeout: time.Second},
		},
		grace: time.Second,
		logf:  t.Logf,
	}
}

func TestGuestOutcomes(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		done    bool
		results int
		err     string // substring; "" = no error
	}{
		{mode: "ok", done: true, results: 2},
		{mode: "silent", err: "no hello from the guest agent within 2s"},
		{mode: "panic", results: 1, err: "guest panicked: Kernel panic - not syncing: fake oops"},
		{mode: "pvpanic", err: "guest panicked: GUEST_PANICKED"},
		{mode: "no-done", results: 1, err: "stream ended without a done event after 1 results"},
		{mode: "bad-counts", results: 1, err: "done counts"},
		{mode: "huge-line", err: "stream exceeds limits"},
		{mode: "gap", err: "events were lost or repeated"},
		{mode: "abort", err: "failed to set MSR"},
		// A run that did not test what it was asked to is never a pass.
		{mode: "early-done", err: "selected but never reported: a, b"},
		{mode: "dup-id", results: 1, err: "result a reported twice"},
		{mode: "forged-expect", results: 2, err: "result expect/passthrough-offered: only the host produces expectations"},
		{mode: "unasked", results: 2, err: "result c was not asked for"},
		{mode: "second-hello", results: 1, err: "a second hello (release 6.0.0-other)"},
		{mode: "stall", results: 1, err: "no result for b within 2s (its limit 1s and 1s of grace)"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			g := fakeGuest(t, tc.mode)
			o := g.run(context.Background())
			assert.Equal(t, o.done, tc.done)
			assert.Check(t, is.Len(o.kernel.Results, tc.results))
			if tc.err == "" {
				assert.NilError(t, o.err)
				assert.Equal(t, o.kernel.Release, "6.99.0-fake")
				return
			}
			assert.ErrorContains(t, o.err, tc.err)
		})
	}
}

// Under KVM, failures before hello blame the accelerator; after hello, or
// under TCG, they blame the kernel.
func TestAccelFailure(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		accel  qemu.Accel
		blamed bool
	}{
		{mode: "abort", accel: qemu.KVM, blamed: true},
		{mode: "internal-error", accel: qemu.KVM, blamed: true},
		{mode: "silent", accel: qemu.KVM, blamed: true},
		{mode: "silent", accel: qemu.TCG, blamed: false},
		{mode: "pvpanic", accel: qemu.KVM, blamed: false},
		{mode: "no-done", accel: qemu.KVM, blamed: false},
	} {
		t.Run(string(tc.accel)+"/"+tc.mode, func(t *testing.T) {
			g := fakeGuest(t, tc.mode)
			g.cfg.Accel = tc.accel
			o := g.run(context.Background())
			assert.Assert(t, o.err != nil)
			assert.Equal(t, o.accelFailed, tc.blamed, "err: %v", o.err)
		})
	}
}

func TestBootFallsBackToTCG(t *testing.T) {
	g := fakeGuest(t, "kvm:internal-error/tcg:ok")
	o, note, _ := bootKernel(context.Background(), g, []qemu.Accel{qemu.KVM, qemu.TCG}, func(a qemu.Accel) string {
		return filepath.Join(g.cfg.RunDir, string(a)+".log")
	})
	assert.NilError(t, o.err)
	assert.Equal(t, o.accel, qemu.TCG)
	assert.Check(t, is.Contains(note, "kvm failed (guest stopped: QEMU run state internal-error)"))
}

func TestBootKeepsKVMWhenItWorks(t *testing.T) {
	g := fakeGuest(t, "ok")
	o, note, _ := bootKernel(context.Background(), g, []qemu.Accel{qemu.KVM, qemu.TCG}, func(a qemu.Accel) string {
		return filepath.Join(g.cfg.RunDir, string(a)+".log")
	})
	assert.NilError(t, o.err)
	assert.Equal(t, o.accel, qemu.KVM)
	assert.Equal(t, note, "")
}

// A kernel that panics before hello is booted once more, and the first
// console log is kept and named; a second panic is the kernel's error,
// and a panic after hello is never retried (checks had run).
func TestBootRetriesEarlyPanic(t *testing.T) {
	for _, tc := range []struct {
		mode, err, retried string
	}{
		{mode: "boot-panic-once", retried: "the first boot panicked before the agent's hello (Kernel panic - not syncing: Fatal exception in interrupt; console: tcg.boot1.console.log); booted again"},
		{mode: "boot-panic", err: "guest panicked: Kernel panic - not syncing: Fatal exception in interrupt",
			retried: "the first boot panicked before the agent's hello"},
		{mode: "panic", err: "guest panicked: Kernel panic - not syncing: fake oops"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			g := fakeGuest(t, tc.mode)
			t.Setenv("FAKE_QEMU_ONCE", filepath.Join(g.cfg.RunDir, "once"))
			o, _, retried := bootKernel(context.Background(), g, []qemu.Accel{qemu.TCG}, func(a qemu.Accel) string {
				return filepath.Join(g.cfg.RunDir, string(a)+".console.log")
			})
			if tc.err == "" {
				assert.NilError(t, o.err)
				assert.Check(t, o.done)
			} else {
				assert.ErrorContains(t, o.err, tc.err)
			}
			if tc.retried == "" {
				assert.Equal(t, retried, "")
				return
			}
			assert.Check(t, is.Contains(retried, tc.retried))
			first, err := os.ReadFile(filepath.Join(g.cfg.RunDir, "tcg.boot1.console.log"))
			assert.NilError(t, err)
			assert.Check(t, is.Contains(string(first), "Kernel panic"))
			assert.Equal(t, o.console, filepath.Join(g.cfg.RunDir, "tcg.console.log"))
		})
	}
}

// A comma in the output directory (the console log), and in the run
// directory (the stream and QMP sockets), reaches QEMU escaped: the fake
// QEMU parses its options as QEMU does, and refuses a bare comma.
func TestCommaInPaths(t *testing.T) {
	g := fakeGuest(t, "ok")
	out := filepath.Join(t.TempDir(), "out,1")
	run := filepath.Join(g.cfg.RunDir, "r,1")
	for _, d := range []string{out, run} {
		assert.NilError(t, os.MkdirAll(d, 0o755))
	}
	g.cfg.ConsoleLog = filepath.Join(out, "01-a,b.console.log")
	g.cfg.RunDir = run
	g.cfg.StreamSocket = filepath.Join(run, "stream,1.sock")
	o := g.run(context.Background())
	assert.NilError(t, o.err)
	assert.Check(t, o.done)
	assert.Check(t, is.Len(o.kernel.Results, 2))
	console, err := os.ReadFile(g.cfg.ConsoleLog)
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(console), "Linux version 6.99.0-fake"))
}

// Cancelling the context (Ctrl-C) stops the guest and leaves no QEMU.
func TestInterruptStopsGuest(t *testing.T) {
	g := fakeGuest(t, "silent")
	pidFile := filepath.Join(t.TempDir(), "qemu.pid")
	t.Setenv("FAKE_QEMU_PID", pidFile)
	g.helloTimeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	o := g.run(ctx)
	assert.ErrorContains(t, o.err, "interrupted")
	assert.Assert(t, time.Since(start) < 30*time.Second)
	// QEMU (the fake, this test binary) must be gone, and reaped, once
	// run returns.
	data, err := os.ReadFile(pidFile)
	assert.NilError(t, err, "the fake QEMU never started")
	pid, err := strconv.Atoi(string(data))
	assert.NilError(t, err)
	err = syscall.Kill(pid, 0)
	if !errors.Is(err, syscall.ESRCH) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("QEMU (pid %d) is still there after the interrupted run returned: kill(pid, 0) = %v", pid, err)
	}
}

// A guest that floods its stream after a panic, or sends more than the
// host holds for one guest, ends that guest's stream, and the goroutine
// reading it ends too.
func TestStreamBounds(t *testing.T) {
	for _, tc := range []struct {
		mode, err string
		limit     int64
	}{
		{mode: "flood-after-panic", err: "guest panicked"},
		{mode: "over-cap", err: "more than 200000 bytes", limit: 200000},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			before := runtime.NumGoroutine()
			g := fakeGuest(t, tc.mode)
			g.logf = func(string, ...any) {} // thousands of lines
			g.grace = 10 * time.Second
			if tc.limit > 0 {
				g.limits.StreamBytes = tc.limit
			}
			o := g.run(context.Background())
			assert.ErrorContains(t, o.err, tc.err)
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			assert.Check(t, runtime.NumGoroutine() <= before, "goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), goroutines())
		})
	}
}

func goroutines() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// A kernel warning on the console while a check ran fails that check,
// even when the guest reported it passed: the host reads the console too.
func TestConsoleKernelReport(t *testing.T) {
	g := fakeGuest(t, "oops-done")
	o := g.run(context.Background())
	assert.NilError(t, o.err)
	assert.Assert(t, is.Len(o.kernel.Results, 2))
	a, b := o.kernel.Results[0], o.kernel.Results[1]
	assert.Check(t, is.Equal(a.Status, results.Fail))
	assert.Check(t, is.Contains(a.Reason, "the kernel reported \"WARNING: CPU: 0 PID: 70 at fs/fuse/iomode.c:101"))
	assert.Check(t, is.Contains(a.Reason, "(on the console; the check itself: pass)"))
	assert.Check(t, is.Contains(a.Log, "console: [ 2.000001] WARNING: CPU: 0 PID: 70 at fs/fuse/iomode.c:101 fuse_file_io_release+0x5c/0x70"))
	assert.Check(t, is.Equal(b.Status, results.Pass), "the next check is not blamed")
}

func TestConsoleNameIgnoresHostileNames(t *testing.T) {
	for _, name := range []string{"../../etc/passwd", "/abs/path/bzImage", "debian:6.12/cloud", strings.Repeat("x", 500)} {
		got := consoleName(3, name, qemu.TCG, true)
		assert.Check(t, !strings.Contains(got, "/"), got)
		assert.Check(t, !strings.HasPrefix(got, "."), got)
		assert.Check(t, len(got) < 100, got)
	}
	assert.Equal(t, consoleName(0, "debian:6.12/cloud", qemu.TCG, true), "01-debian-6.12-cloud.console.log")
}
