package server

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// startOn runs start, which starts a process, from a thread allowed to
// run only on cpus: the child inherits the mask at fork, and so does
// every thread it makes later, with nothing to race against. Empty cpus
// runs start as it is. The calling thread gets its mask back.
func startOn(cpus []int, start func() error) error {
	if len(cpus) == 0 {
		return start()
	}
	var set unix.CPUSet
	for _, c := range cpus {
		if c < 0 || c >= len(set)*64 {
			return fmt.Errorf("pin to CPU %d: no such CPU", c)
		}
		set.Set(c)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return fmt.Errorf("CPU affinity: %w", err)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to CPUs %v: %w", cpus, err)
	}
	err := start()
	if rerr := unix.SchedSetaffinity(0, &old); rerr != nil {
		err = errors.Join(err, fmt.Errorf("restore CPU affinity: %w", rerr))
	}
	return err
}
