package wire

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Unanswered is a request a recording mount's loop read from /dev/fuse
// and has not answered (Mount.Unanswered).
type Unanswered struct {
	Op     uint32
	Unique uint64
	Node   uint64
	// Wait is how long ago the loop read it.
	Wait time.Duration
	// Err is why handling it ended without a reply, if it did; empty
	// while it is being handled.
	Err string
}

// pendingSet is the requests a loop read and has not answered yet, by
// the order it read them in: not by unique, which an INTERRUPT answered
// EAGAIN comes back with while its first reading is still being handled.
type pendingSet struct {
	mu   sync.Mutex
	n    uint64
	reqs map[uint64]pendingReq
}

type pendingReq struct {
	op     uint32
	unique uint64
	node   uint64
	read   time.Time
	err    string
}

// add notes h's request as read now and returns its mark for done.
func (p *pendingSet) add(h *fuse.InHeader) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reqs == nil {
		p.reqs = map[uint64]pendingReq{}
	}
	p.n++
	p.reqs[p.n] = pendingReq{op: h.Opcode, unique: h.Unique, node: h.NodeId, read: time.Now()}
	return p.n
}

// done notes that handling the request marked mark ended: answered when
// err is nil (or needing no answer), else left unanswered for err.
func (p *pendingSet) done(mark uint64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		delete(p.reqs, mark)
		return
	}
	if q, ok := p.reqs[mark]; ok {
		q.err = err.Error()
		p.reqs[mark] = q
	}
}

// list returns the requests unanswered now, oldest first.
func (p *pendingSet) list() []Unanswered {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	out := make([]Unanswered, 0, len(p.reqs))
	for _, mark := range slices.Sorted(maps.Keys(p.reqs)) {
		q := p.reqs[mark]
		out = append(out, Unanswered{Op: q.op, Unique: q.unique, Node: q.node, Wait: now.Sub(q.read), Err: q.err})
	}
	return out
}
