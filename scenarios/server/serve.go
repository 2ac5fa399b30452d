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
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
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

// Start runs a server for spec mounted at mnt and returns once the mount
// is up. ctx bounds the start only.
func (l Launcher) Start(ctx context.Context, spec loopback.Spec, mnt string) (*Process, error) {
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
	args = append(append([]string(nil), args...), specFlags(spec, mnt)...)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s server: %w", spec.Kind, err)
	}
	g := &goServer{kind: spec.Kind, ready: make(chan string, 1), statusDone: make(chan struct{})}
	p := newProcess(mnt, fmt.Sprintf("%s server", spec.Kind), "server", g,
		&exec.Cmd{Path: path, Args: append([]string{argv0}, args...), ExtraFiles: []*os.File{w}})
	p.Spec = spec
	err = p.start(spec.CPUs)
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start %s server: %w", spec.Kind, err)
	}
	go g.readStatus(r)
	select {
	case line, ok := <-g.ready:
		if ok && line == msgReady {
			g.conn, _ = wire.Connection(mnt)
			return p, nil
		}
		<-p.exited
		_ = unix.Unmount(mnt, unix.MNT_DETACH)
		why := strings.TrimPrefix(line, msgError)
		if !ok {
			why = fmt.Sprintf("exited before mounting (%v)", p.waitErr)
		}
		return nil, fmt.Errorf("%s: %s%s", p.name, why, p.stderrNote())
	case <-ctx.Done():
		p.kill()
		return nil, fmt.Errorf("%s did not mount: %w%s", p.name, ctx.Err(), p.stderrNote())
	}
}

// goServer is the child of a Process that runs our own Go server, which
// reports on its status pipe.
type goServer struct {
	kind loopback.Kind
	// conn names the connection in wire.FusectlDir once mounted.
	conn  string
	ready chan string // the first status line
	// statusDone is closed when the status pipe reaches EOF.
	statusDone chan struct{}
	stats      *wire.Stats
}

func (g *goServer) exitedEarly(err error) error { return &ExitedError{Kind: g.kind, Err: err} }

func (g *goServer) abort(dir string) {
	conn := g.conn
	if conn == "" {
		conn, _ = wire.Connection(dir)
	}
	if conn != "" {
		_ = wire.AbortConnection(conn)
	}
	_ = unix.Unmount(dir, unix.MNT_DETACH)
}

func (g *goServer) detachLeft(dir string) bool {
	return unix.Unmount(dir, unix.MNT_DETACH) == nil
}

// report waits for the statistics the server sent as it exited.
func (g *goServer) report(p *Process, errs []error) (wire.Stats, error) {
	<-g.statusDone
	var st wire.Stats
	if g.stats == nil {
		errs = append(errs, fmt.Errorf("%s reported no statistics", p.name))
	} else {
		st = *g.stats
	}
	return st, errors.Join(errs...)
}

func (g *goServer) readStatus(r *os.File) {
	defer r.Close()
	defer close(g.statusDone)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			g.ready <- line
			first = false
		}
		if js, ok := strings.CutPrefix(line, msgStats); ok {
			var st wire.Stats
			if err := json.Unmarshal([]byte(js), &st); err == nil {
				g.stats = &st
			}
		}
	}
	if first {
		close(g.ready)
	}
}

// specFlags are the flags that tell Serve to serve s at mnt.
func specFlags(s loopback.Spec, mnt string) []string {
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
	if s.URing {
		f = append(f, "-uring")
	}
	if s.Profile != "" {
		f = append(f, "-cpuprofile", s.Profile)
	}
	return f
}

// Serve is the server side of Launcher: it parses args (specFlags), mounts, tells the parent, serves until SIGTERM or until
// the connection ends, unmounts and reports what it observed. It returns
// the process exit code.
func Serve(args []string) int {
	fset := flag.NewFlagSet("serve", flag.ContinueOnError)
	var spec loopback.Spec
	var mnt string
	fset.Func("kind", fmt.Sprintf("file system to serve: %v", loopback.Kinds), func(s string) error {
		spec.Kind = loopback.Kind(s)
		return nil
	})
	fset.StringVar(&mnt, "mnt", "", "mount point")
	fset.StringVar(&spec.Backing, "backing", "", "directory a loopback kind shows")
	fset.Int64Var(&spec.Size, "size", 0, "size of the NOOP file in bytes")
	fset.BoolVar(&spec.NoXattr, "noxattr", false, "answer xattr requests with ENOSYS")
	fset.BoolVar(&spec.URing, "uring", false, "serve over FUSE's io_uring transport")
	fset.StringVar(&spec.Profile, "cpuprofile", "", "write a CPU profile of the server to `file`")
	heir := fset.Duration("heir", 0, "only hold the inherited descriptors for this long, as a server of kind "+string(loopback.KindHeldHeir)+" leaves behind")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if *heir > 0 {
		time.Sleep(*heir)
		return 0
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
	m, err := loopback.MountSpec(ctx, mnt, spec, logf)
	if err != nil {
		fmt.Fprintf(status, "%s%v\n", msgError, err)
		logf("serve: %v", err)
		return 1
	}
	if spec.Kind.LeavesHeir() {
		if err := leaveHeir(args); err != nil {
			logf("serve: %v", err)
			_ = m.Unmount()
			fmt.Fprintf(status, "%s%v\n", msgError, err)
			return 1
		}
	}
	fmt.Fprintln(status, msgReady)
	served := make(chan struct{})
	go func() {
		if err := m.Wait(); err != nil {
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

// heirLife bounds how long the heir of a KindHeldHeir server holds the
// connection: past any check that waits for it.
const heirLife = 20 * time.Second

// leaveHeir starts a process of this program that inherits this
// server's /dev/fuse descriptor and holds it for heirLife, so that the
// connection outlives this process. args are what Serve was given; the
// heir gets the same program and words before them.
func leaveHeir(args []string) error {
	fds, err := devFuseFds()
	if err != nil {
		return fmt.Errorf("heir: %w", err)
	}
	if len(fds) == 0 {
		return errors.New("heir: this process holds no /dev/fuse descriptor")
	}
	prefix := os.Args[:len(os.Args)-len(args)]
	cmd := exec.Command("/proc/self/exe", append(slices.Clone(prefix[1:]), "-heir", heirLife.String())...)
	cmd.Args[0] = prefix[0]
	// Copies, so that closing them after the start leaves the server's
	// own descriptors open.
	for _, fd := range fds {
		d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("heir: dup /dev/fuse: %w", err)
		}
		f := os.NewFile(uintptr(d), "/dev/fuse")
		defer f.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	// Its own session: whoever kills this server's group leaves it be.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("heir: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

// devFuseFds lists this process's descriptors of /dev/fuse.
func devFuseFds() ([]int, error) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == "/dev/fuse" {
			fds = append(fds, fd)
		}
	}
	return fds, nil
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
