package server

import (
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
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

// Observer wraps the RawFileSystem of a node tree and records, per OPEN,
// whether the reply carried FOPEN_PASSTHROUGH and a backing id, every
// backing-file registration with the kernel's answer, and how many READ
// requests reached the daemon. With passthrough in effect, reads of a file
// never reach the daemon, so a zero READ count is the proof.
type Observer struct {
	fuse.RawFileSystem

	srv        atomic.Pointer[fuse.Server]
	reads      atomic.Int64
	readBytes  atomic.Int64
	writes     atomic.Int64
	writeBytes atomic.Int64
	fsyncs     atomic.Int64
	// handles counts files opened and not yet released.
	handles atomic.Int64

	mu    sync.Mutex
	opens []OpenReply
	regs  []Registration
}

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
	st := o.RawFileSystem.Open(cancel, in, out)
	o.recordOpen(in.NodeId, st, out)
	return st
}

// Create records the open half of the reply.
func (o *Observer) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	st := o.RawFileSystem.Create(cancel, in, name, out)
	o.recordOpen(out.NodeId, st, &out.OpenOut)
	return st
}

// Release counts the handle as gone.
func (o *Observer) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
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

// Read counts the request; it stays allocation-free because benchmarks
// run through it.
func (o *Observer) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	o.reads.Add(1)
	o.readBytes.Add(int64(in.Size))
	return o.RawFileSystem.Read(cancel, in, buf)
}

// Write counts the request: with passthrough in effect no WRITE reaches
// the daemon.
func (o *Observer) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	o.writes.Add(1)
	o.writeBytes.Add(int64(in.Size))
	return o.RawFileSystem.Write(cancel, in, data)
}

// Writev counts the request unless it is refused, in which case go-fuse
// retries it as a Write, which counts it.
func (o *Observer) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	n, st := o.RawFileSystem.Writev(cancel, in, data)
	if st != fuse.ENOSYS {
		o.writes.Add(1)
		o.writeBytes.Add(int64(in.Size))
	}
	return n, st
}

// Fsync counts the request: the kernel sends FSYNC to the daemon even for
// a passthrough file.
func (o *Observer) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	o.fsyncs.Add(1)
	return o.RawFileSystem.Fsync(cancel, in)
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
}

// Stats returns everything observed so far.
func (o *Observer) Stats() Stats {
	return Stats{
		Opens:         o.Opens(),
		Registrations: o.Registrations(),
		Reads:         o.reads.Load(),
		ReadBytes:     o.readBytes.Load(),
		Writes:        o.writes.Load(),
		WriteBytes:    o.writeBytes.Load(),
		Fsyncs:        o.fsyncs.Load(),
	}
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
	return o.reads.Load(), o.readBytes.Load()
}

// callbacks are the node bridge's way into the kernel, forwarded to the
// server with backing-file registrations recorded on the way.
type callbacks struct{ o *Observer }

func (c callbacks) server() *fuse.Server { return c.o.srv.Load() }

func (c callbacks) RegisterBackingFd(m *fuse.BackingMap) (int32, syscall.Errno) {
	id, errno := c.server().RegisterBackingFd(m)
	c.o.mu.Lock()
	c.o.regs = append(c.o.regs, Registration{Fd: m.Fd, ID: id, Errno: errno})
	c.o.mu.Unlock()
	return id, errno
}

func (c callbacks) UnregisterBackingFd(id int32) syscall.Errno {
	return c.server().UnregisterBackingFd(id)
}

func (c callbacks) DeleteNotify(parent uint64, child uint64, name string) fuse.Status {
	return c.server().DeleteNotify(parent, child, name)
}

func (c callbacks) EntryNotify(parent uint64, name string) fuse.Status {
	return c.server().EntryNotify(parent, name)
}

func (c callbacks) InodeNotify(node uint64, off int64, length int64) fuse.Status {
	return c.server().InodeNotify(node, off, length)
}

func (c callbacks) InodeRetrieveCache(node uint64, offset int64, dest []byte) (int, fuse.Status) {
	return c.server().InodeRetrieveCache(node, offset, dest)
}

func (c callbacks) InodeNotifyStoreCache(node uint64, offset int64, data []byte) fuse.Status {
	return c.server().InodeNotifyStoreCache(node, offset, data)
}
