package loopback

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// loopbackHandle is everything go-fuse's LoopbackFile offers except
// FilePassthroughFder.
type loopbackHandle interface {
	fs.FileReleaser
	fs.FileGetattrer
	fs.FileReader
	fs.FileWriter
	fs.FileGetlker
	fs.FileSetlker
	fs.FileSetlkwer
	fs.FileLseeker
	fs.FileFlusher
	fs.FileFsyncer
	fs.FileSetattrer
	fs.FileAllocater
	fs.FileIoctler
}

// cachedHandle is a loopback file the node bridge does not pass through:
// go-fuse v2.12 decides passthrough by asking the handle for
// FilePassthroughFder, and once an inode has a backing id it gives that id
// to every later open whose handle has the method, whatever the method
// answers. Hiding the method is the only per-open way out.
type cachedHandle struct{ loopbackHandle }

// CloseBackingXattr is the extended attribute whose GETXATTR makes
// KindCloseBacking close the backing ids of the inode. The value answered
// lists each id with the errno of its FUSE_DEV_IOC_BACKING_CLOSE, as
// "id=errno" separated by spaces (errno 0 for success); the value is empty
// when the inode had no open backing id.
const CloseBackingXattr = "user.fusematrix.close-backing"

// ParseClosedBacking reads a CloseBackingXattr answer.
func ParseClosedBacking(v string) (map[int32]syscall.Errno, error) {
	out := map[int32]syscall.Errno{}
	for _, f := range strings.Fields(v) {
		id, errno, ok := strings.Cut(f, "=")
		i, err1 := strconv.ParseInt(id, 10, 32)
		e, err2 := strconv.ParseUint(errno, 10, 16)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("close-backing answer %q: bad field %q", v, f)
		}
		out[int32(i)] = syscall.Errno(e)
	}
	return out, nil
}

// backingLayer sits between the Observer and the node bridge of the
// layered kinds and answers OPEN with backing ids it registers itself.
// The node's Open (run inside the bridge's) names the file to register in
// plan; OPENs are serialized so that plan belongs to the one in progress.
type backingLayer struct {
	fuse.RawFileSystem
	cb     wire.Callbacks
	kind   Kind
	shadow string

	mu sync.Mutex // held for a whole OPEN; guards everything below
	// plan is the backing path the node chose for the OPEN in progress;
	// the node sets it without locking, under the OPEN's hold of mu.
	plan   string
	copies int
	files  map[uint64]*backing   // by file handle
	nodes  map[uint64][]*backing // live backings by node id
}

// backing is one registered backing file.
type backing struct {
	id     int32
	fd     int
	refs   int
	closed bool // BACKING_CLOSE issued by the control request
}

func (l *backingLayer) wrap(nodes fuse.RawFileSystem, cb wire.Callbacks) fuse.RawFileSystem {
	l.RawFileSystem, l.cb = nodes, cb
	return l
}

func (l *backingLayer) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.plan = ""
	st := l.RawFileSystem.Open(cancel, in, out)
	plan := l.plan
	l.plan = ""
	if !st.Ok() || plan == "" {
		return st
	}
	b := l.backingFor(in.NodeId, plan)
	if b == nil {
		// As go-fuse does when a registration fails: no passthrough.
		return st
	}
	b.refs++
	l.files[out.Fh] = b
	out.BackingID = b.id
	out.OpenFlags |= fuse.FOPEN_PASSTHROUGH
	out.OpenFlags &^= fuse.FOPEN_KEEP_CACHE
	return st
}

// backingFor returns the backing the OPEN of node gets, registering one
// when needed; nil when registration failed.
func (l *backingLayer) backingFor(node uint64, path string) *backing {
	live := l.nodes[node]
	if l.kind != KindBackingPerOpen {
		for _, b := range live {
			if !b.closed {
				return b
			}
		}
	} else if len(live) > 0 {
		l.copies++
		cp := filepath.Join(l.shadow, fmt.Sprintf("%d-%d", node, l.copies))
		if err := copyFile(path, cp); err != nil {
			return nil
		}
		path = cp
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	id, errno := l.cb.RegisterBackingFd(&fuse.BackingMap{Fd: int32(fd)})
	if errno != 0 {
		syscall.Close(fd)
		return nil
	}
	b := &backing{id: id, fd: fd}
	l.nodes[node] = append(live, b)
	return b
}

// Release drops the file's reference to its backing; the last one closes
// the backing id unless the control request already did. The entry goes
// before the bridge recycles the handle number for a later OPEN.
func (l *backingLayer) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	l.mu.Lock()
	b := l.files[in.Fh]
	delete(l.files, in.Fh)
	l.mu.Unlock()
	l.RawFileSystem.Release(cancel, in)
	if b == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b.refs--; b.refs > 0 {
		return
	}
	if !b.closed {
		l.cb.UnregisterBackingFd(b.id)
		syscall.Close(b.fd)
	}
	live := l.nodes[in.NodeId]
	for i, x := range live {
		if x == b {
			l.nodes[in.NodeId] = append(live[:i:i], live[i+1:]...)
			break
		}
	}
	if len(l.nodes[in.NodeId]) == 0 {
		delete(l.nodes, in.NodeId)
	}
}

// GetXAttr answers CloseBackingXattr; every other attribute goes to the
// loopback.
func (l *backingLayer) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	if attr != CloseBackingXattr || l.kind == KindBackingPerOpen {
		return l.RawFileSystem.GetXAttr(cancel, h, attr, dest)
	}
	answer := l.closeBacking(h.NodeId)
	if len(dest) < len(answer) {
		return uint32(len(answer)), fuse.ERANGE
	}
	return uint32(copy(dest, answer)), fuse.OK
}

// closeBacking closes the node's open backing ids and the server's own
// descriptors of them; the files opened with them stay open. The broken
// kind reports success and closes nothing.
func (l *backingLayer) closeBacking(node uint64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var fields []string
	for _, b := range l.nodes[node] {
		if b.closed {
			continue
		}
		var errno syscall.Errno
		if l.kind == KindCloseBacking {
			errno = l.cb.UnregisterBackingFd(b.id)
			if errno == 0 {
				b.closed = true
				syscall.Close(b.fd)
			}
		}
		fields = append(fields, fmt.Sprintf("%d=%d", b.id, int(errno)))
	}
	return strings.Join(fields, " ")
}
