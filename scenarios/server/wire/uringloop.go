package wire

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
	"github.com/fusematrix/fusematrix/scenarios/uring"
)

// ErrNoURing is why a mount over io_uring cannot be made: the kernel did
// not offer FUSE_OVER_IO_URING in INIT (built without it, or its
// fuse.enable_uring parameter is off).
var ErrNoURing = errors.New("the kernel did not offer FUSE_OVER_IO_URING")

// PossibleCPUs lists the CPUs the kernel may ever run; FUSE makes one
// ring queue for each (num_possible_cpus in fuse_uring_create).
const PossibleCPUs = "/sys/devices/system/cpu/possible"

// uringRegistered is called after each REGISTER submitted; tests slow
// the registration down with it.
var uringRegistered = func() {}

// uringEndWait bounds how long a mount that failed after its ring's
// goroutine started waits for that goroutine to end.
const uringEndWait = 5 * time.Second

// uringDepth is how many ring entries each queue gets: one in the
// server's hands while the kernel fills the other.
const uringDepth = 2

// uringLoop serves a mount over FUSE's io_uring transport: after INIT,
// which comes through /dev/fuse, one goroutine on one locked thread
// registers uringDepth entries on every queue and then takes each
// request from a completion of its ring, hands it to go-fuse's
// ProtocolServer as devLoop does, and answers it with COMMIT_AND_FETCH.
// No read(2) or write(2) of /dev/fuse follows INIT. The kernel still
// sends FORGET and INTERRUPT through /dev/fuse (fuse_io_uring_ops in
// fs/fuse/dev_uring.c); nothing reads them, and neither takes a reply.
//
// It is for the file systems devLoop serves and the loopback: those that
// answer at once. A request that waited on another would wait forever.
type uringLoop struct {
	dev
	ps   *fuse.ProtocolServer
	init fuse.InitIn
}

// uringEntry is one registered entry and the queue it serves.
type uringEntry struct {
	*uring.Entry
	qid uint16
}

// mountURing mounts fs at mountpoint as mountLoop does, negotiates
// FUSE_OVER_IO_URING in INIT and serves everything after it over a ring.
func mountURing(ctx context.Context, mountpoint string, fs fuse.RawFileSystem, opts fuse.MountOptions) (*uringLoop, error) {
	queues, err := uring.PossibleCPUs(PossibleCPUs)
	if err != nil {
		return nil, err
	}
	fd, err := mountDev(mountpoint, &opts)
	if err != nil {
		return nil, err
	}
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2) // as mountLoop, for the same reason
	}
	opts.ExtraCapabilities |= fuse.CAP_OVER_IO_URING
	l := &uringLoop{dev: newDev(fd), ps: fuse.NewProtocolServer(fs, &opts)}
	if o, ok := fs.(*Observer); ok {
		o.uloop.Store(l)
	}
	started := false
	fail := func(err error) (*uringLoop, error) {
		_ = unix.Unmount(mountpoint, unix.MNT_DETACH)
		if !started {
			l.finish(nil)
			return nil, err
		}
		// The ring's goroutine submits with the descriptor's number until
		// it ends, which the detach brings about (the connection ends
		// and the kernel completes every entry); closing the descriptor
		// before could hand that number to another file under it. So the
		// goroutine closes it as it ends, and one that does not end
		// leaves it open.
		select {
		case <-l.done:
		case <-time.After(uringEndWait):
			err = fmt.Errorf("%w (the ring's loop had not ended %s after the detach; its /dev/fuse descriptor is left open)", err, uringEndWait)
		}
		return nil, err
	}
	if err := l.answerInit(); err != nil {
		return fail(fmt.Errorf("INIT: %w", err))
	}
	if fuseabi.InitFlags(l.init.Flags, l.init.Flags2)&fuseabi.OverIOUring == 0 {
		return fail(ErrNoURing)
	}
	ready := make(chan error, 1)
	started = true
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		l.finish(l.run(queues, ready))
	}()
	select {
	case err := <-ready:
		if err != nil {
			return fail(fmt.Errorf("register the ring: %w", err))
		}
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	if err := pollOnce(mountpoint); err != nil {
		_ = unix.Unmount(mountpoint, unix.MNT_DETACH)
		return nil, fmt.Errorf("poll %s: %w", mountpoint, err)
	}
	return l, nil
}

// answerInit reads INIT from /dev/fuse, keeps the kernel's side of it and
// writes go-fuse's answer.
func (l *uringLoop) answerInit() error {
	in, out := make([]byte, loopBuffer), make([]byte, loopBuffer)
	n, err := unix.Read(l.fd, in)
	if err != nil {
		return err
	}
	h := (*fuse.InHeader)(unsafe.Pointer(&in[0]))
	if n < int(unsafe.Sizeof(*h)) || h.Opcode != opInit {
		return fmt.Errorf("first request (%d bytes) is not INIT", n)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&l.init)), unsafe.Sizeof(l.init)), in[:n])
	w, st := l.ps.HandleRequest([][]byte{in[:n]}, [][]byte{out})
	if !st.Ok() {
		return fmt.Errorf("go-fuse refused INIT: %v", st)
	}
	_, err = unix.Write(l.fd, out[:w])
	return err
}

// run registers the ring's entries, says so on ready, and serves until
// every entry has ended, which the kernel does when the connection ends.
func (l *uringLoop) run(queues int, ready chan<- error) error {
	entries := make([]uringEntry, 0, queues*uringDepth)
	ring, err := uring.Setup(uint32(2*queues*uringDepth), true)
	if err != nil {
		ready <- err
		return nil
	}
	defer func() {
		ring.Close()
		for _, e := range entries {
			e.Free()
		}
	}()
	for q := range queues {
		for range uringDepth {
			e, err := uring.NewEntry(uring.HeaderSize, loopBuffer)
			if err != nil {
				ready <- err
				return nil
			}
			entries = append(entries, uringEntry{e, uint16(q)})
			sqe, cmd := e.RegisterSQE(l.fd, uint16(q), uint64(len(entries)-1))
			if err := ring.Submit(sqe, cmd); err != nil {
				ready <- err
				return nil
			}
			uringRegistered()
		}
	}
	// A refused REGISTER completes at once; an accepted one waits for a
	// request, and none can come before the ring is ready.
	if c, err := ring.Wait(0); err == nil {
		ready <- fmt.Errorf("REGISTER of entry %d: %w", c.UserData, c.Errno())
		return nil
	}
	ready <- nil

	in, out := make([]byte, loopBuffer), make([]byte, loopBuffer)
	var ended error
	live := len(entries)
	for live > 0 {
		c, err := ring.Wait(-1)
		if err != nil {
			return err
		}
		if c.UserData >= uint64(len(entries)) {
			return fmt.Errorf("completion for unknown entry %d", c.UserData)
		}
		if c.Res < 0 {
			// The connection ended (ENOTCONN, ECONNABORTED) or the ring's
			// task is going (ECANCELED): the entry is done.
			live--
			if e := c.Errno(); e != unix.ENOTCONN && e != unix.ECONNABORTED && e != unix.ECANCELED && ended == nil {
				ended = fmt.Errorf("entry %d: %w", c.UserData, e)
			}
			continue
		}
		e := entries[c.UserData]
		l.serveEntry(e, in, out)
		sqe, cmd := e.CommitSQE(l.fd, e.qid, e.Header.RingEntInOut.CommitID, c.UserData)
		if err := ring.Submit(sqe, cmd); err != nil {
			return err
		}
	}
	return ended
}

// inHeader is the size of a request's header.
const inHeader = int(unsafe.Sizeof(fuse.InHeader{}))

// serveEntry answers the request in e: it joins the request's parts
// (fuse_in_header in InOut, the opcode's header in OpIn, the rest in the
// payload) into the layout /dev/fuse would have given, has go-fuse answer
// it into out, and splits the answer back: fuse_out_header into InOut,
// the rest into the payload.
func (l *uringLoop) serveEntry(e uringEntry, in, out []byte) {
	h := *(*fuse.InHeader)(unsafe.Pointer(&e.Header.InOut[0]))
	payload := int(e.Header.RingEntInOut.PayloadSz)
	op := int(h.Length) - inHeader - payload
	w := 0
	if op < 0 || op > fuseabi.UringOpInOutSize || payload > len(e.Payload) || int(h.Length) > len(in) {
		w = reply(out, &h, fuse.EIO, 0)
	} else {
		copy(in, e.Header.InOut[:inHeader])
		copy(in[inHeader:], e.Header.OpIn[:op])
		copy(in[inHeader+op:], e.Payload[:payload])
		var st fuse.Status
		w, st = l.ps.HandleRequest([][]byte{in[:h.Length]}, [][]byte{out})
		if !st.Ok() || w < outHeader {
			w = reply(out, &h, fuse.EIO, 0)
		}
	}
	copy(e.Header.InOut[:], out[:outHeader])
	e.Header.RingEntInOut.PayloadSz = uint32(copy(e.Payload, out[outHeader:w]))
}
