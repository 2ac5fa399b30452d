package wire

import (
	"encoding/binary"
	"sync"
)

// Request is one request as it came from /dev/fuse, reduced to what says
// something of the kernel rather than of the workload: its opcode, its
// length, the size it asks for and the flags it carries.
type Request struct {
	Op uint32
	// Node is the node the request is about (fuse_in_header.nodeid).
	Node uint64
	// Len is the whole request's length (fuse_in_header.len), headers and
	// payload.
	Len uint32
	// Size is what a READ, WRITE, READDIR or READDIRPLUS asks for
	// (fuse_read_in.size, fuse_write_in.size); 0 for other opcodes.
	Size uint32
	// Flags are an OPEN's, OPENDIR's or CREATE's open flags
	// (fuse_open_in.flags), a WRITE's write_flags or a GETATTR's
	// getattr_flags; 0 for other opcodes.
	Flags uint32
	// Nodes is how many nodes a FORGET (one) or BATCH_FORGET (its count)
	// forgets.
	Nodes uint32
}

// Opcodes of the requests a Recorder decodes, besides those in
// observer.go (include/uapi/linux/fuse.h, enum fuse_opcode).
const (
	opGetattr     = 3
	opOpen        = 14
	opRelease     = 18
	opOpendir     = 27
	opReaddir     = 28
	opReleasedir  = 29
	opCreate      = 35
	opInterrupt   = 36
	opBatchForget = 42
	opReaddirplus = 44
)

// inHeaderSize is sizeof(struct fuse_in_header).
const inHeaderSize = 40

// recordLimit bounds what a Recorder keeps: a probe's workload sends a
// few hundred requests; a runaway kernel must not grow the server without
// bound.
const recordLimit = 1 << 16

// Recorder keeps every request a mount's loop reads, in the order read,
// decoded from the raw bytes before go-fuse sees them: so it sees what
// go-fuse answers by itself and never hands to the file system (INIT,
// INTERRUPT, BATCH_FORGET as one request, NOTIFY_REPLY). Set
// Options.Record to have a mount record. It is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	reqs    []Request
	dropped int
}

// Record decodes one request, in as read from /dev/fuse; a request too
// short for its header is ignored, and fields it is too short for stay 0.
func (r *Recorder) Record(in []byte) {
	if len(in) < inHeaderSize {
		return
	}
	le := binary.LittleEndian
	u32 := func(off int) uint32 {
		if len(in) < off+4 {
			return 0
		}
		return le.Uint32(in[off:])
	}
	req := Request{Len: u32(0), Op: u32(4), Node: le.Uint64(in[16:])}
	const body = inHeaderSize
	switch req.Op {
	case opRead, opReaddir, opReaddirplus:
		// fuse_read_in: fh, offset, size, read_flags, lock_owner, flags.
		req.Size = u32(body + 16)
	case opWrite:
		// fuse_write_in: fh, offset, size, write_flags, ...
		req.Size, req.Flags = u32(body+16), u32(body+20)
	case opOpen, opOpendir, opCreate:
		req.Flags = u32(body)
	case opGetattr:
		req.Flags = u32(body)
	case opForget:
		req.Nodes = 1
	case opBatchForget:
		req.Nodes = u32(body)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) >= recordLimit {
		r.dropped++
		return
	}
	r.reqs = append(r.reqs, req)
}

// Len is how many requests were recorded so far: a mark for Since.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// Since returns the requests recorded after mark (an earlier Len).
func (r *Recorder) Since(mark int) []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	if mark < 0 || mark > len(r.reqs) {
		mark = len(r.reqs)
	}
	return append([]Request(nil), r.reqs[mark:]...)
}

// Dropped is how many requests came after the Recorder was full.
func (r *Recorder) Dropped() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// Unreleased is Unreleased of every request recorded so far.
func (r *Recorder) Unreleased() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Unreleased(r.reqs)
}

// Unreleased is how many files and directories the requests opened and
// did not release: the kernel sends RELEASE and RELEASEDIR after close(2)
// returns, so a caller waits for this to reach 0 before it counts.
func Unreleased(reqs []Request) int {
	n := 0
	for _, q := range reqs {
		switch q.Op {
		case opOpen, opOpendir, opCreate:
			n++
		case opRelease, opReleasedir:
			n--
		}
	}
	return n
}
