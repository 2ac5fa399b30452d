package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/harness/initramfs"
	"github.com/fusematrix/fusematrix/harness/qemu"
	"github.com/fusematrix/fusematrix/kernels"
	"github.com/fusematrix/fusematrix/results/contract"
)

// ShellCommands are the commands of the shell image besides the agent and
// init: u-root's tools a person looks inside a guest with. The shell is
// the agent's (fusematrix-agent sh), on the interpreter u-root's gosh uses.
var ShellCommands = func() []string {
	var cmds []string
	for _, c := range []string{
		"cat", "cmp", "cp", "dd", "df", "dmesg", "echo", "false", "find", "free", "grep",
		"head", "hexdump", "kill", "ls", "lsmod", "md5sum", "mkdir", "mount", "mv", "ps", "pwd",
		"rm", "sleep", "strace", "sync", "tail", "tee", "time", "touch", "true", "truncate",
		"umount", "uname", "wc",
	} {
		cmds = append(cmds, "github.com/u-root/u-root/cmds/core/"+c)
	}
	return cmds
}()

// shellMarker is the agent's first line in shell mode: the guest came up,
// so an accelerator that got this far is not to blame for what follows.
var shellMarker = []byte("fusematrix shell: ")

// Shell boots the kernel name with the shell image (and o.Daemons' one, which
// the guest then mounts instead of fusematrix's loopback) and connects the
// guest's serial console to in and out, until the guest powers off (the
// shell exited) or ctx ends; QEMU is gone when it returns. The console is
// also logged to OutDir/shell.console.log. Under -accel auto a KVM guest
// that dies before the agent speaks is booted again under TCG, as for
// checks.
func Shell(ctx context.Context, name string, o Options, in io.Reader, out io.Writer) error {
	o.defaults()
	o.Params.Shell = true
	if len(o.Daemons) > 1 {
		return errors.New("a shell mounts one daemon: give -daemon once")
	}
	var err error
	if o.Params.Daemons, err = daemonNames(o.Daemons); err != nil {
		return err
	}
	if _, err := qemu.Version(ctx, o.QEMU); err != nil {
		return fmt.Errorf("%w: install Debian's qemu-system-x86 package (make deps)", err)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return fmt.Errorf("shell: %w", err)
	}
	base, err := initramfs.Base(ctx, initramfs.Options{
		ModuleDir: o.SourceDir, CacheDir: o.CacheDir, Logf: o.Logf,
		Commands: ShellCommands,
	})
	if err != nil {
		return fmt.Errorf("build the shell's initramfs: %w", err)
	}
	k, release, err := kernels.ResolveHeld(ctx, name, o.Kernel)
	if err != nil {
		return err
	}
	defer release()
	o.Logf("%s: %s", name, k.Source)
	runDir, err := shortRunDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(runDir)
	initrd := filepath.Join(runDir, "initrd.cpio")
	if err := writeInitrd(ctx, base, initrd, k, "", o.Daemons); err != nil {
		return fmt.Errorf("initramfs for %s: %w", k.Release, err)
	}

	keys := make(chan []byte)
	go readInput(in, keys)
	var note string
	plan := accelPlan(o.Accel, &note)
	if note != "" {
		o.Logf("%s: %s", name, note)
	}
	for i, accel := range plan {
		cfg := qemu.Config{
			Binary: o.QEMU, Kernel: k.Image, Initrd: initrd, Append: agentArgs(o),
			MemoryMiB: o.MemoryMiB, CPUs: o.CPUs, Accel: accel, RunDir: runDir,
			ConsoleLog:    filepath.Join(o.OutDir, "shell.console.log"),
			ConsoleSocket: filepath.Join(runDir, "console.sock"),
			StreamSocket:  filepath.Join(runDir, "stream.sock"),
			PortName:      contract.PortName,
		}
		o.Logf("%s: booting under %s; the guest's console follows", name, accel)
		spoke, err := shellBoot(ctx, cfg, keys, out)
		if err == nil || spoke || i == len(plan)-1 || ctx.Err() != nil {
			return err
		}
		o.Logf("%s: %s failed before the agent spoke (%v); booting under %s", name, accel, err, plan[i+1])
	}
	return nil
}

// readInput passes what the person types on, a chunk at a time. A
// terminal that hung up (EIO: its window closed) closes keys, which ends
// the guest; the plain end of a file or pipe does not, so that a script
// of commands can run to its exit.
func readInput(in io.Reader, keys chan<- []byte) {
	buf := make([]byte, 4096)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			keys <- bytes.Clone(buf[:n])
		}
		switch {
		case errors.Is(err, syscall.EIO):
			close(keys)
			return
		case err != nil:
			return
		}
	}
}

// errHangup ends a shell whose terminal went away.
var errHangup = errors.New("the terminal hung up")

// shellBoot runs one guest with its console on keys and out, and says
// whether the agent spoke (shellMarker) before it ended.
func shellBoot(ctx context.Context, cfg qemu.Config, keys <-chan []byte, out io.Writer) (spoke bool, err error) {
	for _, sock := range []string{cfg.ConsoleSocket, cfg.StreamSocket} {
		os.Remove(sock)
	}
	console, err := net.Listen("unix", cfg.ConsoleSocket)
	if err != nil {
		return false, fmt.Errorf("listen for the console: %w", err)
	}
	defer console.Close()
	// The agent streams nothing in shell mode, but QEMU's virtio-serial
	// port wants its socket.
	stream, err := net.Listen("unix", cfg.StreamSocket)
	if err != nil {
		return false, fmt.Errorf("listen for the guest stream: %w", err)
	}
	defer stream.Close()
	go func() {
		if c, err := stream.Accept(); err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()

	m, err := qemu.Start(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer m.Stop(3 * time.Second)
	conn, err := acceptBy(console, m.Exited(), 30*time.Second)
	if err != nil {
		return false, fmt.Errorf("console: %w", err)
	}
	defer conn.Close()

	var seen atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(&markerWriter{w: out, marker: shellMarker, seen: &seen}, conn)
	}()
	done, hangup := make(chan struct{}), make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case b, ok := <-keys:
				if !ok {
					close(hangup)
					return
				}
				if _, err := conn.Write(b); err != nil {
					return
				}
			case <-done:
				return
			}
		}
	}()

	events := m.Events()
	var reason any
	for {
		select {
		case <-m.Exited():
			wg.Wait() // the console's last words
			// A reset is how a panic ends the guest (panic=-1, -no-reboot);
			// the SHUTDOWN event saying so may still be queued.
			for drained := false; events != nil && !drained; {
				select {
				case ev, ok := <-events:
					switch {
					case !ok:
						drained = true
					case ev.Name == "SHUTDOWN":
						reason = ev.Data["reason"]
					}
				case <-time.After(time.Second):
					drained = true
				}
			}
			switch {
			case !m.Clean():
				return seen.Load(), m.ExitError()
			case reason == "guest-reset":
				return seen.Load(), errors.New("the guest reset instead of powering off (a panic? its console above)")
			}
			return seen.Load(), nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			switch ev.Name {
			case "SHUTDOWN":
				reason = ev.Data["reason"]
			case "GUEST_PANICKED":
				return seen.Load(), errors.New("the guest panicked (its console above)")
			case "STOP":
				sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				status, _ := m.Status(sctx)
				cancel()
				if status == "internal-error" {
					return seen.Load(), fmt.Errorf("guest stopped: QEMU run state %s", status)
				}
			}
		case <-ctx.Done():
			return seen.Load(), ctx.Err()
		case <-hangup:
			return true, errHangup
		}
	}
}

// acceptBy accepts one connection, giving up when QEMU exits or after
// limit.
func acceptBy(ln net.Listener, exited <-chan struct{}, limit time.Duration) (net.Conn, error) {
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	select {
	case a := <-ch:
		return a.c, a.err
	case <-exited:
		return nil, errors.New("QEMU ended before connecting it")
	case <-time.After(limit):
		return nil, fmt.Errorf("QEMU did not connect it within %s", limit)
	}
}

// markerWriter passes everything on and notes when marker went by (it may
// arrive split across writes).
type markerWriter struct {
	w      io.Writer
	marker []byte
	seen   *atomic.Bool
	tail   []byte
}

func (m *markerWriter) Write(p []byte) (int, error) {
	if !m.seen.Load() {
		buf := append(m.tail, p...)
		if bytes.Contains(buf, m.marker) {
			m.seen.Store(true)
		}
		m.tail = bytes.Clone(buf[max(0, len(buf)-len(m.marker)):])
	}
	return m.w.Write(p)
}

// RawTerminal puts the terminal fd in raw mode, as a serial line wants
// it: keys (Ctrl-C among them) go to the guest, whose own terminal
// echoes and edits. Not a terminal: nothing to do.
func RawTerminal(fd int) (restore func(), err error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
