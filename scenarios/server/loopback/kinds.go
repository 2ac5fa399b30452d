package loopback

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// Kind names a file system MountSpec can mount. The broken kinds exist so that
// tests can show each scenario failing: every one misbehaves in exactly one
// way and is otherwise the loopback.
type Kind string

const (
	// KindLoopback is the loopback with passthrough negotiable.
	KindLoopback Kind = "loopback"
	// KindClassic is the loopback with passthrough refused.
	KindClassic Kind = "classic"
	// KindNoop is the NOOP file system (Spec.Size bytes of zeros).
	KindNoop Kind = "noop"

	// KindShadow passes every opened file through to a private copy made
	// at open: reads look right, writes never reach the backing file.
	KindShadow Kind = "broken-shadow"
	// KindShortSize reports every non-empty regular file one byte shorter
	// than it is; passthrough stays on.
	KindShortSize Kind = "broken-size"
	// KindFlipBytes inverts the first byte of every READ reply; classic.
	KindFlipBytes Kind = "broken-bytes"
	// KindDropWrites acknowledges every WRITE and discards it; classic.
	KindDropWrites Kind = "broken-drop-writes"
	// KindShortRead never returns a file's last byte in a READ reply, so
	// that a file reads one byte short of its st_size; classic.
	KindShortRead Kind = "broken-short-read"
	// KindFsyncEIO answers every FSYNC with EIO; passthrough stays on.
	KindFsyncEIO Kind = "broken-fsync"
	// KindCrash exits the server process on the first READ; classic.
	KindCrash Kind = "broken-crash"
	// KindDecoy passes every opened file through to a private copy whose
	// byte at DecoyOffset is changed: passthrough with the wrong data.
	KindDecoy Kind = "broken-decoy"
	// KindHangFlush holds every FLUSH until the kernel interrupts it or
	// the connection ends (at most hangLimit); passthrough stays on.
	KindHangFlush Kind = "broken-hang-flush"
	// KindFakeCloseBacking is KindCloseBacking answering the control
	// request as if it had closed the backing ids, without closing them.
	KindFakeCloseBacking Kind = "broken-close-backing"
	// KindHeldHeir is KindHoldRead whose server leaves a child process
	// holding a copy of its /dev/fuse descriptor: killing the server then
	// does not end the connection, so a request it held stays unanswered
	// until the connection is aborted.
	KindHeldHeir Kind = "broken-held-heir"

	// KindHoldRead is the loopback with passthrough refused that holds
	// every READ of a file named HeldFile, after writing HoldingLine to
	// its stderr, until the kernel interrupts it or the connection ends
	// (at most hangLimit): a request in the server's hands on demand.
	KindHoldRead Kind = "hold-read"

	// KindMixed opens files read-only without passthrough (cached I/O
	// through the daemon) and every other open with passthrough, so that
	// a scenario can open one inode both ways.
	KindMixed Kind = "pt-mixed"
	// KindBackingPerOpen registers a backing file per open: the file
	// itself when no other open of the inode is live, else a private
	// copy of it, so that one inode is offered two backing files.
	KindBackingPerOpen Kind = "pt-backing-per-open"
	// KindDirectIO answers every passthrough open with FOPEN_DIRECT_IO
	// as well.
	KindDirectIO Kind = "pt-direct-io"
	// KindCloseBacking registers one backing file per inode, as go-fuse
	// does, and closes the inode's backing ids (and its own descriptors
	// of them) when asked by a GETXATTR of CloseBackingXattr.
	KindCloseBacking Kind = "pt-close-backing"
)

// Kinds lists every kind, for flag help and tests.
var Kinds = []Kind{KindLoopback, KindClassic, KindNoop, KindShadow, KindShortSize, KindFlipBytes, KindDropWrites, KindShortRead, KindFsyncEIO, KindCrash,
	KindDecoy, KindHangFlush, KindFakeCloseBacking, KindHeldHeir, KindHoldRead, KindMixed, KindBackingPerOpen, KindDirectIO, KindCloseBacking}

// HeldFile is the name whose READs KindHoldRead and KindHeldHeir hold;
// HoldingLine is what their server writes to stderr as it starts to.
const (
	HeldFile    = "held"
	HoldingLine = "hold-read: holding READ of " + HeldFile
)

// holdsReads says whether the kind holds the READs of HeldFile.
func (k Kind) holdsReads() bool { return k == KindHoldRead || k == KindHeldHeir }

// LeavesHeir says whether the kind's server leaves a child holding its
// /dev/fuse descriptor (KindHeldHeir).
func (k Kind) LeavesHeir() bool { return k == KindHeldHeir }

// passthrough says whether the kind leaves FUSE_PASSTHROUGH negotiable.
func (k Kind) passthrough() bool {
	switch k {
	case KindLoopback, KindShadow, KindShortSize, KindFsyncEIO, KindDecoy, KindHangFlush, KindFakeCloseBacking,
		KindMixed, KindBackingPerOpen, KindDirectIO, KindCloseBacking:
		return true
	}
	return false
}

// layered says whether the kind answers OPEN with backing ids of its own
// (backingLayer) instead of go-fuse's one registration per inode.
func (k Kind) layered() bool {
	return k == KindBackingPerOpen || k == KindCloseBacking || k == KindFakeCloseBacking
}

// Spec says which file system to serve and over what.
type Spec struct {
	Kind Kind
	// Backing is the directory a loopback kind shows.
	Backing string
	// Size is the size of the NOOP file.
	Size int64
	// NoXattr makes the server answer xattr requests with ENOSYS (see
	// wire.Options.NoXattr).
	NoXattr bool
	// URing serves over FUSE's io_uring transport (wire.Options.URing).
	URing bool
	// Profile, when set, is where a server process (package server's
	// Serve) writes a CPU profile of its whole life; MountSpec ignores it.
	Profile string
	// CPUs, when set, are the only CPUs a server process (package
	// server's Launcher) and its threads may run on; MountSpec ignores it.
	CPUs []int
}

// MountSpec mounts what spec describes at mountpoint in this process.
func MountSpec(ctx context.Context, mountpoint string, spec Spec, logf func(string, ...any)) (*wire.Mount, error) {
	o := wire.Options{Passthrough: spec.Kind.passthrough(), Logf: logf, Name: "fusematrix-" + string(spec.Kind), NoXattr: spec.NoXattr, URing: spec.URing}
	switch spec.Kind {
	case KindLoopback, KindClassic:
		return Mount(ctx, mountpoint, spec.Backing, o)
	case KindNoop:
		return wire.Noop(ctx, mountpoint, spec.Size, o)
	case KindShadow, KindShortSize, KindFlipBytes, KindDropWrites, KindShortRead, KindFsyncEIO, KindCrash,
		KindDecoy, KindHangFlush, KindFakeCloseBacking, KindHeldHeir, KindHoldRead, KindMixed, KindBackingPerOpen, KindDirectIO, KindCloseBacking:
		root, layer, err := brokenRoot(spec)
		if err != nil {
			return nil, err
		}
		if layer != nil {
			o.Layer = layer.wrap
		}
		return Node(ctx, mountpoint, root, o)
	}
	return nil, fmt.Errorf("unknown server kind %q", spec.Kind)
}

// brokenRoot builds a loopback of spec.Backing whose nodes misbehave (or
// behave specially) as spec.Kind says, and the layer the kind needs, if
// any. It goes through LoopbackRoot.NewNode (deprecated in favour of
// NodeWrapChilder) because that hook also covers the root node and nodes
// made by CREATE.
func brokenRoot(spec Spec) (fs.InodeEmbedder, *backingLayer, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(spec.Backing, &st); err != nil {
		return nil, nil, fmt.Errorf("loopback of %s: %w", spec.Backing, err)
	}
	shadow := ""
	if spec.Kind == KindShadow || spec.Kind == KindDecoy || spec.Kind == KindBackingPerOpen {
		shadow = filepath.Clean(spec.Backing) + ".shadow"
		if err := os.MkdirAll(shadow, 0o755); err != nil {
			return nil, nil, fmt.Errorf("shadow directory: %w", err)
		}
	}
	var layer *backingLayer
	if spec.Kind.layered() {
		layer = &backingLayer{kind: spec.Kind, shadow: shadow, files: map[uint64]*backing{}, nodes: map[uint64][]*backing{}}
	}
	root := &fs.LoopbackRoot{Path: spec.Backing, Dev: uint64(st.Dev)}
	root.NewNode = func(r *fs.LoopbackRoot, parent *fs.Inode, name string, st *syscall.Stat_t) fs.InodeEmbedder {
		return &brokenNode{LoopbackNode: fs.LoopbackNode{RootData: r}, kind: spec.Kind, shadow: shadow, layer: layer}
	}
	node := root.NewNode(root, nil, "", &st)
	root.RootNode = node
	return node, layer, nil
}

type brokenNode struct {
	fs.LoopbackNode
	kind   Kind
	shadow string
	layer  *backingLayer
}

var (
	_ fs.NodeOpener    = (*brokenNode)(nil)
	_ fs.NodeGetattrer = (*brokenNode)(nil)
	_ fs.NodeSetattrer = (*brokenNode)(nil)
	_ fs.NodeReader    = (*brokenNode)(nil)
	_ fs.NodeWriter    = (*brokenNode)(nil)
	_ fs.NodeFsyncer   = (*brokenNode)(nil)
	_ fs.NodeFlusher   = (*brokenNode)(nil)
)

func (n *brokenNode) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

// DecoyOffset is the byte KindDecoy changes in its copies.
const DecoyOffset = 12345

func (n *brokenNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	switch n.kind {
	case KindShadow, KindDecoy:
		return n.openCopy(flags)
	case KindMixed:
		f, fl, errno := n.LoopbackNode.Open(ctx, flags)
		if errno == 0 && flags&syscall.O_ACCMODE == syscall.O_RDONLY {
			f = cachedHandle{f.(loopbackHandle)}
		}
		return f, fl, errno
	case KindDirectIO:
		f, fl, errno := n.LoopbackNode.Open(ctx, flags)
		return f, fl | fuse.FOPEN_DIRECT_IO, errno
	}
	if n.layer != nil {
		f, fl, errno := n.LoopbackNode.Open(ctx, flags)
		if errno == 0 {
			// The layer registers the backing file; the node bridge must
			// not register one of its own.
			f = cachedHandle{f.(loopbackHandle)}
			n.layer.plan = n.backingPath()
		}
		return f, fl, errno
	}
	return n.LoopbackNode.Open(ctx, flags)
}

// openCopy opens a private copy of the file, made at every open, so that
// each open sees the backing file as it is and none of its writes ever
// reach it.
func (n *brokenNode) openCopy(flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	copyPath := filepath.Join(n.shadow, strconv.FormatUint(n.StableAttr().Ino, 10))
	if err := copyFile(n.backingPath(), copyPath); err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	if n.kind == KindDecoy {
		if err := flipByte(copyPath, DecoyOffset); err != nil {
			return nil, 0, fs.ToErrno(err)
		}
	}
	fd, err := syscall.Open(copyPath, int(flags)&^(syscall.O_APPEND|syscall.O_CREAT|syscall.O_EXCL), 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	return fs.NewLoopbackFile(fd), 0, 0
}

// flipByte inverts the byte at off of the file at path, if it has one.
func flipByte(path string, off int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		if err == io.EOF {
			return nil
		}
		return err
	}
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	return err
}

// copyFile copies the file at src to dst, which it creates or truncates.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

func (n *brokenNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	errno := n.LoopbackNode.Getattr(ctx, f, out)
	n.shorten(&out.Attr)
	return errno
}

func (n *brokenNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	errno := n.LoopbackNode.Setattr(ctx, f, in, out)
	n.shorten(&out.Attr)
	return errno
}

func (n *brokenNode) shorten(a *fuse.Attr) {
	if n.kind == KindShortSize && a.Mode&syscall.S_IFMT == syscall.S_IFREG && a.Size > 0 {
		a.Size--
	}
}

func (n *brokenNode) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if n.kind == KindCrash {
		fmt.Fprintf(os.Stderr, "broken-crash: exiting on READ at offset %d\n", off)
		os.Exit(3)
	}
	if n.kind.holdsReads() && filepath.Base(n.backingPath()) == HeldFile {
		fmt.Fprintln(os.Stderr, HoldingLine)
		select {
		case <-ctx.Done():
			return nil, syscall.EINTR
		case <-time.After(hangLimit):
			return nil, syscall.EIO
		}
	}
	r, ok := f.(fs.FileReader)
	if !ok {
		return nil, syscall.EBADF
	}
	res, errno := r.Read(ctx, dest, off)
	if errno != 0 || (n.kind != KindFlipBytes && n.kind != KindShortRead) {
		return res, errno
	}
	data, st := res.Bytes(dest)
	if !st.Ok() {
		return nil, syscall.EIO
	}
	data = append([]byte(nil), data...)
	if n.kind == KindShortRead {
		var fst syscall.Stat_t
		if err := syscall.Stat(n.backingPath(), &fst); err != nil {
			return nil, fs.ToErrno(err)
		}
		if end := fst.Size - 1; off+int64(len(data)) > end {
			data = data[:max(0, end-off)]
		}
		return fuse.ReadResultData(data), 0
	}
	if len(data) > 0 {
		data[0] ^= 0xff
	}
	return fuse.ReadResultData(data), 0
}

func (n *brokenNode) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if n.kind == KindDropWrites {
		return uint32(len(data)), 0
	}
	w, ok := f.(fs.FileWriter)
	if !ok {
		return 0, syscall.EBADF
	}
	return w.Write(ctx, data, off)
}

// hangLimit bounds how long KindHangFlush holds a FLUSH, and
// KindHoldRead a READ, so that a server nobody aborts still ends.
const hangLimit = 30 * time.Second

func (n *brokenNode) Flush(ctx context.Context, f fs.FileHandle) syscall.Errno {
	if n.kind == KindHangFlush {
		fmt.Fprintln(os.Stderr, "broken-hang-flush: holding FLUSH")
		select {
		case <-ctx.Done():
		case <-time.After(hangLimit):
		}
		return 0
	}
	if fl, ok := f.(fs.FileFlusher); ok {
		return fl.Flush(ctx)
	}
	return 0
}

func (n *brokenNode) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if n.kind == KindFsyncEIO {
		return syscall.EIO
	}
	if s, ok := f.(fs.FileFsyncer); ok {
		return s.Fsync(ctx, flags)
	}
	return 0
}
