// Package uring holds a minimal io_uring of its own, made of raw system
// calls (io_uring_setup, io_uring_enter, mmap of the rings) without cgo or
// liburing, and the FUSE-over-io_uring commands on top of it: the SQEs of
// FUSE_IO_URING_CMD_REGISTER and COMMIT_AND_FETCH (RegisterSQE,
// CommitSQE) and the buffers of a ring entry (Entry).
//
// It knows only what a FUSE server needs: one submission at a time from
// one goroutine, IORING_OP_URING_CMD, and waiting for completions with a
// time limit. The io_uring uAPI values are copied from
// include/uapi/linux/io_uring.h, the FUSE ones live in scenarios/fuseabi;
// the tests pin both against the kernel header's layout.
//
// It imports scenarios/fuseabi and Go's x/sys only.
package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// io_uring uAPI values (include/uapi/linux/io_uring.h).
const (
	// SetupSQE128 (IORING_SETUP_SQE128) doubles every SQE to 128 bytes,
	// which URING_CMD needs for an 80-byte command area.
	SetupSQE128 = 1 << 10
	// OpURingCmd is IORING_OP_URING_CMD: a command for the file's
	// f_op->uring_cmd.
	OpURingCmd = 46

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	featSingleMmap = 1 << 0

	enterGetEvents = 1 << 0
	enterExtArg    = 1 << 3
)

// SQE sizes, and where the command area starts in one (sqe->cmd, the
// union over addr3 at offset 48).
const (
	SQESize     = 64
	SQE128Size  = 128
	CmdOffset   = 48
	CmdArea128  = SQE128Size - CmdOffset // 80 bytes
	cqeSize     = 16
	paramsSize  = 120
	getArgsSize = 24
)

// Params is struct io_uring_params.
type Params struct {
	SqEntries    uint32
	CqEntries    uint32
	Flags        uint32
	SqThreadCPU  uint32
	SqThreadIdle uint32
	Features     uint32
	WqFd         uint32
	Resv         [3]uint32
	SqOff        SQRingOffsets
	CqOff        CQRingOffsets
}

// SQRingOffsets is struct io_sqring_offsets.
type SQRingOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

// CQRingOffsets is struct io_cqring_offsets.
type CQRingOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

// SQE is the first 64 bytes of struct io_uring_sqe, the fields URING_CMD
// uses; a 128-byte SQE continues with the rest of the command area.
type SQE struct {
	Opcode      uint8
	Flags       uint8
	Ioprio      uint16
	Fd          int32
	CmdOp       uint32 // union with off/addr2: cmd_op, __pad1
	Pad1        uint32
	Addr        uint64
	Len         uint32
	CmdFlags    uint32 // union with rw_flags: uring_cmd_flags
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	FileIndex   int32
	Cmd         [16]byte // addr3 and __pad2, or the command area's start
}

// CQE is struct io_uring_cqe (without CQE32).
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// getEventsArg is struct io_uring_getevents_arg.
type getEventsArg struct {
	Sigmask   uint64
	SigmaskSz uint32
	Pad       uint32
	Ts        uint64
}

// Ring is one io_uring instance with its rings mapped.
type Ring struct {
	fd      int
	sqe128  bool
	sqeSize int

	sqMem, cqMem, sqes []byte
	sqHead, sqTail     *uint32
	sqMask             uint32
	sqArray            []uint32
	cqHead, cqTail     *uint32
	cqMask             uint32
	cqes               unsafe.Pointer
}

// ErrTimeout is what Wait returns when no completion came in time.
var ErrTimeout = errors.New("no completion in time")

// Setup creates a ring of entries SQEs, 128 bytes each with sqe128.
func Setup(entries uint32, sqe128 bool) (*Ring, error) {
	var p Params
	if sqe128 {
		p.Flags |= SetupSQE128
	}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd), sqe128: sqe128, sqeSize: SQESize}
	if sqe128 {
		r.sqeSize = SQE128Size
	}
	if err := r.mmap(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mmap(p *Params) error {
	sqLen := int(p.SqOff.Array) + int(p.SqEntries)*4
	cqLen := int(p.CqOff.Cqes) + int(p.CqEntries)*cqeSize
	if p.Features&featSingleMmap != 0 {
		sqLen = max(sqLen, cqLen)
		cqLen = sqLen
	}
	var err error
	if r.sqMem, err = unix.Mmap(r.fd, offSQRing, sqLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("mmap SQ ring: %w", err)
	}
	r.cqMem = r.sqMem
	if p.Features&featSingleMmap == 0 {
		if r.cqMem, err = unix.Mmap(r.fd, offCQRing, cqLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			return fmt.Errorf("mmap CQ ring: %w", err)
		}
	}
	if r.sqes, err = unix.Mmap(r.fd, offSQEs, int(p.SqEntries)*r.sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("mmap SQEs: %w", err)
	}
	at := func(mem []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	r.sqHead, r.sqTail = at(r.sqMem, p.SqOff.Head), at(r.sqMem, p.SqOff.Tail)
	r.sqMask = *at(r.sqMem, p.SqOff.RingMask)
	r.sqArray = unsafe.Slice(at(r.sqMem, p.SqOff.Array), p.SqEntries)
	r.cqHead, r.cqTail = at(r.cqMem, p.CqOff.Head), at(r.cqMem, p.CqOff.Tail)
	r.cqMask = *at(r.cqMem, p.CqOff.RingMask)
	r.cqes = unsafe.Pointer(&r.cqMem[p.CqOff.Cqes])
	return nil
}

// Fd is the ring's file descriptor.
func (r *Ring) Fd() int { return r.fd }

// SQE128 says whether the ring's SQEs are 128 bytes.
func (r *Ring) SQE128() bool { return r.sqe128 }

// Submit queues sqe, with cmd (at most the command area: 16 bytes, or 80
// with SQE128) at its command area, and hands it to the kernel. An error
// is the submission's own; the command's result comes as a completion.
func (r *Ring) Submit(sqe SQE, cmd []byte) error {
	area := 16
	if r.sqe128 {
		area = CmdArea128
	}
	if len(cmd) > area {
		return fmt.Errorf("command of %d bytes does not fit a %d-byte command area", len(cmd), area)
	}
	tail := atomic.LoadUint32(r.sqTail)
	if tail-atomic.LoadUint32(r.sqHead) > r.sqMask {
		return errors.New("submission queue full")
	}
	idx := tail & r.sqMask
	slot := r.sqes[int(idx)*r.sqeSize : int(idx+1)*r.sqeSize]
	clear(slot)
	*(*SQE)(unsafe.Pointer(&slot[0])) = sqe
	copy(slot[CmdOffset:], cmd)
	r.sqArray[idx] = idx
	atomic.StoreUint32(r.sqTail, tail+1)
	for {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 1, 0, 0, 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case errno != 0:
			return fmt.Errorf("io_uring_enter: %w", errno)
		case n != 1:
			return fmt.Errorf("io_uring_enter submitted %d of 1", n)
		}
		return nil
	}
}

// Wait returns the next completion, waiting at most timeout for it (0:
// only one already there; negative: without limit).
func (r *Ring) Wait(timeout time.Duration) (CQE, error) {
	for {
		if c, ok := r.peek(); ok {
			return c, nil
		}
		if timeout == 0 {
			return CQE{}, ErrTimeout
		}
		flags := uintptr(enterGetEvents)
		var argp unsafe.Pointer
		var argSize uintptr
		var ts unix.Timespec
		var arg getEventsArg
		if timeout > 0 {
			ts = unix.NsecToTimespec(timeout.Nanoseconds())
			arg.Ts = uint64(uintptr(unsafe.Pointer(&ts)))
			flags |= enterExtArg
			argp, argSize = unsafe.Pointer(&arg), unsafe.Sizeof(arg)
		}
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 0, 1, flags, uintptr(argp), argSize)
		// ts and arg live on the stack across the call: keep them.
		_ = ts
		switch errno {
		case 0, unix.EINTR:
		case unix.ETIME:
			if c, ok := r.peek(); ok {
				return c, nil
			}
			return CQE{}, ErrTimeout
		default:
			return CQE{}, fmt.Errorf("io_uring_enter: %w", errno)
		}
	}
}

// peek takes a completion off the CQ ring if there is one.
func (r *Ring) peek() (CQE, bool) {
	head := atomic.LoadUint32(r.cqHead)
	if head == atomic.LoadUint32(r.cqTail) {
		return CQE{}, false
	}
	c := *(*CQE)(unsafe.Add(r.cqes, uintptr(head&r.cqMask)*cqeSize))
	atomic.StoreUint32(r.cqHead, head+1)
	return c, true
}

// Close unmaps the rings and closes the ring, which cancels what is
// still queued on it.
func (r *Ring) Close() error {
	if r.sqes != nil {
		_ = unix.Munmap(r.sqes)
	}
	if r.cqMem != nil && unsafe.SliceData(r.cqMem) != unsafe.SliceData(r.sqMem) {
		_ = unix.Munmap(r.cqMem)
	}
	if r.sqMem != nil {
		_ = unix.Munmap(r.sqMem)
	}
	r.sqes, r.cqMem, r.sqMem = nil, nil, nil
	return unix.Close(r.fd)
}

// Errno turns a completion's result into an errno, 0 for success.
func (c CQE) Errno() syscall.Errno {
	if c.Res < 0 {
		return syscall.Errno(-c.Res)
	}
	return 0
}
