package fuseabi

import (
	"testing"
	"unsafe"

	"gotest.tools/v3/assert"
)

// The layouts of include/uapi/linux/fuse.h's io_uring structs: sizes and
// offsets as the header defines them (protocol 7.42).
func TestUringLayout(t *testing.T) {
	var h UringReqHeader
	var c UringCmdReq
	var e UringEntInOut
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(struct fuse_uring_ent_in_out)", unsafe.Sizeof(e), 32},
		{"fuse_uring_ent_in_out.commit_id", unsafe.Offsetof(e.CommitID), 8},
		{"fuse_uring_ent_in_out.payload_sz", unsafe.Offsetof(e.PayloadSz), 16},
		{"sizeof(struct fuse_uring_req_header)", unsafe.Sizeof(h), 288},
		{"fuse_uring_req_header.op_in", unsafe.Offsetof(h.OpIn), 128},
		{"fuse_uring_req_header.ring_ent_in_out", unsafe.Offsetof(h.RingEntInOut), 256},
		{"sizeof(struct fuse_uring_cmd_req)", unsafe.Sizeof(c), 24},
		{"fuse_uring_cmd_req.commit_id", unsafe.Offsetof(c.CommitID), 8},
		{"fuse_uring_cmd_req.qid", unsafe.Offsetof(c.Qid), 16},
	} {
		assert.Equal(t, tc.got, tc.want, tc.name)
	}
	assert.Equal(t, UringCmdRegister, 1)
	assert.Equal(t, UringCmdCommitAndFetch, 2)
	assert.Equal(t, OverIOUring, uint64(1)<<41)
}
