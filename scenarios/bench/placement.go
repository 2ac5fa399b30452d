package bench

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// placement is where a bench run puts its server. Left to the scheduler, a
// server sometimes shares a vCPU with the timed loop and sometimes not,
// and under TCG that shows in the figure: every switch between address
// spaces on one vCPU flushes its emulated TLB, which a server on a vCPU of
// its own does not cause. The timed loop stays with the scheduler, as an
// application's would: pinning it too moves every mode's figure, for no
// reason that is understood, so the figures would measure the pinning
// rather than FUSE.
type placement struct {
	// server are the CPUs of the server process, nil for any.
	server []int
	// note says where things ran, for the cell's facts.
	note string
}

// benchPlacement puts servers on the last CPU this process may use; with
// one CPU nothing is pinned.
func benchPlacement() placement {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return placement{note: fmt.Sprintf("not pinned: %v", err)}
	}
	last, n := -1, 0
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			last = c
			n++
		}
	}
	if n < 2 {
		return placement{note: "not pinned: one CPU"}
	}
	return placement{server: []int{last}, note: fmt.Sprintf("server on CPU %d of %d, timed loop left to the scheduler", last, n)}
}
