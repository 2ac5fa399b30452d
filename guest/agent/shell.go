package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios/server"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// The paths fusematrix shell prepares in a guest.
const (
	// ShellMount is where the loopback is mounted.
	ShellMount = "/mnt/fuse"
	// ShellBacking is the tmpfs directory the loopback shows.
	ShellBacking = DefaultScratch + "/backing"
	// CheckDir is the scratch root of checks run from the shell, apart
	// from ShellBacking.
	CheckDir = DefaultScratch + "/checks"
)

// ShellConfig says how the shell is started; the zero value is right for
// a guest.
type ShellConfig struct {
	// Shell is the shell's argv; nil is Argv0 sh, the agent's own REPL.
	Shell []string
	// TTY is the terminal the shell gets as its controlling terminal; ""
	// is the serial console, /dev/ttyS0.
	TTY string
	// Mount and Backing replace ShellMount and ShellBacking.
	Mount, Backing string
	// Argv0 is the agent's command name, for the banner.
	Argv0 string
}

// Shell prepares the guest as a check would find it — modules loaded,
// fusectl mounted, a scratch tmpfs, fusematrix's loopback of a tmpfs
// directory mounted at ShellMount — and hands the console to an
// interactive shell. When the shell exits, the loopback is unmounted and,
// with cfg.PowerOff, the guest powers off, which ends QEMU and with it
// fusematrix shell on the host.
func Shell(ctx context.Context, cfg Config, sc ShellConfig) error {
	console := cfg.Console
	if console == nil {
		console = os.Stderr
	}
	if cfg.PowerOff {
		defer powerOff(console)
	}
	if sc.Mount == "" {
		sc.Mount = ShellMount
	}
	if sc.Backing == "" {
		sc.Backing = ShellBacking
	}
	if sc.TTY == "" {
		sc.TTY = "/dev/ttyS0"
	}
	if sc.Argv0 == "" {
		sc.Argv0 = filepath.Base(os.Args[0])
	}
	if sc.Shell == nil {
		sc.Shell = []string{sc.Argv0, "sh"}
	}
	say := func(format string, args ...any) { fmt.Fprintf(console, "fusematrix shell: "+format+"\n", args...) }

	notes := append(cfg.Notes, loadModules(cfg.Modules)...)
	if err := ensureFusectl(); err != nil {
		notes = append(notes, err.Error())
	}
	for _, n := range notes {
		say("note: %s", n)
	}
	if _, _, err := scratchRoot(cfg.Dir); err != nil {
		say("scratch: %v", err)
	}
	mounted := false
	for _, dir := range []string{sc.Backing, sc.Mount} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			say("%v", err)
		}
	}
	release, _ := uname()
	var err error
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	var p interface {
		Pid() int
		Stop() (wire.Stats, error)
	}
	if len(cfg.Daemons) > 0 {
		// The host boots a shell with one daemon at most.
		var d *contract.DaemonSpec
		if d, err = readDaemon(cfg.daemonSpecPath(cfg.Daemons[0]), cfg.Daemons[0]); err == nil && d.Root != "" {
			// A daemon in a root of its own shows a directory in it,
			// mounted in it: the shell names both from outside.
			var scratch string
			if scratch, err = daemonScratch(d.Root); err == nil {
				sc.Backing, sc.Mount = filepath.Join(scratch, "backing"), filepath.Join(d.Root, ShellMount)
				err = errors.Join(os.MkdirAll(sc.Backing, 0o755), os.MkdirAll(sc.Mount, 0o755))
			}
		}
		var dm *server.DaemonMount
		if err == nil {
			if dm, err = server.StartDaemon(mctx, d, sc.Backing, sc.Mount); err == nil {
				p = dm
			}
		}
		if err != nil {
			say("the daemon did not mount: %v", err)
		} else {
			// Its arguments as it got them: inside its root, if it has one.
			say("Linux %s. Daemon %s shows %s (a tmpfs directory) at %s (pid %d; its arguments: %q).",
				release, d.Name, sc.Backing, sc.Mount, p.Pid(), dm.Args())
		}
	} else {
		p, err = cfg.Server.Start(mctx, loopback.Spec{Kind: loopback.KindLoopback, Backing: sc.Backing}, sc.Mount)
		if err != nil {
			say("the loopback did not mount: %v", err)
		} else {
			say("Linux %s. fusematrix's loopback of %s (a tmpfs directory) is mounted at %s, with passthrough where the kernel offers it (pid %d).",
				release, sc.Backing, sc.Mount, p.Pid())
		}
	}
	cancel()
	mounted = err == nil
	argv0 := sc.Argv0
	say("'%s run ID' runs one check and its probes, each on a mount of its own ('%s list' names them); 'exit' powers the guest off.", argv0, argv0)

	err = runShell(sc)
	if err != nil {
		say("shell: %v", err)
	}
	if mounted {
		if _, serr := p.Stop(); serr != nil {
			say("loopback: %v", serr)
		}
	}
	return err
}

// runShell runs the shell as a session leader with the terminal as its
// controlling terminal, so that Ctrl-C reaches what it runs; the agent
// meanwhile takes no notice of the terminal's signals.
func runShell(sc ShellConfig) error {
	tty, err := os.OpenFile(sc.TTY, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", sc.TTY, err)
	}
	defer tty.Close()
	path, err := exec.LookPath(sc.Shell[0])
	if err != nil {
		return err
	}
	cmd := &exec.Cmd{
		Path: path, Args: sc.Shell,
		Stdin: tty, Stdout: tty, Stderr: tty,
		Env:         append(os.Environ(), "HOME=/", "FUSEMATRIX_MOUNT="+sc.Mount),
		Dir:         "/",
		SysProcAttr: &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	}
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return nil // the shell's last command failed: not the agent's error
	}
	return err
}

func uname() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return strings.TrimRight(string(u.Release[:]), "\x00"), nil
}

// RunOne runs the checks matching run (and the probes) for a person at the
// shell: results as lines on out, nothing streamed, no power off.
func RunOne(ctx context.Context, cfg Config, run string, out io.Writer) error {
	cfg.Run = run
	cfg.Output = io.Discard
	cfg.Console = out
	cfg.PowerOff = false
	if cfg.Dir == "" {
		cfg.Dir = CheckDir
	}
	return Run(ctx, cfg)
}
