package correct

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// pt/close-backing closes the backing id while the file opened with it
// stays open. In fs/fuse/passthrough.c (6.9 … 6.12; fs/fuse/backing.c in
// the FUSE tree after 6.18) FUSE_DEV_IOC_BACKING_CLOSE only removes the id
// from the connection's table (fuse_backing_close): the open file keeps
// its own backing file (ff->passthrough, from backing_file_open in
// fuse_passthrough_open) and the inode keeps a reference to the
// fuse_backing (fi->fb, set by fuse_inode_uncached_io_start), so read,
// write and mmap of the open file go on. A second close of the same id
// finds nothing: ENOENT.
//
// The scenario asks the server to close the id (a GETXATTR of
// loopback.CloseBackingXattr, sent after the kernel accepted the OPEN reply)
// and then checks with the kernel that it really did: it takes a copy of
// the server's /dev/fuse descriptor (pidfd_getfd) and closes the same id
// itself, which must fail with ENOENT.
var ptCloseBacking = scenarios.Scenario{
	ID:          contract.PtCloseBacking,
	Description: "the server closes the backing id while the passthrough file stays open: read, write and mmap of the open file go on and stay correct",
	Needs:       ptNeeds,
	Run:         against(loopback.KindCloseBacking, ptCloseBackingWith),
}

func ptCloseBackingWith(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	r, rng, model, err := seededRig(ctx, env, sub, "pc", "map", mmapSize)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	closed, err := closeBackingSteps(r, rng, model)
	if err != nil {
		r.failf("%v", err)
	}
	r.requirePassthrough()
	if st := r.stats; st != nil && len(st.Opens) > 0 && len(closed) > 0 {
		// The id the server said it closed is the one its OPEN reply
		// carried, as the Observer recorded it.
		if _, ok := closed[st.Opens[0].BackingID]; !ok {
			r.failf("the server closed backing ids %s, its OPEN reply carried %d", idList(closed), st.Opens[0].BackingID)
		}
	}
	return r.result()
}

// closeBackingSteps opens "map", has the server close its backing id,
// checks with the kernel, and does I/O on the open file. It returns the
// ids the server said it closed.
func closeBackingSteps(r *rig, rng *rand.ChaCha8, model []byte) (map[int32]syscall.Errno, error) {
	fd, err := unix.Open(r.m("map"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	closedFd := false
	defer func() {
		if !closedFd {
			unix.Close(fd)
		}
	}()
	// The OPEN reply has been accepted; now the server drops the id.
	buf := make([]byte, 256)
	n, err := unix.Getxattr(r.m("map"), loopback.CloseBackingXattr, buf)
	if err != nil {
		return nil, fmt.Errorf("asking the server to close the backing id (getxattr %s): %w", loopback.CloseBackingXattr, err)
	}
	closed, err := loopback.ParseClosedBacking(string(buf[:n]))
	if err != nil {
		return nil, err
	}
	if len(closed) == 0 {
		return nil, errors.New("the server had no backing id to close")
	}
	var said []string
	for _, id := range sortedIDs(closed) {
		said = append(said, fmt.Sprintf("%d: %s", id, scenarios.ErrnoText(closed[id])))
		if closed[id] != 0 {
			r.failf("the server's BACKING_CLOSE of id %d failed: %s", id, scenarios.ErrnoText(closed[id]))
		}
	}
	r.facts["backing_close"] = strings.Join(said, ", ")

	// Whether the id is gone is the kernel's to say.
	again, err := closeAgain(r.proc.Pid(), sortedIDs(closed))
	if err != nil {
		r.failf("cannot check the close with the kernel: %v", err)
	} else {
		var seen []string
		for _, id := range sortedIDs(closed) {
			seen = append(seen, fmt.Sprintf("%d: %s", id, scenarios.ErrnoText(again[id])))
			switch again[id] {
			case unix.ENOENT:
			case 0:
				r.failf("the server said it closed backing id %d, but the kernel still had it: a second BACKING_CLOSE of it succeeded", id)
			default:
				r.failf("a second BACKING_CLOSE of id %d: %s, want ENOENT", id, scenarios.ErrnoText(again[id]))
			}
		}
		r.facts["second_backing_close"] = strings.Join(seen, ", ")
	}

	// The open file goes on: read, write, mmap.
	r.compareFd("after the close, read(2) of the open file", fd, model)
	chunk := randomBytes(rng, 6000)
	if n, err := unix.Pwrite(fd, chunk, 20000); err != nil || n != len(chunk) {
		r.failf("after the close, pwrite to the open file: wrote %d, %v", n, err)
	} else {
		copy(model[20000:], chunk)
	}
	r.compareFile("after the close and a pwrite, the backing file", r.b("map"), model)
	if err := mmapChecks(r, rng, fd, "map", model); err != nil {
		r.failf("after the close: %v", err)
	}

	// While the file is open the inode keeps the closed backing file, so
	// the kernel can take no other for it: a new open with a fresh id is
	// refused (EBUSY inside, EIO outside). Recorded, not judged.
	if fd2, err := unix.Open(r.m("map"), unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
		r.facts["reopen_while_open"] = "ok"
		unix.Close(fd2)
	} else {
		r.facts["reopen_while_open"] = scenarios.ErrnoText(errnoOf(err))
	}
	closedFd = true
	if err := unix.Close(fd); err != nil {
		r.failf("close: %v", err)
	}
	// Once the last file is closed the inode lets go of the backing file
	// and opens again, with a new id.
	r.compareFile("after the last close, a new open", r.m("map"), model)
	return closed, nil
}

// closeAgain issues FUSE_DEV_IOC_BACKING_CLOSE for ids on a copy of the
// /dev/fuse descriptor of the server process pid and returns each errno.
func closeAgain(pid int, ids []int32) (map[int32]syscall.Errno, error) {
	devFd, err := devFuseFd(pid)
	if err != nil {
		return nil, err
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open(%d): %w", pid, err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, devFd, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_getfd of the server's /dev/fuse (fd %d): %w", devFd, err)
	}
	defer unix.Close(fd)
	out := map[int32]syscall.Errno{}
	for _, id := range ids {
		out[id] = errnoOf(unix.IoctlSetPointerInt(fd, fuseabi.DevIocBackingClose, int(id)))
	}
	return out, nil
}

// devFuseFd finds the descriptor of /dev/fuse in process pid.
func devFuseFd(pid int) (int, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		if t, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && t == wire.DevFuse {
			var fd int
			if _, err := fmt.Sscan(e.Name(), &fd); err == nil {
				return fd, nil
			}
		}
	}
	return 0, fmt.Errorf("process %d has no %s open", pid, wire.DevFuse)
}

// errnoOf is err's errno; 0 for nil, EIO for an error without one.
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EIO
}

func sortedIDs(m map[int32]syscall.Errno) []int32 {
	ids := make([]int32, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func idList(m map[int32]syscall.Errno) string {
	var s []string
	for _, id := range sortedIDs(m) {
		s = append(s, fmt.Sprint(id))
	}
	return strings.Join(s, ", ")
}
