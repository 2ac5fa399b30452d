// Package servertest holds what the tests of fusematrix's server
// packages (scenarios/server and below) share: skipping where FUSE cannot
// be mounted, and files to serve and read. Only tests import it; it may
// import scenarios/server/wire.
package servertest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// NeedMount skips tests that mount when this run cannot.
func NeedMount(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("mounts FUSE; skipped in -short mode")
	}
	if err := wire.CanMount(); err != nil {
		t.Skipf("cannot mount FUSE here: %v", err)
	}
}

// UnmountAtEnd unmounts m when the test ends, which must succeed.
func UnmountAtEnd(t *testing.T, m *wire.Mount) {
	t.Cleanup(func() { assert.Check(t, m.Unmount()) })
}

// RandomFile writes size pseudo-random bytes, the same every run, to a
// new file at path and returns them.
func RandomFile(t *testing.T, path string, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(data)
	assert.NilError(t, os.WriteFile(path, data, 0o644))
	return data
}

// ReadWriteAll reads path to its end in blocks of block bytes, then
// truncates it and writes writeSize bytes in blocks, as the bench does.
func ReadWriteAll(path string, block int, readSize, writeSize int64) error {
	buf := make([]byte, block)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	var total int64
	for {
		n, err := f.Read(buf)
		total += int64(n)
		if err != nil || n == 0 {
			break
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if total != readSize {
		return fmt.Errorf("read %d bytes of %s, want %d", total, path, readSize)
	}
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	for total = 0; total < writeSize; {
		n, err := w.Write(buf[:min(int64(block), writeSize-total)])
		total += int64(n)
		if err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}

// EnableURing is fuse's enable_uring parameter, writable at run time.
const EnableURing = "/sys/module/fuse/parameters/enable_uring"

// HostURingEnv, set to 1, lets tests switch this machine's
// fuse.enable_uring on while they run (and back to what it was after).
// It is a setting of the whole machine, so tests never do it unasked.
const HostURingEnv = "FUSEMATRIX_HOST_URING"

// NeedURing skips a test that serves FUSE over io_uring unless this
// kernel has the transport and the run allows switching it on
// (HostURingEnv); then it switches it on until the test ends.
func NeedURing(t *testing.T) {
	t.Helper()
	NeedMount(t)
	def, err := os.ReadFile(EnableURing)
	if err != nil {
		t.Skipf("this kernel has no FUSE over io_uring: %v", err)
	}
	if os.Getenv(HostURingEnv) != "1" {
		t.Skipf("switching fuse.enable_uring on is up to the machine's owner: set %s=1", HostURingEnv)
	}
	assert.NilError(t, os.WriteFile(EnableURing, []byte("Y"), 0))
	t.Cleanup(func() { assert.Check(t, os.WriteFile(EnableURing, def, 0)) })
}
