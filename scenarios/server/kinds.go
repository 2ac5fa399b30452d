package server

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Kind names a file system Serve can mount. The broken kinds exist so that
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
	// KindFsyncEIO answers every FSYNC with EIO; passthrough stays on.
	KindFsyncEIO Kind = "broken-fsync"
	// KindCrash exits the server process on the first READ; classic.
	KindCrash Kind = "broken-crash"
)

// Kinds lists every kind, for flag help and tests.
var Kinds = []Kind{KindLoopback, KindClassic, KindNoop, KindShadow, KindShortSize, KindFlipBytes, KindDropWrites, KindFsyncEIO, KindCrash}

// passthrough says whether the kind leaves FUSE_PASSTHROUGH negotiable.
func (k Kind) passthrough() bool {
	switch k {
	case KindLoopback, KindShadow, KindShortSize, KindFsyncEIO:
		return true
	}
	return false
}

// Spec says which file system to serve and over what.
type Spec struct {
	Kind Kind
	// Backing is the directory a loopback kind shows.
	Backing string
	// Size is the size of the NOOP file.
	Size int64
}

// MountSpec mounts what spec describes at mountpoint in this process.
func MountSpec(ctx context.Context, mountpoint string, spec Spec, logf func(string, ...any)) (*Mount, error) {
	o := Options{Passthrough: spec.Kind.passthrough(), Logf: logf, Name: "fusematrix-" + string(spec.Kind)}
	switch spec.Kind {
	case KindLoopback, KindClassic:
		return Loopback(ctx, mountpoint, spec.Backing, o)
	case KindNoop:
		return Noop(ctx, mountpoint, spec.Size, o)
	case KindShadow, KindShortSize, KindFlipBytes, KindDropWrites, KindFsyncEIO, KindCrash:
		root, err := brokenRoot(spec)
		if err != nil {
			return nil, err
		}
		return Node(ctx, mountpoint, root, o)
	}
	return nil, fmt.Errorf("unknown server kind %q", spec.Kind)
}

// brokenRoot builds a loopback of spec.Backing whose nodes misbehave as
// spec.Kind says. It goes through LoopbackRoot.NewNode (deprecated in
// favour of NodeWrapChilder) because that hook also covers the root node
// and nodes made by CREATE.
func brokenRoot(spec Spec) (fs.InodeEmbedder, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(spec.Backing, &st); err != nil {
		return nil, fmt.Errorf("loopback of %s: %w", spec.Backing, err)
	}
	shadow := ""
	if spec.Kind == KindShadow {
		shadow = filepath.Clean(spec.Backing) + ".shadow"
		if err := os.MkdirAll(shadow, 0o755); err != nil {
			return nil, fmt.Errorf("shadow directory: %w", err)
		}
	}
	root := &fs.LoopbackRoot{Path: spec.Backing, Dev: uint64(st.Dev)}
	root.NewNode = func(r *fs.LoopbackRoot, parent *fs.Inode, name string, st *syscall.Stat_t) fs.InodeEmbedder {
		return &brokenNode{LoopbackNode: fs.LoopbackNode{RootData: r}, kind: spec.Kind, shadow: shadow}
	}
	node := root.NewNode(root, nil, "", &st)
	root.RootNode = node
	return node, nil
}

type brokenNode struct {
	fs.LoopbackNode
	kind   Kind
	shadow string
}

var (
	_ fs.NodeOpener    = (*brokenNode)(nil)
	_ fs.NodeGetattrer = (*brokenNode)(nil)
	_ fs.NodeSetattrer = (*brokenNode)(nil)
	_ fs.NodeReader    = (*brokenNode)(nil)
	_ fs.NodeWriter    = (*brokenNode)(nil)
	_ fs.NodeFsyncer   = (*brokenNode)(nil)
)

func (n *brokenNode) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

func (n *brokenNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if n.kind != KindShadow {
		return n.LoopbackNode.Open(ctx, flags)
	}
	// The copy is made at every open, so each open sees the backing file
	// as it is and none of its writes ever reach it.
	copyPath := filepath.Join(n.shadow, strconv.FormatUint(n.StableAttr().Ino, 10))
	if err := copyFile(n.backingPath(), copyPath); err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	fd, err := syscall.Open(copyPath, int(flags)&^(syscall.O_APPEND|syscall.O_CREAT|syscall.O_EXCL), 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	return fs.NewLoopbackFile(fd), 0, 0
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
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
	r, ok := f.(fs.FileReader)
	if !ok {
		return nil, syscall.EBADF
	}
	res, errno := r.Read(ctx, dest, off)
	if errno != 0 || n.kind != KindFlipBytes {
		return res, errno
	}
	data, st := res.Bytes(dest)
	if !st.Ok() {
		return nil, syscall.EIO
	}
	data = append([]byte(nil), data...)
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

func (n *brokenNode) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if n.kind == KindFsyncEIO {
		return syscall.EIO
	}
	if s, ok := f.(fs.FileFsyncer); ok {
		return s.Fsync(ctx, flags)
	}
	return 0
}
