package correct

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
)

// ForDaemon returns the checks the agent runs against a user's daemon, in
// the order of contract.DaemonScenarios: every correctness scenario (Run
// skips those only our server can serve) and the daemon's passthrough
// check.
func ForDaemon() []scenarios.Scenario {
	return append(All(), daemonPassthrough)
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
	Kind:        results.Scenario,
	Description: "a file read through the daemon's mount costs its threads no read calls or wake-ups: the kernel passes the daemon's files through, as the daemon claims",
	AnyServer:   true,
	Timeout:     60 * time.Second,
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

// taskIO is what the kernel accounts for a set of threads.
type taskIO struct {
	syscr, rchar, switches int64
}

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
		if path, size, err = largestFile(r.mnt); err != nil || size < daemonProbeMin {
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
	before, err := accountFor(pids)
	if err != nil {
		r.stop()
		return scenarios.ErrorResult("%v", err)
	}
	got, err := readN(path, size)
	pids = daemon.Pids()
	after, aerr := accountFor(pids)
	switch {
	case err != nil:
		r.failf("read through the mount: %v", err)
	case aerr != nil:
		r.stop()
		return scenarios.ErrorResult("%v", aerr)
	case data != nil && !bytes.Equal(got, data):
		r.failf("read through the mount: %s", compareData(got, data))
	}
	var d taskIO
	for pid, a := range after {
		b := before[pid]
		d.syscr += a.syscr - b.syscr
		d.rchar += a.rchar - b.rchar
		d.switches += a.switches - b.switches
	}
	served := d.syscr >= requests/2 || d.switches >= requests/2
	evidence := fmt.Sprintf("while %d MiB of %s were read through the mount (at least %d READ requests for a daemon that serves them), its %d process(es) made %d read calls (%d bytes) and %d context switches",
		size>>20, filepath.Base(path), requests, len(pids), d.syscr, d.rchar, d.switches)
	r.facts["daemon_read_calls"] = strconv.FormatInt(d.syscr, 10)
	r.facts["daemon_read_bytes"] = strconv.FormatInt(d.rchar, 10)
	r.facts["daemon_context_switches"] = strconv.FormatInt(d.switches, 10)
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

// accountFor is the kernel's accounting of every thread of each of pids
// that is still there; none left is an error.
func accountFor(pids []int) (map[int]taskIO, error) {
	out := map[int]taskIO{}
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
		var sum taskIO
		seen := false
		for _, task := range tasks {
			io, err := os.ReadFile(filepath.Join(task, "io"))
			if err != nil {
				if errors.Is(err, os.ErrNotExist) && filepath.Base(task) == strconv.Itoa(pid) {
					if _, serr := os.Stat(task); serr == nil {
						return nil, fmt.Errorf("no %s: the kernel lacks CONFIG_TASK_IO_ACCOUNTING", filepath.Join(task, "io"))
					}
				}
				continue // a thread, or the process, that ended meanwhile
			}
			status, _ := os.ReadFile(filepath.Join(task, "status"))
			sum.syscr += field(io, "syscr:")
			sum.rchar += field(io, "rchar:")
			sum.switches += field(status, "voluntary_ctxt_switches:") + field(status, "nonvoluntary_ctxt_switches:")
			seen = true
		}
		if seen {
			out[pid] = sum
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the daemon's processes %v: gone", pids)
	}
	return out, nil
}

// field is the number after name at the start of a line of text.
func field(text []byte, name string) int64 {
	for line := range strings.Lines(string(text)) {
		if v, ok := strings.CutPrefix(line, name); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
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

// largestFile is the largest regular file at the top of dir.
func largestFile(dir string) (string, int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", 0, err
	}
	var path string
	var size int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Size() <= size {
			continue
		}
		path, size = filepath.Join(dir, e.Name()), info.Size()
	}
	if path == "" {
		return "", 0, fmt.Errorf("%d entries, no regular file", len(entries))
	}
	return path, size, nil
}
