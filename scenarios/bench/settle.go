package bench

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
// collects its start-up garbage. Under TCG that CPU time is a noticeable
// part of a short run, taken from the vCPUs the timed loop runs on. A run therefore starts once the server has gone
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

// settle waits until process pid has no thread that is running or
// waiting for a CPU, and has used less than settleBusy of CPU per
// settleWindow since the last look; or until settleLimit has passed. It
// returns how long it waited and whether the process went quiet.
//
// CPU time alone cannot tell idle from starved: on a loaded machine a
// process that wants the CPU may get none of it for a whole window.
// Thread state can: such a process is runnable at every look. The CPU
// rate is taken over the time that really passed between looks, since
// a late look makes the window longer than settleWindow.
func settle(ctx context.Context, pid int) (time.Duration, bool, error) {
	start := time.Now()
	prev, err := threadsRuntime(pid)
	if err != nil {
		return 0, false, err
	}
	prevAt := time.Now()
	t := time.NewTimer(settleWindow)
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
		now := time.Now()
		runnable, err := threadsRunnable(pid)
		if err != nil {
			return time.Since(start), false, err
		}
		if !runnable && idle(cur-prev, now.Sub(prevAt)) {
			return time.Since(start), true, nil
		}
		if time.Since(start) >= settleLimit {
			return time.Since(start), false, nil
		}
		prev, prevAt = cur, now
		t.Reset(settleWindow)
	}
}

// idle tells whether busy CPU time over elapsed wall time is below the
// settleBusy-per-settleWindow rate.
func idle(busy, elapsed time.Duration) bool {
	if elapsed < settleWindow {
		elapsed = settleWindow
	}
	return busy*settleWindow < settleBusy*elapsed
}

// threadsRunnable tells whether any thread of pid is running or waiting
// on a run queue (state R in /proc/<pid>/task/<tid>/stat).
func threadsRunnable(pid int) (bool, error) {
	runnable := false
	err := eachThread(pid, "stat", func(data []byte) error {
		state, err := parseStatState(data)
		runnable = runnable || state == 'R'
		return err
	})
	return runnable, err
}

// parseStatState reads the state field of a stat file. It follows the
// last ')' because the command name before it may hold anything,
// parentheses and spaces included.
func parseStatState(data []byte) (byte, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	f := bytes.Fields(data[i+1:])
	if len(f) == 0 || len(f[0]) != 1 {
		return 0, errors.New("stat: no state")
	}
	return f[0][0], nil
}

// threadsRuntime is the CPU time all threads of pid have used, from the
// scheduler's own accounting in nanoseconds: /proc/<pid>/stat counts in
// clock ticks, too coarse to tell a quiet window from a busy one.
func threadsRuntime(pid int) (time.Duration, error) {
	var total time.Duration
	err := eachThread(pid, "schedstat", func(data []byte) error {
		ns, err := parseSchedstat(data)
		total += ns
		return err
	})
	return total, err
}

// eachThread calls fn with file name of every thread of pid. A thread
// that ends between the listing and the read is passed over; a process
// none of whose threads could be read is an error.
func eachThread(pid int, name string, fn func(data []byte) error) error {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("threads of %d: %w", pid, err)
	}
	read := 0
	for _, task := range tasks {
		data, err := os.ReadFile(filepath.Join(dir, task.Name(), name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			err = fn(data)
		}
		if err != nil {
			return fmt.Errorf("thread %s of %d: %w", task.Name(), pid, err)
		}
		read++
	}
	if read == 0 {
		return fmt.Errorf("threads of %d: %w", pid, os.ErrNotExist)
	}
	return nil
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
