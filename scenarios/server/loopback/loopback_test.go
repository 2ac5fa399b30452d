package loopback_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/scenarios/server/internal/servertest"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

func TestLoopbackObserver(t *testing.T) {
	servertest.NeedMount(t)
	for _, tc := range []struct {
		name        string
		passthrough bool
	}{
		{name: "passthrough", passthrough: true},
		{name: "classic", passthrough: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backing, mnt := t.TempDir(), t.TempDir()
			want := servertest.RandomFile(t, filepath.Join(backing, "f"), 1<<20+17)
			m, err := loopback.Mount(context.Background(), mnt, backing, wire.Options{Passthrough: tc.passthrough, Logf: t.Logf})
			assert.NilError(t, err)
			servertest.UnmountAtEnd(t, m)
			if tc.passthrough && m.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH == 0 {
				t.Skip("this kernel does not offer FUSE_PASSTHROUGH")
			}

			got, err := os.ReadFile(filepath.Join(mnt, "f"))
			assert.NilError(t, err)
			assert.Check(t, bytes.Equal(got, want), "content differs from the backing file")

			opens := m.Observer.Opens()
			assert.Assert(t, is.Len(opens, 1))
			reads, _ := m.Observer.Reads()
			regs := m.Observer.Registrations()
			assert.Assert(t, is.Len(regs, 1), "go-fuse tries to register the backing file either way")
			if tc.passthrough {
				assert.Check(t, opens[0].Passthrough(), "open reply %+v", opens[0])
				assert.Check(t, is.Equal(opens[0].BackingID, regs[0].ID))
				assert.Check(t, is.Equal(regs[0].Errno, syscall.Errno(0)))
				assert.Check(t, is.Equal(reads, int64(0)))
			} else {
				assert.Check(t, !opens[0].Passthrough(), "open reply %+v", opens[0])
				assert.Check(t, regs[0].Errno != 0, "the kernel accepted a backing file without passthrough negotiated")
				assert.Check(t, reads > 0, "no READ reached the classic daemon")
			}
		})
	}
}

// TestRegistrationErrno stacks a passthrough loopback on another FUSE
// mount: with max_stack_depth 1 the kernel refuses the backing file, and
// the observer must report the kernel's errno.
func TestRegistrationErrno(t *testing.T) {
	servertest.NeedMount(t)
	backing, lower, upper := t.TempDir(), t.TempDir(), t.TempDir()
	want := servertest.RandomFile(t, filepath.Join(backing, "f"), 64<<10)
	ctx := context.Background()
	lm, err := loopback.Mount(ctx, lower, backing, wire.Options{Passthrough: true})
	assert.NilError(t, err)
	servertest.UnmountAtEnd(t, lm)
	if lm.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH == 0 {
		t.Skip("this kernel does not offer FUSE_PASSTHROUGH")
	}
	um, err := loopback.Mount(ctx, upper, lower, wire.Options{Passthrough: true})
	assert.NilError(t, err)
	servertest.UnmountAtEnd(t, um)

	got, err := os.ReadFile(filepath.Join(upper, "f"))
	assert.NilError(t, err)
	assert.Check(t, bytes.Equal(got, want))
	regs := um.Observer.Registrations()
	assert.Assert(t, is.Len(regs, 1))
	assert.Check(t, is.Equal(regs[0].Errno, syscall.ELOOP))
	assert.Check(t, !um.Observer.Opens()[0].Passthrough())
}

// TestLoopbackURing serves the loopback over io_uring, with and without
// passthrough: data read and written through the mount is the backing
// file's, and with passthrough the backing file was registered through
// the ring loop's own /dev/fuse descriptor and no READ reached it.
func TestLoopbackURing(t *testing.T) {
	servertest.NeedURing(t)
	for _, pt := range []bool{true, false} {
		t.Run(map[bool]string{true: "passthrough", false: "classic"}[pt], func(t *testing.T) {
			backing, mnt := t.TempDir(), t.TempDir()
			want := servertest.RandomFile(t, filepath.Join(backing, "f"), 1<<20+17)
			m, err := loopback.Mount(context.Background(), mnt, backing, wire.Options{Passthrough: pt, URing: true, Logf: t.Logf})
			assert.NilError(t, err)
			servertest.UnmountAtEnd(t, m)

			got, err := os.ReadFile(filepath.Join(mnt, "f"))
			assert.NilError(t, err)
			assert.Check(t, bytes.Equal(got, want), "content differs from the backing file")
			assert.NilError(t, os.WriteFile(filepath.Join(mnt, "g"), want[:70000], 0o644))
			back, err := os.ReadFile(filepath.Join(backing, "g"))
			assert.NilError(t, err)
			assert.Check(t, bytes.Equal(back, want[:70000]), "written content differs in the backing file")
			names, err := os.ReadDir(mnt)
			assert.NilError(t, err)
			assert.Check(t, is.Len(names, 2))

			reads, _ := m.Observer.Reads()
			if pt {
				opens := m.Observer.Opens()
				assert.Assert(t, len(opens) > 0)
				assert.Check(t, opens[0].Passthrough(), "open reply %+v", opens[0])
				assert.Check(t, is.Equal(reads, int64(0)))
			} else {
				assert.Check(t, reads > 0, "no READ reached the classic daemon")
			}
		})
	}
}
