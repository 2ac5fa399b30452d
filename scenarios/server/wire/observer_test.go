package wire

import (
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
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

func TestLogSink(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{name: "splice noise dropped", in: "go-fuse: trySplice: short pipe\n", want: nil},
		{name: "other lines kept", in: "go-fuse: panic in FS handler: boom\n", want: []string{"go-fuse: panic in FS handler: boom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			s := logSink{logf: func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) }}
			n, err := io.WriteString(s, tc.in)
			assert.NilError(t, err)
			assert.Equal(t, n, len(tc.in))
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

// eintrFS answers FALLOCATE with EINTR its first n times.
type eintrFS struct {
	fuse.RawFileSystem
	n, calls int
}

func (e *eintrFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	e.calls++
	if e.calls <= e.n {
		return fuse.Status(syscall.EINTR)
	}
	return fuse.OK
}

// A FALLOCATE the backing file system gave up with EINTR is tried again,
// unless the kernel interrupted the request.
func TestFallocateEINTR(t *testing.T) {
	for _, tc := range []struct {
		name        string
		eintrs      int
		interrupted bool
		want        fuse.Status
		calls       int
	}{
		{"answered", 0, false, fuse.OK, 1},
		{"a signal twice", 2, false, fuse.OK, 3},
		{"interrupted", 2, true, fuse.Status(syscall.EINTR), 1},
		{"never", 1000, false, fuse.Status(syscall.EINTR), fallocateTries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := &eintrFS{RawFileSystem: fuse.NewDefaultRawFileSystem(), n: tc.eintrs}
			o := &Observer{RawFileSystem: fs}
			cancel := make(chan struct{})
			if tc.interrupted {
				close(cancel)
			}
			assert.Check(t, is.Equal(o.Fallocate(cancel, &fuse.FallocateIn{}), tc.want))
			assert.Check(t, is.Equal(fs.calls, tc.calls))
		})
	}
}
