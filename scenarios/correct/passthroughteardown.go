package correct

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// pt/unmount-open and pt/abort-open take a mount away under open
// passthrough files: one descriptor being read in a loop, one mapped
// MAP_SHARED. Passthrough I/O never asks the server
// (fuse_passthrough_read_iter, _write_iter and _mmap in
// fs/fuse/passthrough.c, 6.9 … 6.12, go straight to the backing file and
// do not look at fc->connected), so the kernel may well keep serving it
// after a lazy unmount, which leaves the connection up, and even after an
// abort (fuse_abort_conn in fs/fuse/dev.c ends requests, and passthrough
// I/O makes none). What the scenarios require: nothing hangs, every read
// returns the backing file's bytes or a clean error (ENOTCONN, EIO,
// ECONNABORTED), never wrong bytes, and the server process ends once its
// connection does. What the kernel answered to each operation is recorded.
var ptUnmountOpen = scenarios.Scenario{
	ID:          contract.PtUnmountOpen,
	Description: "lazy unmount with passthrough files open (a reader mid-read, a mapping): no hang, correct data or a clean error, the server ends after the last close",
	Needs:       ptNeeds,
	AnyServer:   true,
	Run:         against(loopback.KindLoopback, teardownBy(lazyUnmount)),
}

var ptAbortOpen = scenarios.Scenario{
	ID:          contract.PtAbortOpen,
	Description: "connection abort through fusectl with passthrough files open (a reader mid-read, a mapping): no hang, correct data or a clean error",
	Needs:       ptNeeds | scenarios.NeedFusectl,
	AnyServer:   true,
	Run:         against(loopback.KindLoopback, teardownBy(connectionAbort)),
}

// teardown is how the mount is taken away.
type teardown int

const (
	lazyUnmount teardown = iota
	connectionAbort
	// serverKilled is classic/kill-mid-request's.
	serverKilled
)

const (
	teardownSize = 256<<10 + 555
	// opLimit bounds each operation after the teardown; one that takes
	// longer is a hang.
	opLimit = 3 * time.Second
	// exitLimit bounds how long the server may take to end after its
	// connection did.
	exitLimit = 5 * time.Second
	// readsAround is how many reads the reader must complete before the
	// teardown, and how many more it is given after.
	readsAround = 8
)

// teardownBy is the scenario that takes the mount away as how says.
func teardownBy(how teardown) func(context.Context, *scenarios.Env, scenarios.Subject) results.Result {
	return func(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
		return ptTeardownWith(ctx, env, sub, how)
	}
}

func ptTeardownWith(ctx context.Context, env *scenarios.Env, sub scenarios.Subject, how teardown) results.Result {
	r, rng, model, err := seededRig(ctx, env, sub, "pt"+string(rune(how)), "file", teardownSize)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	t := &teardownRun{rig: r, how: how, model: model, rng: rng, rfd: -1, mfd: -1}
	t.run()
	return r.result()
}

// teardownRun is one pass of either scenario.
type teardownRun struct {
	*rig
	how   teardown
	model []byte
	rng   *rand.ChaCha8
	conn  string
	// aborted is set once the connection was aborted, by the scenario or
	// to free a hang.
	aborted bool
	// hung is set once an operation did not return: later operations
	// are skipped, the hung one is freed by an abort.
	hung []chan struct{}
	// rfd, mfd and mem are what is still open: the reader's descriptor,
	// the mapped one and the mapping; -1 and nil once closed.
	rfd, mfd int
	mem      []byte
}

func (t *teardownRun) run() {
	conn, err := wire.Connection(t.mnt)
	if err != nil {
		t.failf("fusectl connection of %s: %v", t.mnt, err)
	}
	t.conn = conn
	if t.rfd, err = unix.Open(t.m("file"), unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		t.rfd = -1
		t.failf("open for the reader: %v", err)
		t.finish(false)
		return
	}
	if t.mfd, err = unix.Open(t.m("file"), unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
		t.mfd = -1
		t.failf("open for the mapping: %v", err)
		t.finish(false)
		return
	}
	switch t.mem, err = unix.Mmap(t.mfd, 0, len(t.model), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); {
	case errors.Is(err, unix.ENODEV) && t.foreign != "":
		// See pt/mmap-shared: a daemon's direct_io files cannot be
		// mapped; the reader alone goes on.
		t.mem = nil
		t.facts["mmap"] = "ENODEV: the daemon's files cannot be mapped MAP_SHARED (direct_io): the mapped part is left out"
	case err != nil:
		t.mem = nil
		t.failf("mmap: %v", err)
	}
	// The reader keeps a copy: the model changes with the writes below.
	rd := startReader(t.rfd, append([]byte(nil), t.model...), t.foreign != "", false)
	if !rd.waitReads(readsAround, opLimit) {
		t.failf("the reader did not complete %d reads within %s before the teardown", readsAround, opLimit)
	}

	switch t.how {
	case lazyUnmount:
		err = unix.Unmount(t.mnt, unix.MNT_DETACH)
		t.facts["umount_detach"] = scenarios.ErrnoText(errnoOf(err))
	case connectionAbort:
		err = t.abort()
		t.facts["abort"] = scenarios.ErrnoText(errnoOf(err))
	}
	if err != nil {
		t.failf("teardown: %v", err)
	}

	// The reader goes on: its next reads show what the kernel does with
	// a passthrough read now.
	t.readerAfter(rd, "the teardown")
	t.afterOps()
	t.finish(true)
}

// readerAfter gives the reader readsAround more reads after what, then
// stops it: a read that does not return is a hang. What it read, and how
// it ended, is a fact; wrong bytes or an unclean error fail the check.
func (t *teardownRun) readerAfter(rd *reader, what string) {
	before := rd.count()
	if !rd.waitReads(before+readsAround, opLimit) {
		t.failf("the reader did not complete %d more reads within %s of %s: hang", readsAround, opLimit, what)
	}
	if !rd.stop(opLimit) {
		t.failf("the reader's pread did not return within %s: hang", opLimit)
		t.hung = append(t.hung, rd.done)
	}
	t.facts["reader"] = rd.describe()
	if p := rd.problem(); p != "" {
		t.failf("reader: %s", p)
	}
}

// afterOps does one of each operation on the open files after the
// teardown and records the kernel's answer.
func (t *teardownRun) afterOps() {
	if len(t.hung) > 0 {
		return
	}
	rfd, mfd, mem := t.rfd, t.mfd, t.mem
	t.op("pread", func() (string, string) { return t.readAll(rfd) })
	// The backing file changes underneath; passthrough reads and the
	// mapping must show the change.
	off := len(t.model) / 3
	chunk := randomBytes(t.rng, 4096)
	if err := writeAt(t.b("file"), chunk, off); err != nil {
		t.failf("write to the backing file: %v", err)
	} else {
		copy(t.model[off:], chunk)
	}
	// A daemon that does not pass the file through serves it from its
	// pages, which a write behind its back need not reach: stale bytes
	// there are a fact, not a fault (its passthrough check judges
	// passthrough).
	behind := func(answer, problem string) (string, string) {
		if t.foreign != "" && answer == "wrong bytes" {
			return "stale: the daemon's pages, not the backing file's", ""
		}
		return answer, problem
	}
	t.op("pread_after_backing_write", func() (string, string) { return behind(t.readAll(rfd)) })
	if mem != nil {
		t.op("mmap_read", func() (string, string) {
			if p := compareData(mem, t.model); p != "" {
				return behind("wrong bytes", "the mapping: "+p)
			}
			return "ok", ""
		})
		c := randomBytes(t.rng, 3000)
		t.op("mmap_store_msync", func() (string, string) {
			off := 2 * len(t.model) / 3
			copy(mem[off:], c)
			copy(t.model[off:], c)
			if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
				return cleanError(err)
			}
			if p := fileProblem(t.b("file"), t.model); p != "" {
				return "ok", "after a store to the mapping and msync, the backing file: " + p
			}
			return "ok", ""
		})
	}
	c := randomBytes(t.rng, 2000)
	t.op("pwrite", func() (string, string) {
		n, err := unix.Pwrite(mfd, c, 1000)
		if err != nil {
			return cleanError(err)
		}
		copy(t.model[1000:], c[:n])
		if t.foreign != "" {
			// See rig.flush: a daemon with the writeback cache holds
			// the write until written back.
			if err := unix.Fsync(mfd); err != nil {
				return cleanError(err)
			}
		}
		if p := fileProblem(t.b("file"), t.model); p != "" {
			return "ok", "after a pwrite, the backing file: " + p
		}
		return "ok", ""
	})
	t.op("fstat", func() (string, string) {
		var st unix.Stat_t
		return scenarios.ErrnoText(errnoOf(unix.Fstat(rfd, &st))), ""
	})
	t.op("open_path", func() (string, string) {
		fd, err := unix.Open(t.m("file"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		return scenarios.ErrnoText(errnoOf(err)), ""
	})
	if mem != nil && t.op("munmap", func() (string, string) { return scenarios.ErrnoText(errnoOf(unix.Munmap(mem))), "" }) {
		t.mem = nil
	}
	if t.op("close_reader", func() (string, string) { return scenarios.ErrnoText(errnoOf(unix.Close(rfd))), "" }) {
		t.rfd = -1
	}
	if t.op("close_mapped", func() (string, string) { return scenarios.ErrnoText(errnoOf(unix.Close(mfd))), "" }) {
		t.mfd = -1
	}
}

// op runs fn bounded by opLimit and records its answer as a fact, and
// what it found wrong as a failure. A hang is a failure too, and after one
// no further operation runs. fn touches nothing of t but the model, so
// that a hung one can finish later unobserved.
func (t *teardownRun) op(name string, fn func() (answer, problem string)) (ran bool) {
	if len(t.hung) > 0 {
		t.facts[name] = "not run after a hang"
		return false
	}
	done := make(chan struct{})
	var answer, problem string
	go func() {
		defer close(done)
		// A mapping whose file cannot be read any more faults (SIGBUS):
		// the kernel's clean error for memory access.
		if err := guardFault(func() { answer, problem = fn() }); err != nil {
			answer, problem = "SIGBUS", ""
		}
	}()
	select {
	case <-done:
		t.facts[name] = answer
		if problem != "" {
			t.failf("%s after the teardown: %s", name, problem)
		}
	case <-time.After(opLimit):
		t.facts[name] = "hang"
		t.failf("%s did not return within %s: hang", name, opLimit)
		t.hung = append(t.hung, done)
	}
	// A hung close or munmap still completes once the hang is freed.
	return true
}

// readAll reads the whole file through fd: correct bytes or a clean error.
func (t *teardownRun) readAll(fd int) (string, string) {
	buf := make([]byte, len(t.model)+1)
	got := 0
	for got < len(buf) {
		n, err := unix.Pread(fd, buf[got:], int64(got))
		if err != nil {
			return cleanError(err)
		}
		if n == 0 {
			break
		}
		got += n
	}
	if p := compareData(buf[:got], t.model); p != "" {
		return "wrong bytes", "wrong bytes: " + p
	}
	return "ok", ""
}

// cleanError is the answer for err and, unless it is a clean error, the
// problem.
func cleanError(err error) (string, string) {
	e := errnoOf(err)
	if !cleanErrno(e) {
		return scenarios.ErrnoText(e), fmt.Sprintf("%v, not a clean error", err)
	}
	return scenarios.ErrnoText(e), ""
}

// fileProblem describes how the file at path differs from want, or "".
func fileProblem(path string, want []byte) string {
	got, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return compareData(got, want)
}

func cleanErrno(e unix.Errno) bool {
	return e == unix.ENOTCONN || e == unix.EIO || e == unix.ECONNABORTED
}

func (t *teardownRun) abort() error {
	if t.conn == "" {
		return errors.New("connection unknown")
	}
	t.aborted = true
	return os.WriteFile(filepath.Join(wire.FusectlDir, t.conn, "abort"), []byte("1"), 0)
}

// finish frees hung operations, ends the mount and the server, and judges
// passthrough. After a teardown the server must end by itself: a lazily
// unmounted connection ends with its last file, an aborted one at once.
func (t *teardownRun) finish(tornDown bool) {
	t.freeHangs()
	// What a hang or an early end left open; the connection is gone or
	// going, so none of this waits on the server.
	if t.mem != nil {
		unix.Munmap(t.mem)
	}
	for _, fd := range []int{t.rfd, t.mfd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	exited := false
	if tornDown {
		select {
		case <-t.proc.Exited():
			exited = true
		case <-time.After(exitLimit):
		}
		t.facts["server_ended"] = fmt.Sprint(exited)
		if !exited && len(t.hung) == 0 {
			t.failf("the server was still running %s after its connection should have ended", exitLimit)
		}
		if t.how == connectionAbort {
			// The dead mount stays until unmounted; no file is open any
			// more, so a plain unmount must work.
			err := unix.Unmount(t.mnt, 0)
			t.facts["umount_after_abort"] = scenarios.ErrnoText(errnoOf(err))
			if err != nil {
				t.failf("unmount after the abort: %v", err)
			}
		}
	}
	if t.foreign != "" && exited {
		// How the daemon ended is the fact daemon_exit and its output the
		// log; what is left to judge is that its mount went with it.
		if m, ok := t.proc.(interface{ Mounted() bool }); ok && m.Mounted() {
			t.failf("%s ended, but its mount is still there", t.foreign)
		}
		_, _ = t.proc.Stop()
		t.stopped = true
		t.requirePassthrough()
		return
	}
	st, err := t.proc.Stop()
	var problems []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		problems = j.Unwrap()
	} else if err != nil {
		problems = []error{err}
	}
	for _, e := range problems {
		var ex *server.ExitedError
		if errors.As(e, &ex) && exited && ex.Err == nil {
			continue
		}
		t.failf("server: %v", e)
	}
	// Set before requirePassthrough, whose stop would stop the server
	// again and count its early end as a failure.
	t.stats = &st
	if t.foreign == "" {
		t.facts["read_requests"] = fmt.Sprint(st.Reads)
		t.facts["write_requests"] = fmt.Sprint(st.Writes)
		t.facts["opens"] = fmt.Sprint(len(st.Opens))
	}
	t.requirePassthrough()
}

// freeHangs aborts the connection, unless it was, to free the operations
// that hung, and waits for them.
func (t *teardownRun) freeHangs() {
	if len(t.hung) == 0 {
		return
	}
	if !t.aborted {
		if err := t.abort(); err != nil {
			t.failf("abort to free the hang: %v", err)
		}
	}
	for _, h := range t.hung {
		select {
		case <-h:
		case <-time.After(opLimit):
			t.failf("a hung operation was still blocked %s after the connection was aborted", opLimit)
		}
	}
}

// writeAt writes data at off of the file at path.
func writeAt(path string, data []byte, off int) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	n, err := unix.Pwrite(fd, data, int64(off))
	if err == nil && n != len(data) {
		err = fmt.Errorf("wrote %d of %d bytes", n, len(data))
	}
	return err
}

// reader preads random ranges of a file in a loop and checks them against
// the model it was started with, until stopped or its first error.
type reader struct {
	fd    int
	model []byte
	// shortOK accepts a read that returns fewer bytes than asked, all of
	// them right: a daemon's file is read through the page cache, from
	// which the kernel returns what it has once the connection is gone
	// (read(2) may return less than asked). Passthrough reads never do.
	shortOK bool
	// uncached drops the file's cached pages before each read, so that
	// every read asks the server.
	uncached bool
	quit     chan struct{}
	done     chan struct{}

	mu    sync.Mutex
	reads int
	short int
	err   error
	wrong string
}

func startReader(fd int, model []byte, shortOK, uncached bool) *reader {
	rd := &reader{fd: fd, model: model, shortOK: shortOK, uncached: uncached, quit: make(chan struct{}), done: make(chan struct{})}
	go rd.loop()
	return rd
}

func (rd *reader) loop() {
	defer close(rd.done)
	pick := rand.New(rand.NewPCG(11, 11))
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-rd.quit:
			return
		default:
		}
		off := pick.IntN(len(rd.model))
		n := 1 + pick.IntN(min(len(buf), len(rd.model)-off))
		if rd.uncached {
			_ = unix.Fadvise(rd.fd, 0, 0, unix.FADV_DONTNEED)
		}
		got, err := unix.Pread(rd.fd, buf[:n], int64(off))
		rd.mu.Lock()
		switch {
		case err != nil:
			rd.err = err
		case rd.shortOK && got > 0 && got < n && compareData(buf[:got], rd.model[off:off+got]) == "":
			rd.short++
			rd.reads++
		case compareData(buf[:got], rd.model[off:off+n]) != "":
			rd.wrong = fmt.Sprintf("pread of %d bytes at %d: %s (relative to the read)", n, off, compareData(buf[:got], rd.model[off:off+n]))
		default:
			rd.reads++
		}
		stop := rd.err != nil || rd.wrong != ""
		rd.mu.Unlock()
		if stop {
			return
		}
	}
}

func (rd *reader) count() int {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.reads
}

// waitReads waits until the reader completed n reads or ended; false if
// neither happened within limit.
func (rd *reader) waitReads(n int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-rd.done:
			return true
		default:
		}
		if rd.count() >= n {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

// stop ends the loop; false if a read did not return within limit.
func (rd *reader) stop(limit time.Duration) bool {
	close(rd.quit)
	select {
	case <-rd.done:
		return true
	case <-time.After(limit):
		return false
	}
}

func (rd *reader) describe() string {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	s := fmt.Sprintf("%d correct reads", rd.reads)
	if rd.short > 0 {
		s += fmt.Sprintf(" (%d of them short)", rd.short)
	}
	if rd.err != nil {
		s += ", then " + scenarios.ErrnoText(errnoOf(rd.err))
	}
	if rd.wrong != "" {
		s += ", then wrong bytes"
	}
	return s
}

// problem says what was wrong with the reads: wrong bytes or an unclean
// error.
func (rd *reader) problem() string {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.wrong != "" {
		return rd.wrong
	}
	if rd.err != nil && !cleanErrno(errnoOf(rd.err)) {
		return fmt.Sprintf("%v, not a clean error", rd.err)
	}
	return ""
}
