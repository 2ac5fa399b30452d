package wire

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
)

// OpenReply is what the daemon answered to one OPEN or CREATE.
type OpenReply struct {
	NodeID    uint64
	Status    fuse.Status
	OpenFlags uint32
	BackingID int32
}

// Passthrough reports whether the reply asked the kernel to pass I/O
// through to a registered backing file.
func (r OpenReply) Passthrough() bool {
	return r.Status.Ok() && r.OpenFlags&fuse.FOPEN_PASSTHROUGH != 0 && r.BackingID != 0
}

// Registration is one FUSE_DEV_IOC_BACKING_OPEN the file system made.
type Registration struct {
	Fd    int32
	ID    int32
	Errno syscall.Errno
}

// Observer wraps the RawFileSystem of a mount and records, per OPEN,
// whether the reply carried FOPEN_PASSTHROUGH and a backing id, every
// backing-file registration with the kernel's answer, and how many
// requests of each opcode reached the daemon. With passthrough in effect,
// reads and writes of a file never reach the daemon, so zero READ and
// WRITE counts are the proof.
//
// Every RawFileSystem method is wrapped, because go-fuse v2.12 has no hook
// that sees each request short of its Debug log (which formats every
// request). The counters are atomics in a fixed array indexed by opcode,
// so that counting allocates nothing on the benchmarks' hot path.
type Observer struct {
	fuse.RawFileSystem

	// noXattr answers every xattr request with ENOSYS (Options.NoXattr).
	noXattr bool

	// hold holds a GETXATTR of HoldXattr until interrupted (Options.Record).
	hold bool

	srv atomic.Pointer[fuse.Server]
	// loop serves the mount instead of srv when it has a loop of its own:
	// registrations go to its device.
	loop       atomic.Pointer[devLoop]
	uloop      atomic.Pointer[uringLoop]
	requests   [opcodeSlots]atomic.Int64
	readBytes  atomic.Int64
	writeBytes atomic.Int64
	// handles counts files opened and not yet released.
	handles atomic.Int64

	mu    sync.Mutex
	opens []OpenReply
	regs  []Registration
}

// Opcodes of the FUSE wire protocol (include/uapi/linux/fuse.h, enum
// fuse_opcode) that the Observer names; go-fuse keeps its own table
// unexported.
const (
	opForget      = 2
	opRead        = 15
	opWrite       = 16
	opFsync       = 20
	opGetxattr    = 22
	opcodeSlots   = 64
	opcodeUnknown = 0 // the slot for opcodes beyond the table
)

var opcodeNames = [opcodeSlots]string{
	opcodeUnknown: "OTHER", 1: "LOOKUP", 2: "FORGET", 3: "GETATTR", 4: "SETATTR", 5: "READLINK", 6: "SYMLINK",
	8: "MKNOD", 9: "MKDIR", 10: "UNLINK", 11: "RMDIR", 12: "RENAME", 13: "LINK", 14: "OPEN",
	15: "READ", 16: "WRITE", 17: "STATFS", 18: "RELEASE", 20: "FSYNC", 21: "SETXATTR",
	22: "GETXATTR", 23: "LISTXATTR", 24: "REMOVEXATTR", 25: "FLUSH", 26: "INIT", 27: "OPENDIR",
	28: "READDIR", 29: "RELEASEDIR", 30: "FSYNCDIR", 31: "GETLK", 32: "SETLK", 33: "SETLKW",
	34: "ACCESS", 35: "CREATE", 36: "INTERRUPT", 37: "BMAP", 38: "DESTROY", 39: "IOCTL",
	40: "POLL", 41: "NOTIFY_REPLY", 42: "BATCH_FORGET", 43: "FALLOCATE", 44: "READDIRPLUS",
	45: "RENAME2", 46: "LSEEK", 47: "COPY_FILE_RANGE", 48: "SETUPMAPPING", 49: "REMOVEMAPPING",
	50: "SYNCFS", 51: "TMPFILE", 52: "STATX", 53: "COPY_FILE_RANGE_64",
}

// OpcodeName returns the uAPI name of a FUSE opcode without its FUSE_
// prefix, or "OTHER" for one the Observer does not know.
func OpcodeName(op uint32) string {
	if op < opcodeSlots && opcodeNames[op] != "" {
		return opcodeNames[op]
	}
	return opcodeNames[opcodeUnknown]
}

// count records one request; it allocates nothing.
func (o *Observer) count(op uint32) {
	if op >= opcodeSlots || opcodeNames[op] == "" {
		op = opcodeUnknown
	}
	o.requests[op].Add(1)
}

func (o *Observer) countHeader(h *fuse.InHeader) { o.count(h.Opcode) }

// Init keeps the server for the registration callbacks and deliberately
// does not pass it on: go-fuse's node bridge would replace the
// callbacks it was built with (which record each registration's errno,
// something go-fuse itself discards) by the bare server. The node bridge's
// Init does nothing else in go-fuse v2.12.
func (o *Observer) Init(s *fuse.Server) {
	o.srv.Store(s)
}

// Open records the reply.
func (o *Observer) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	o.countHeader(&in.InHeader)
	st := o.RawFileSystem.Open(cancel, in, out)
	o.recordOpen(in.NodeId, st, out)
	return st
}

// Create records the open half of the reply.
func (o *Observer) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	o.countHeader(&in.InHeader)
	st := o.RawFileSystem.Create(cancel, in, name, out)
	o.recordOpen(out.NodeId, st, &out.OpenOut)
	return st
}

// Release counts the handle as gone.
func (o *Observer) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	o.countHeader(&in.InHeader)
	o.RawFileSystem.Release(cancel, in)
	o.handles.Add(-1)
}

func (o *Observer) recordOpen(node uint64, st fuse.Status, out *fuse.OpenOut) {
	if st.Ok() {
		o.handles.Add(1)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.opens = append(o.opens, OpenReply{NodeID: node, Status: st, OpenFlags: out.OpenFlags, BackingID: out.BackingID})
}

// Read counts the request and the bytes asked for.
func (o *Observer) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	o.countHeader(&in.InHeader)
	o.readBytes.Add(int64(in.Size))
	return o.RawFileSystem.Read(cancel, in, buf)
}

// Write counts the request: with passthrough in effect no WRITE reaches
// the daemon.
func (o *Observer) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	o.countHeader(&in.InHeader)
	o.writeBytes.Add(int64(in.Size))
	return o.RawFileSystem.Write(cancel, in, data)
}

// Writev counts the request unless it is refused, in which case go-fuse
// retries it as a Write, which counts it.
func (o *Observer) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	n, st := o.RawFileSystem.Writev(cancel, in, data)
	if st != fuse.ENOSYS {
		o.countHeader(&in.InHeader)
		o.writeBytes.Add(int64(in.Size))
	}
	return n, st
}

// Fsync counts the request: the kernel sends FSYNC to the daemon even for
// a passthrough file.
func (o *Observer) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.Fsync(cancel, in)
}

// GetXAttr counts the request. The kernel asks for security.capability
// before every write to a file (see NoXattr in Options); under noXattr the
// answer is ENOSYS, after which the kernel stops asking.
func (o *Observer) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	o.countHeader(h)
	if o.hold && attr == HoldXattr {
		return 0, holdUntilInterrupted(cancel)
	}
	if o.noXattr {
		return 0, fuse.ENOSYS
	}
	return o.RawFileSystem.GetXAttr(cancel, h, attr, dest)
}

func (o *Observer) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	o.countHeader(h)
	if o.noXattr {
		return 0, fuse.ENOSYS
	}
	return o.RawFileSystem.ListXAttr(cancel, h, dest)
}

func (o *Observer) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	o.countHeader(&in.InHeader)
	if o.noXattr {
		return fuse.ENOSYS
	}
	return o.RawFileSystem.SetXAttr(cancel, in, attr, data)
}

func (o *Observer) RemoveXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	o.countHeader(h)
	if o.noXattr {
		return fuse.ENOSYS
	}
	return o.RawFileSystem.RemoveXAttr(cancel, h, attr)
}

// HoldXattr is the extended attribute whose GETXATTR a recording mount
// (Options.Record) holds until the kernel interrupts it: how a probe makes
// the kernel send an INTERRUPT, by signalling the thread that waits.
const HoldXattr = "user.fusematrix.hold"

// holdTimeout bounds a held request that is never interrupted.
const holdTimeout = 2 * time.Second

// holdUntilInterrupted waits for go-fuse to close cancel, which it does
// when an INTERRUPT for the request arrives, and answers EINTR then, as
// the kernel expects of an interrupted request; ETIMEDOUT when none came.
func holdUntilInterrupted(cancel <-chan struct{}) fuse.Status {
	select {
	case <-cancel:
		return fuse.EINTR
	case <-time.After(holdTimeout):
		return fuse.Status(syscall.ETIMEDOUT)
	}
}

// The methods below only count. Forget has no header: go-fuse calls it for
// FORGET and once per node of a BATCH_FORGET, so FORGET counts nodes
// forgotten. INIT, INTERRUPT, DESTROY and opcodes go-fuse does not
// implement are answered by go-fuse itself and not counted.

func (o *Observer) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	o.countHeader(h)
	return o.RawFileSystem.Lookup(cancel, h, name, out)
}

func (o *Observer) Forget(nodeid, nlookup uint64) {
	o.count(opForget)
	o.RawFileSystem.Forget(nodeid, nlookup)
}

func (o *Observer) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.GetAttr(cancel, in, out)
}

func (o *Observer) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.SetAttr(cancel, in, out)
}

func (o *Observer) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.Mknod(cancel, in, name, out)
}

func (o *Observer) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.Mkdir(cancel, in, name, out)
}

func (o *Observer) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	o.countHeader(h)
	return o.RawFileSystem.Unlink(cancel, h, name)
}

func (o *Observer) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	o.countHeader(h)
	return o.RawFileSystem.Rmdir(cancel, h, name)
}

func (o *Observer) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.Rename(cancel, in, oldName, newName)
}

func (o *Observer) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.Link(cancel, in, name, out)
}

func (o *Observer) Symlink(cancel <-chan struct{}, h *fuse.InHeader, pointedTo, linkName string, out *fuse.EntryOut) fuse.Status {
	o.countHeader(h)
	return o.RawFileSystem.Symlink(cancel, h, pointedTo, linkName, out)
}

func (o *Observer) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	o.countHeader(h)
	return o.RawFileSystem.Readlink(cancel, h)
}

func (o *Observer) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.Access(cancel, in)
}

func (o *Observer) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.Tmpfile(cancel, in, out)
}

func (o *Observer) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.Lseek(cancel, in, out)
}

func (o *Observer) GetLk(cancel <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.GetLk(cancel, in, out)
}

func (o *Observer) SetLk(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.SetLk(cancel, in)
}

func (o *Observer) SetLkw(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.SetLkw(cancel, in)
}

func (o *Observer) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.CopyFileRange(cancel, in)
}

func (o *Observer) Ioctl(cancel <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.Ioctl(cancel, in, inbuf, out, outbuf)
}

func (o *Observer) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.Flush(cancel, in)
}

// Fallocate retries one the backing file system gave up with EINTR:
// tmpfs does when a signal is pending, and the Go runtime signals its own
// threads. The caller did not ask to be interrupted, unless the kernel
// interrupted the request, which then gets the EINTR.
func (o *Observer) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	o.countHeader(&in.InHeader)
	st := o.RawFileSystem.Fallocate(cancel, in)
	for try := 1; st == fuse.Status(syscall.EINTR) && try < fallocateTries; try++ {
		select {
		case <-cancel:
			return st
		default:
		}
		st = o.RawFileSystem.Fallocate(cancel, in)
	}
	return st
}

// fallocateTries bounds Fallocate's tries.
const fallocateTries = 100

func (o *Observer) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.OpenDir(cancel, in, out)
}

func (o *Observer) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.ReadDir(cancel, in, out)
}

func (o *Observer) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.ReadDirPlus(cancel, in, out)
}

func (o *Observer) ReleaseDir(in *fuse.ReleaseIn) {
	o.countHeader(&in.InHeader)
	o.RawFileSystem.ReleaseDir(in)
}

func (o *Observer) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.FsyncDir(cancel, in)
}

func (o *Observer) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	o.countHeader(h)
	return o.RawFileSystem.StatFs(cancel, h, out)
}

func (o *Observer) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	o.countHeader(&in.InHeader)
	return o.RawFileSystem.Statx(cancel, in, out)
}

// Stats is what an Observer saw, in a form that crosses a process
// boundary as JSON.
type Stats struct {
	Opens         []OpenReply    `json:"opens"`
	Registrations []Registration `json:"registrations"`
	Reads         int64          `json:"reads"`
	ReadBytes     int64          `json:"read_bytes"`
	Writes        int64          `json:"writes"`
	WriteBytes    int64          `json:"write_bytes"`
	Fsyncs        int64          `json:"fsyncs"`
	// Requests counts the requests that reached the file system, by
	// opcode name (OpcodeName); opcodes never seen are left out.
	Requests map[string]int64 `json:"requests,omitempty"`
}

// Stats returns everything observed so far.
func (o *Observer) Stats() Stats {
	return Stats{
		Opens:         o.Opens(),
		Registrations: o.Registrations(),
		Reads:         o.requests[opRead].Load(),
		ReadBytes:     o.readBytes.Load(),
		Writes:        o.requests[opWrite].Load(),
		WriteBytes:    o.writeBytes.Load(),
		Fsyncs:        o.requests[opFsync].Load(),
		Requests:      o.Requests(),
	}
}

// Requests returns how many requests of each opcode reached the file
// system so far, by name; nil when none did.
func (o *Observer) Requests() map[string]int64 {
	var m map[string]int64
	for op := range o.requests {
		if n := o.requests[op].Load(); n > 0 {
			if m == nil {
				m = map[string]int64{}
			}
			m[OpcodeName(uint32(op))] = n
		}
	}
	return m
}

// Opens returns the OPEN and CREATE replies so far, in order.
func (o *Observer) Opens() []OpenReply {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]OpenReply(nil), o.opens...)
}

// Registrations returns the backing-file registrations so far, in order.
func (o *Observer) Registrations() []Registration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Registration(nil), o.regs...)
}

// Reads returns how many READ requests reached the daemon and how many
// bytes they asked for.
func (o *Observer) Reads() (requests, bytes int64) {
	return o.requests[opRead].Load(), o.readBytes.Load()
}

// Callbacks are a file system's way into the kernel (for a node tree, its
// fs.ServerCallbacks), forwarded to the mount's go-fuse Server with
// backing-file registrations recorded by the Observer on the way. A mount
// hands them out in Settings and to Options.Layer.
type Callbacks struct{ o *Observer }

func (c Callbacks) server() *fuse.Server { return c.o.srv.Load() }

func (c Callbacks) RegisterBackingFd(m *fuse.BackingMap) (int32, syscall.Errno) {
	var id int32
	var errno syscall.Errno
	if l := c.o.uloop.Load(); l != nil {
		// Same layout (fuseabi tests pin it).
		id, errno = l.backingOpen((*fuseabi.BackingMap)(unsafe.Pointer(m)))
	} else if l := c.o.loop.Load(); l != nil {
		id, errno = l.backingOpen((*fuseabi.BackingMap)(unsafe.Pointer(m)))
	} else {
		id, errno = c.server().RegisterBackingFd(m)
	}
	c.o.mu.Lock()
	c.o.regs = append(c.o.regs, Registration{Fd: m.Fd, ID: id, Errno: errno})
	c.o.mu.Unlock()
	return id, errno
}

func (c Callbacks) UnregisterBackingFd(id int32) syscall.Errno {
	if l := c.o.uloop.Load(); l != nil {
		return l.backingClose(id)
	}
	if l := c.o.loop.Load(); l != nil {
		return l.backingClose(id)
	}
	return c.server().UnregisterBackingFd(id)
}

func (c Callbacks) DeleteNotify(parent uint64, child uint64, name string) fuse.Status {
	if c.server() == nil {
		return fuse.ENOSYS // a mount served by a loop of its own
	}
	return c.server().DeleteNotify(parent, child, name)
}

func (c Callbacks) EntryNotify(parent uint64, name string) fuse.Status {
	if c.server() == nil {
		return fuse.ENOSYS // a mount served by a loop of its own
	}
	return c.server().EntryNotify(parent, name)
}

func (c Callbacks) InodeNotify(node uint64, off int64, length int64) fuse.Status {
	if c.server() == nil {
		return fuse.ENOSYS // a mount served by a loop of its own
	}
	return c.server().InodeNotify(node, off, length)
}

func (c Callbacks) InodeRetrieveCache(node uint64, offset int64, dest []byte) (int, fuse.Status) {
	if c.server() == nil {
		return 0, fuse.ENOSYS // a mount served by a loop of its own
	}
	return c.server().InodeRetrieveCache(node, offset, dest)
}

func (c Callbacks) InodeNotifyStoreCache(node uint64, offset int64, data []byte) fuse.Status {
	if c.server() == nil {
		return fuse.ENOSYS // a mount served by a loop of its own
	}
	return c.server().InodeNotifyStoreCache(node, offset, data)
}
