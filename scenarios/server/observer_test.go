package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestOpcodeName(t *testing.T) {
	for _, tc := range []struct {
		op   uint32
		want string
	}{
		{op: 1, want: "LOOKUP"},
		{op: 15, want: "READ"},
		{op: 16, want: "WRITE"},
		{op: 22, want: "GETXATTR"},
		{op: 52, want: "STATX"},
		{op: 7, want: "OTHER"}, // unused in the uAPI
		{op: 0, want: "OTHER"},
		{op: 4096, want: "OTHER"}, // CUSE_INIT
	} {
		assert.Check(t, is.Equal(OpcodeName(tc.op), tc.want), "opcode %d", tc.op)
	}
}

// TestObserverCounts feeds requests to an Observer directly: every opcode
// lands in its own counter, and Stats names only those seen.
func TestObserverCounts(t *testing.T) {
	o := &Observer{RawFileSystem: fuse.NewDefaultRawFileSystem()}
	h := func(op uint32) fuse.InHeader { return fuse.InHeader{Opcode: op} }
	cancel := make(chan struct{})
	for range 3 {
		in := &fuse.WriteIn{InHeader: h(16), Size: 10}
		o.Write(cancel, in, nil)
	}
	gx := h(22)
	o.GetXAttr(cancel, &gx, "security.capability", nil)
	o.Forget(1, 1)
	o.Flush(cancel, &fuse.FlushIn{InHeader: h(25)})
	o.GetAttr(cancel, &fuse.GetAttrIn{InHeader: h(4242)}, &fuse.AttrOut{})
	st := o.Stats()
	assert.DeepEqual(t, st.Requests, map[string]int64{"WRITE": 3, "GETXATTR": 1, "FORGET": 1, "FLUSH": 1, "OTHER": 1})
	assert.Check(t, is.Equal(st.Writes, int64(3)))
	assert.Check(t, is.Equal(st.WriteBytes, int64(30)))
	assert.Check(t, is.Len((&Observer{}).Stats().Requests, 0))
}

// TestObserverCountAllocs keeps the counting free of allocations: the
// benchmarks run every request through it.
func TestObserverCountAllocs(t *testing.T) {
	o := &Observer{}
	in := &fuse.ReadIn{InHeader: fuse.InHeader{Opcode: 15}}
	allocs := testing.AllocsPerRun(1000, func() { o.countHeader(&in.InHeader) })
	assert.Equal(t, allocs, 0.0)
}

// TestNoXattr writes 4 KiB blocks to a passthrough file: the kernel asks
// the default server for security.capability before every write, and the
// NoXattr server once, after which the connection stops asking. Neither
// sees a WRITE.
func TestNoXattr(t *testing.T) {
	needMount(t)
	const writes = 64
	for _, tc := range []struct {
		name            string
		noXattr         bool
		atLeast, atMost int64
	}{
		{name: "default", atLeast: writes, atMost: 1 << 40},
		{name: "noxattr", noXattr: true, atLeast: 0, atMost: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backing, mnt := backingWith(t, "f", nil)
			p, err := Launcher{}.Start(context.Background(), Spec{Kind: KindLoopback, Backing: backing, NoXattr: tc.noXattr}, mnt)
			assert.NilError(t, err)
			writeErr := writeBlocks(filepath.Join(mnt, "f"), writes, 4096)
			st, err := p.Stop()
			assert.NilError(t, writeErr)
			assert.NilError(t, err)
			assert.Assert(t, is.Len(st.Opens, 1))
			if !st.Opens[0].Passthrough() {
				t.Skipf("no passthrough on this kernel (open reply %+v)", st.Opens[0])
			}
			got := st.Requests["GETXATTR"]
			assert.Check(t, got >= tc.atLeast && got <= tc.atMost, "GETXATTR = %d, want %d…%d; requests %v", got, tc.atLeast, tc.atMost, st.Requests)
			assert.Check(t, is.Equal(st.Requests["WRITE"], int64(0)), "requests %v", st.Requests)
			data, err := os.ReadFile(filepath.Join(backing, "f"))
			assert.NilError(t, err)
			assert.Check(t, is.Len(data, writes*4096), "the writes reached the backing file")
		})
	}
}

// writeBlocks writes n blocks of size bytes to the existing file at path
// with one write(2) each.
func writeBlocks(path string, n, size int) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	buf := make([]byte, size)
	for range n {
		if _, err := unix.Write(fd, buf); err != nil {
			unix.Close(fd)
			return err
		}
	}
	return unix.Close(fd)
}
