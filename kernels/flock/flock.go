// Package flock holds the one file lock fusematrix's caches use: an
// exclusive flock(2) on a file, taken without blocking and retried until a
// context ends, so that a caller can say it waits and can be interrupted.
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
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for i := 0; ; i++ {
		ok, err := try(f)
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

// TryLock takes the lock on name if no other process holds it.
func TryLock(name string) (unlock func(), ok bool, err error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, err
	}
	ok, err = try(f)
	if !ok {
		f.Close()
		if err != nil {
			return nil, false, &fs.PathError{Op: "flock", Path: name, Err: err}
		}
		return nil, false, nil
	}
	return func() { f.Close() }, true, nil
}

// try takes the lock without waiting: false and no error when another
// process holds it.
func try(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		return false, nil
	}
	return false, err
}
