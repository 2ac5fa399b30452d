package flock

import (
	"context"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

// A lock is held against other processes (flock(1) stands in for one),
// and a waiter is told it waits, gives up with its context, and gets the
// lock once it is free.
func TestLock(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("needs flock(1) to hold the lock from another process")
	}
	name := filepath.Join(t.TempDir(), "lock")
	holder := exec.Command(flock, name, "sleep", "30")
	// sleep inherits the locked descriptor: end the whole group.
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	assert.NilError(t, holder.Start())
	release := func() { syscall.Kill(-holder.Process.Pid, syscall.SIGKILL); holder.Wait() }
	t.Cleanup(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		unlock, ok, err := TryLock(name)
		assert.NilError(t, err)
		if !ok {
			break
		}
		unlock()
		assert.Assert(t, time.Now().Before(deadline), "flock(1) never took the lock")
		time.Sleep(10 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	waited := 0
	_, err = Lock(ctx, name, func() { waited++ })
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, waited, 1)

	release()
	unlock, err := Lock(context.Background(), name, nil)
	assert.NilError(t, err)
	_, ok, err := TryLock(name)
	assert.NilError(t, err)
	assert.Check(t, !ok, "a second lock in the same process is refused: flock locks are per open file")
	unlock()
}

// Shared holders do not exclude each other, but exclude an exclusive
// holder (prune's TryLock), and wait for one. flock locks belong to open
// files, so two holders in one process stand for two processes.
func TestShared(t *testing.T) {
	name := filepath.Join(t.TempDir(), "lock")
	ctx := context.Background()
	one, err := Shared(ctx, name, nil)
	assert.NilError(t, err)
	two, err := Shared(ctx, name, nil)
	assert.NilError(t, err)
	_, ok, err := TryLock(name)
	assert.NilError(t, err)
	assert.Check(t, !ok, "an exclusive lock was taken over shared ones")
	one()
	_, ok, err = TryLock(name)
	assert.NilError(t, err)
	assert.Check(t, !ok, "an exclusive lock was taken over a shared one")
	two()

	unlock, ok, err := TryLock(name)
	assert.NilError(t, err)
	assert.Assert(t, ok)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	waited := 0
	_, err = Shared(short, name, func() { waited++ })
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, waited, 1)
	unlock()
	three, err := Shared(ctx, name, nil)
	assert.NilError(t, err)
	three()
}
