package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"

	"github.com/fusematrix/fusematrix/kernels"
	is "gotest.tools/v3/assert/cmp"
)

// terminal is fusematrix shell running on a pseudo-terminal, as a person
// would run it: the session leader with the terminal as its controlling
// one.
type terminal struct {
	t      *testing.T
	master *os.File
	cmd    *exec.Cmd
	tmp    string // TMPDIR of the command: its QEMU's sockets are below

	mu  sync.Mutex
	out bytes.Buffer
	eof chan struct{}
}

func startTerminal(t *testing.T, args ...string) *terminal {
	t.Helper()
	master, slave := openPTY(t)
	exe, err := os.Executable()
	assert.NilError(t, err)
	tm := &terminal{t: t, master: master, tmp: t.TempDir(), eof: make(chan struct{})}
	tm.cmd = exec.Command(exe, append([]string{"shell"}, args...)...)
	tm.cmd.Env = append(os.Environ(), "FUSEMATRIX_TEST_MAIN=1", "TMPDIR="+tm.tmp)
	tm.cmd.Stdin, tm.cmd.Stdout, tm.cmd.Stderr = slave, slave, slave
	tm.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	assert.NilError(t, tm.cmd.Start())
	slave.Close()
	t.Cleanup(func() {
		tm.cmd.Process.Kill()
		tm.cmd.Wait()
		master.Close()
	})
	go func() {
		defer close(tm.eof)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			tm.mu.Lock()
			tm.out.Write(buf[:n])
			tm.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return tm
}

// openPTY opens a pseudo-terminal pair with /dev/ptmx. The master is
// opened non-blocking so that it is a pollable File: closing it then
// wakes the goroutine reading it and really closes it (a hangup for the
// other side), where a blocking one would wait for that read to end.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	assert.NilError(t, unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	assert.NilError(t, err)
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	assert.NilError(t, err)
	return os.NewFile(uintptr(fd), "/dev/ptmx"), s
}

// expect waits until the output after from holds want and returns the
// offset past it.
func (tm *terminal) expect(from int, want string, limit time.Duration) int {
	tm.t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
		tm.mu.Lock()
		out := tm.out.String()
		tm.mu.Unlock()
		if i := strings.Index(out[min(from, len(out)):], want); i >= 0 {
			return from + i + len(want)
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("no %q within %s; the terminal shows:\n%s", want, limit, tail(out, 3000))
		}
	}
}

func (tm *terminal) send(s string) {
	tm.t.Helper()
	_, err := tm.master.WriteString(s)
	assert.NilError(tm.t, err)
}

// exit waits for the command to end and returns its exit code.
func (tm *terminal) exit(limit time.Duration) int {
	tm.t.Helper()
	done := make(chan error, 1)
	go func() { done <- tm.cmd.Wait() }()
	select {
	case err := <-done:
		// What it printed last may still be on its way through the
		// terminal: read to the end, which comes once no process holds
		// the other side.
		select {
		case <-tm.eof:
		case <-time.After(5 * time.Second):
		}
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		assert.NilError(tm.t, err)
		return 0
	case <-time.After(limit):
		tm.t.Fatalf("fusematrix shell did not end within %s:\n%s", limit, tail(tm.output(), 3000))
		return -1
	}
}

func (tm *terminal) output() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.out.String()
}

// leftQEMU lists the processes whose command line names the command's
// TMPDIR: its QEMU, had it outlived it.
func (tm *terminal) leftQEMU() []string {
	var left []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(tm.tmp)) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
		if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) > 0 && f[0] == "Z" {
			continue // dead, waiting for its parent
		}
		left = append(left, strings.ReplaceAll(string(b), "\x00", " "))
	}
	return left
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

// fusematrix shell gives a shell on the guest's console with the loopback
// mounted and the agent at hand; exit powers the guest off, and nothing is
// left behind.
func TestShell(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a kernel")
	}
	tm := startTerminal(t, "-accel", "tcg", "-out", t.TempDir(), "debian:6.12/cloud@bookworm")
	at := tm.expect(0, "is mounted at /mnt/fuse", 10*time.Minute)
	at = tm.expect(at, "$ ", time.Minute)
	tm.send("echo shell-$((6*7)) > /mnt/fuse/f; cat /run/fusematrix/backing/f; grep -c fuse.fusematrix /proc/mounts\n")
	at = tm.expect(at, "shell-42\r\n1\r\n", time.Minute)
	tm.send("fusematrix-agent run classic/basics\n")
	at = tm.expect(at, "scenario classic/basics: pass", 2*time.Minute)
	at = tm.expect(at, "$ ", time.Minute)
	tm.send("fusematrix-agent run no/such-check\n")
	at = tm.expect(at, "matches no check", time.Minute)
	tm.send("exit\n")
	code := tm.exit(time.Minute)
	assert.Equal(t, code, 0, tail(tm.output(), 3000))
	assert.Check(t, is.Contains(tm.output(), "the guest powered off"))
	assert.Check(t, is.Len(tm.leftQEMU(), 0))
}

// A daemon packaged by Debian in the shell: it runs in its root, showing a
// directory of that root at a mount point in it, and its checks run from
// the shell.
func TestShellDebianDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a kernel, and reads sid's index from the configured Debian mirror")
	}
	plan, err := kernels.LookupSysroot(context.Background(), kernels.PackageRef{Name: "bindfs", Suite: "sid"}, kernels.Options{})
	assert.NilError(t, err)
	root := "/fusematrix/sysroot/bindfs-" + plan.Key[:16]
	tm := startTerminal(t, "-accel", "tcg", "-out", t.TempDir(), "-daemon", "debian:bindfs@sid", "-daemon-args", "{backing} {mnt}", "debian:6.12/cloud@bookworm")
	at := tm.expect(0, "Daemon bindfs shows "+root+"/run/fusematrix/backing (a tmpfs directory) at "+root+"/mnt/fuse", 10*time.Minute)
	at = tm.expect(at, `its arguments: ["/run/fusematrix/backing" "/mnt/fuse"]`, time.Minute)
	at = tm.expect(at, "$ ", time.Minute)
	tm.send("echo shell-$((6*7)) > " + root + "/mnt/fuse/f; cat " + root + "/run/fusematrix/backing/f; grep -c ' " + root + "/mnt/fuse fuse' /proc/mounts\n")
	at = tm.expect(at, "shell-42\r\n1\r\n", time.Minute)
	tm.send("fusematrix-agent run daemon/bindfs/pt/integrity\n")
	at = tm.expect(at, "scenario daemon/bindfs/pt/integrity: pass", 2*time.Minute)
	at = tm.expect(at, "$ ", time.Minute)
	tm.send("exit\n")
	code := tm.exit(time.Minute)
	assert.Equal(t, code, 0, tail(tm.output(), 3000))
	assert.Check(t, is.Len(tm.leftQEMU(), 0))
}

// A terminal that goes away (the window closed: SIGHUP) stops the guest:
// no QEMU is left.
func TestShellHangup(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a kernel")
	}
	tm := startTerminal(t, "-accel", "tcg", "-out", t.TempDir(), "debian:6.1/cloud@bookworm")
	tm.expect(0, "$ ", 10*time.Minute)
	assert.Check(t, len(tm.leftQEMU()) > 0, "QEMU runs while the shell does")
	tm.master.Close()
	code := tm.exit(time.Minute)
	assert.Check(t, code != 0, "a hangup is no clean exit")
	for deadline := time.Now().Add(20 * time.Second); len(tm.leftQEMU()) > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("QEMU outlived fusematrix shell: %q", tm.leftQEMU())
		}
	}
}

// shell -h lists the flags a shell takes, not the boot flags it refuses.
func TestShellUsage(t *testing.T) {
	code, _, stderr := fusematrixStreams(t, "shell", "-h")
	assert.Equal(t, code, 2)
	for _, want := range []string{"usage: fusematrix shell", "\n  -daemon ", "\n  -accel ", "(default 10m0s)"} {
		assert.Check(t, strings.Contains(stderr, want), "%q not in\n%s", want, stderr)
	}
	for _, refused := range []string{"-run", "-scenario", "-count", "-j"} {
		assert.Check(t, !strings.Contains(stderr, "\n  "+refused+" "), "%s listed in\n%s", refused, stderr)
		code, _, stderr := fusematrixStreams(t, "shell", refused, "1", "debian:6.12")
		assert.Check(t, code == 2 && strings.Contains(stderr, refused+" has no effect on a shell"), "%d %s", code, stderr)
	}
}
