// Package yield keeps a goroutine that lives in blocking system calls from
// looking, to Go's scheduler, like one that never yields.
//
// A timed I/O loop or a FUSE serving loop calls read(2) or write(2) back to
// back; each call may block on the other side of a FUSE round trip, yet
// the goroutine is never rescheduled. After 10 ms on the same scheduling
// tick the runtime's monitor thread (sysmon) treats it as running too
// long: it takes the P away from the blocked call, and because it took
// something it goes back to waking at its shortest interval, taking Ps
// away again as each call blocks, and so competes with the loop for the
// CPUs the measurement runs on. A runtime.Gosched every few milliseconds
// starts a new tick, and sysmon goes back to sleeping up to 10 ms at a
// time.
package yield

import (
	"runtime"
	"time"
)

const (
	// Period is how much work a Pacer aims to let pass between yields:
	// a stretch stays under 2×Period, below the runtime's 10 ms. Not
	// less: with an idle P, each yield also wakes a second thread to look
	// for work, and in the NOOP server, pinned to one vCPU, that thread
	// runs where the server does, so that every yield more is CPU the
	// server pays for.
	Period = 4 * time.Millisecond
	// maxEvery bounds the calls between yields (and between clock reads).
	maxEvery = 64
)

// Pacer yields every so many calls to Tick, adapting that number so that
// about Period passes between yields: a loop of fast calls reads the clock
// and yields rarely, a loop of slow ones often. The zero value is ready to
// use and starts by yielding at every Tick.
type Pacer struct {
	every, n int
	last     time.Time
	// now and gosched are time.Now and runtime.Gosched outside tests.
	now     func() time.Time
	gosched func()
}

// Tick counts one call of the loop and yields when it is time to.
func (p *Pacer) Tick() {
	p.n++
	if p.n < p.every {
		return
	}
	p.n = 0
	p.adapt()
	if p.gosched != nil {
		p.gosched()
		return
	}
	runtime.Gosched()
}

// adapt reads the clock once per yield and halves or doubles the calls
// between yields when the last stretch was far from Period.
func (p *Pacer) adapt() {
	now := time.Now
	if p.now != nil {
		now = p.now
	}
	t := now()
	if p.last.IsZero() {
		p.last, p.every = t, 1
		return
	}
	d := t.Sub(p.last)
	p.last = t
	switch {
	case d > 2*Period && p.every > 1:
		p.every /= 2
	case d < Period/2 && p.every < maxEvery:
		p.every *= 2
	}
}

// Every says how many calls currently pass between yields.
func (p *Pacer) Every() int { return max(p.every, 1) }
