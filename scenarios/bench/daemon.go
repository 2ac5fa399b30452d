package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server"
)

// daemonModeName is the mode of a daemon's cells within one run: a guest
// runs one daemon, whose name the result ids carry
// (contract.DaemonMode).
const daemonModeName = "daemon"

// daemonMode measures the user's daemon under test (Env.Subject). It is
// paired with native like the other FUSE modes, and given as a ratio to
// the NOOP server, the ceiling of any daemon on this kernel, and to
// fusematrix's passthrough loopback, what a daemon that passes its files
// through can reach.
func daemonMode() seqMode {
	return seqMode{name: daemonModeName, mount: daemonMount, facts: daemonFacts,
		bases: []string{"noop", "passthrough"}, pairs: []string{"native"}}
}

// daemonSubject is the daemon under test, or why there is none.
func daemonSubject(env *scenarios.Env) (scenarios.DaemonSubject, string) {
	d, ok := env.Subject.(scenarios.DaemonSubject)
	if !ok || d.Spec == nil {
		return d, "only for a daemon under test (fusematrix bench -daemon)"
	}
	return d, ""
}

func daemonFacts(env *scenarios.Env) map[string]string {
	d, _ := daemonSubject(env)
	f := map[string]string{
		"server":              d.Name(),
		"mode":                string(contract.DaemonMode(d.Spec.Name)),
		"claimed_passthrough": strconv.FormatBool(d.Spec.Passthrough),
	}
	if !d.Spec.Backed() {
		f["file"] = "the largest file at the top of the daemon's mount: it serves no backing directory"
	}
	return f
}

// forkWait bounds the wait for a daemon that forks into the background
// to be done forking, before its CPU is watched.
const forkWait = 300 * time.Millisecond

// skipError makes a cell skip with its reason instead of failing.
type skipError struct{ why string }

func (e skipError) Error() string { return e.why }

// daemonMount mounts the daemon over the benchmark's backing directory and
// returns the benchmark file in it. A daemon without a backing directory
// (a NOOP server) is measured on the largest file at the top of its mount,
// which must hold a whole run.
func daemonMount(ctx context.Context, env *scenarios.Env, req mountRequest) (scenarios.Mounted, string, error) {
	sub, why := daemonSubject(env)
	if why != "" {
		return nil, "", skipError{why}
	}
	d, err := server.StartDaemonOn(ctx, sub.Spec, req.backing, req.mnt, req.cpus)
	if err != nil {
		return nil, "", err
	}
	d.WaitForked(forkWait)
	if sub.Spec.Backed() {
		return d, seqFile, nil
	}
	path, size, err := scenarios.LargestFile(req.mnt)
	if err == nil && size < req.size {
		err = fmt.Errorf("the largest holds %d bytes, a run %d", size, req.size)
	}
	if err != nil {
		_, _ = d.Stop()
		return nil, "", skipError{fmt.Sprintf("%s serves no backing directory (%s is not among its arguments), and no file at the top of its mount to measure instead: %v",
			sub.Name(), contract.PlaceholderBacking, err)}
	}
	return d, path[len(req.mnt)+1:], nil
}

// daemonAccount is the kernel's accounting of the threads of d when d is
// a user's daemon, which counts no requests of its own; nil otherwise.
func daemonAccount(d scenarios.Mounted) (map[int]server.TaskIO, error) {
	p, ok := d.(interface{ Pids() []int })
	if !ok {
		return nil, nil
	}
	pids := p.Pids()
	if len(pids) == 0 {
		return nil, errors.New("no process of the daemon holds /dev/fuse")
	}
	return server.Account(pids)
}
