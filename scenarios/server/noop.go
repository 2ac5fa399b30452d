package server

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// NoopName is the one file in a NOOP mount.
const NoopName = "zero"

// noopBuffer bounds the zeros a NOOP mount hands out per READ without
// allocating; go-fuse's READs are at most MaxWrite (128 KiB by default),
// the kernel's at most 256 pages.
const noopBuffer = 1 << 20

// Noop mounts at mountpoint a file system in the manner of libfuse's
// example/null.c: one file, NoopName, of size bytes, whose reads return
// zeros from a buffer allocated once and whose writes are acknowledged and
// discarded. It measures what FUSE itself costs, with no storage behind it.
func Noop(ctx context.Context, mountpoint string, size int64, o Options) (*Mount, error) {
	if o.Name == "" {
		o.Name = "fusematrix-noop"
	}
	root := &noopRoot{file: &noopFile{size: size, zeros: make([]byte, noopBuffer)}}
	return Node(ctx, mountpoint, root, o)
}

type noopRoot struct {
	fs.Inode
	file *noopFile
}

var _ fs.NodeOnAdder = (*noopRoot)(nil)

func (r *noopRoot) OnAdd(ctx context.Context) {
	ch := r.NewPersistentInode(ctx, r.file, fs.StableAttr{Mode: syscall.S_IFREG, Ino: 2})
	r.AddChild(NoopName, ch, false)
}

type noopFile struct {
	fs.Inode
	size  int64
	zeros []byte
}

// noopHandle exists because the node bridge only tracks non-nil handles.
type noopHandle struct{ _ byte }

var (
	_ fs.NodeGetattrer = (*noopFile)(nil)
	_ fs.NodeSetattrer = (*noopFile)(nil)
	_ fs.NodeOpener    = (*noopFile)(nil)
	_ fs.NodeReader    = (*noopFile)(nil)
	_ fs.NodeWriter    = (*noopFile)(nil)
)

func (f *noopFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.attr(&out.Attr)
	return 0
}

// Setattr accepts and ignores every change (truncation included), as
// null.c does: the file is always size bytes of zeros.
func (f *noopFile) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	f.attr(&out.Attr)
	return 0
}

func (f *noopFile) attr(a *fuse.Attr) {
	a.Mode = syscall.S_IFREG | 0o644
	a.Size = uint64(f.size)
	a.Blocks = (uint64(f.size) + 511) / 512
	a.Nlink = 1
}

func (f *noopFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return &noopHandle{}, 0, 0
}

func (f *noopFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= f.size {
		return fuse.ReadResultData(nil), 0
	}
	n := min(int64(len(dest)), f.size-off)
	if n > int64(len(f.zeros)) {
		// Larger than any READ go-fuse accepts today; correct, not fast.
		return fuse.ReadResultVector([][]byte{make([]byte, n)}), 0
	}
	// A vector result goes out with one writev(2). ReadResultData would
	// first try go-fuse's splice path, which sets up a pipe per READ
	// before giving up on memory-backed data, and more than halves the
	// throughput.
	return fuse.ReadResultVector([][]byte{f.zeros[:n]}), 0
}

func (f *noopFile) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	return uint32(len(data)), 0
}
