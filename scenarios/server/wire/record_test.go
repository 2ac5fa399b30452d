package wire

import (
	"encoding/binary"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// fakeRequest lays out a request as the kernel writes it to /dev/fuse:
// fuse_in_header, then body (little-endian 32-bit words), then payload
// bytes, with the header's len covering all of it.
func fakeRequest(op uint32, body []uint32, payload int) []byte {
	b := make([]byte, inHeaderSize+4*len(body)+payload)
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(len(b)))
	le.PutUint32(b[4:], op)
	le.PutUint64(b[8:], 7)  // unique
	le.PutUint64(b[16:], 9) // nodeid
	for i, w := range body {
		le.PutUint32(b[inHeaderSize+4*i:], w)
	}
	return b
}

// readIn is fuse_read_in / fuse_write_in as 32-bit words: fh (2), offset
// (2), size, read_flags or write_flags, lock_owner (2), flags, padding.
func readIn(size, flags uint32) []uint32 { return []uint32{1, 0, 0, 0, size, flags, 0, 0, 0x8000, 0} }

// TestRecorder feeds a Recorder the requests of a small workload, as raw
// bytes, and checks what it decodes of each.
func TestRecorder(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want Request
	}{
		{name: "read", in: fakeRequest(opRead, readIn(131072, 0), 0),
			want: Request{Node: 9, Op: opRead, Len: 80, Size: 131072}},
		{name: "write with its data", in: fakeRequest(opWrite, readIn(4096, 1), 4096),
			want: Request{Node: 9, Op: opWrite, Len: 80 + 4096, Size: 4096, Flags: 1}},
		{name: "readdirplus", in: fakeRequest(opReaddirplus, readIn(4096, 0), 0),
			want: Request{Node: 9, Op: opReaddirplus, Len: 80, Size: 4096}},
		{name: "readdir", in: fakeRequest(opReaddir, readIn(65536, 0), 0),
			want: Request{Node: 9, Op: opReaddir, Len: 80, Size: 65536}},
		{name: "open", in: fakeRequest(opOpen, []uint32{0x8002, 0}, 0),
			want: Request{Node: 9, Op: opOpen, Len: 48, Flags: 0x8002}},
		{name: "opendir", in: fakeRequest(opOpendir, []uint32{0x18800, 0}, 0),
			want: Request{Node: 9, Op: opOpendir, Len: 48, Flags: 0x18800}},
		{name: "create", in: fakeRequest(opCreate, []uint32{0x8241, 0o644, 0o22, 0}, 8),
			want: Request{Node: 9, Op: opCreate, Len: 64, Flags: 0x8241}},
		{name: "getattr with fh", in: fakeRequest(opGetattr, []uint32{1, 0, 3, 0}, 0),
			want: Request{Node: 9, Op: opGetattr, Len: 56, Flags: 1}},
		{name: "forget", in: fakeRequest(opForget, []uint32{1, 0}, 0),
			want: Request{Node: 9, Op: opForget, Len: 48, Nodes: 1}},
		{name: "batch forget", in: fakeRequest(opBatchForget, []uint32{3, 0}, 3*16),
			want: Request{Node: 9, Op: opBatchForget, Len: 96, Nodes: 3}},
		{name: "interrupt", in: fakeRequest(opInterrupt, []uint32{5, 0}, 0),
			want: Request{Node: 9, Op: opInterrupt, Len: 48}},
		{name: "notify reply", in: fakeRequest(41, []uint32{0, 0, 0, 0, 0, 0, 4096, 0, 0, 0}, 4096),
			want: Request{Node: 9, Op: 41, Len: 80 + 4096}},
		{name: "read cut short", in: fakeRequest(opRead, []uint32{1, 0, 0}, 0),
			want: Request{Node: 9, Op: opRead, Len: 52}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Recorder
			r.Record(tc.in)
			assert.DeepEqual(t, r.Since(0), []Request{tc.want})
		})
	}
}

// TestRecorderStream records a stream in order, marks where a phase
// begins, ignores what is shorter than a header, and stops at its limit.
func TestRecorderStream(t *testing.T) {
	var r Recorder
	r.Record(fakeRequest(opOpen, []uint32{0x8000, 0}, 0))
	mark := r.Len()
	r.Record(fakeRequest(opWrite, readIn(4096, 0), 4096))
	r.Record([]byte{1, 2, 3})
	r.Record(fakeRequest(opRelease, []uint32{1, 0, 0, 0, 0, 0}, 0))
	assert.Check(t, is.Equal(r.Len(), 3))
	got := r.Since(mark)
	assert.Check(t, is.Len(got, 2))
	assert.Check(t, is.Equal(got[0].Op, uint32(opWrite)))
	assert.Check(t, is.Equal(got[0].Node, uint64(9)))
	assert.Check(t, is.Equal(got[1].Op, uint32(opRelease)))
	assert.Check(t, is.Len(r.Since(99), 0), "a mark past the end")
	assert.Check(t, is.Equal(Unreleased(r.Since(0)), 0))
	assert.Check(t, is.Equal(r.Unreleased(), 0))
	assert.Check(t, is.Equal(Unreleased(r.Since(0)[:2]), 1))

	var full Recorder
	req := fakeRequest(opGetattr, []uint32{0, 0, 0, 0}, 0)
	for range recordLimit + 5 {
		full.Record(req)
	}
	assert.Check(t, is.Equal(full.Len(), recordLimit))
	assert.Check(t, is.Equal(full.Dropped(), 5))
}
