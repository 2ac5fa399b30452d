package uring

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"

	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
)

// The layouts of include/uapi/linux/io_uring.h that the ring relies on.
func TestLayout(t *testing.T) {
	var s SQE
	var p Params
	var c CQE
	var a getEventsArg
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(struct io_uring_sqe)", unsafe.Sizeof(s), SQESize},
		{"io_uring_sqe.fd", unsafe.Offsetof(s.Fd), 4},
		{"io_uring_sqe.cmd_op", unsafe.Offsetof(s.CmdOp), 8},
		{"io_uring_sqe.addr", unsafe.Offsetof(s.Addr), 16},
		{"io_uring_sqe.len", unsafe.Offsetof(s.Len), 24},
		{"io_uring_sqe.uring_cmd_flags", unsafe.Offsetof(s.CmdFlags), 28},
		{"io_uring_sqe.user_data", unsafe.Offsetof(s.UserData), 32},
		{"io_uring_sqe.buf_index", unsafe.Offsetof(s.BufIndex), 40},
		{"io_uring_sqe.cmd", unsafe.Offsetof(s.Cmd), CmdOffset},
		{"sizeof(struct io_uring_params)", unsafe.Sizeof(p), paramsSize},
		{"io_uring_params.sq_off", unsafe.Offsetof(p.SqOff), 40},
		{"io_uring_params.cq_off", unsafe.Offsetof(p.CqOff), 80},
		{"sizeof(struct io_uring_cqe)", unsafe.Sizeof(c), cqeSize},
		{"io_uring_cqe.res", unsafe.Offsetof(c.Res), 8},
		{"sizeof(struct io_uring_getevents_arg)", unsafe.Sizeof(a), getArgsSize},
		{"command area of a 128-byte SQE", CmdArea128, 80},
	} {
		assert.Equal(t, tc.got, tc.want, tc.name)
	}
	assert.Equal(t, SetupSQE128, 1<<10)
	assert.Equal(t, OpURingCmd, 46)
}

// The SQEs of REGISTER and COMMIT_AND_FETCH as fs/fuse/dev_uring.c reads
// them: cmd_op, the iovec pair at addr with len 2, and struct
// fuse_uring_cmd_req at the command area.
func TestCommands(t *testing.T) {
	e, err := NewEntry(HeaderSize, 8192)
	assert.NilError(t, err)
	defer e.Free()
	sqe, cmd := e.RegisterSQE(7, 3, 42)
	assert.Equal(t, sqe.Opcode, uint8(OpURingCmd))
	assert.Equal(t, sqe.Fd, int32(7))
	assert.Equal(t, sqe.CmdOp, uint32(fuseabi.UringCmdRegister))
	assert.Equal(t, sqe.Len, uint32(2))
	assert.Equal(t, sqe.UserData, uint64(42))
	assert.Equal(t, sqe.Addr, uint64(uintptr(unsafe.Pointer(&e.iov[0]))))
	iov := *e.iov
	assert.Equal(t, iov[0].Len, uint64(288))
	assert.Equal(t, iov[0].Base, (*byte)(unsafe.Pointer(e.Header)))
	assert.Equal(t, iov[1].Len, uint64(8192))
	assert.Equal(t, iov[1].Base, &e.Payload[0])
	assert.Equal(t, len(cmd), 24)
	assert.Equal(t, binary.LittleEndian.Uint16(cmd[16:]), uint16(3), "qid")
	assert.Equal(t, binary.LittleEndian.Uint64(cmd[8:]), uint64(0), "commit_id")

	sqe, cmd = e.CommitSQE(7, 1, 0x1234, 5)
	assert.Equal(t, sqe.CmdOp, uint32(fuseabi.UringCmdCommitAndFetch))
	assert.Equal(t, sqe.Addr, uint64(0))
	assert.Equal(t, binary.LittleEndian.Uint64(cmd[8:]), uint64(0x1234), "commit_id")
	assert.Equal(t, binary.LittleEndian.Uint16(cmd[16:]), uint16(1), "qid")
}

// A ring of this machine's kernel: a NOP comes back with its user data,
// and a wait with nothing queued ends at its time limit.
func TestRing(t *testing.T) {
	for _, sqe128 := range []bool{false, true} {
		r, err := Setup(4, sqe128)
		var errno syscall.Errno
		if errors.As(err, &errno) && (errno == unix.ENOSYS || errno == unix.EPERM) {
			t.Skipf("this kernel refuses io_uring: %v", err)
		}
		assert.NilError(t, err)
		for i := range 6 { // more than the ring holds: the tail wraps
			assert.NilError(t, r.Submit(SQE{Opcode: 0, UserData: uint64(100 + i)}, nil))
			c, err := r.Wait(time.Second)
			assert.NilError(t, err)
			assert.Equal(t, c.UserData, uint64(100+i))
			assert.Equal(t, c.Res, int32(0))
		}
		_, err = r.Wait(10 * time.Millisecond)
		assert.ErrorIs(t, err, ErrTimeout)
		assert.ErrorContains(t, r.Submit(SQE{}, make([]byte, 81)), "does not fit")
		assert.NilError(t, r.Close())
	}
}

func TestPossibleCPUs(t *testing.T) {
	for _, tc := range []struct {
		list string
		want int
		err  string
	}{
		{list: "0\n", want: 1},
		{list: "0-1\n", want: 2},
		{list: "0-3,8,10-11\n", want: 7},
		{list: "3-1", err: "bad range"},
		{list: "x", err: "invalid syntax"},
		{list: "0-99999", err: "CPUs"},
	} {
		p := filepath.Join(t.TempDir(), "possible")
		assert.NilError(t, os.WriteFile(p, []byte(tc.list), 0o644))
		n, err := PossibleCPUs(p)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, tc.list)
			continue
		}
		assert.NilError(t, err)
		assert.Equal(t, n, tc.want, tc.list)
	}
}
