package scenarios

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// A server process is still busy for a while after it reports its mount
// ready: a fresh Go runtime faults its heap in, starts its readers and
// collects its start-up garbage. Under TCG that is tens of milliseconds of
// CPU, about a sixth of a 128 KiB read run, taken from the vCPUs the
// timed loop runs on. A run therefore starts once the server has gone
// quiet, as a server in steady use would be.
const (
	// settleWindow is how long the server is watched at a time, and
	// settleBusy the CPU time in one window below which it counts as idle.
	settleWindow = 20 * time.Millisecond
	settleBusy   = time.Millisecond
	// settleLimit bounds the wait: a server that never goes quiet is
	// measured anyway, and the run says so.
	settleLimit = 2 * time.Second
)

// settle waits until process pid uses less than settleBusy of CPU in a
// settleWindow, or settleLimit has passed. It returns how long it
// waited and whether the process went quiet.
func settle(ctx context.Context, pid int) (time.Duration, bool, error) {
	start := time.Now()
	prev, err := threadsRuntime(pid)
	if err != nil {
		return 0, false, err
	}
	t := time.NewTicker(settleWindow)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return time.Since(start), false, ctx.Err()
		case <-t.C:
		}
		cur, err := threadsRuntime(pid)
		if err != nil {
			return time.Since(start), false, err
		}
		if cur-prev < settleBusy {
			return time.Since(start), true, nil
		}
		if time.Since(start) >= settleLimit {
			return time.Since(start), false, nil
		}
		prev = cur
	}
}

// threadsRuntime is the CPU time all threads of pid have used, from the
// scheduler's own accounting in nanoseconds: /proc/<pid>/stat counts in
// clock ticks, too coarse to tell a quiet window from a busy one.
func threadsRuntime(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("threads of %d: %w", pid, err)
	}
	var total time.Duration
	for _, task := range tasks {
		data, err := os.ReadFile(filepath.Join(dir, task.Name(), "schedstat"))
		if errors.Is(err, os.ErrNotExist) && total > 0 {
			// A thread that ended between the listing and the read.
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("thread %s of %d: %w", task.Name(), pid, err)
		}
		ns, err := parseSchedstat(data)
		if err != nil {
			return 0, fmt.Errorf("thread %s of %d: %w", task.Name(), pid, err)
		}
		total += ns
	}
	return total, nil
}

// parseSchedstat reads the first field of a schedstat file: time spent
// on a CPU, in nanoseconds.
func parseSchedstat(data []byte) (time.Duration, error) {
	f := bytes.Fields(data)
	if len(f) == 0 {
		return 0, errors.New("schedstat: empty")
	}
	ns, err := strconv.ParseUint(string(f[0]), 10, 63)
	if err != nil {
		return 0, fmt.Errorf("schedstat: %w", err)
	}
	return time.Duration(ns), nil
}
