package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
)

// needMount skips tests that mount when this run cannot.
func needMount(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("mounts FUSE; skipped in -short mode")
	}
	if err := CanMount(); err != nil {
		t.Skipf("cannot mount FUSE here: %v", err)
	}
}

func unmountAtEnd(t *testing.T, m *Mount) {
	t.Cleanup(func() { assert.Check(t, m.Unmount()) })
}

func randomFile(t *testing.T, path string, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(data)
	assert.NilError(t, os.WriteFile(path, data, 0o644))
	return data
}

func TestNoop(t *testing.T) {
	needMount(t)
	const size = 3<<20 + 123
	mnt := t.TempDir()
	m, err := Noop(context.Background(), mnt, size, Options{})
	assert.NilError(t, err)
	unmountAtEnd(t, m)

	got, err := os.ReadFile(filepath.Join(mnt, NoopName))
	assert.NilError(t, err)
	assert.Equal(t, len(got), size)
	assert.Check(t, bytes.Count(got, []byte{0}) == size, "NOOP file holds non-zero bytes")
	reads, _ := m.Observer.Reads()
	assert.Check(t, reads > 0, "no READ reached the NOOP daemon")

	f, err := os.OpenFile(filepath.Join(mnt, NoopName), os.O_WRONLY, 0)
	assert.NilError(t, err)
	n, err := f.Write(make([]byte, 4096))
	assert.Check(t, err)
	assert.Check(t, is.Equal(n, 4096))
	assert.NilError(t, f.Close())
	st, err := os.Stat(filepath.Join(mnt, NoopName))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Size(), int64(size)), "a discarded write changed the size")
}

func TestLoopbackObserver(t *testing.T) {
	needMount(t)
	for _, tc := range []struct {
		name        string
		passthrough bool
	}{
		{name: "passthrough", passthrough: true},
		{name: "classic", passthrough: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backing, mnt := t.TempDir(), t.TempDir()
			want := randomFile(t, filepath.Join(backing, "f"), 1<<20+17)
			m, err := Loopback(context.Background(), mnt, backing, Options{Passthrough: tc.passthrough, Logf: t.Logf})
			assert.NilError(t, err)
			unmountAtEnd(t, m)
			if tc.passthrough && m.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH == 0 {
				t.Skip("this kernel does not offer FUSE_PASSTHROUGH")
			}

			got, err := os.ReadFile(filepath.Join(mnt, "f"))
			assert.NilError(t, err)
			assert.Check(t, bytes.Equal(got, want), "content differs from the backing file")

			opens := m.Observer.Opens()
			assert.Assert(t, is.Len(opens, 1))
			reads, _ := m.Observer.Reads()
			regs := m.Observer.Registrations()
			assert.Assert(t, is.Len(regs, 1), "go-fuse tries to register the backing file either way")
			if tc.passthrough {
				assert.Check(t, opens[0].Passthrough(), "open reply %+v", opens[0])
				assert.Check(t, is.Equal(opens[0].BackingID, regs[0].ID))
				assert.Check(t, is.Equal(regs[0].Errno, syscall.Errno(0)))
				assert.Check(t, is.Equal(reads, int64(0)))
			} else {
				assert.Check(t, !opens[0].Passthrough(), "open reply %+v", opens[0])
				assert.Check(t, regs[0].Errno != 0, "the kernel accepted a backing file without passthrough negotiated")
				assert.Check(t, reads > 0, "no READ reached the classic daemon")
			}
		})
	}
}

// TestRegistrationErrno stacks a passthrough loopback on another FUSE
// mount: with max_stack_depth 1 the kernel refuses the backing file, and
// the observer must report the kernel's errno.
func TestRegistrationErrno(t *testing.T) {
	needMount(t)
	backing, lower, upper := t.TempDir(), t.TempDir(), t.TempDir()
	want := randomFile(t, filepath.Join(backing, "f"), 64<<10)
	ctx := context.Background()
	lm, err := Loopback(ctx, lower, backing, Options{Passthrough: true})
	assert.NilError(t, err)
	unmountAtEnd(t, lm)
	if lm.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH == 0 {
		t.Skip("this kernel does not offer FUSE_PASSTHROUGH")
	}
	um, err := Loopback(ctx, upper, lower, Options{Passthrough: true})
	assert.NilError(t, err)
	unmountAtEnd(t, um)

	got, err := os.ReadFile(filepath.Join(upper, "f"))
	assert.NilError(t, err)
	assert.Check(t, bytes.Equal(got, want))
	regs := um.Observer.Registrations()
	assert.Assert(t, is.Len(regs, 1))
	assert.Check(t, is.Equal(regs[0].Errno, syscall.ELOOP))
	assert.Check(t, !um.Observer.Opens()[0].Passthrough())
}

// TestConnection aborts a mount through the fusectl entry Connection
// names, which only works if the name is right.
func TestConnection(t *testing.T) {
	needMount(t)
	if entries, err := os.ReadDir(FusectlDir); err != nil || len(entries) == 0 {
		t.Skipf("fusectl is not mounted at %s", FusectlDir)
	}
	mnt := t.TempDir()
	m, err := Noop(context.Background(), mnt, 1, Options{})
	assert.NilError(t, err)
	unmountAtEnd(t, m)
	_, err = os.Stat(filepath.Join(mnt, NoopName))
	assert.NilError(t, err)

	conn, err := Connection(mnt)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(FusectlDir, conn, "abort"), []byte("1"), 0))
	_, err = os.ReadFile(filepath.Join(mnt, NoopName))
	assert.Check(t, errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED), "%v", err)
}

func TestMountErrors(t *testing.T) {
	needMount(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Noop(ctx, t.TempDir(), 1, Options{})
	assert.Check(t, errors.Is(err, context.Canceled), "%v", err)

	_, err = Noop(context.Background(), filepath.Join(t.TempDir(), "missing"), 1, Options{})
	assert.Check(t, errors.Is(err, syscall.ENOENT), "%v", err)
}

func TestLogSink(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{name: "splice noise dropped", in: "go-fuse: trySplice: short pipe\n", want: nil},
		{name: "other lines kept", in: "go-fuse: panic in FS handler: boom\n", want: []string{"go-fuse: panic in FS handler: boom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			s := logSink{logf: func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) }}
			n, err := io.WriteString(s, tc.in)
			assert.NilError(t, err)
			assert.Equal(t, n, len(tc.in))
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

// TestBackingOpen issues the ioctls through a mount as the probes do. The
// padding case fails if the padding does not reach the kernel, which is
// what handing fuseabi.BackingMap to go-fuse relies on.
func TestBackingOpen(t *testing.T) {
	needMount(t)
	file := filepath.Join(t.TempDir(), "f")
	randomFile(t, file, 4096)
	f, err := os.Open(file)
	assert.NilError(t, err)
	defer f.Close()
	fd := int32(f.Fd())
	for _, tc := range []struct {
		name      string
		o         Options
		bm        fuseabi.BackingMap
		wantErrno syscall.Errno
		since     [2]int // first release that answers wantErrno
	}{
		{name: "regular file", o: Options{Passthrough: true}, bm: fuseabi.BackingMap{Fd: fd}},
		// fuse_backing_open: map->flags || map->padding → EINVAL.
		{name: "padding", o: Options{Passthrough: true}, bm: fuseabi.BackingMap{Fd: fd, Padding: 1}, wantErrno: syscall.EINVAL},
		// fuse_backing_open: !fc->passthrough → EPERM.
		{name: "classic server", o: Options{}, bm: fuseabi.BackingMap{Fd: fd}, wantErrno: syscall.EPERM},
		// process_init_reply keeps passthrough off next to the
		// writeback cache (6.11).
		{name: "writeback cache", o: Options{Passthrough: true, WritebackCache: true}, bm: fuseabi.BackingMap{Fd: fd}, wantErrno: syscall.EPERM, since: [2]int{6, 11}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Noop(context.Background(), t.TempDir(), 1, tc.o)
			assert.NilError(t, err)
			unmountAtEnd(t, m)
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
