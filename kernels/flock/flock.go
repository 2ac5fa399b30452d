// Package flock holds the one file lock fusematrix's caches use: an
// exclusive flock(2) on a file, taken without blocking and retried until a
// context ends, so that a caller can say it waits and can be interrupted.
// Readers that only need an entry to stay take it shared (Shared): any
// number of them at once, but none while it is held exclusively.
// The kernel drops the lock when its process dies, so a crashed run never
// leaves it taken. It imports only the standard library.
package flock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// poll is how often a taken lock is tried again: flock cannot be
// interrupted by a context, so Lock never blocks in it.
const poll = 200 * time.Millisecond

// Lock takes an exclusive lock on name, creating the file, and waits while
// another process holds it until ctx ends; waiting, when not nil, is
// called once when the lock is first found taken.
func Lock(ctx context.Context, name string, waiting func()) (unlock func(), err error) {
	f, err := LockFile(ctx, name, waiting)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}

// LockFile is Lock returning the locked file: closing it unlocks. The
// lock belongs to the open file, not to the process, so a child process
// that inherits the file (exec.Cmd.ExtraFiles) holds the lock too, until
// the last holder closes it or dies.
func LockFile(ctx context.Context, name string, waiting func()) (*os.File, error) {
	return lock(ctx, name, syscall.LOCK_EX, waiting)
}

// Shared takes a shared lock on name, creating the file, and waits while
// another holder has it exclusively (Lock, TryLock) until ctx ends;
// waiting is called as for Lock. Shared locks do not exclude each other.
func Shared(ctx context.Context, name string, waiting func()) (unlock func(), err error) {
	f, err := lock(ctx, name, syscall.LOCK_SH, waiting)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}

func lock(ctx context.Context, name string, how int, waiting func()) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for i := 0; ; i++ {
		ok, err := try(f, how)
		if ok {
			return f, nil
		}
		if err != nil {
			f.Close()
			return nil, &fs.PathError{Op: "flock", Path: name, Err: err}
		}
		if i == 0 && waiting != nil {
			waiting()
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// TryLock takes the lock on name exclusively if no other holder has it,
// exclusively or shared.
func TryLock(name string) (unlock func(), ok bool, err error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, err
	}
	ok, err = try(f, syscall.LOCK_EX)
	if !ok {
		f.Close()
		if err != nil {
			return nil, false, &fs.PathError{Op: "flock", Path: name, Err: err}
		}
		return nil, false, nil
	}
	return func() { f.Close() }, true, nil
}

// try takes the lock (how: LOCK_EX or LOCK_SH) without waiting: false
// and no error when another holder prevents it.
func try(f *os.File, how int) (bool, error) {
	err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		return false, nil
	}
	return false, err
}
