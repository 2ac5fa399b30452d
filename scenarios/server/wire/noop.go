package wire

import (
	"context"
	"syscall"
	"time"
	"unsafe"

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
//
// It answers on go-fuse's wire API (fuse.RawFileSystem) rather than
// through the node tree of package fs, as null.c answers on libfuse's
// high-level API without a tree of its own: with one file there is
// nothing for a tree to track. And it is served by devLoop, one goroutine
// on one thread in the manner of libfuse's single-threaded loop
// (fuse_session_loop), rather than by go-fuse's Server, whose hand-offs
// between reader threads would otherwise weigh in the Go NOOP figure
// more than FUSE itself (see devLoop).
func Noop(ctx context.Context, mountpoint string, size int64, o Options) (*Mount, error) {
	return noop(ctx, mountpoint, size, o, true)
}

// noop is Noop, served by go-fuse's Server unless loop, for comparison
// (BenchmarkNoopWrite).
func noop(ctx context.Context, mountpoint string, size int64, o Options, loop bool) (*Mount, error) {
	if o.Name == "" {
		o.Name = "fusematrix-noop"
	}
	zeros := make([]byte, noopBuffer)
	if loop {
		o.loop, o.loopReads = true, zeros
	}
	return MountRaw(ctx, mountpoint, o, func(s Settings) fuse.RawFileSystem {
		// A listing of one file needs no READDIRPLUS.
		s.MountOptions.DisableReadDirPlus = true
		return &noopFS{
			RawFileSystem: fuse.NewDefaultRawFileSystem(),
			size:          size,
			zeros:         zeros,
			entry:         s.EntryTimeout,
			attr:          s.AttrTimeout,
		}
	})
}

// noopIno is the node id of the NOOP file; the root is fuse.FUSE_ROOT_ID.
const noopIno = 2

// noopFS is the NOOP file system. Everything it does not answer gets
// ENOSYS from the default, as null.c leaves it to libfuse.
type noopFS struct {
	fuse.RawFileSystem
	size        int64
	zeros       []byte
	entry, attr time.Duration
}

func (n *noopFS) String() string { return "fusematrix-noop" }

func (n *noopFS) fill(node uint64, a *fuse.Attr) fuse.Status {
	switch node {
	case fuse.FUSE_ROOT_ID:
		a.Ino = fuse.FUSE_ROOT_ID
		a.Mode = syscall.S_IFDIR | 0o755
		a.Nlink = 2
	case noopIno:
		a.Ino = noopIno
		a.Mode = syscall.S_IFREG | 0o644
		a.Size = uint64(n.size)
		a.Blocks = (uint64(n.size) + 511) / 512
		a.Nlink = 1
	default:
		return fuse.ENOENT
	}
	return fuse.OK
}

func (n *noopFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if h.NodeId != fuse.FUSE_ROOT_ID || name != NoopName {
		return fuse.ENOENT
	}
	out.NodeId, out.Generation = noopIno, 1
	out.SetEntryTimeout(n.entry)
	out.SetAttrTimeout(n.attr)
	return n.fill(noopIno, &out.Attr)
}

// Forget has nothing to forget: the file's node id never changes.
func (n *noopFS) Forget(nodeid, nlookup uint64) {}

func (n *noopFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	out.SetTimeout(n.attr)
	return n.fill(in.NodeId, &out.Attr)
}

// SetAttr accepts and ignores every change (truncation included), as
// null.c does: the file is always size bytes of zeros.
func (n *noopFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	out.SetTimeout(n.attr)
	return n.fill(in.NodeId, &out.Attr)
}

func (n *noopFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.NodeId != noopIno {
		return fuse.Status(syscall.EISDIR)
	}
	out.Fh = 1
	return fuse.OK
}

func (n *noopFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	off := int64(in.Offset)
	if off >= n.size {
		return fuse.ReadResultData(nil), fuse.OK
	}
	size := min(int64(in.Size), n.size-off)
	if size > int64(len(n.zeros)) {
		// Larger than any READ go-fuse accepts today; correct, not fast.
		return fuse.ReadResultVector([][]byte{make([]byte, size)}), fuse.OK
	}
	return zeroRead(n.zeros[:size]), fuse.OK
}

// zeroRead is a READ reply of zeros taken from a buffer nobody writes.
//
// go-fuse's Server sends it with one writev(2) (Slices). ReadResultData
// would first try go-fuse's splice path, which sets up a pipe per READ
// before giving up on memory-backed data: a cost per READ that the NOOP
// figure would measure instead of FUSE. devLoop assembles the reply over the NOOP file system's
// zero buffer itself (mountLoop's readOut), so that Readv has nothing to
// copy, as null.c replies from its static zeros; into any other buffer
// Readv writes the zeros.
type zeroRead []byte

func (r zeroRead) Bytes([]byte) ([]byte, fuse.Status) { return r, fuse.OK }
func (r zeroRead) Size() int                          { return len(r) }
func (r zeroRead) Done()                              {}

func (r zeroRead) Slices() ([][]byte, fuse.Status) { return [][]byte{r}, fuse.OK }

func (r zeroRead) Readv(dst [][]byte) (int, fuse.Status) {
	n := 0
	for _, d := range dst {
		d = d[:min(len(d), len(r)-n)]
		if len(d) == 0 {
			break
		}
		if unsafe.SliceData(d) != unsafe.SliceData(r[n:]) {
			clear(d)
		}
		n += len(d)
	}
	return n, fuse.OK
}

func (n *noopFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	return uint32(len(data)), fuse.OK
}

func (n *noopFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status { return fuse.OK }

func (n *noopFS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status { return fuse.OK }

func (n *noopFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {}

// GetXAttr answers as go-fuse's node tree does for a node without
// xattrs, so that the kernel keeps asking before every write, as it does
// of most servers.
func (n *noopFS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	return 0, fuse.ENOATTR
}

func (n *noopFS) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	return 0, fuse.OK
}

func (n *noopFS) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	return fuse.OK
}

func (n *noopFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.NodeId != fuse.FUSE_ROOT_ID {
		return fuse.ENOTDIR
	}
	return fuse.OK
}

// ReadDir lists the root in one go: ".", ".." and the file.
func (n *noopFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	entries := []fuse.DirEntry{
		{Name: ".", Mode: syscall.S_IFDIR, Ino: fuse.FUSE_ROOT_ID},
		{Name: "..", Mode: syscall.S_IFDIR, Ino: fuse.FUSE_ROOT_ID},
		{Name: NoopName, Mode: syscall.S_IFREG, Ino: noopIno},
	}
	for i := int(in.Offset); i < len(entries); i++ {
		e := entries[i]
		e.Off = uint64(i + 1)
		if !out.AddDirEntry(e) {
			break
		}
	}
	return fuse.OK
}

func (n *noopFS) ReleaseDir(in *fuse.ReleaseIn) {}
