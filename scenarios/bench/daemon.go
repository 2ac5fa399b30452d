package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

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
		f["file"] = "it serves no backing directory: the largest file at the top of its mount, else " + throughFile + " written through the mount after each mount, read once its pages were dropped"
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
// is measured on a file in its mount (unbackedFile).
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
	name, err := unbackedFile(ctx, req)
	if err != nil {
		_, _ = d.Stop()
		return nil, "", err
	}
	return d, name, nil
}

// throughFile is the benchmark file of a daemon without a backing
// directory, made through its mount.
const throughFile = "fusematrix-bench"

// unbackedFile is the file to measure in the mount of a daemon that shows
// no backing directory (an encrypted store, an image, a NOOP server): the
// largest file at the top of its mount when it holds a whole run (a NOOP
// server's file; reads only), else throughFile made through the mount,
// which must then be writable: empty for a write run, or written whole,
// synced and its pages dropped for a read run, so that the run reads
// through the daemon and not the page cache.
func unbackedFile(ctx context.Context, req mountRequest) (string, error) {
	if req.op != "write" {
		if path, size, err := scenarios.LargestFile(req.mnt); err == nil && size >= req.size {
			return path[len(req.mnt)+1:], nil
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(req.mnt, &st); err != nil {
		return "", fmt.Errorf("statfs %s: %w", req.mnt, err)
	}
	if st.Flags&unix.ST_RDONLY != 0 {
		return "", skipError{fmt.Sprintf("it serves no backing directory (%s is not among its arguments), its mount is read-only, and no file at the top of its mount holds a run of %d bytes",
			contract.PlaceholderBacking, req.size)}
	}
	// A daemon that cannot hold a run (an image smaller than it) skips
	// saying so: that is a fact of its arguments, not of the kernel.
	path := filepath.Join(req.mnt, throughFile)
	if req.op == "write" {
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			return "", skipError{fmt.Sprintf("it serves no backing directory, and the benchmark file could not be made through its mount: %v", err)}
		}
		return throughFile, nil
	}
	if err := writePattern(ctx, path, req.size); err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		return "", skipError{fmt.Sprintf("it serves no backing directory, and a file of %d bytes could not be written through its mount: %v", req.size, err)}
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("benchmark file through the mount: %w", err)
	}
	defer f.Close()
	// writePattern closed the file: FUSE wrote its pages through, clean.
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return "", fmt.Errorf("drop the benchmark file's pages: %w", err)
	}
	return throughFile, nil
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
