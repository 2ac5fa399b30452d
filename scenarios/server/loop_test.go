package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
)

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
	needMount(t)
	rec := &threadRecorder{tids: map[int]int{}}
	o := Options{layer: func(fs fuse.RawFileSystem, _ callbacks) fuse.RawFileSystem {
		rec.RawFileSystem = fs
		return rec
	}}
	mnt := t.TempDir()
	const size = 4 << 20
	m, err := Noop(context.Background(), mnt, size, o)
	assert.NilError(t, err)
	unmountAtEnd(t, m)
	assert.NilError(t, readWriteAll(filepath.Join(mnt, NoopName), 4<<10, size, 1<<20))

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
	needMount(t)
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, mnt string)
	}{
		{name: "unmount", end: func(t *testing.T, mnt string) { assert.NilError(t, unix.Unmount(mnt, 0)) }},
		{name: "detach", end: func(t *testing.T, mnt string) { assert.NilError(t, unix.Unmount(mnt, unix.MNT_DETACH)) }},
		{name: "abort", end: func(t *testing.T, mnt string) {
			conn, err := Connection(mnt)
			assert.NilError(t, err)
			abort := filepath.Join(FusectlDir, conn, "abort")
			if _, err := os.Stat(abort); err != nil {
				t.Skipf("fusectl: %v", err)
			}
			assert.NilError(t, os.WriteFile(abort, []byte("1"), 0))
			t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := t.TempDir()
			m, err := Noop(context.Background(), mnt, 1, Options{})
			assert.NilError(t, err)
			_, err = os.Stat(filepath.Join(mnt, NoopName))
			assert.NilError(t, err)
			assert.Check(t, is.Equal(m.KernelSettings().Major, uint32(7)))
			assert.Check(t, m.KernelSettings().Minor >= 26, "protocol 7.%d", m.KernelSettings().Minor)

			tc.end(t, mnt)
			done := make(chan error, 1)
			go func() { done <- m.wait() }()
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

// A NOOP READ reply made over the zero buffer itself is left alone, and
// one made anywhere else is zeroed.
func TestZeroReadReadv(t *testing.T) {
	zeros := make([]byte, 64)
	for _, tc := range []struct {
		name  string
		size  int
		dst   func() [][]byte
		wantN int
	}{
		{name: "in place", size: 32, dst: func() [][]byte { return [][]byte{zeros[:32]} }, wantN: 32},
		{name: "elsewhere", size: 32, dst: func() [][]byte { return [][]byte{bytes.Repeat([]byte{0xff}, 32)} }, wantN: 32},
		{name: "split elsewhere", size: 32, dst: func() [][]byte {
			return [][]byte{bytes.Repeat([]byte{0xff}, 10), bytes.Repeat([]byte{0xff}, 40)}
		}, wantN: 32},
		{name: "short destination", size: 32, dst: func() [][]byte { return [][]byte{bytes.Repeat([]byte{0xff}, 8)} }, wantN: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := tc.dst()
			n, st := zeroRead(zeros[:tc.size]).Readv(dst)
			assert.Check(t, st.Ok())
			assert.Check(t, is.Equal(n, tc.wantN))
			seen := 0
			for _, d := range dst {
				for _, b := range d[:min(len(d), n-seen)] {
					assert.Assert(t, b == 0, "non-zero byte in the reply")
				}
				seen += min(len(d), n-seen)
			}
			assert.Check(t, is.Equal(bytes.Count(zeros, []byte{0}), len(zeros)), "the zero buffer was written")
		})
	}
}

// BenchmarkNoopWrite writes to a NOOP file through FUSE, each write(2) a
// GETXATTR and a WRITE round trip, with the NOOP file system served by
// its own loop and, for comparison, by go-fuse's Server. Server and
// writer share this process, unlike in the guest's bench.
func BenchmarkNoopWrite(b *testing.B) {
	if testing.Short() {
		b.Skip("mounts FUSE")
	}
	if err := CanMount(); err != nil {
		b.Skipf("cannot mount FUSE here: %v", err)
	}
	for _, srv := range []struct {
		name string
		loop bool
	}{{name: "loop", loop: true}, {name: "go-fuse-server"}} {
		for _, block := range []int{4 << 10, 128 << 10} {
			b.Run(fmt.Sprintf("%s/%d", srv.name, block), func(b *testing.B) {
				const size = 64 << 20
				mnt := b.TempDir()
				m, err := noop(context.Background(), mnt, size, Options{}, srv.loop)
				assert.NilError(b, err)
				b.Cleanup(func() { assert.Check(b, m.Unmount()) })
				f, err := os.OpenFile(filepath.Join(mnt, NoopName), os.O_WRONLY, 0)
				assert.NilError(b, err)
				defer f.Close()
				buf := make([]byte, block)
				b.SetBytes(int64(block))
				off := int64(0)
				for b.Loop() {
					if _, err := f.WriteAt(buf, off); err != nil {
						b.Fatal(err)
					}
					off = (off + int64(block)) % size
				}
			})
		}
	}
}

// TestPollAnsweredAtMount shows that every server has the kernel's POLL
// refused before it reports its mount ready, so that the kernel never
// asks again: a poll on an open file must then be answered by the kernel
// alone, even while the server is stopped. Where it is not, a Go program
// that opens a file on an in-process mount can deadlock with the
// garbage collector (see pollOnce).
func TestPollAnsweredAtMount(t *testing.T) {
	needMount(t)
	for _, tc := range []struct {
		kind Kind
		file string
	}{
		{kind: KindNoop, file: NoopName},
		{kind: KindClassic, file: "f"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			backing, mnt := backingWith(t, "f", []byte("data"))
			p, err := Launcher{}.Start(context.Background(), Spec{Kind: tc.kind, Backing: backing, Size: 4096}, mnt)
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

// xattrFS answers GETXATTR with what it is given, and WRITE with a status.
type xattrFS struct {
	fuse.RawFileSystem
	value    []byte
	xst, wst fuse.Status
	names    []string
}

func (x *xattrFS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	x.names = append(x.names, strings.Clone(attr))
	if len(dest) < len(x.value) {
		return uint32(len(x.value)), fuse.ERANGE
	}
	return uint32(copy(dest, x.value)), x.xst
}

func (x *xattrFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	return uint32(len(data)), x.wst
}

// request lays out a request as the kernel sends it: the header, the
// opcode's fixed part and a payload.
func request(opcode uint32, fixed any, payload []byte) []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.NativeEndian, fuse.InHeader{Opcode: opcode, Unique: 7, NodeId: noopIno})
	_ = binary.Write(&b, binary.NativeEndian, fixed)
	b.Write(payload)
	out := b.Bytes()
	binary.NativeEndian.PutUint32(out, uint32(len(out)))
	return out
}

// initFixed is fuse_init_in of protocol 7.41 (include/uapi/linux/fuse.h).
type initFixed struct {
	Major, Minor, MaxReadAhead, Flags, Flags2 uint32
	Unused                                    [11]uint32
}

type getxattrFixed struct{ Size, Padding uint32 }

type writeFixed struct {
	Fh, Offset       uint64
	Size, WriteFlags uint32
	LockOwner        uint64
	Flags, Padding   uint32
}

// TestAnswerIsHandleRequest shows that the loop's own WRITE and GETXATTR
// replies are byte for byte what go-fuse's ProtocolServer makes of the
// same request and file system, and that what answer leaves alone is
// left to it.
func TestAnswerIsHandleRequest(t *testing.T) {
	data := bytes.Repeat([]byte{0xa5}, 4096)
	name := []byte("security.capability\x00")
	for _, tc := range []struct {
		name string
		fs   xattrFS
		opts fuse.MountOptions
		req  []byte
		pass bool // left to HandleRequest
	}{
		{name: "write", req: request(opWrite, writeFixed{Offset: 8192, Size: 4096}, data)},
		{name: "write refused", fs: xattrFS{wst: fuse.EIO}, req: request(opWrite, writeFixed{Size: 4096}, data)},
		{name: "write size disagrees", req: request(opWrite, writeFixed{Size: 100}, data), pass: true},
		{name: "getxattr size query, no attribute", fs: xattrFS{xst: fuse.ENOATTR}, req: request(opGetxattr, getxattrFixed{}, name)},
		{name: "getxattr size query", fs: xattrFS{value: []byte("value")}, req: request(opGetxattr, getxattrFixed{}, name)},
		{name: "getxattr", fs: xattrFS{value: []byte("value")}, req: request(opGetxattr, getxattrFixed{Size: 64}, name)},
		{name: "getxattr buffer too small", fs: xattrFS{value: []byte("value")}, req: request(opGetxattr, getxattrFixed{Size: 2}, name)},
		{name: "getxattr no attribute", fs: xattrFS{xst: fuse.ENOATTR}, req: request(opGetxattr, getxattrFixed{Size: 64}, name)},
		{name: "getxattr name unterminated", req: request(opGetxattr, getxattrFixed{Size: 64}, []byte("user.x")), pass: true},
		{name: "getxattr, xattrs disabled", opts: fuse.MountOptions{DisableXAttrs: true}, req: request(opGetxattr, getxattrFixed{Size: 64}, name), pass: true},
		{name: "getxattr, security labels ignored", opts: fuse.MountOptions{IgnoreSecurityLabels: true}, req: request(opGetxattr, getxattrFixed{}, name), pass: true},
		{name: "other opcode", req: request(opFsync, struct{ Fh, Flags uint64 }{}, nil), pass: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fs.RawFileSystem = fuse.NewDefaultRawFileSystem()
			if tc.fs.xst == 0 && tc.fs.value == nil {
				tc.fs.xst = fuse.ENOATTR
			}
			ps := fuse.NewProtocolServer(&tc.fs, &tc.opts)
			initReq := request(opInit, initFixed{Major: 7, Minor: 41, MaxReadAhead: 1 << 17}, nil)
			_, st := ps.HandleRequest([][]byte{initReq}, [][]byte{make([]byte, loopBuffer)})
			assert.Assert(t, st.Ok(), st)

			l := &devLoop{fs: &tc.fs, opts: &tc.opts}
			h := *(*fuse.InHeader)(unsafe.Pointer(&tc.req[0]))
			got := make([]byte, loopBuffer)
			n, ok := l.answer(&h, tc.req, got)
			assert.Equal(t, ok, !tc.pass)
			if !ok {
				return
			}
			namesByAnswer := tc.fs.names
			tc.fs.names = nil
			want := make([]byte, loopBuffer)
			w, st := ps.HandleRequest([][]byte{tc.req}, [][]byte{want})
			assert.Assert(t, st.Ok(), st)
			assert.DeepEqual(t, got[:n], want[:w])
			assert.DeepEqual(t, namesByAnswer, tc.fs.names)
		})
	}
}
