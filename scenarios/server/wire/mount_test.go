package wire_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
	"github.com/fusematrix/fusematrix/scenarios/server/internal/servertest"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

func TestNoop(t *testing.T) {
	servertest.NeedMount(t)
	const size = 3<<20 + 123
	mnt := t.TempDir()
	m, err := wire.Noop(context.Background(), mnt, size, wire.Options{})
	assert.NilError(t, err)
	servertest.UnmountAtEnd(t, m)

	got, err := os.ReadFile(filepath.Join(mnt, wire.NoopName))
	assert.NilError(t, err)
	assert.Equal(t, len(got), size)
	assert.Check(t, bytes.Count(got, []byte{0}) == size, "NOOP file holds non-zero bytes")
	reads, _ := m.Observer.Reads()
	assert.Check(t, reads > 0, "no READ reached the NOOP daemon")

	f, err := os.OpenFile(filepath.Join(mnt, wire.NoopName), os.O_WRONLY, 0)
	assert.NilError(t, err)
	n, err := f.Write(make([]byte, 4096))
	assert.Check(t, err)
	assert.Check(t, is.Equal(n, 4096))
	assert.NilError(t, f.Close())
	st, err := os.Stat(filepath.Join(mnt, wire.NoopName))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Size(), int64(size)), "a discarded write changed the size")
}

// TestConnection aborts a mount through the fusectl entry wire.Connection
// names, which only works if the name is right.
func TestConnection(t *testing.T) {
	servertest.NeedMount(t)
	if entries, err := os.ReadDir(wire.FusectlDir); err != nil || len(entries) == 0 {
		t.Skipf("fusectl is not mounted at %s", wire.FusectlDir)
	}
	mnt := t.TempDir()
	m, err := wire.Noop(context.Background(), mnt, 1, wire.Options{})
	assert.NilError(t, err)
	servertest.UnmountAtEnd(t, m)
	_, err = os.Stat(filepath.Join(mnt, wire.NoopName))
	assert.NilError(t, err)

	conn, err := wire.Connection(mnt)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(wire.FusectlDir, conn, "abort"), []byte("1"), 0))
	_, err = os.ReadFile(filepath.Join(mnt, wire.NoopName))
	assert.Check(t, errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED), "%v", err)
}

func TestMountErrors(t *testing.T) {
	servertest.NeedMount(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := wire.Noop(ctx, t.TempDir(), 1, wire.Options{})
	assert.Check(t, errors.Is(err, context.Canceled), "%v", err)

	_, err = wire.Noop(context.Background(), filepath.Join(t.TempDir(), "missing"), 1, wire.Options{})
	assert.Check(t, errors.Is(err, syscall.ENOENT), "%v", err)
}

// TestBackingOpen issues the ioctls through a mount as the probes do. The
// padding case fails if the padding does not reach the kernel, which is
// what handing fuseabi.BackingMap to go-fuse relies on.
func TestBackingOpen(t *testing.T) {
	servertest.NeedMount(t)
	file := filepath.Join(t.TempDir(), "f")
	servertest.RandomFile(t, file, 4096)
	f, err := os.Open(file)
	assert.NilError(t, err)
	defer f.Close()
	fd := int32(f.Fd())
	for _, tc := range []struct {
		name      string
		o         wire.Options
		bm        fuseabi.BackingMap
		wantErrno syscall.Errno
		since     [2]int // first release that answers wantErrno
	}{
		{name: "regular file", o: wire.Options{Passthrough: true}, bm: fuseabi.BackingMap{Fd: fd}},
		// fuse_backing_open: map->flags || map->padding → EINVAL.
		{name: "padding", o: wire.Options{Passthrough: true}, bm: fuseabi.BackingMap{Fd: fd, Padding: 1}, wantErrno: syscall.EINVAL},
		// fuse_backing_open: !fc->passthrough → EPERM.
		{name: "classic server", o: wire.Options{}, bm: fuseabi.BackingMap{Fd: fd}, wantErrno: syscall.EPERM},
		// process_init_reply keeps passthrough off next to the
		// writeback cache (6.11).
		{name: "writeback cache", o: wire.Options{Passthrough: true, WritebackCache: true}, bm: fuseabi.BackingMap{Fd: fd}, wantErrno: syscall.EPERM, since: [2]int{6, 11}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := wire.Noop(context.Background(), t.TempDir(), 1, tc.o)
			assert.NilError(t, err)
			servertest.UnmountAtEnd(t, m)
			if m.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH == 0 {
				t.Skip("this kernel does not offer FUSE_PASSTHROUGH")
			}
			if rel := release(t); rel[0] < tc.since[0] || rel[0] == tc.since[0] && rel[1] < tc.since[1] {
				t.Skipf("kernel %d.%d predates this answer (%d.%d)", rel[0], rel[1], tc.since[0], tc.since[1])
			}
			id, errno := m.BackingOpen(tc.bm)
			assert.Check(t, is.Equal(errno, tc.wantErrno))
			if errno == 0 {
				assert.Check(t, id > 0, "backing id %d", id)
				assert.Check(t, is.Equal(m.BackingClose(id), syscall.Errno(0)))
				assert.Check(t, is.Equal(m.BackingClose(id), syscall.ENOENT), "closed twice")
			}
		})
	}
}

// release returns the running kernel's major and minor version.
func release(t *testing.T) [2]int {
	t.Helper()
	var u unix.Utsname
	assert.NilError(t, unix.Uname(&u))
	var v [2]int
	_, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &v[0], &v[1])
	assert.NilError(t, err)
	return v
}

// threadRecorder notes the OS thread each READ and WRITE is answered on.
type threadRecorder struct {
	fuse.RawFileSystem
	mu   sync.Mutex
	tids map[int]int
}

func (r *threadRecorder) note() {
	r.mu.Lock()
	r.tids[unix.Gettid()]++
	r.mu.Unlock()
}

func (r *threadRecorder) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	r.note()
	return r.RawFileSystem.Read(cancel, in, buf)
}

func (r *threadRecorder) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	r.note()
	return r.RawFileSystem.Write(cancel, in, data)
}

// The NOOP server answers every request on one thread, as libfuse's
// single-threaded loop does; go-fuse's Server hands consecutive requests
// to different threads, which is what made its NOOP figures the Go
// runtime's rather than FUSE's.
func TestNoopServesFromOneThread(t *testing.T) {
	servertest.NeedMount(t)
	rec := &threadRecorder{tids: map[int]int{}}
	o := wire.Options{Layer: func(fs fuse.RawFileSystem, _ wire.Callbacks) fuse.RawFileSystem {
		rec.RawFileSystem = fs
		return rec
	}}
	mnt := t.TempDir()
	const size = 4 << 20
	m, err := wire.Noop(context.Background(), mnt, size, o)
	assert.NilError(t, err)
	servertest.UnmountAtEnd(t, m)
	assert.NilError(t, servertest.ReadWriteAll(filepath.Join(mnt, wire.NoopName), 4<<10, size, 1<<20))

	rec.mu.Lock()
	defer rec.mu.Unlock()
	total := 0
	for _, n := range rec.tids {
		total += n
	}
	assert.Check(t, total > 256, "only %d READs and WRITEs reached the server", total)
	assert.Check(t, is.Len(rec.tids, 1), "requests answered on threads %v", rec.tids)
}

// The loop ends, without an error, however the connection ends.
func TestNoopLoopEnds(t *testing.T) {
	servertest.NeedMount(t)
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, mnt string)
	}{
		{name: "unmount", end: func(t *testing.T, mnt string) { assert.NilError(t, unix.Unmount(mnt, 0)) }},
		{name: "detach", end: func(t *testing.T, mnt string) { assert.NilError(t, unix.Unmount(mnt, unix.MNT_DETACH)) }},
		{name: "abort", end: func(t *testing.T, mnt string) {
			conn, err := wire.Connection(mnt)
			assert.NilError(t, err)
			abort := filepath.Join(wire.FusectlDir, conn, "abort")
			if _, err := os.Stat(abort); err != nil {
				t.Skipf("fusectl: %v", err)
			}
			assert.NilError(t, os.WriteFile(abort, []byte("1"), 0))
			t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := t.TempDir()
			m, err := wire.Noop(context.Background(), mnt, 1, wire.Options{})
			assert.NilError(t, err)
			_, err = os.Stat(filepath.Join(mnt, wire.NoopName))
			assert.NilError(t, err)
			assert.Check(t, is.Equal(m.KernelSettings().Major, uint32(7)))
			assert.Check(t, m.KernelSettings().Minor >= 26, "protocol 7.%d", m.KernelSettings().Minor)

			tc.end(t, mnt)
			done := make(chan error, 1)
			go func() { done <- m.Wait() }()
			select {
			case err := <-done:
				assert.NilError(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("the loop still serves 30 s after its connection ended")
			}
			// The device is closed, and its number no longer used.
			_, errno := m.BackingOpen(fuseabi.BackingMap{Fd: 0})
			assert.Check(t, is.Equal(errno, syscall.EBADF))
		})
	}
}

// TestNoopURing serves the NOOP file over io_uring: the data is right,
// every READ and WRITE reached the file system, and the serving thread
// made no read(2) or write(2) after INIT (the kernel's accounting).
func TestNoopURing(t *testing.T) {
	servertest.NeedURing(t)
	const size = 3<<20 + 123
	mnt := t.TempDir()
	m, err := wire.Noop(context.Background(), mnt, size, wire.Options{URing: true})
	assert.NilError(t, err)
	servertest.UnmountAtEnd(t, m)
	assert.Check(t, m.KernelSettings().Flags64()&fuseabi.OverIOUring != 0)

	got, err := os.ReadFile(filepath.Join(mnt, wire.NoopName))
	assert.NilError(t, err)
	assert.Equal(t, len(got), size)
	assert.Check(t, bytes.Count(got, []byte{0}) == size, "NOOP file holds non-zero bytes")
	reads, _ := m.Observer.Reads()
	assert.Check(t, reads > 0, "no READ reached the NOOP daemon")

	f, err := os.OpenFile(filepath.Join(mnt, wire.NoopName), os.O_WRONLY, 0)
	assert.NilError(t, err)
	for range 8 {
		n, err := f.Write(make([]byte, 4096))
		assert.Check(t, err)
		assert.Check(t, is.Equal(n, 4096))
	}
	assert.NilError(t, f.Close())
	assert.Check(t, m.Observer.Stats().Writes >= 8, "%v", m.Observer.Requests())
}

// TestUnanswered lists, on a recording mount, the requests its loop read
// and has not answered: among them a GETXATTR of wire.HoldXattr, which
// the mount holds until interrupted (here it is not, and the hold runs
// out), until the hold's answer is written.
func TestUnanswered(t *testing.T) {
	servertest.NeedMount(t)
	mnt := t.TempDir()
	m, err := wire.Noop(context.Background(), mnt, 1, wire.Options{Record: &wire.Recorder{}})
	assert.NilError(t, err)
	servertest.UnmountAtEnd(t, m)
	// Others (the lookup, a RELEASE of the mount's first open) may be in
	// flight beside it.
	getxattrs := func() []wire.Unanswered {
		var out []wire.Unanswered
		for _, q := range m.Unanswered() {
			if wire.OpcodeName(q.Op) == "GETXATTR" {
				out = append(out, q)
			}
		}
		return out
	}
	// until polls f until it says yes or a generous limit passes: the
	// loop notes an answer once its write returned, which may be after
	// the caller woke.
	until := func(f func() bool) {
		for deadline := time.Now().Add(30 * time.Second); !f() && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}

	done := make(chan error, 1)
	go func() {
		_, err := unix.Getxattr(filepath.Join(mnt, wire.NoopName), wire.HoldXattr, make([]byte, 64))
		done <- err
	}()
	var held []wire.Unanswered
	until(func() bool { held = getxattrs(); return len(held) > 0 })
	assert.Assert(t, is.Len(held, 1), "the held GETXATTR is not listed")
	assert.Check(t, held[0].Unique != 0)
	assert.Check(t, held[0].Node != 0)
	assert.Check(t, is.Equal(held[0].Err, ""))
	assert.Check(t, is.ErrorIs(<-done, unix.ETIMEDOUT), "the hold's own answer")
	until(func() bool { return len(getxattrs()) == 0 })
	assert.Check(t, is.Len(getxattrs(), 0))
}

// TestURingMountCancelled gives up mounts over io_uring as their ring
// is being registered: each returns the context's error, leaves no mount,
// and by then its ring's goroutine has ended, ring and /dev/fuse
// descriptor closed (before, the descriptor was closed under it, and its
// number could name another file by the time it submitted with it).
func TestURingMountCancelled(t *testing.T) {
	servertest.NeedURing(t)
	held := func() (rings, devs int) {
		entries, err := os.ReadDir("/proc/self/fd")
		assert.NilError(t, err)
		for _, e := range entries {
			switch target, _ := os.Readlink("/proc/self/fd/" + e.Name()); target {
			case "anon_inode:[io_uring]":
				rings++
			case "/dev/fuse":
				devs++
			}
		}
		return rings, devs
	}
	rings0, devs0 := held()
	cancelled := 0
	for range 20 {
		mnt := t.TempDir()
		// The mount is given up once its first entry is registered, and
		// registration goes on past that, as on a loaded machine.
		ctx, cancel := context.WithCancel(context.Background())
		wire.SlowURingRegister(t, func() { cancel(); time.Sleep(time.Millisecond) })
		m, err := wire.Noop(ctx, mnt, 1, wire.Options{URing: true})
		if err == nil {
			// The ring was ready before the cancel was seen.
			assert.NilError(t, m.Unmount())
			continue
		}
		cancelled++
		assert.Check(t, errors.Is(err, context.Canceled), "%v", err)
		rings, devs := held()
		assert.Check(t, is.Equal(rings, rings0), "io_uring descriptors open after the failed mount")
		assert.Check(t, is.Equal(devs, devs0), "/dev/fuse descriptors open after the failed mount")
		var st unix.Statfs_t
		assert.NilError(t, unix.Statfs(mnt, &st))
		assert.Check(t, st.Type != unix.FUSE_SUPER_MAGIC, "%s is still a FUSE mount", mnt)
	}
	t.Logf("%d of 20 mounts saw the cancel", cancelled)
	assert.Check(t, cancelled > 0)
}
