package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

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
