package fuseabi

// FUSE over io_uring (include/uapi/linux/fuse.h, protocol 7.42, Linux
// 6.14): a server registers ring entries with IORING_OP_URING_CMD
// commands on /dev/fuse, each carrying a fuse_uring_cmd_req in the
// command area of a 128-byte SQE and an iovec pair (a header buffer of
// struct fuse_uring_req_header, then a payload buffer). The kernel
// completes a registered entry's command when it has a request for it;
// the server answers, and asks for the next one, with COMMIT_AND_FETCH.

// The command ops (enum fuse_uring_cmd), the SQE's cmd_op.
const (
	UringCmdInvalid        = 0
	UringCmdRegister       = 1
	UringCmdCommitAndFetch = 2
)

// Sizes of the two fixed parts of struct fuse_uring_req_header
// (FUSE_URING_IN_OUT_HEADER_SZ, FUSE_URING_OP_IN_OUT_SZ).
const (
	UringInOutHeaderSize = 128
	UringOpInOutSize     = 128
)

// UringIovecs is how many iovecs a REGISTER carries (FUSE_URING_IOV_SEGS
// in fs/fuse/dev_uring.c): the header buffer, then the payload buffer.
const UringIovecs = 2

// UringEntInOut is struct fuse_uring_ent_in_out: the kernel fills it on
// fetch (the request's commit id and payload size), the server on commit
// (the reply's payload size).
type UringEntInOut struct {
	Flags     uint64
	CommitID  uint64
	PayloadSz uint32
	Padding   uint32
	Reserved  uint64
}

// UringReqHeader is struct fuse_uring_req_header, the header buffer of
// one ring entry: InOut holds the fuse_in_header of a request and the
// fuse_out_header of its reply, OpIn the request's per-opcode header.
type UringReqHeader struct {
	InOut        [UringInOutHeaderSize]byte
	OpIn         [UringOpInOutSize]byte
	RingEntInOut UringEntInOut
}

// UringCmdReq is struct fuse_uring_cmd_req, at the start of the SQE's
// 80-byte command area.
type UringCmdReq struct {
	Flags    uint64
	CommitID uint64
	Qid      uint16
	Padding  [6]uint8
}
