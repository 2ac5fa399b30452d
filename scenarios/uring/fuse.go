package uring

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
)

// HeaderSize is the size of a ring entry's header buffer, struct
// fuse_uring_req_header.
const HeaderSize = int(unsafe.Sizeof(fuseabi.UringReqHeader{}))

// Entry is the memory of one FUSE ring entry: the header buffer and the
// payload buffer REGISTER hands the kernel, and the iovec pair that
// describes them. The kernel keeps the buffers' addresses for the life
// of the connection, so they live outside Go's heap and stacks (which
// may move what does not escape): in one anonymous mapping, which Free
// releases once the ring and the connection are gone.
type Entry struct {
	Header  *fuseabi.UringReqHeader
	Payload []byte
	mem     []byte
	iov     *[fuseabi.UringIovecs]unix.Iovec
	// cmd is the command area of the entry's next SQE.
	cmd fuseabi.UringCmdReq
}

// iovSize is the room the iovec pair takes at the start of an entry's
// mapping, before the header buffer.
const iovSize = 64

// NewEntry maps an entry whose header buffer is headerLen bytes (at
// least HeaderSize unless a probe wants it short) and whose payload
// buffer is payloadLen.
func NewEntry(headerLen, payloadLen int) (*Entry, error) {
	hdr := max(headerLen, HeaderSize)
	mem, err := unix.Mmap(-1, 0, iovSize+hdr+payloadLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("map a ring entry: %w", err)
	}
	e := &Entry{
		mem:     mem,
		iov:     (*[fuseabi.UringIovecs]unix.Iovec)(unsafe.Pointer(&mem[0])),
		Header:  (*fuseabi.UringReqHeader)(unsafe.Pointer(&mem[iovSize])),
		Payload: mem[iovSize+hdr : iovSize+hdr+payloadLen : iovSize+hdr+payloadLen],
	}
	e.iov[0].Base = &mem[iovSize]
	e.iov[0].SetLen(headerLen)
	if payloadLen > 0 {
		e.iov[1].Base = &e.Payload[0]
	}
	e.iov[1].SetLen(payloadLen)
	return e, nil
}

// Free unmaps the entry. Only once the kernel can no longer write to it:
// its connection ended and its ring closed.
func (e *Entry) Free() error {
	if e.mem == nil {
		return nil
	}
	err := unix.Munmap(e.mem)
	e.mem, e.Header, e.Payload, e.iov = nil, nil, nil, nil
	return err
}

// RegisterSQE is the SQE that registers e on queue qid of the
// connection whose /dev/fuse descriptor is devFd, and its command area.
// userData comes back in the completion.
func (e *Entry) RegisterSQE(devFd int, qid uint16, userData uint64) (SQE, []byte) {
	e.cmd = fuseabi.UringCmdReq{Qid: qid}
	return SQE{
		Opcode:   OpURingCmd,
		Fd:       int32(devFd),
		CmdOp:    fuseabi.UringCmdRegister,
		Addr:     uint64(uintptr(unsafe.Pointer(&e.iov[0]))),
		Len:      fuseabi.UringIovecs,
		UserData: userData,
	}, e.cmdBytes()
}

// CommitSQE is the SQE that commits the reply to request commitID (the
// header's CommitID the kernel gave with it) on queue qid and fetches the
// entry's next request.
func (e *Entry) CommitSQE(devFd int, qid uint16, commitID, userData uint64) (SQE, []byte) {
	e.cmd = fuseabi.UringCmdReq{Qid: qid, CommitID: commitID}
	return SQE{
		Opcode:   OpURingCmd,
		Fd:       int32(devFd),
		CmdOp:    fuseabi.UringCmdCommitAndFetch,
		UserData: userData,
	}, e.cmdBytes()
}

func (e *Entry) cmdBytes() []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&e.cmd)), unsafe.Sizeof(e.cmd))
}

// PossibleCPUs counts the CPUs a list such as "0-1,4" in the file at
// path names: FUSE makes a ring queue for each CPU
// /sys/devices/system/cpu/possible lists.
func PossibleCPUs(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("possible CPUs: %w", err)
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(data)), ",") {
		lo, hi, found := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("possible CPUs %q: %w", data, err)
		}
		b := a
		if found {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, fmt.Errorf("possible CPUs %q: bad range %q", data, part)
			}
		}
		n += b - a + 1
	}
	if n < 1 || n > 4096 {
		return 0, fmt.Errorf("possible CPUs %q: %d CPUs", data, n)
	}
	return n, nil
}
