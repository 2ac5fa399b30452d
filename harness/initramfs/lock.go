package initramfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockDir takes an exclusive flock on dir/lock, so that two processes
// sharing a cache build each image once instead of both spending the CPU.
// The kernel drops the lock when the process dies, so a crashed builder
// never blocks the next one. It polls because flock cannot be interrupted
// by a context.
func lockDir(ctx context.Context, dir string, logf func(string, ...any)) (unlock func(), err error) {
	name := filepath.Join(dir, "lock")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("initramfs: open lock: %w", err)
	}
	waiting := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("initramfs: lock %s: %w", name, err)
		}
		if !waiting {
			logf("initramfs: waiting for another build in %s", dir)
			waiting = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("initramfs: waiting for lock %s: %w", name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
