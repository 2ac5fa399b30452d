package correct

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server"
)

// Whether a daemon serves over io_uring is established from the kernel's
// side, as passthrough is: with fuse.enable_uring on, names that do not
// exist are looked up through its mount, each a LOOKUP the daemon must
// answer (a name it never saw cannot be in the kernel's cache), and the
// kernel's completion counts of the daemon's io_uring rings
// (/proc/PID/fdinfo, CqTail) say whether the answers came over a ring.
// The daemon's read(2) calls are recorded beside them: over /dev/fuse
// every request costs one.
var daemonIOUring = scenarios.Scenario{
	ID: contract.DaemonIOUring,
	Description: "with fuse.enable_uring on, lookups through the daemon's mount complete on its io_uring rings: the daemon serves over FUSE's io_uring " +
		"transport, as it claims",
	AnyServer: true,
	OwnFiles:  true,
	Run:       daemonIOUringRun,
}

// daemonURingLookups is how many names are looked up: far more than the
// completions anything else a daemon's rings might do could add up to
// while they are looked up.
const daemonURingLookups = 256

func daemonIOUringRun(ctx context.Context, env *scenarios.Env) results.Result {
	sub, ok := env.Subject.(scenarios.DaemonSubject)
	if !ok {
		return results.Result{Status: results.Skip, Reason: "only for a daemon under test"}
	}
	return scenarios.WithURing(ctx, env, func(ctx context.Context, env *scenarios.Env) results.Result {
		r, err := newRig(ctx, env, sub, nil)
		if err != nil {
			return scenarios.ErrorResult("%v", err)
		}
		daemon := r.proc.(interface{ Pids() []int })
		pids := daemon.Pids()
		if len(pids) == 0 {
			r.failf("no process of the daemon holds /dev/fuse")
			return r.result()
		}
		ring0, err := ringsOf(pids)
		if err != nil {
			r.stop()
			return scenarios.ErrorResult("%v", err)
		}
		before, err := server.Account(pids)
		if err != nil {
			r.stop()
			return scenarios.ErrorResult("%v", err)
		}
		var odd error
		for i := range daemonURingLookups {
			var st unix.Stat_t
			if err := unix.Lstat(r.m(fmt.Sprintf(".fusematrix-uring-%d", i)), &st); err != nil && !errors.Is(err, unix.ENOENT) && odd == nil {
				odd = err
			}
		}
		pids = daemon.Pids()
		after, aerr := server.Account(pids)
		ring1, rerr := ringsOf(pids)
		if aerr != nil || rerr != nil {
			r.stop()
			return scenarios.ErrorResult("%v", errors.Join(aerr, rerr))
		}
		if odd != nil {
			r.failf("lookup of a name that does not exist: %v, not ENOENT", odd)
		}
		d := server.AccountSince(before, after)
		completions := ring1.since(ring0)
		used := completions >= daemonURingLookups
		evidence := fmt.Sprintf("while %d names that do not exist were looked up through the mount, the daemon's %d io_uring ring(s) completed %d commands and its threads made %d read calls",
			daemonURingLookups, len(ring1), completions, d.Syscr)
		r.facts["rings"] = strconv.Itoa(len(ring1))
		r.facts["ring_completions"] = strconv.FormatInt(completions, 10)
		r.facts["daemon_read_calls"] = strconv.FormatInt(d.Syscr, 10)
		r.facts["io_uring"] = strconv.FormatBool(used)
		r.facts["claimed"] = strconv.FormatBool(sub.Spec.URing)
		res := r.result()
		switch {
		case res.Status != results.Pass:
			return res
		case sub.Spec.URing && !used:
			res.Status = results.Fail
			res.Reason = "claims io_uring, but it served the lookups through /dev/fuse: " + evidence
		case sub.Spec.URing:
			res.Reason = "served over io_uring: " + evidence
		default:
			what := "it served through /dev/fuse"
			if used {
				what = "yet it served over io_uring"
			}
			res.Status = results.Skip
			res.Reason = fmt.Sprintf("the daemon does not claim io_uring (uring = yes in its description); %s: %s", what, evidence)
		}
		return res
	})
}

// rings are the completion counts of the io_uring rings of some
// processes, by "pid/fd".
type rings map[string]uint32

// ringsOf reads the completion count of every io_uring ring pids hold.
func ringsOf(pids []int) (rings, error) {
	out := rings{}
	for _, pid := range pids {
		fds, err := ringFds(pid)
		if err != nil {
			continue // a process that ended meanwhile
		}
		for _, fd := range fds {
			if n, err := cqTail(pid, fd); err == nil {
				out[fmt.Sprintf("%d/%s", pid, fd)] = n
			}
		}
	}
	return out, nil
}

// since is how many completions the rings of r posted since before; a
// ring seen only now counts from its creation.
func (r rings) since(before rings) int64 {
	var n int64
	for k, v := range r {
		n += int64(v - before[k])
	}
	return n
}
