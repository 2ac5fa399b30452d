// Package server runs fusematrix's FUSE servers as processes of their
// own, so that a server that crashes or wedges cannot take the caller
// down: our own Go server, re-executed to serve a loopback.Spec (Launcher,
// Serve), and the C NOOP peer (StartPeer). Either is a Process, which
// stops, kills and reports on both alike, and may be pinned to CPUs.
//
// Package server imports scenarios/server/loopback and
// scenarios/server/wire; neither of them imports it.
package server

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// Process is a FUSE server running as a process of its own, mounted: our
// own Go server (Launcher.Start) or the C NOOP peer (StartPeer).
type Process struct {
	// Dir is the mount point, absolute for the peer.
	Dir string
	// Spec is what a Go server serves; zero for the peer.
	Spec loopback.Spec
	// Peer is how the peer was run; zero for a Go server.
	Peer PeerSpec

	// name is what errors call the process ("<kind> server", "peer"),
	// role what it is ("server", "peer").
	name, role string
	child      child
	cmd        *exec.Cmd
	stderr     *tail
	exited     chan struct{}
	waitErr    error

	stopOnce  sync.Once
	stopStats wire.Stats
	stopErr   error
	// largestR and largestW: see Largest.
	largestR, largestW int64
}

// child is what differs between the two kinds of server a Process runs:
// how it reports, and how its mount is found.
type child interface {
	// exitedEarly is what Stop reports for a process that had ended
	// before it was stopped, given how it ended.
	exitedEarly(waitErr error) error
	// abort aborts the connection of the process's mount at dir, so that
	// no caller stays blocked on the server, and detaches the mount.
	abort(dir string)
	// detachLeft detaches a mount the ended process left at dir and
	// reports whether there was one.
	detachLeft(dir string) bool
	// report returns, once the process has ended, what it observed and
	// Stop's error, given the errors of stopping it.
	report(p *Process, errs []error) (wire.Stats, error)
}

// stopGrace bounds how long a server gets to unmount and report after
// SIGTERM before it is aborted and killed. A Go server's own Unmount waits
// up to wire.ReleaseWait for outstanding RELEASEs.
const stopGrace = 3*wire.ReleaseWait + time.Second

// stderrLines bounds the stderr a Process keeps.
const stderrLines = 50

// newProcess makes the Process that will run cmd to serve at dir.
func newProcess(dir, name, role string, c child, cmd *exec.Cmd) *Process {
	p := &Process{
		Dir: dir, name: name, role: role, child: c, cmd: cmd,
		stderr: &tail{max: stderrLines},
		exited: make(chan struct{}),
	}
	cmd.Stderr = p.stderr
	return p
}

// start starts the process on cpus (all when empty) and notes its end.
func (p *Process) start(cpus []int) error {
	if err := startOn(cpus, p.cmd.Start); err != nil {
		return err
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return nil
}

// Pid is the server's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the server process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Stderr returns the last lines the server wrote to its stderr.
func (p *Process) Stderr() []string { return p.stderr.Lines() }

func (p *Process) stderrNote() string {
	if lines := p.stderr.Lines(); len(lines) > 0 {
		return "; stderr: " + strings.Join(lines, " | ")
	}
	return ""
}

// Largest returns the largest READ and WRITE the peer was asked for;
// known after Stop with PeerSpec.Count, zero otherwise.
func (p *Process) Largest() (read, write int64) { return p.largestR, p.largestW }

// ExitedError is what Stop reports for a Go server that had ended before
// it was stopped: a crash, or the end of its connection (unmount, abort)
// that a scenario may have caused on purpose.
type ExitedError struct {
	Kind loopback.Kind
	// Err is how the process ended; nil for exit status 0.
	Err error
}

func (e *ExitedError) Error() string {
	return fmt.Sprintf("%s server had exited before it was stopped: %v", e.Kind, e.Err)
}

// Stop ends the server and returns what it observed. On SIGTERM a Go
// server unmounts once the kernel has released the files closed just
// before, and the peer's libfuse leaves its loop and unmounts lazily, so
// that open files do not hold it up; either then exits. One that does not
// exit within stopGrace has its connection aborted and is killed. For the
// peer, the Stats hold its request counts with PeerSpec.Count (Opens and
// Registrations stay empty: the peer records neither), and are empty
// without. Stop is idempotent.
func (p *Process) Stop() (wire.Stats, error) {
	p.stopOnce.Do(func() {
		var errs []error
		select {
		case <-p.exited:
			errs = append(errs, p.child.exitedEarly(p.waitErr))
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
				if p.waitErr != nil {
					errs = append(errs, fmt.Errorf("%s: %w", p.name, p.waitErr))
				}
			case <-time.After(stopGrace):
				errs = append(errs, fmt.Errorf("%s did not stop within %s of SIGTERM; killed", p.name, stopGrace))
				p.kill()
			}
		}
		// A server that died without unmounting leaves a mount point
		// whose every access fails with ENOTCONN.
		if p.child.detachLeft(p.Dir) {
			errs = append(errs, fmt.Errorf("%s was still mounted after the %s ended", p.Dir, p.role))
		}
		p.stopStats, p.stopErr = p.child.report(p, errs)
	})
	return p.stopStats, p.stopErr
}

// kill aborts the connection, so that no caller stays blocked on the
// server, detaches the mount and kills the process.
func (p *Process) kill() {
	p.child.abort(p.Dir)
	_ = p.cmd.Process.Kill()
	<-p.exited
}

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
