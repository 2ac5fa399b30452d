package correct

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// classic/kill-mid-request kills the server with SIGKILL while it holds
// a READ, with another file open, read and mapped. A daemon that crashes
// is the common way a FUSE connection ends, and the kernel must end what
// it was waiting for: the dead process's last /dev/fuse descriptor closes
// (fuse_dev_release), which aborts the connection (fuse_abort_conn ends
// every request, those in the daemon's hands included); over io_uring
// its ring's commands are cancelled as the process exits as well. The
// scenario requires that the held read return a clean error, that no
// later operation on the open files or the mount hang or return wrong
// bytes, and that the dead mount unmount. What each answered is recorded.
//
// A user's daemon cannot be made to hold a request, so against one the
// check kills every process of it that holds /dev/fuse while a reader
// reads the file in a loop, its cached pages dropped before each read so
// that each asks the daemon (killDaemon).
var classicKilled = scenarios.Scenario{
	ID:          contract.ClassicKilled,
	Description: "the server killed (SIGKILL) while it holds a READ, another file open and mapped: the held read ends with a clean error, nothing hangs, no wrong bytes, the dead mount unmounts",
	Needs:       scenarios.NeedOwnServer,
	AnyServer:   true,
	Run:         against(loopback.KindHoldRead, killedWith),
}

const (
	killedSize = 128<<10 + 99
	heldSize   = 16 << 10
)

func killedWith(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	r, rng, model, err := seededRig(ctx, env, sub, "kill", "other", killedSize)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	t := &teardownRun{rig: r, how: serverKilled, model: model, rng: rng, rfd: -1, mfd: -1}
	// The connection, to abort should anything hang.
	if t.conn, err = wire.Connection(t.mnt); err != nil {
		t.failf("fusectl connection of %s: %v", t.mnt, err)
	}
	if r.foreign != "" {
		t.killDaemon()
	} else {
		t.killMidRequest(env.URing)
	}
	return r.result()
}

// heldRead is the read the server holds: its outcome once it returns.
type heldRead struct {
	done chan struct{}
	n    int
	err  error
}

func startHeldRead(fd int) *heldRead {
	h := &heldRead{done: make(chan struct{})}
	go func() {
		defer close(h.done)
		h.n, h.err = unix.Pread(fd, make([]byte, 4096), 0)
	}()
	return h
}

// answer is the held read's outcome as a fact, and what is wrong with it:
// the server never answered, so any bytes are wrong.
func (h *heldRead) answer() (string, string) {
	if h.err != nil {
		return cleanError(h.err)
	}
	return fmt.Sprintf("%d bytes", h.n), fmt.Sprintf("it returned %d bytes, though the server never answered it", h.n)
}

// overRing says the server serves over io_uring, so that the kill must
// find it holding a ring.
func (t *teardownRun) killMidRequest(overRing bool) {
	if err := os.WriteFile(t.b(loopback.HeldFile), randomBytes(t.rng, heldSize), 0o644); err != nil {
		t.failf("backing file: %v", err)
		t.finishKilled(nil, -1)
		return
	}
	if !t.openOther() {
		t.finishKilled(nil, -1)
		return
	}
	hfd, err := unix.Open(t.m(loopback.HeldFile), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.failf("open %s: %v", loopback.HeldFile, err)
		t.finishKilled(nil, -1)
		return
	}
	held := startHeldRead(hfd)
	if !t.awaitHolding(held) {
		t.finishKilled(held, hfd)
		return
	}

	// Over io_uring the held READ came through the ring (nothing reads
	// /dev/fuse after INIT there): the ring must be the server's still.
	if rings, err := ringFds(t.proc.Pid()); err != nil {
		t.failf("the server's descriptors: %v", err)
	} else {
		t.facts["server_rings"] = fmt.Sprint(len(rings))
		if overRing && len(rings) == 0 {
			t.failf("the server held no io_uring descriptor when it was killed")
		}
	}
	err = unix.Kill(t.proc.Pid(), unix.SIGKILL)
	t.facts["kill"] = scenarios.ErrnoText(errnoOf(err))
	if err != nil {
		t.failf("SIGKILL the server: %v", err)
	}
	select {
	case <-held.done:
		answer, problem := held.answer()
		t.facts[string(contract.FactHeldRead)] = answer
		if problem != "" {
			t.failf("the held read after the SIGKILL: %s", problem)
		}
	case <-time.After(opLimit):
		t.facts[string(contract.FactHeldRead)] = "hang"
		t.failf("the held read did not return within %s of the SIGKILL: hang", opLimit)
		t.hung = append(t.hung, held.done)
	}
	t.awaitDeath()
	if t.afterKill(hfd) {
		hfd = -1
	}
	t.finishKilled(held, hfd)
}

// awaitDeath waits for the killed server to be gone.
func (t *teardownRun) awaitDeath() {
	select {
	case <-t.proc.Exited():
		t.facts["server_ended"] = "true"
	case <-time.After(exitLimit):
		t.facts["server_ended"] = "false"
		t.failf("the server was still running %s after SIGKILL", exitLimit)
	}
}

// openOther opens the other file twice, reads it whole through one and
// maps it through the other, so that the kill finds it cached, open and
// mapped.
func (t *teardownRun) openOther() bool {
	var err error
	if t.rfd, err = unix.Open(t.m("other"), unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		t.rfd = -1
		t.failf("open other: %v", err)
		return false
	}
	if _, p := t.readAll(t.rfd); p != "" {
		t.failf("read of other before the kill: %s", p)
	}
	if t.mfd, err = unix.Open(t.m("other"), unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		t.mfd = -1
		t.failf("open other for the mapping: %v", err)
		return false
	}
	if t.mem, err = unix.Mmap(t.mfd, 0, len(t.model), unix.PROT_READ, unix.MAP_SHARED); err != nil {
		t.mem = nil
		t.failf("mmap other: %v", err)
		return false
	}
	if p := compareData(t.mem, t.model); p != "" {
		t.failf("the mapping before the kill: %s", p)
	}
	return len(t.problems) == 0
}

// awaitHolding waits until the server says it holds the read; false,
// with the reason, if the read was answered instead or nothing came.
func (t *teardownRun) awaitHolding(held *heldRead) bool {
	deadline := time.Now().Add(opLimit)
	for time.Now().Before(deadline) {
		if slices.Contains(t.proc.Stderr(), loopback.HoldingLine) {
			return true
		}
		select {
		case <-held.done:
			answer, _ := held.answer()
			t.failf("the read of %s was answered (%s), not held: nothing was mid-request", loopback.HeldFile, answer)
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.failf("the server did not say it holds the READ within %s", opLimit)
	return false
}

// afterKill does one of each operation on the mount and the open files
// once the server is dead, and records the kernel's answer.
// It reports whether it closed hfd.
func (t *teardownRun) afterKill(hfd int) (closedHeld bool) {
	clean := func(err error) (string, string) {
		if err == nil {
			return "ok", ""
		}
		return cleanError(err)
	}
	t.op(string(contract.FactStatPath), func() (string, string) {
		var st unix.Stat_t
		return clean(unix.Stat(t.m("other"), &st))
	})
	t.op(string(contract.FactOpenPath), func() (string, string) {
		fd, err := unix.Open(t.m("other"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		return clean(err)
	})
	t.op(string(contract.FactReaddir), func() (string, string) {
		_, err := os.ReadDir(t.mnt)
		return clean(err)
	})
	rfd, mem := t.rfd, t.mem
	// The other file's pages are cached: its bytes or a clean error.
	t.op(string(contract.FactPreadOpenFile), func() (string, string) { return t.readAll(rfd) })
	if mem != nil {
		t.op(string(contract.FactMmapRead), func() (string, string) {
			if p := compareData(mem, t.model); p != "" {
				return "wrong bytes", "the mapping: " + p
			}
			return "ok", ""
		})
		if t.op("munmap", func() (string, string) { return scenarios.ErrnoText(errnoOf(unix.Munmap(mem))), "" }) {
			t.mem = nil
		}
	}
	if hfd >= 0 {
		closedHeld = t.op(string(contract.FactCloseHeld), func() (string, string) { return scenarios.ErrnoText(errnoOf(unix.Close(hfd))), "" })
	}
	if t.op("close_reader", func() (string, string) { return scenarios.ErrnoText(errnoOf(unix.Close(rfd))), "" }) {
		t.rfd = -1
	}
	if mfd := t.mfd; mfd >= 0 && t.op("close_mapped", func() (string, string) { return scenarios.ErrnoText(errnoOf(unix.Close(mfd))), "" }) {
		t.mfd = -1
	}
	return closedHeld
}

// finishKilled frees what hung, closes what is left, unmounts the dead
// mount and stops the server, whose death by SIGKILL is no failure of
// its own. held is the held read, nil when none was started.
func (t *teardownRun) finishKilled(held *heldRead, hfd int) {
	if held != nil && !slices.Contains(t.hung, held.done) {
		select {
		case <-held.done:
		default:
			// Not yet killed: end the hold before anything waits on it.
			t.hung = append(t.hung, held.done)
		}
	}
	t.freeHangs()
	if t.mem != nil {
		unix.Munmap(t.mem)
	}
	for _, fd := range []int{t.rfd, t.mfd, hfd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	var st unix.Statfs_t
	if t.facts["kill"] != "" && unix.Statfs(t.mnt, &st) == nil && st.Type != unix.FUSE_SUPER_MAGIC {
		t.facts[string(contract.FactUmount)] = "not mounted any more"
	} else if t.facts["kill"] != "" {
		err := unix.Unmount(t.mnt, 0)
		t.facts[string(contract.FactUmount)] = scenarios.ErrnoText(errnoOf(err))
		if err != nil {
			t.failf("unmount of the dead mount: %v", err)
		} else if t.conn != "" {
			_, err := os.Stat(filepath.Join(wire.FusectlDir, t.conn))
			gone := errors.Is(err, os.ErrNotExist)
			t.facts[string(contract.FactConnectionGone)] = fmt.Sprint(gone)
		}
	}
	_, err := t.proc.Stop()
	t.stopped = true
	switch {
	case t.facts["kill"] == "ok" && err != nil:
		// A killed server reports nothing and did not unmount; what is
		// judged is above.
		t.facts["server_stop"] = strings.ReplaceAll(err.Error(), "\n", "; ")
	case err != nil:
		t.failf("server: %v", err)
	}
	if t.foreign != "" {
		t.reapLeftovers()
	}
}

// killDaemon kills a user's daemon, every process of it that holds
// /dev/fuse, while a reader reads through its mount, and holds the kernel
// to what it holds our server to; whether the mount outlived the daemon
// (it does unless the daemon arranged otherwise, as libfuse's
// auto_unmount does) is a fact.
func (t *teardownRun) killDaemon() {
	var err error
	if t.rfd, err = unix.Open(t.m("other"), unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		t.rfd = -1
		t.failf("open other: %v", err)
		t.finishKilled(nil, -1)
		return
	}
	if _, p := t.readAll(t.rfd); p != "" {
		t.failf("read of other before the kill: %s", p)
	}
	rd := startReader(t.rfd, append([]byte(nil), t.model...), true, true)
	if !rd.waitReads(readsAround, opLimit) {
		t.failf("the reader did not complete %d reads within %s before the kill", readsAround, opLimit)
	}
	pids := []int{t.proc.Pid()}
	if d, ok := t.proc.(interface{ Pids() []int }); ok {
		pids = d.Pids()
	}
	t.facts["killed"] = fmt.Sprintf("%d processes holding /dev/fuse", len(pids))
	var errs []string
	for _, pid := range pids {
		if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Sprintf("%d: %v", pid, err))
		}
	}
	t.facts["kill"] = "ok"
	if len(errs) > 0 {
		t.facts["kill"] = strings.Join(errs, "; ")
		t.failf("SIGKILL the daemon: %s", t.facts["kill"])
	}
	// The reader goes on: its next reads end with a clean error, or
	// return the right bytes.
	t.readerAfter(rd, "the kill")
	t.awaitDeath()
	var st unix.Statfs_t
	if err := unix.Statfs(t.mnt, &st); err == nil && st.Type != unix.FUSE_SUPER_MAGIC {
		// Someone unmounted it as the daemon died (auto_unmount).
		t.facts["mount_after_kill"] = "gone"
	} else {
		t.facts["mount_after_kill"] = "left"
		t.afterKill(-1)
	}
	t.finishKilled(nil, -1)
}
