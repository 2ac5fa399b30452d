package correct

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server"
)

// ForDaemon returns the checks the agent runs against a user's daemon
// (contract.DaemonScenarios): those that need no reference (refree.go),
// every correctness scenario (Run skips those only our server can serve)
// and the daemon's passthrough check.
func ForDaemon() []scenarios.Scenario {
	return append(append(daemonOwn(), All()...), daemonPassthrough, daemonIOUring)
}

// Whether a daemon really passes its files through is established from
// the kernel's side, never from the daemon's word: a file is read through
// the mount, and the kernel's own accounting of the daemon's threads
// (/proc/<pid>/task/*/io and status) says whether they were busy meanwhile.
// A daemon that serves reads itself takes at least one request per
// max_read bytes, and each costs its threads a read(2) of /dev/fuse (or a
// splice) and a wake-up; a passed-through read costs them nothing.
var daemonPassthrough = scenarios.Scenario{
	ID:          contract.DaemonPassthrough,
	Description: "a file read through the daemon's mount costs its threads no read calls or wake-ups: the kernel passes the daemon's files through, as the daemon claims",
	AnyServer:   true,
	OwnFiles:    true,
	Run:         daemonPassthroughRun,
}

const (
	// daemonProbeSize is the file read through the mount: 512 requests of
	// 128 KiB for a daemon that serves them, far more than the handful
	// (LOOKUP, OPEN, GETATTR, FLUSH, RELEASE) any daemon gets for opening
	// and closing it, each of which may cost a Go daemon's threads ten
	// wake-ups.
	daemonProbeSize = 64 << 20
	// daemonProbeMin is the smallest file of a daemon without a backing
	// directory worth reading: 64 requests of 128 KiB (max_read is at most
	// 128 KiB unless raised).
	daemonProbeMin = 8 << 20
)

func daemonPassthroughRun(ctx context.Context, env *scenarios.Env) results.Result {
	sub, ok := env.Subject.(scenarios.DaemonSubject)
	if !ok {
		return results.Result{Status: results.Skip, Reason: "only for a daemon under test"}
	}
	// Run drops NeedPassthrough for checks of any server; this one is
	// about passthrough alone.
	if why := scenarios.PassthroughMissing(env.Capabilities); why != "" {
		return results.Result{Status: results.Skip, Reason: why}
	}
	// A daemon with a backing directory shows a file written there; one
	// without (a NOOP server) shows files of its own, of which the
	// largest at the top of its mount is read, its content unchecked.
	var data []byte
	files := map[string][]byte{}
	if sub.Spec.Backed() {
		data = randomBytes(rand.NewChaCha8([32]byte{'d', 'p'}), daemonProbeSize)
		files["probe"] = data
	}
	r, err := newRig(ctx, env, sub, files)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	path, size := r.m("probe"), int64(len(data))
	if data == nil {
		if path, size, err = scenarios.LargestFile(r.mnt); err != nil || size < daemonProbeMin {
			r.stop()
			return results.Result{Status: results.Skip, Reason: fmt.Sprintf("%s serves no backing directory (%s is not among its arguments), and no file of at least %d MiB at the top of its mount to read instead (%v)",
				sub.Name(), contract.PlaceholderBacking, daemonProbeMin>>20, err)}
		}
		size = min(size, daemonProbeSize)
	}
	requests := size / (128 << 10)
	// The daemon's processes are looked up before and after: one that
	// forks into the background may have a parent still about to exit
	// and a child born since. A process seen only after counts from its
	// birth, which overcounts by its start-up alone.
	daemon := r.proc.(interface{ Pids() []int })
	pids := daemon.Pids()
	if len(pids) == 0 {
		r.failf("no process of the daemon holds /dev/fuse")
		return r.result()
	}
	before, err := server.Account(pids)
	if err != nil {
		r.stop()
		return scenarios.ErrorResult("%v", err)
	}
	got, err := readN(path, size)
	pids = daemon.Pids()
	after, aerr := server.Account(pids)
	switch {
	case err != nil:
		r.failf("read through the mount: %v", err)
	case aerr != nil:
		r.stop()
		return scenarios.ErrorResult("%v", aerr)
	case data != nil && !bytes.Equal(got, data):
		r.failf("read through the mount: %s", compareData(got, data))
	}
	d := server.AccountSince(before, after)
	served := d.Syscr >= requests/2 || d.Switches >= requests/2
	evidence := fmt.Sprintf("while %d MiB of %s were read through the mount (at least %d READ requests for a daemon that serves them), its %d process(es) made %d read calls (%d bytes) and %d context switches",
		size>>20, filepath.Base(path), requests, len(pids), d.Syscr, d.Rchar, d.Switches)
	r.facts["daemon_read_calls"] = strconv.FormatInt(d.Syscr, 10)
	r.facts[contract.FactDaemonReadCallsPerGiB] = strconv.FormatInt(d.Syscr*(1<<30)/max(size, 1), 10)
	r.facts["daemon_read_bytes"] = strconv.FormatInt(d.Rchar, 10)
	r.facts["daemon_context_switches"] = strconv.FormatInt(d.Switches, 10)
	r.facts["passthrough"] = strconv.FormatBool(!served)
	r.facts["claimed"] = strconv.FormatBool(sub.Spec.Passthrough)
	res := r.result()
	switch {
	case res.Status != results.Pass:
		return res
	case sub.Spec.Passthrough && served:
		res.Status = results.Fail
		res.Reason = "claims passthrough, but it served the reads itself: " + evidence
	case sub.Spec.Passthrough:
		res.Reason = "passed through: " + evidence
	default:
		what := "it served the reads itself"
		if !served {
			what = "yet its reads were passed through"
		}
		res.Status = results.Skip
		res.Reason = fmt.Sprintf("the daemon does not claim passthrough (-daemon-passthrough); %s: %s", what, evidence)
	}
	return res
}

// readN reads n bytes of path with 128 KiB reads, as an application would.

func readN(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out bytes.Buffer
	buf := make([]byte, 128<<10)
	for int64(out.Len()) < n {
		m, err := f.Read(buf[:min(int64(len(buf)), n-int64(out.Len()))])
		out.Write(buf[:m])
		if err == io.EOF {
			return out.Bytes(), fmt.Errorf("%s ended after %d of %d bytes", filepath.Base(path), out.Len(), n)
		}
		if err != nil {
			return out.Bytes(), err
		}
	}
	return out.Bytes(), nil
}
