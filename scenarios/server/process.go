package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A server process talks to its parent on one pipe (its fd 3), one line
// per message: "ready" once mounted, "error <text>" if mounting failed, and
// "stats <json>" as it exits after unmounting.
const (
	msgReady = "ready"
	msgError = "error "
	msgStats = "stats "
	// statusFd is the first of exec.Cmd.ExtraFiles in the child.
	statusFd = 3
)

// Launcher starts file systems as processes of their own, so that a server
// that crashes or wedges cannot take the caller down. It re-executes a
// program that hands the arguments after Args to Serve.
type Launcher struct {
	// Path is the program; "" is /proc/self/exe.
	Path string
	// Argv0 is the child's argv[0]; "" is os.Args[0]. A multi-call
	// binary (gobusybox) dispatches on it.
	Argv0 string
	// Args come before the server's own flags; nil is ["serve"].
	Args []string
}

// stopGrace bounds how long a server gets to unmount and report after
// SIGTERM before it is aborted and killed. Its own Unmount waits up to
// releaseWait for outstanding RELEASEs.
const stopGrace = 3*releaseWait + time.Second

// Process is a file system served by a child process.
type Process struct {
	// Dir is the mount point.
	Dir  string
	Spec Spec

	cmd    *exec.Cmd
	conn   string
	stderr *tail
	ready  chan string // the first status line
	// statusDone is closed when the status pipe reaches EOF.
	statusDone chan struct{}
	stats      *Stats
	exited     chan struct{}
	waitErr    error

	stopOnce  sync.Once
	stopStats Stats
	stopErr   error
}

// Start runs a server for spec mounted at mnt and returns once the mount
// is up. ctx bounds the start only.
func (l Launcher) Start(ctx context.Context, spec Spec, mnt string) (*Process, error) {
	path, argv0, args := l.Path, l.Argv0, l.Args
	if path == "" {
		path = "/proc/self/exe"
	}
	if argv0 == "" {
		argv0 = os.Args[0]
	}
	if args == nil {
		args = []string{"serve"}
	}
	args = append(append([]string(nil), args...), spec.flags(mnt)...)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s server: %w", spec.Kind, err)
	}
	p := &Process{
		Dir: mnt, Spec: spec,
		stderr:     &tail{max: stderrLines},
		ready:      make(chan string, 1),
		statusDone: make(chan struct{}),
		exited:     make(chan struct{}),
	}
	p.cmd = &exec.Cmd{Path: path, Args: append([]string{argv0}, args...), Stderr: p.stderr, ExtraFiles: []*os.File{w}}
	err = startOn(spec.CPUs, p.cmd.Start)
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start %s server: %w", spec.Kind, err)
	}
	go p.readStatus(r)
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case line, ok := <-p.ready:
		if ok && line == msgReady {
			p.conn, _ = Connection(mnt)
			return p, nil
		}
		<-p.exited
		_ = unix.Unmount(mnt, unix.MNT_DETACH)
		why := strings.TrimPrefix(line, msgError)
		if !ok {
			why = fmt.Sprintf("exited before mounting (%v)", p.waitErr)
		}
		return nil, fmt.Errorf("%s server: %s%s", spec.Kind, why, p.stderrNote())
	case <-ctx.Done():
		p.kill()
		return nil, fmt.Errorf("%s server did not mount: %w%s", spec.Kind, ctx.Err(), p.stderrNote())
	}
}

func (s Spec) flags(mnt string) []string {
	f := []string{"-kind", string(s.Kind), "-mnt", mnt}
	if s.Backing != "" {
		f = append(f, "-backing", s.Backing)
	}
	if s.Size != 0 {
		f = append(f, "-size", fmt.Sprint(s.Size))
	}
	if s.NoXattr {
		f = append(f, "-noxattr")
	}
	if s.Profile != "" {
		f = append(f, "-cpuprofile", s.Profile)
	}
	return f
}

// Pid is the server's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the server process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitedError is what Stop reports for a server that had ended before it
// was stopped: a crash, or the end of its connection (unmount, abort)
// that a scenario may have caused on purpose.
type ExitedError struct {
	Kind Kind
	// Err is how the process ended; nil for exit status 0.
	Err error
}

func (e *ExitedError) Error() string {
	return fmt.Sprintf("%s server had exited before it was stopped: %v", e.Kind, e.Err)
}

func (p *Process) readStatus(r *os.File) {
	defer r.Close()
	defer close(p.statusDone)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			p.ready <- line
			first = false
		}
		if js, ok := strings.CutPrefix(line, msgStats); ok {
			var st Stats
			if err := json.Unmarshal([]byte(js), &st); err == nil {
				p.stats = &st
			}
		}
	}
	if first {
		close(p.ready)
	}
}

func (p *Process) stderrNote() string {
	if lines := p.stderr.Lines(); len(lines) > 0 {
		return "; stderr: " + strings.Join(lines, " | ")
	}
	return ""
}

// Stderr returns the last lines the server wrote to its stderr.
func (p *Process) Stderr() []string { return p.stderr.Lines() }

// Stop ends the server and returns what its observer saw. The server
// unmounts on SIGTERM once the kernel has released the files closed just
// before; one that does not finish in time has its connection aborted and
// is killed. Stop is idempotent.
func (p *Process) Stop() (Stats, error) {
	p.stopOnce.Do(func() {
		var errs []error
		select {
		case <-p.exited:
			errs = append(errs, &ExitedError{Kind: p.Spec.Kind, Err: p.waitErr})
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
				if p.waitErr != nil {
					errs = append(errs, fmt.Errorf("%s server: %w", p.Spec.Kind, p.waitErr))
				}
			case <-time.After(stopGrace):
				errs = append(errs, fmt.Errorf("%s server did not stop within %s of SIGTERM; killed", p.Spec.Kind, stopGrace))
				p.kill()
			}
		}
		// A server that died leaves a mount point whose every access
		// fails with ENOTCONN.
		if err := unix.Unmount(p.Dir, unix.MNT_DETACH); err == nil {
			errs = append(errs, fmt.Errorf("%s was still mounted after the server ended", p.Dir))
		}
		<-p.statusDone
		if p.stats == nil {
			errs = append(errs, fmt.Errorf("%s server reported no statistics", p.Spec.Kind))
		} else {
			p.stopStats = *p.stats
		}
		p.stopErr = errors.Join(errs...)
	})
	return p.stopStats, p.stopErr
}

// kill aborts the connection, so that no caller stays blocked on the
// server, detaches the mount and kills the process.
func (p *Process) kill() {
	conn := p.conn
	if conn == "" {
		conn, _ = Connection(p.Dir)
	}
	if conn != "" {
		_ = os.WriteFile(filepath.Join(FusectlDir, conn, "abort"), []byte("1"), 0)
	}
	_ = unix.Unmount(p.Dir, unix.MNT_DETACH)
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// stderrLines bounds the stderr a Process keeps.
const stderrLines = 50

// tail keeps the last max lines written to it, each clipped.
type tail struct {
	mu      sync.Mutex
	max     int
	partial []byte
	lines   []string
}

const tailLineBytes = 512

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := strings.IndexByte(string(t.partial), '\n')
		if i < 0 {
			break
		}
		t.add(string(t.partial[:i]))
		t.partial = t.partial[i+1:]
	}
	if len(t.partial) > tailLineBytes {
		t.add(string(t.partial))
		t.partial = nil
	}
	return len(p), nil
}

func (t *tail) add(line string) {
	if len(line) > tailLineBytes {
		line = line[:tailLineBytes]
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

// Lines returns the kept lines, an unterminated last one included.
func (t *tail) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]string(nil), t.lines...)
	if len(t.partial) > 0 {
		out = append(out, string(t.partial))
	}
	return out
}

// Serve is the server side of Launcher: it parses args (-kind, -mnt,
// -backing, -size), mounts, tells the parent, serves until SIGTERM or until
// the connection ends, unmounts and reports what it observed. It returns
// the process exit code.
func Serve(args []string) int {
	fset := flag.NewFlagSet("serve", flag.ContinueOnError)
	var spec Spec
	var mnt string
	fset.Func("kind", fmt.Sprintf("file system to serve: %v", Kinds), func(s string) error {
		spec.Kind = Kind(s)
		return nil
	})
	fset.StringVar(&mnt, "mnt", "", "mount point")
	fset.StringVar(&spec.Backing, "backing", "", "directory a loopback kind shows")
	fset.Int64Var(&spec.Size, "size", 0, "size of the NOOP file in bytes")
	fset.BoolVar(&spec.NoXattr, "noxattr", false, "answer xattr requests with ENOSYS")
	fset.StringVar(&spec.Profile, "cpuprofile", "", "write a CPU profile of the server to `file`")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	status := os.NewFile(statusFd, "status")
	if status == nil {
		fmt.Fprintln(os.Stderr, "serve: no status pipe on fd 3")
		return 2
	}
	defer status.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	stopProfile, err := startProfile(spec.Profile)
	if err != nil {
		fmt.Fprintf(status, "%s%v\n", msgError, err)
		logf("serve: %v", err)
		return 1
	}
	defer stopProfile()
	m, err := MountSpec(ctx, mnt, spec, logf)
	if err != nil {
		fmt.Fprintf(status, "%s%v\n", msgError, err)
		logf("serve: %v", err)
		return 1
	}
	fmt.Fprintln(status, msgReady)
	served := make(chan struct{})
	go func() {
		if err := m.wait(); err != nil {
			logf("serve: %v", err)
		}
		close(served)
	}()
	code := 0
	select {
	case <-ctx.Done():
		if err := m.Unmount(); err != nil {
			logf("serve: %v", err)
			code = 1
		}
	case <-served:
		// Unmounted or aborted from outside.
	}
	// The profile is complete before the parent hears the server is done.
	stopProfile()
	js, err := json.Marshal(m.Observer.Stats())
	if err != nil {
		logf("serve: stats: %v", err)
		return 1
	}
	fmt.Fprintf(status, "%s%s\n", msgStats, js)
	return code
}

// startProfile starts a CPU profile written to path, if any, and returns
// the function that ends it; that function may be called more than once.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "serve: cpu profile: %v\n", err)
			}
		})
	}, nil
}
