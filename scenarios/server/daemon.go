package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// DaemonMount is a user's FUSE daemon (contract.DaemonSpec) serving one mount. It
// may stay in the foreground or fork into the background once mounted, as
// most libfuse programs do by default: the mount appearing is what counts,
// and the daemon's processes are those holding /dev/fuse once it has.
type DaemonMount struct {
	Spec *contract.DaemonSpec
	// Dir is the mount point.
	Dir string

	cmd  *exec.Cmd
	argv []string
	// scratch is the mount's PlaceholderScratch directory, "" for none.
	scratch string
	stderr  *tail
	waited  chan struct{} // the started process has ended; nil once seen
	// waitDone is waited, kept when waited is set to nil.
	waitDone chan struct{}
	waitErr  error
	// conn names the mount's FUSE connection in fusectl.
	conn string
	// pids are the processes that held /dev/fuse when it mounted (see
	// Pids for why that is not all of them).
	pids   []int
	exited chan struct{}

	stopOnce sync.Once
	stopErr  error

	// mu guards forked, the processes other than the one started that
	// held /dev/fuse when looked up, and forkedExit, how the last of them
	// to be reaped ended.
	mu         sync.Mutex
	forked     []int
	forkedExit string
}

// daemonPoll is how often StartDaemon looks for the mount, and Exited for
// the daemon's processes.
const daemonPoll = 10 * time.Millisecond

// StartDaemon runs spec showing backing at mnt and returns once a FUSE
// mount is at mnt. ctx and the spec's mount wait bound the start; a daemon
// that is not up by then is stopped and its mount, if any, detached.
func StartDaemon(ctx context.Context, spec *contract.DaemonSpec, backing, mnt string) (*DaemonMount, error) {
	return StartDaemonOn(ctx, spec, backing, mnt, nil)
}

// StartDaemonOn is StartDaemon with the daemon, and every process and
// thread it makes, allowed to run only on cpus (all when empty).
func StartDaemonOn(ctx context.Context, spec *contract.DaemonSpec, backing, mnt string, cpus []int) (*DaemonMount, error) {
	dir, err := filepath.Abs(mnt)
	if err != nil {
		return nil, fmt.Errorf("daemon %s: mount point: %w", spec.Name, err)
	}
	if m, err := fuseMountAt(dir); err != nil {
		return nil, fmt.Errorf("daemon %s: %w", spec.Name, err)
	} else if m != nil {
		return nil, fmt.Errorf("daemon %s: %s already has a %s mount", spec.Name, dir, m.FsType)
	}
	d := &DaemonMount{Spec: spec, Dir: dir, stderr: &tail{max: stderrLines},
		waited: make(chan struct{}), exited: make(chan struct{})}
	d.waitDone = d.waited
	// A daemon that forks into the background is reparented to us when
	// its parent exits, so that its processes stay ours to find (fusePids).
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	// A daemon with a root of its own sees the directories it is given
	// inside it (the caller made them there).
	argBacking, argMnt := backing, dir
	if spec.Root != "" {
		if backing != "" {
			if argBacking, err = spec.Inside(backing); err != nil {
				return nil, fmt.Errorf("daemon %s: backing directory: %w", spec.Name, err)
			}
		}
		if argMnt, err = spec.Inside(dir); err != nil {
			return nil, fmt.Errorf("daemon %s: mount point: %w", spec.Name, err)
		}
		if err := PrepareRoot(spec.Root); err != nil {
			return nil, fmt.Errorf("daemon %s: %w", spec.Name, err)
		}
	}
	argScratch := ""
	if spec.Scratched() {
		if d.scratch, argScratch, err = makeScratch(spec, dir); err != nil {
			return nil, fmt.Errorf("daemon %s: %w", spec.Name, err)
		}
	}
	wait := spec.Wait()
	setupCtx, cancel := context.WithTimeout(ctx, wait)
	err = runSetup(setupCtx, spec, argBacking, argMnt, argScratch)
	cancel()
	if err != nil {
		d.removeScratch()
		return nil, fmt.Errorf("daemon %s: %w", spec.Name, err)
	}
	d.argv = spec.Argv(argBacking, argMnt, argScratch)
	d.cmd = daemonCommand(spec, spec.Path, d.argv)
	d.cmd.Stdout, d.cmd.Stderr = d.stderr, d.stderr
	if err := startOn(cpus, d.cmd.Start); err != nil {
		d.removeScratch()
		return nil, fmt.Errorf("daemon %s: start %s: %w", spec.Name, spec.Path, err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.waited)
	}()

	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(daemonPoll)
	defer tick.Stop()
	for {
		m, err := fuseMountAt(dir)
		if err != nil {
			d.kill()
			return nil, fmt.Errorf("daemon %s: %w", spec.Name, err)
		}
		if m != nil {
			d.conn = connOf(m.Dev)
			d.pids = d.Pids()
			go d.watch()
			return d, nil
		}
		select {
		case <-d.waited:
			if d.waitErr != nil {
				d.kill()
				return nil, fmt.Errorf("daemon %s exited before mounting (%v)%s", spec.Name, d.waitErr, d.stderrNote())
			}
			// Exit status 0: a daemon that forked; its child mounts.
			d.waited = nil
		case <-deadline.C:
			d.kill()
			return nil, fmt.Errorf("daemon %s did not mount at %s within %s%s", spec.Name, dir, wait, d.stderrNote())
		case <-ctx.Done():
			d.kill()
			return nil, fmt.Errorf("daemon %s did not mount: %w%s", spec.Name, ctx.Err(), d.stderrNote())
		case <-tick.C:
		}
	}
}

// Pid is a live process of the daemon that holds /dev/fuse, one the
// started process made in preference to it (a daemon that forks into the
// background exits soon after mounting), else the one that held it at
// mount, else the process started.
func (d *DaemonMount) Pid() int {
	live := d.Pids()
	for _, pid := range live {
		if pid != d.cmd.Process.Pid {
			return pid
		}
	}
	switch {
	case len(live) > 0:
		return live[0]
	case len(d.pids) > 0:
		return d.pids[0]
	}
	return d.cmd.Process.Pid
}

// WaitForked waits until the process started has exited, as a daemon that
// forks into the background does right after mounting, or max has passed
// (a daemon in the foreground): afterwards Pid names the daemon that
// stays. A caller that watches the daemon's CPU from the moment it mounted
// would otherwise watch a parent about to exit.
func (d *DaemonMount) WaitForked(max time.Duration) {
	select {
	case <-d.waitDone:
	case <-time.After(max):
	}
}

// Pids are the daemon's live processes that hold /dev/fuse now. They are
// looked up each time, never kept: libfuse mounts before it forks into the
// background, so at the moment the mount appears the holder may still be
// the parent, about to exit, and the child not yet born.
func (d *DaemonMount) Pids() []int {
	var live []int
	for _, pid := range fusePids(d.cmd.Process.Pid, d.Spec.Root) {
		if processAlive(pid) {
			live = append(live, pid)
		}
	}
	d.mu.Lock()
	for _, pid := range live {
		if pid != d.cmd.Process.Pid && !slices.Contains(d.forked, pid) {
			d.forked = append(d.forked, pid)
		}
	}
	d.mu.Unlock()
	return live
}

// reap collects the processes the daemon forked that have ended: whose
// parent exited made them ours (fusematrix is their subreaper), so their
// exit status is ours to read, and unread they would stay zombies. Only a
// zombie whose parent is this process is waited for: its pid cannot have
// been reused, so no other child of ours (another server, whose own Wait
// needs its status) is ever reaped here. A pid that is gone is forgotten.
func (d *DaemonMount) reap() {
	d.mu.Lock()
	defer d.mu.Unlock()
	self := os.Getpid()
	kept := d.forked[:0]
	for _, pid := range d.forked {
		state, ppid, ok := procState(pid)
		switch {
		case !ok:
			continue // gone: reaped by its parent, or never ours
		case state == "Z" && ppid == self:
			var ws unix.WaitStatus
			if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
				d.forkedExit = waitText(ws)
				continue
			}
		}
		kept = append(kept, pid)
	}
	d.forked = kept
}

// procState reads the state and parent of pid from /proc/<pid>/stat.
func procState(pid int) (state string, ppid int, ok bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	i := strings.LastIndexByte(string(stat), ')')
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0], ppid, err == nil
}

// waitText says how a process ended, as os/exec does.
func waitText(ws unix.WaitStatus) string {
	switch {
	case ws.Signaled():
		return "signal: " + ws.Signal().String()
	case ws.ExitStatus() != 0:
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	}
	return "0"
}

// ExitStatus says how the daemon ended: "0", "exit status 3", "signal:
// aborted"…; "running" before it has. For a daemon that forked into the
// background it is how the process left behind ended, once fusematrix
// reaped it, else the started process's own "0".
func (d *DaemonMount) ExitStatus() string {
	select {
	case <-d.waitDone:
	default:
		return "running"
	}
	if d.waitErr != nil {
		return d.waitErr.Error()
	}
	d.reap()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.forkedExit != "" {
		return d.forkedExit
	}
	return "0"
}

// Args are the arguments the daemon was started with, placeholders
// replaced, as it saw them (inside its root, if it has one).
func (d *DaemonMount) Args() []string { return slices.Clone(d.argv) }

// Stderr returns the last lines the daemon wrote (stdout and stderr).
func (d *DaemonMount) Stderr() []string { return d.stderr.Lines() }

// Exited is closed once every process of the daemon has ended.
func (d *DaemonMount) Exited() <-chan struct{} { return d.exited }

// Stop unmounts, as fusermount -u would, and waits for the daemon to end;
// one that does not within its StopGrace has its connection aborted and is
// killed. A daemon that had ended before (a crash), or whose started
// process exited with an error, is an error. No Stats: the daemon is not
// ours to ask. Stop is idempotent.
func (d *DaemonMount) Stop() (wire.Stats, error) {
	d.stopOnce.Do(func() {
		var errs []error
		select {
		case <-d.exited:
			errs = append(errs, fmt.Errorf("daemon %s had exited before it was stopped", d.Spec.Name))
		default:
			if err := unix.Unmount(d.Dir, 0); err != nil {
				// Busy (a file still open): detached, the daemon still
				// learns of it once the last file is closed.
				_ = unix.Unmount(d.Dir, unix.MNT_DETACH)
			}
			select {
			case <-d.exited:
			case <-time.After(d.Spec.StopGrace()):
				errs = append(errs, fmt.Errorf("daemon %s did not exit within %s of its unmount; killed", d.Spec.Name, d.Spec.StopGrace()))
				d.kill()
			}
		}
		if m, _ := fuseMountAt(d.Dir); m != nil {
			_ = unix.Unmount(d.Dir, unix.MNT_DETACH)
			errs = append(errs, fmt.Errorf("%s was still mounted after daemon %s ended", d.Dir, d.Spec.Name))
		}
		if d.waitErr != nil {
			errs = append(errs, fmt.Errorf("daemon %s: %w", d.Spec.Name, d.waitErr))
		}
		d.removeScratch()
		d.reap()
		d.mu.Lock()
		if e := d.forkedExit; e != "" && e != "0" {
			errs = append(errs, fmt.Errorf("daemon %s, forked into the background: %s", d.Spec.Name, e))
		}
		d.mu.Unlock()
		if err := errors.Join(errs...); err != nil {
			d.stopErr = fmt.Errorf("%w%s", err, d.stderrNote())
		}
	})
	return wire.Stats{}, d.stopErr
}

// Mounted says whether a FUSE mount is still at the daemon's mount point.
func (d *DaemonMount) Mounted() bool {
	m, _ := fuseMountAt(d.Dir)
	return m != nil
}

// kill aborts the connection, detaches the mount and kills every process
// of the daemon, then waits for them.
func (d *DaemonMount) kill() {
	if d.conn != "" {
		_ = wire.AbortConnection(d.conn)
	}
	if m, _ := fuseMountAt(d.Dir); m != nil {
		_ = unix.Unmount(d.Dir, unix.MNT_DETACH)
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	for _, pid := range append(d.pids, d.Pids()...) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if d.waited != nil {
		<-d.waited
	}
	for deadline := time.Now().Add(stopGrace); d.alive() && time.Now().Before(deadline); {
		time.Sleep(daemonPoll)
	}
	d.removeScratch()
}

// watch closes exited once the started process has ended and none of the
// daemon's processes is alive.
func (d *DaemonMount) watch() {
	for {
		if d.waited != nil {
			<-d.waited
		}
		if !d.alive() {
			d.reap()
			close(d.exited)
			return
		}
		time.Sleep(5 * daemonPoll)
	}
}

// alive says whether a process of the daemon still runs (a zombie does
// not: it waits only for its parent, which may be init).
func (d *DaemonMount) alive() bool {
	for _, pid := range d.pids {
		if processAlive(pid) {
			return true
		}
	}
	return len(d.Pids()) > 0
}

func (d *DaemonMount) stderrNote() string {
	if lines := d.stderr.Lines(); len(lines) > 0 {
		return "; output: " + strings.Join(lines, " | ")
	}
	return ""
}

// fuseMountAt returns the FUSE mount at dir, or nil.
func fuseMountAt(dir string) (*mountEntry, error) {
	ms, err := mountsAt(dir)
	if err != nil {
		return nil, err
	}
	for i := range ms {
		if ms[i].FsType == "fuse" || strings.HasPrefix(ms[i].FsType, "fuse.") {
			return &ms[i], nil
		}
	}
	return nil, nil
}

// connOf turns mountinfo's "major:minor" into the fusectl connection
// name, as wire.Connection does from a stat.
func connOf(dev string) string {
	maj, min, ok := strings.Cut(dev, ":")
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return ""
	}
	return strconv.FormatUint(a<<20|b, 10)
}

// fusePids lists the processes of the daemon started as pid started that
// hold /dev/fuse open, the started one first when it does. A process is
// the daemon's when it descends from started, or from this process: a
// daemon that forks into the background and whose parent exits is
// reparented to us, its subreaper (StartDaemon), and never to another
// FUSE server running beside it (another test's, on a host).
//
// A daemon in a root of its own (root, "" for none) opened its root's
// /dev/fuse, which a readlink from outside the root shows with the
// root's prefix.
func fusePids(started int, root string) []int {
	inRoot := root + "/dev/fuse"
	self := os.Getpid()
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == self || !descends(pid, started, self) {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join(p, "fd"))
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(p, "fd", fd.Name())); err == nil && (target == "/dev/fuse" || (root != "" && target == inRoot)) {
				if pid == started {
					pids = append([]int{pid}, pids...)
				} else {
					pids = append(pids, pid)
				}
				break
			}
		}
	}
	return pids
}

// descends says whether pid is one of the ancestors given, or descends
// from one.
func descends(pid int, ancestors ...int) bool {
	for range 64 { // deeper than any daemon forks
		if slices.Contains(ancestors, pid) {
			return true
		}
		if pid <= 1 {
			return false
		}
		pid = parentOf(pid)
	}
	return false
}

// parentOf is pid's parent, 0 when it cannot be read.
func parentOf(pid int) int {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(stat), ')')
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// processAlive says whether pid runs and is not a zombie.
func processAlive(pid int) bool {
	state, _, ok := procState(pid)
	return ok && state != "Z"
}

// rootMounts are what PrepareRoot mounts in a daemon's root: /dev for
// /dev/fuse (devtmpfs, the same device nodes as the guest's), /proc and
// /sys, which libfuse and fusermount3 read (mount tables, the fuse
// module), and a tmpfs on /tmp, as on the guest's own root.
var rootMounts = []struct{ dir, fstype string }{
	{"dev", "devtmpfs"}, {"proc", "proc"}, {"sys", "sysfs"}, {"tmp", "tmpfs"},
}

// PrepareRoot makes root ready for a daemon to run in under chroot:
// rootMounts, each mounted once (a mount already there is kept, so that
// every check of a daemon can call it).
func PrepareRoot(root string) error {
	for _, m := range rootMounts {
		dir := filepath.Join(root, m.dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("root %s: %w", root, err)
		}
		ms, err := mountsAt(dir)
		if err != nil {
			return fmt.Errorf("root %s: %w", root, err)
		}
		if len(ms) > 0 {
			continue
		}
		if err := unix.Mount(m.fstype, dir, m.fstype, unix.MS_NOSUID, ""); err != nil {
			return fmt.Errorf("root %s: mount %s on %s: %w", root, m.fstype, dir, err)
		}
	}
	return nil
}

// Leftovers are the processes of the daemon still alive (zombies aside):
// those in its process group (StartDaemon gives the started process one
// of its own) or in a group or session one of its processes made (libfuse
// calls setsid when it forks into the background), whether or not they
// hold /dev/fuse. After Stop there should be none: a helper the daemon
// forked that outlives its unmount is one, though Stop, which waits for
// the processes serving the mount, does not see it.
func (d *DaemonMount) Leftovers() []int {
	d.mu.Lock()
	known := append([]int{d.cmd.Process.Pid}, d.pids...)
	known = append(known, d.forked...)
	d.mu.Unlock()
	self := os.Getpid()
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == self {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(p, "stat"))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(stat), ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 4 || f[0] == "Z" {
			continue
		}
		pgrp, _ := strconv.Atoi(f[2])
		sid, _ := strconv.Atoi(f[3])
		if slices.Contains(known, pid) || slices.Contains(known, pgrp) || slices.Contains(known, sid) {
			out = append(out, pid)
		}
	}
	return out
}

// KillLeftovers kills what Leftovers lists and reaps those that were
// ours to reap (fusematrix is the subreaper of the daemon's orphans).
func (d *DaemonMount) KillLeftovers(pids []int) {
	self := os.Getpid()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range pids {
		for deadline := time.Now().Add(stopGrace); time.Now().Before(deadline); time.Sleep(daemonPoll) {
			state, ppid, ok := procState(pid)
			if !ok {
				break
			}
			if state == "Z" {
				if ppid == self {
					var ws unix.WaitStatus
					_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
				}
				break
			}
		}
	}
}

// Comm is the command name of pid, "" once it is gone.
func Comm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// daemonCommand is prog, with args, run as spec's daemon is: in its root
// (the kernel runs prog, its loader and libraries, and whatever it runs in
// turn, fusermount3 or ssh, from there), with its environment and Stdin,
// in a process group of its own so that what it forks can be killed with
// it.
func daemonCommand(spec *contract.DaemonSpec, prog string, args []string) *exec.Cmd {
	// Not exec.Command, which would look a bare name up in the guest's
	// PATH, not in the root's: CheckSetup wants absolute paths.
	cmd := &exec.Cmd{Path: prog, Args: append([]string{prog}, args...)}
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if spec.Root != "" {
		cmd.SysProcAttr.Chroot = spec.Root
		cmd.Dir = "/"
	}
	if spec.Stdin != "" {
		cmd.Stdin = strings.NewReader(spec.Stdin + "\n")
	}
	return cmd
}

// makeScratch makes the PlaceholderScratch directory of a mount at mnt:
// fresh and empty, beside mnt (so on the file system of the backing
// directory, and inside the daemon's root), with spec.Dirs in it. It
// returns its path and the path the daemon sees.
func makeScratch(spec *contract.DaemonSpec, mnt string) (dir, inside string, err error) {
	dir, err = os.MkdirTemp(filepath.Dir(mnt), "scratch-")
	if err != nil {
		return "", "", fmt.Errorf("scratch directory: %w", err)
	}
	for _, name := range spec.Dirs {
		if err := contract.CheckDir(name); err != nil {
			os.RemoveAll(dir)
			return "", "", err
		}
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			os.RemoveAll(dir)
			return "", "", fmt.Errorf("scratch directory: %w", err)
		}
	}
	if inside, err = spec.Inside(dir); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("scratch directory: %w", err)
	}
	return dir, inside, nil
}

// removeScratch removes the mount's scratch directory, once its daemon
// has ended (or never started).
func (d *DaemonMount) removeScratch() {
	if d.scratch != "" {
		_ = os.RemoveAll(d.scratch)
		d.scratch = ""
	}
}

// runSetup runs spec's setup commands in order, each to its end within
// ctx; the first that fails is an error with its exit status and output.
func runSetup(ctx context.Context, spec *contract.DaemonSpec, backing, mnt, scratch string) error {
	for _, c := range spec.Setup {
		if err := contract.CheckSetup(c); err != nil {
			return err
		}
		args := contract.Expand(c, backing, mnt, scratch)
		cmd := daemonCommand(spec, args[0], args[1:])
		out := &tail{max: stderrLines}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("setup %q: %w", args, err)
		}
		// Killed with its group when ctx ends: a setup command that
		// waits for input it will never get must not hold the check.
		stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		err := cmd.Wait()
		stop()
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%v)", err, ctx.Err())
			}
			note := ""
			if lines := out.Lines(); len(lines) > 0 {
				note = "; output: " + strings.Join(lines, " | ")
			}
			return fmt.Errorf("setup %q: %w%s", args, err, note)
		}
	}
	return nil
}
