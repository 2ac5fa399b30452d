package correct

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// rig is what one correctness scenario runs on: a backing directory, the
// mount that shows it, the server process behind the mount (the subject's
// daemon), and what went wrong so far.
type rig struct {
	backing, mnt string
	proc         scenarios.Mounted
	problems     []string
	notes        []string
	// untested are parts of the check it could not run: with no problem
	// found, the check is an error, not a pass it did not earn.
	untested []string
	facts    map[string]string
	stats    *wire.Stats
	stopped  bool
	// foreign names a subject that is not ours (a user's daemon), which
	// reports nothing of what reached it; "" for ours.
	foreign string
	// skip, when set and nothing went wrong, is why the check could not
	// run against this server at all.
	skip string
	// leftovers are the processes of a user's daemon still alive after
	// it was stopped ("pid (comm)"), which stop killed.
	leftovers []string
}

// newRig fills a backing directory with files and mounts it with sub.
func newRig(ctx context.Context, env *scenarios.Env, sub scenarios.Subject, files map[string][]byte) (*rig, error) {
	r, err := prepareRig(env, sub, files)
	if err != nil {
		return nil, err
	}
	if err := r.mount(ctx, sub); err != nil {
		return nil, err
	}
	return r, nil
}

// prepareRig makes the scratch directories and fills the backing
// directory with files (a name may hold directories, which are made),
// without mounting: the daemon's own mount check tells its failure to
// mount, which it judges, from a failure of ours.
func prepareRig(env *scenarios.Env, sub scenarios.Subject, files map[string][]byte) (*rig, error) {
	r := &rig{backing: filepath.Join(env.Dir, "backing"), mnt: filepath.Join(env.Dir, "mnt"), facts: map[string]string{}}
	if !sub.Ours() {
		r.foreign = sub.Name()
	}
	for _, d := range []string{r.backing, r.mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, fmt.Errorf("scratch directory: %w", err)
		}
	}
	for name, data := range files {
		if err := os.MkdirAll(filepath.Dir(r.b(name)), 0o755); err != nil {
			return nil, fmt.Errorf("backing directory: %w", err)
		}
		if err := os.WriteFile(r.b(name), data, 0o644); err != nil {
			return nil, fmt.Errorf("backing file: %w", err)
		}
	}
	return r, nil
}

// mount starts sub showing the backing directory at the mount point.
func (r *rig) mount(ctx context.Context, sub scenarios.Subject) error {
	p, err := sub.Mount(ctx, r.mnt, r.backing)
	if err != nil {
		return err
	}
	r.proc = p
	return nil
}

// seededRig is newRig with one file, name, of size random bytes drawn
// from a stream that seed starts: each scenario has a seed of its own, so
// that every run of it writes the same bytes and a failure replays. It
// returns the stream, for the scenario's later data to come from it too,
// and the file's bytes, the scenario's model of the file.
func seededRig(ctx context.Context, env *scenarios.Env, sub scenarios.Subject, seed, name string, size int) (*rig, *rand.ChaCha8, []byte, error) {
	var s [32]byte
	copy(s[:], seed)
	rng := rand.NewChaCha8(s)
	data := randomBytes(rng, size)
	r, err := newRig(ctx, env, sub, map[string][]byte{name: data})
	return r, rng, data, err
}

// b is name in the backing directory, m the same name through the mount.
func (r *rig) b(name string) string { return filepath.Join(r.backing, name) }
func (r *rig) m(name string) string { return filepath.Join(r.mnt, name) }

func (r *rig) failf(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// stop ends the server once and returns what it observed; nil when it
// could not say.
func (r *rig) stop() *wire.Stats {
	if r.stats != nil || r.stopped {
		return r.stats
	}
	r.stopped = true
	st, err := r.proc.Stop()
	if err != nil {
		r.failf("server: %v", err)
	}
	if r.foreign != "" {
		r.reapLeftovers()
	}
	if err != nil || r.foreign != "" {
		return nil // nothing to report: failed, or not ours
	}
	r.stats = &st
	r.facts["read_requests"] = fmt.Sprint(st.Reads)
	r.facts["write_requests"] = fmt.Sprint(st.Writes)
	r.facts["opens"] = fmt.Sprint(len(st.Opens))
	return r.stats
}

// reapLeftovers kills the processes a stopped daemon left behind, so
// that none lingers into the next check, and records them: the daemon's
// unmount check fails for them, the others keep them as a fact.
func (r *rig) reapLeftovers() {
	d, ok := r.proc.(interface {
		Leftovers() []int
		KillLeftovers([]int)
	})
	if !ok {
		return
	}
	pids := d.Leftovers()
	if len(pids) == 0 {
		return
	}
	for _, pid := range pids {
		r.leftovers = append(r.leftovers, fmt.Sprintf("%d (%s)", pid, server.Comm(pid)))
	}
	d.KillLeftovers(pids)
	r.facts["leftover_processes"] = strings.Join(r.leftovers, ", ")
}

// requirePassthrough stops the server and fails the scenario unless every
// open asked for passthrough and no READ or WRITE reached the daemon:
// otherwise the scenario tested classic FUSE under a passthrough name.
func (r *rig) requirePassthrough() {
	if r.foreign != "" {
		// Judged from the kernel's side by the daemon's own check.
		r.stop()
		r.facts["passthrough"] = "not judged here: see the daemon's " + string(contract.DaemonPassthrough) + " check"
		return
	}
	st := r.stop()
	if st == nil {
		r.failf("passthrough unverified: the server reported nothing")
		return
	}
	p := scenarios.OpenProblems(st.Opens, st.Registrations)
	if st.Reads > 0 {
		p = append(p, fmt.Sprintf("%d READ requests (%d bytes) reached the daemon", st.Reads, st.ReadBytes))
	}
	if st.Writes > 0 {
		p = append(p, fmt.Sprintf("%d WRITE requests (%d bytes) reached the daemon", st.Writes, st.WriteBytes))
	}
	r.facts["passthrough"] = fmt.Sprint(len(p) == 0)
	for _, s := range p {
		r.failf("passthrough not in use: %s", s)
	}
}

// result stops the server if the scenario has not, and reports. A result
// that is not a pass carries the server's stderr.
func (r *rig) result() results.Result {
	r.stop()
	if r.foreign != "" {
		// The daemon is the user's to debug: how it ended and what it
		// said go with every result, not only failures.
		if e, ok := r.proc.(interface{ ExitStatus() string }); ok {
			r.facts["daemon_exit"] = e.ExitStatus()
		}
	}
	res := results.Result{Status: results.Pass, Facts: r.facts}
	if r.foreign != "" && len(r.problems) == 0 {
		for _, l := range r.proc.Stderr() {
			res.Log = append(res.Log, "daemon: "+l)
		}
	}
	if len(r.problems) > 0 {
		res.Status = results.Fail
		res.Reason = strings.Join(r.problems, "; ")
		for _, l := range r.proc.Stderr() {
			res.Log = append(res.Log, "server: "+l)
		}
	} else if r.skip != "" {
		res.Status = results.Skip
		res.Reason = r.skip
	} else if len(r.untested) > 0 {
		res.Status = results.Error
		res.Reason = "not every part could run: " + strings.Join(append(slices.Clone(r.untested), r.notes...), "; ")
	} else {
		res.Reason = strings.Join(r.notes, "; ")
	}
	return res
}

// compareFile fails the scenario when path does not hold want.
func (r *rig) compareFile(what, path string, want []byte) {
	got, err := os.ReadFile(path)
	if err != nil {
		r.failf("%s: %v", what, err)
		return
	}
	if p := compareData(got, want); p != "" {
		r.failf("%s: %s", what, p)
	}
}

// compareBoth checks the file through the mount and in the backing
// directory.
func (r *rig) compareBoth(step, name string, want []byte) {
	r.compareFile(step+": read through the mount", r.m(name), want)
	r.flush(name)
	r.compareFile(step+": backing file", r.b(name), want)
}

// flush makes a daemon that is not ours write what the kernel holds of
// name to the backing file, before the scenario looks there: a daemon may
// ask for the writeback cache, under which the kernel keeps written data
// until it writes it back (fsync, close or memory pressure). Passthrough
// writes, and ours, reach the backing file at once.
func (r *rig) flush(name string) {
	if r.foreign == "" {
		return
	}
	fd, err := unix.Open(r.m(name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return // the comparison that follows says what is wrong
	}
	defer unix.Close(fd)
	_ = unix.Fsync(fd)
}

// checkSize compares every size the system reports for name with want:
// fstat of fd (the kernel's inode), stat (attribute cache),
// statx(AT_STATX_FORCE_SYNC) (asks the server) and the backing file.
func (r *rig) checkSize(step string, fd int, name string, want int64) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		r.failf("%s: fstat: %v", step, err)
	} else if st.Size != want {
		r.failf("%s: fstat says size %d, want %d", step, st.Size, want)
	}
	if err := unix.Stat(r.m(name), &st); err != nil {
		r.failf("%s: stat: %v", step, err)
	} else if st.Size != want {
		r.failf("%s: stat says size %d, want %d", step, st.Size, want)
	}
	var sx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, r.m(name), unix.AT_STATX_FORCE_SYNC, unix.STATX_SIZE, &sx); err != nil {
		r.failf("%s: statx: %v", step, err)
	} else if int64(sx.Size) != want {
		r.failf("%s: statx(AT_STATX_FORCE_SYNC), answered by the server, says size %d, want %d", step, sx.Size, want)
	}
	r.flush(name)
	if err := unix.Stat(r.b(name), &st); err != nil {
		r.failf("%s: stat of the backing file: %v", step, err)
	} else if st.Size != want {
		r.failf("%s: the backing file has size %d, want %d", step, st.Size, want)
	}
}

// compareData describes the first difference between got and want.
func compareData(got, want []byte) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("bytes differ at offset %d", i)
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("got %d bytes, want %d", len(got), len(want))
	}
	return ""
}

// randomBytes returns n bytes from rng.
func randomBytes(rng *rand.ChaCha8, n int) []byte {
	b := make([]byte, n)
	_, _ = rng.Read(b)
	return b
}
