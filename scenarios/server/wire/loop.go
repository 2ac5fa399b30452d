package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/scenarios/yield"
)

// devLoop serves a mount from one goroutine that reads a request from
// /dev/fuse, hands it to go-fuse's ProtocolServer and writes the reply:
// the shape of libfuse's single-threaded loop, with go-fuse still
// negotiating INIT and parsing every request but the two a NOOP write
// run is made of (see answer), and the same RawFileSystem answering all.
//
// One goroutine, because the NOOP server is the ceiling other servers are
// given as a ratio to, and the C peer's loop the reference it is held
// to: a server that hands requests from one thread to another, as
// go-fuse's own Server does, pays the Go scheduler a wake-up for each
// hand-over, which the C loop does not, and the NOOP figure would then
// measure the hand-overs rather than FUSE. This loop is for file systems
// that answer at once and need nothing of the Server: no notifications,
// no backing ids registered through the Observer's callbacks
// (Mount.BackingOpen issues its ioctls itself), no request that waits on
// another. That is the NOOP file system.
//
// A recording mount (Options.Record) is served by the same loop in
// another way: each request is recorded as read and then answered on a
// goroutine of its own, so that a request the file system holds does not
// stop the loop from reading the INTERRUPT for it; backing files are
// registered on the loop's device (Callbacks), and the probe that records
// needs no notification but FUSE_NOTIFY_RETRIEVE (Mount.RetrieveCache).
type devLoop struct {
	dev
	ps *fuse.ProtocolServer
	// fs and opts are what ps serves, for answer.
	fs   fuse.RawFileSystem
	opts *fuse.MountOptions
	one  [1][]byte // answer's WRITE data, kept to spare an allocation
	init fuse.InitIn
	// reads and header: see mountLoop's readOut.
	reads  []byte
	header [unsafe.Sizeof(fuse.OutHeader{})]byte

	// rec, when set, records every request as read (Options.Record).
	rec *Recorder
	// concurrent hands each request after INIT to a goroutine of its
	// own, as go-fuse's Server does, so that one the file system holds
	// (a request waiting to be interrupted) does not stop the loop from
	// reading the next. The loop then answers none itself (answer).
	concurrent bool
	// initOut is the server's reply to INIT.
	initOut fuse.InitOut
	// unanswered holds, with concurrent, the requests read and not yet
	// answered: what a caller that waited too long asks about
	// (Mount.Unanswered).
	unanswered pendingSet
}

// loopBuffer holds the largest request: a WRITE of MaxWrite bytes behind
// its headers, with a page to spare as libfuse allows. Replies are smaller.
const loopBuffer = MaxWrite + 4096

// opInit is FUSE_INIT's opcode (the others are in observer.go).
const opInit = 26

// mountLoop mounts fs at mountpoint as go-fuse's direct mount does (same
// source, type, flags and options, so the kernel cannot tell the two
// apart), answers INIT and serves everything after it in the background.
//
// With readOut, a READ reply is assembled over readOut itself, its data
// at readOut[0:], and sent from there: a file system whose data already
// is that buffer (the NOOP's zeros) replies without a copy, as null.c
// does. Its ReadResults must then leave data already in place alone.
//
// With rec, every request is recorded as read, and each after INIT is
// served on a goroutine of its own (devLoop.concurrent).
func mountLoop(ctx context.Context, mountpoint string, fs fuse.RawFileSystem, opts fuse.MountOptions, readOut []byte, rec *Recorder) (*devLoop, error) {
	fd, err := mountDev(mountpoint, &opts)
	if err != nil {
		return nil, err
	}
	// With one P, the loop's P looks busy while read(2) blocks in it, and
	// the runtime takes it back during every wait, then wakes its
	// monitor thread on the way out of the next. A second P stays
	// idle and tells the runtime nothing else needs one. (A server
	// pinned to one CPU starts with GOMAXPROCS 1.)
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
	l := &devLoop{dev: newDev(fd), ps: fuse.NewProtocolServer(fs, &opts), fs: fs, opts: &opts, reads: readOut,
		rec: rec, concurrent: rec != nil}
	if o, ok := fs.(*Observer); ok {
		o.loop.Store(l)
	}
	inited := make(chan error, 1)
	go func() {
		in, out := make([]byte, loopBuffer), make([]byte, loopBuffer)
		err := l.serveOne(in, out, true)
		inited <- err
		if err == nil {
			err = l.serve(in, out)
		}
		l.finish(err)
	}()
	select {
	case err := <-inited:
		if err != nil {
			_ = unix.Unmount(mountpoint, unix.MNT_DETACH)
			return nil, fmt.Errorf("INIT: %w", err)
		}
		if err := pollOnce(mountpoint); err != nil {
			_ = unix.Unmount(mountpoint, unix.MNT_DETACH)
			return nil, fmt.Errorf("poll %s: %w", mountpoint, err)
		}
		return l, nil
	case <-ctx.Done():
		// Detaching ends the connection, which ends the goroutine.
		_ = unix.Unmount(mountpoint, unix.MNT_DETACH)
		return nil, ctx.Err()
	}
}

// pollHackName is the name go-fuse's ProtocolServer answers for itself,
// whatever the file system: a file whose POLL it refuses with ENOSYS.
const pollHackName = ".go-fuse-epoll-hack"

// pollOnce makes the kernel send its first POLL of the connection now,
// which go-fuse answers ENOSYS, so that it never sends another: what
// go-fuse's Server.WaitMount does. Without it, the first Go program to
// open a file on the mount adds it to its epoll set from inside the
// runtime, in an epoll_ctl the scheduler does not know is a system call,
// and FUSE makes that call wait for a POLL reply. Should a collection
// stop the world meanwhile, it waits forever for that thread, while the
// loop that would answer is stopped: in this process (tests, the agent's
// probes) that is a deadlock.
//
// The calls are raw system calls for that reason.
func pollOnce(mountpoint string) error {
	fd, err := unix.Open(mountpoint+"/"+pollHackName, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for {
		_, err = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLPRI | unix.POLLOUT}}, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

// serve answers requests until the connection ends.
func (l *devLoop) serve(in, out []byte) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var pace yield.Pacer
	for {
		pace.Tick()
		if err := l.serveOne(in, out, false); err != nil {
			if errors.Is(err, unix.ENODEV) {
				// Unmounted or aborted.
				return nil
			}
			return err
		}
	}
}

// serveOne reads one request and answers it; with init, the request must
// be INIT, and the kernel's side of it is kept.
func (l *devLoop) serveOne(in, out []byte, init bool) error {
	n, err := unix.Read(l.fd, in)
	switch {
	case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ENOENT):
		// ENOENT: the request was interrupted before it was read.
		return nil
	case err != nil:
		return err
	}
	var h fuse.InHeader
	if n < int(unsafe.Sizeof(h)) {
		return fmt.Errorf("short request: %d bytes", n)
	}
	h = *(*fuse.InHeader)(unsafe.Pointer(&in[0]))
	if l.rec != nil {
		l.rec.Record(in[:n])
	}
	if init {
		if h.Opcode != opInit {
			return fmt.Errorf("first request has opcode %d, not INIT", h.Opcode)
		}
		// InitIn begins with the header; a kernel older than the struct
		// sends less of it, and the rest stays zero.
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&l.init)), unsafe.Sizeof(l.init)), in[:n])
	}
	if !init && l.concurrent {
		req := append([]byte(nil), in[:n]...)
		mark := l.unanswered.add(&h)
		go func() {
			err := l.handle(&h, req, make([]byte, loopBuffer))
			if err != nil {
				l.logf("%v", err)
			}
			l.unanswered.done(mark, err)
		}()
		return nil
	}
	if !init && h.TotalExtlen == 0 && int(h.Length) == n {
		if w, ok := l.answer(&h, in[:n], out); ok {
			_, err = unix.Write(l.fd, out[:w])
			if err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("reply to request %d (opcode %d): %w", h.Unique, h.Opcode, err)
			}
			return nil
		}
	}
	if err := l.handle(&h, in[:n], out); err != nil {
		return err
	}
	if init && len(out) >= outHeader+int(unsafe.Sizeof(l.initOut)) {
		l.initOut = *(*fuse.InitOut)(unsafe.Pointer(&out[outHeader]))
	}
	return nil
}

// logf reports what goes wrong with a request served on a goroutine of
// its own, through the mount's logger.
func (l *devLoop) logf(format string, args ...any) {
	if l.opts.Logger != nil {
		l.opts.Logger.Printf(format, args...)
	}
}

// handle answers the request in (h is its header) through go-fuse's
// ProtocolServer, replying from out.
func (l *devLoop) handle(h *fuse.InHeader, in, out []byte) error {
	n := len(in)
	var err error
	reply := [][]byte{out}
	if h.Opcode == opRead && l.reads != nil && !l.concurrent && n >= int(unsafe.Sizeof(fuse.ReadIn{})) {
		if size := (*fuse.ReadIn)(unsafe.Pointer(&in[0])).Size; int(size) <= len(l.reads) {
			reply = [][]byte{l.header[:], l.reads[:size]}
		}
	}
	w, status := l.ps.HandleRequest([][]byte{in[:n]}, reply)
	if !status.Ok() {
		return fmt.Errorf("request %d (opcode %d): %v", h.Unique, h.Opcode, status)
	}
	if w == 0 {
		return nil // FORGET and its like take no reply.
	}
	if len(reply) == 1 {
		err = l.reply([][]byte{out[:w]})
	} else {
		err = l.reply([][]byte{l.header[:], l.reads[:w-len(l.header)]})
	}
	// ENOENT: the kernel no longer waits for this reply (interrupted).
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("reply to request %d (opcode %d): %w", h.Unique, h.Opcode, err)
	}
	return nil
}

// reply writes one reply to the device unless the loop has closed it:
// a request served on a goroutine of its own may be answered after the
// loop has ended.
func (l *devLoop) reply(iov [][]byte) error {
	l.fdMu.RLock()
	defer l.fdMu.RUnlock()
	if l.closed {
		return unix.EBADF
	}
	var err error
	if len(iov) == 1 {
		_, err = unix.Write(l.fd, iov[0])
	} else {
		_, err = unix.Writev(l.fd, iov)
	}
	return err
}

// notifyRetrieve is FUSE_NOTIFY_RETRIEVE, the notification that asks the
// kernel for what it caches of a node (include/uapi/linux/fuse.h).
const notifyRetrieve = 5

// retrieve sends FUSE_NOTIFY_RETRIEVE for size bytes of node's data from
// offset: struct fuse_notify_retrieve_out behind a header whose error
// field holds the notification code and whose unique is 0.
func (l *devLoop) retrieve(node, offset uint64, size uint32) error {
	msg := make([]byte, outHeader+32)
	le := binary.LittleEndian
	le.PutUint32(msg[0:], uint32(len(msg)))
	le.PutUint32(msg[4:], notifyRetrieve)
	le.PutUint64(msg[outHeader:], 1) // notify_unique, echoed in the reply
	le.PutUint64(msg[outHeader+8:], node)
	le.PutUint64(msg[outHeader+16:], offset)
	le.PutUint32(msg[outHeader+24:], size)
	return l.reply([][]byte{msg})
}

// outHeader is the size of a reply's header.
const outHeader = int(unsafe.Sizeof(fuse.OutHeader{}))

// answer serves the requests a NOOP write run is made of, WRITE and
// GETXATTR (the kernel asks for security.capability before every write),
// without ProtocolServer.HandleRequest, which allocates for every call:
// under TCG, where touching fresh memory is slow, an allocation per
// request weighs on every small write. It decodes go-fuse's own wire
// types, calls the same RawFileSystem (the Observer) as go-fuse would
// and builds the reply go-fuse would build, into out. Anything it does
// not handle, or that is not laid out as it expects, goes to
// HandleRequest: ok is false.
func (l *devLoop) answer(h *fuse.InHeader, in, out []byte) (n int, ok bool) {
	switch h.Opcode {
	case opWrite:
		const size = int(unsafe.Sizeof(fuse.WriteIn{}))
		if len(in) < size {
			return 0, false
		}
		wi := (*fuse.WriteIn)(unsafe.Pointer(&in[0]))
		data := in[size:]
		if int(wi.Size) != len(data) {
			return 0, false
		}
		l.one[0] = data
		written, st := l.fs.Writev(nil, wi, l.one[:])
		if st == fuse.ENOSYS {
			written, st = l.fs.Write(nil, wi, data)
		}
		l.one[0] = nil
		if !st.Ok() {
			return reply(out, h, st, 0), true
		}
		*(*fuse.WriteOut)(unsafe.Pointer(&out[outHeader])) = fuse.WriteOut{Size: written}
		return reply(out, h, st, int(unsafe.Sizeof(fuse.WriteOut{}))), true
	case opGetxattr:
		const size = int(unsafe.Sizeof(fuse.GetXAttrIn{}))
		if len(in) <= size || l.opts.DisableXAttrs || l.opts.IgnoreSecurityLabels {
			return 0, false
		}
		gi := (*fuse.GetXAttrIn)(unsafe.Pointer(&in[0]))
		name := in[size:]
		end := bytes.IndexByte(name, 0)
		if end < 0 || int(gi.Size) > len(out)-outHeader {
			return 0, false
		}
		// The name lives in in, which outlives the call; the file
		// system must not keep it, as go-fuse's would not either.
		attr := unsafe.String(unsafe.SliceData(name), end)
		dest := out[outHeader : outHeader+int(gi.Size)]
		got, st := l.fs.GetXAttr(nil, &gi.InHeader, attr, dest)
		if gi.Size == 0 {
			if st == fuse.ERANGE {
				st = fuse.OK // a size query is never too small
			}
			if !st.Ok() {
				return reply(out, h, st, 0), true
			}
			*(*fuse.GetXAttrOut)(unsafe.Pointer(&out[outHeader])) = fuse.GetXAttrOut{Size: got}
			return reply(out, h, st, int(unsafe.Sizeof(fuse.GetXAttrOut{}))), true
		}
		if st.Ok() && got > gi.Size {
			st = fuse.EIO // more than it was given room for
		}
		return reply(out, h, st, int(got)), true
	}
	return 0, false
}

// reply writes the header of the reply to h into out, behind which its
// payload of size bytes already is, and returns the reply's length. An
// error reply carries no payload.
func reply(out []byte, h *fuse.InHeader, st fuse.Status, size int) int {
	if !st.Ok() {
		size = 0
	}
	*(*fuse.OutHeader)(unsafe.Pointer(&out[0])) = fuse.OutHeader{
		Length: uint32(outHeader + size),
		Status: -int32(st),
		Unique: h.Unique,
	}
	return outHeader + size
}
