package correct

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
)

// OverURing returns uring/transport and the correctness scenarios run
// again over FUSE's io_uring transport, as uring/<id>; the suite runs
// them in the contract's order. Only our own servers speak it, so a
// user's daemon gets none of them.
func OverURing() []scenarios.Scenario {
	out := []scenarios.Scenario{uringTransport}
	for _, s := range []scenarios.Scenario{ptIntegrity, ptSizeAfterWrite, ptMmapShared, ptFsync, ptOpenTwice, ptUnmountOpen, ptAbortOpen, classicBasics, classicKilled} {
		out = append(out, scenarios.OverURing(s))
	}
	return out
}

// What uring/transport moves through the NOOP mount.
const (
	uringReadBytes  = 8 << 20
	uringWriteBytes = 1 << 20
	uringBlock      = 128 << 10
)

// uringTransport establishes the transport from the kernel's side, as
// the passthrough checks establish passthrough from what the daemon's
// threads did: the NOOP server over io_uring answers every READ and
// WRITE (its own count), its ring's completion queue advanced by at least
// that many (the kernel's count, /proc/PID/fdinfo of the ring), and the
// kernel accounted no read(2) or write(2) to any of its threads meanwhile
// (/proc/PID/task/*/io), where over /dev/fuse every request costs one of
// each. The NOOP server does nothing else that reads or writes.
var uringTransport = scenarios.Scenario{
	ID: contract.URingTransport,
	Description: "fusematrix's NOOP server over io_uring: while 8 MiB are read and 1 MiB written through the mount, its ring completes a command per request " +
		"and the kernel accounts no read(2) or write(2) to its threads",
	Needs: scenarios.NeedOwnServer,
	Run: func(ctx context.Context, env *scenarios.Env) results.Result {
		return scenarios.WithURing(ctx, env, uringTransportRun)
	},
}

func uringTransportRun(ctx context.Context, env *scenarios.Env) results.Result {
	mnt := filepath.Join(env.Dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return scenarios.ErrorResult("mount point: %v", err)
	}
	p, err := env.Server.Start(ctx, loopback.Spec{Kind: loopback.KindNoop, Size: uringReadBytes, URing: true}, mnt)
	if err != nil {
		// With the parameter on, a kernel that has the transport offers
		// it: a server that cannot use it is the kernel's failure.
		return results.Result{Status: results.Fail, Reason: fmt.Sprintf("mount over io_uring with enable_uring on: %v", err)}
	}
	res := results.Result{Status: results.Pass, Facts: map[string]string{}}
	var problems []string
	ring, d, err := uringTraffic(p, mnt, &problems)
	stats, serr := p.Stop()
	if serr != nil {
		problems = append(problems, serr.Error())
	}
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	reads, writes := stats.Reads, stats.Writes
	res.Facts["requests_read"] = strconv.FormatInt(reads, 10)
	res.Facts["requests_write"] = strconv.FormatInt(writes, 10)
	res.Facts["ring_completions"] = strconv.FormatInt(ring, 10)
	res.Facts["daemon_read_calls"] = strconv.FormatInt(d.Syscr, 10)
	res.Facts["daemon_write_calls"] = strconv.FormatInt(d.Syscw, 10)
	evidence := fmt.Sprintf("%d READ and %d WRITE requests reached the server, its ring completed %d commands, and the kernel accounted %d read and %d write calls to its threads",
		reads, writes, ring, d.Syscr, d.Syscw)
	switch {
	case reads == 0 || writes == 0:
		problems = append(problems, "the server did not serve the reads and writes: "+evidence)
	case ring < reads+writes:
		problems = append(problems, "fewer ring completions than requests served: "+evidence)
	case d.Syscr != 0 || d.Syscw != 0:
		problems = append(problems, "the server's threads made read or write calls: "+evidence)
	}
	if len(problems) > 0 {
		res.Status, res.Reason = results.Fail, strings.Join(problems, "; ")
		return res
	}
	res.Reason = "served over io_uring: " + evidence
	return res
}

// uringTraffic reads the NOOP file and writes to it through mnt while
// the kernel accounts the server's threads and its ring.
func uringTraffic(p *server.Process, mnt string, problems *[]string) (ring int64, d server.TaskIO, err error) {
	pid := p.Pid()
	ringFd, err := ringOf(pid)
	if err != nil {
		return 0, d, err
	}
	cq0, err := cqTail(pid, ringFd)
	if err != nil {
		return 0, d, err
	}
	before, err := server.Account([]int{pid})
	if err != nil {
		return 0, d, err
	}
	path := filepath.Join(mnt, "zero")
	got, rerr := readN(path, uringReadBytes)
	switch {
	case rerr != nil:
		*problems = append(*problems, fmt.Sprintf("read through the mount: %v", rerr))
	case bytes.Count(got, []byte{0}) != len(got):
		*problems = append(*problems, "the NOOP file read back non-zero bytes")
	}
	if werr := writeN(path, uringWriteBytes); werr != nil {
		*problems = append(*problems, fmt.Sprintf("write through the mount: %v", werr))
	}
	after, err := server.Account([]int{pid})
	if err != nil {
		return 0, d, err
	}
	cq1, err := cqTail(pid, ringFd)
	if err != nil {
		return 0, d, err
	}
	// The tail is a free-running 32-bit counter.
	return int64(cq1 - cq0), server.AccountSince(before, after), nil
}

// writeN writes n zero bytes to path in uringBlock writes.
func writeN(path string, n int) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	buf := make([]byte, uringBlock)
	for done := 0; done < n; done += len(buf) {
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// ringOf finds the io_uring descriptor of process pid.
func ringOf(pid int) (string, error) {
	fds, err := ringFds(pid)
	if err != nil {
		return "", err
	}
	if len(fds) == 0 {
		return "", fmt.Errorf("process %d holds no io_uring descriptor", pid)
	}
	return fds[0], nil
}

// ringFds lists the io_uring descriptors of process pid.
func ringFds(pid int) ([]string, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var fds []string
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && target == "anon_inode:[io_uring]" {
			fds = append(fds, e.Name())
		}
	}
	return fds, nil
}

// cqTail is the tail of the completion queue of ring fd of process pid
// as the kernel shows it (io_uring_show_fdinfo): how many completions it
// has posted.
func cqTail(pid int, fd string) (uint32, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<16))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "CqTail:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				return 0, fmt.Errorf("fdinfo CqTail %q: %w", strings.TrimSpace(v), err)
			}
			return uint32(n), nil
		}
	}
	return 0, errors.New("the ring's fdinfo shows no CqTail")
}
