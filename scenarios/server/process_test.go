package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/scenarios/server/internal/servertest"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// TestMain lets the test binary serve file systems for Launcher, as the
// agent does: Launcher re-executes /proc/self/exe with "serve".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(Serve(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func backingWith(t *testing.T, name string, data []byte) (backing, mnt string) {
	t.Helper()
	dir := t.TempDir()
	backing, mnt = filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	assert.NilError(t, os.Mkdir(backing, 0o755))
	assert.NilError(t, os.Mkdir(mnt, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(backing, name), data, 0o644))
	return backing, mnt
}

func TestProcess(t *testing.T) {
	servertest.NeedMount(t)
	for _, tc := range []struct {
		kind     loopback.Kind
		file     string
		want     []byte
		wantRead bool
	}{
		{kind: loopback.KindClassic, file: "f", want: []byte("hello, classic\n"), wantRead: true},
		{kind: loopback.KindFlipBytes, file: "f", want: []byte{'h' ^ 0xff, 'i'}, wantRead: true},
		{kind: loopback.KindNoop, file: wire.NoopName, want: make([]byte, 5), wantRead: true},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			backing, mnt := backingWith(t, "f", []byte("hello, classic\n"))
			if tc.kind == loopback.KindFlipBytes {
				assert.NilError(t, os.WriteFile(filepath.Join(backing, "f"), []byte("hi"), 0o644))
			}
			p, err := Launcher{}.Start(context.Background(), loopback.Spec{Kind: tc.kind, Backing: backing, Size: 5}, mnt)
			assert.NilError(t, err)
			got, readErr := os.ReadFile(filepath.Join(mnt, tc.file))
			st, err := p.Stop()
			assert.NilError(t, readErr)
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want)
			assert.Check(t, is.Len(st.Opens, 1))
			assert.Check(t, is.Equal(st.Reads > 0, tc.wantRead))
			// Stopped means unmounted: the mount point is the empty
			// directory again.
			entries, err := os.ReadDir(mnt)
			assert.NilError(t, err)
			assert.Check(t, is.Len(entries, 0))
		})
	}
}

// TestProcessCrash shows that a server that dies costs its caller an
// error, not a hang, and leaves no dead mount behind.
func TestProcessCrash(t *testing.T) {
	servertest.NeedMount(t)
	backing, mnt := backingWith(t, "f", []byte("data"))
	p, err := Launcher{}.Start(context.Background(), loopback.Spec{Kind: loopback.KindCrash, Backing: backing}, mnt)
	assert.NilError(t, err)
	_, readErr := os.ReadFile(filepath.Join(mnt, "f"))
	assert.Check(t, errors.Is(readErr, syscall.ENOTCONN) || errors.Is(readErr, syscall.ECONNABORTED), "%v", readErr)
	_, err = p.Stop()
	// Whether Stop finds it already gone or signals it first, the exit
	// status says it crashed.
	assert.ErrorContains(t, err, "exit status 3")
	assert.Check(t, is.Contains(err.Error(), "still mounted"))
	assert.Check(t, is.Contains(p.Stderr(), "broken-crash: exiting on READ at offset 0"))
	_, err = os.ReadDir(mnt)
	assert.Check(t, err, "mount point still disconnected")
}

func TestProcessStartFails(t *testing.T) {
	servertest.NeedMount(t)
	backing, mnt := backingWith(t, "f", nil)
	_, err := Launcher{}.Start(context.Background(), loopback.Spec{Kind: "no-such-kind", Backing: backing}, mnt)
	assert.ErrorContains(t, err, `unknown server kind "no-such-kind"`)
	_, err = Launcher{}.Start(context.Background(), loopback.Spec{Kind: loopback.KindLoopback, Backing: filepath.Join(backing, "absent")}, mnt)
	assert.ErrorContains(t, err, "loopback of")
}

func TestTail(t *testing.T) {
	tl := &tail{max: 2}
	_, _ = tl.Write([]byte("one\ntwo\nthr"))
	_, _ = tl.Write([]byte("ee\nfour"))
	assert.DeepEqual(t, tl.Lines(), []string{"two", "three", "four"})
}

// TestPollAnsweredAtMount shows that every server has the kernel's POLL
// refused before it reports its mount ready, so that the kernel never
// asks again: a poll on an open file must then be answered by the kernel
// alone, even while the server is stopped. Where it is not, a Go program
// that opens a file on an in-process mount can deadlock with the
// garbage collector (see pollOnce).
func TestPollAnsweredAtMount(t *testing.T) {
	servertest.NeedMount(t)
	for _, tc := range []struct {
		kind loopback.Kind
		file string
	}{
		{kind: loopback.KindNoop, file: wire.NoopName},
		{kind: loopback.KindClassic, file: "f"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			backing, mnt := backingWith(t, "f", []byte("data"))
			p, err := Launcher{}.Start(context.Background(), loopback.Spec{Kind: tc.kind, Backing: backing, Size: 4096}, mnt)
			assert.NilError(t, err)
			t.Cleanup(func() {
				_ = syscall.Kill(p.Pid(), syscall.SIGCONT)
				_, err := p.Stop()
				assert.Check(t, err)
			})
			fd, err := unix.Open(filepath.Join(mnt, tc.file), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			assert.NilError(t, err)

			assert.NilError(t, syscall.Kill(p.Pid(), syscall.SIGSTOP))
			polled := make(chan error, 1)
			go func() {
				_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
				polled <- err
			}()
			select {
			case err := <-polled:
				assert.Check(t, err)
			case <-time.After(5 * time.Second):
				t.Errorf("poll waited on the stopped server: the kernel still sends POLL")
				_ = syscall.Kill(p.Pid(), syscall.SIGCONT)
				<-polled
			}
			// close(2) sends FLUSH: the server must run again first.
			assert.Check(t, syscall.Kill(p.Pid(), syscall.SIGCONT))
			assert.Check(t, unix.Close(fd))
		})
	}
}

// TestNoXattr writes 4 KiB blocks to a passthrough file: the kernel asks
// the default server for security.capability before every write, and the
// NoXattr server once, after which the connection stops asking. Neither
// sees a WRITE.
func TestNoXattr(t *testing.T) {
	servertest.NeedMount(t)
	const writes = 64
	for _, tc := range []struct {
		name            string
		noXattr         bool
		atLeast, atMost int64
	}{
		{name: "default", atLeast: writes, atMost: 1 << 40},
		{name: "noxattr", noXattr: true, atLeast: 0, atMost: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backing, mnt := backingWith(t, "f", nil)
			p, err := Launcher{}.Start(context.Background(), loopback.Spec{Kind: loopback.KindLoopback, Backing: backing, NoXattr: tc.noXattr}, mnt)
			assert.NilError(t, err)
			writeErr := writeBlocks(filepath.Join(mnt, "f"), writes, 4096)
			st, err := p.Stop()
			assert.NilError(t, writeErr)
			assert.NilError(t, err)
			assert.Assert(t, is.Len(st.Opens, 1))
			if !st.Opens[0].Passthrough() {
				t.Skipf("no passthrough on this kernel (open reply %+v)", st.Opens[0])
			}
			got := st.Requests["GETXATTR"]
			assert.Check(t, got >= tc.atLeast && got <= tc.atMost, "GETXATTR = %d, want %d…%d; requests %v", got, tc.atLeast, tc.atMost, st.Requests)
			assert.Check(t, is.Equal(st.Requests["WRITE"], int64(0)), "requests %v", st.Requests)
			data, err := os.ReadFile(filepath.Join(backing, "f"))
			assert.NilError(t, err)
			assert.Check(t, is.Len(data, writes*4096), "the writes reached the backing file")
		})
	}
}

// writeBlocks writes n blocks of size bytes to the existing file at path
// with one write(2) each.
func writeBlocks(path string, n, size int) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	buf := make([]byte, size)
	for range n {
		if _, err := unix.Write(fd, buf); err != nil {
			unix.Close(fd)
			return err
		}
	}
	return unix.Close(fd)
}
