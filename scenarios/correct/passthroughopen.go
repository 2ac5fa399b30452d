package correct

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// pt/open-twice checks the kernel's rule for one inode opened twice in
// incompatible ways. The contract, from fs/fuse/iomode.c
// (fuse_file_io_open, fuse_file_cached_io_open,
// fuse_inode_uncached_io_start; the same from 6.9 to the FUSE tree after
// 6.18):
//   - a cached (non-passthrough) open of an inode that has a backing file
//     is refused (EINVAL inside: "Server is expected to use
//     FOPEN_PASSTHROUGH for all opens of an inode which is already open
//     for passthrough");
//   - a passthrough open of an inode open for cached I/O is refused
//     (ETXTBSY inside);
//   - a passthrough open with a backing file other than the one the inode
//     already has is refused (EBUSY inside: "deny conflicting backing
//     files on same fuse inode");
//
// and every refusal reaches userspace as EIO ("Using incorrect open mode
// is a server mistake, which results in user visible failure of open()
// with EIO error"), after which the kernel releases the server's handle
// (fuse_open → fuse_sync_release).
var ptOpenTwice = scenarios.Scenario{
	ID:          contract.PtOpenTwice,
	Description: "one inode opened twice, passthrough and cached or with two backing files: the kernel refuses the second open (EIO) and the first keeps correct data",
	Needs:       ptNeeds,
	AnyServer:   true,
	Run: func(ctx context.Context, env *scenarios.Env) results.Result {
		if env.Subject != nil && !env.Subject.Ours() {
			return openTwiceAny(ctx, env, env.Subject)
		}
		return ptOpenTwiceWith(ctx, env, env.SubjectFor(loopback.KindMixed), env.SubjectFor(loopback.KindBackingPerOpen))
	},
}

// openTwiceAny is pt/open-twice for a server that is not ours, which
// cannot be told to answer two opens in different modes: it opens one file
// twice at once, read-write then read-only and the other way round, as
// applications do. Whatever modes the daemon picks, the kernel must allow
// both opens, and both must see the same data, a write through one
// included. A daemon that answers them in modes the kernel cannot mix (one
// passed through and one not, or two backing files) gets the second open
// refused with EIO: a daemon bug that only shows on kernels with
// passthrough.
func openTwiceAny(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	r, rng, model, err := seededRig(ctx, env, sub, "poa", "file", openTwiceSize)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	for i, order := range []struct {
		name          string
		first, second int
	}{
		{"rw_then_ro", unix.O_RDWR, unix.O_RDONLY},
		{"ro_then_rw", unix.O_RDONLY, unix.O_RDWR},
	} {
		a, err := unix.Open(r.m("file"), order.first|unix.O_CLOEXEC, 0)
		if err != nil {
			r.failf("%s: first open: %v", order.name, err)
			continue
		}
		b, err := unix.Open(r.m("file"), order.second|unix.O_CLOEXEC, 0)
		r.facts[order.name+".second_open"] = scenarios.ErrnoText(errnoOf(err))
		switch {
		case errors.Is(err, unix.EIO):
			r.failf("%s: the kernel refused the second open while the first was open (EIO): the daemon answered the two opens in modes the kernel does not mix on one inode (one passed through and one not, or two backing files)", order.name)
		case err != nil:
			r.failf("%s: second open: %v", order.name, err)
		}
		if err != nil {
			unix.Close(a)
			continue
		}
		w, rd := a, b
		if order.first == unix.O_RDONLY {
			w, rd = b, a
		}
		for _, fd := range []int{a, b} {
			r.compareFd(order.name+": reading through both", fd, model)
		}
		off := len(model)/3 + i*1000
		chunk := randomBytes(rng, 777)
		if n, err := unix.Pwrite(w, chunk, int64(off)); err != nil || n != len(chunk) {
			r.failf("%s: pwrite through the read-write descriptor: wrote %d, %v", order.name, n, err)
		} else {
			copy(model[off:], chunk)
			r.compareFd(order.name+": after a write through the other descriptor, the read-only one", rd, model)
		}
		unix.Close(a)
		unix.Close(b)
	}
	r.compareBoth("after both pairs of opens", "file", model)
	r.requirePassthrough()
	return r.result()
}

const openTwiceSize = 64<<10 + 321

// ptOpenTwiceWith runs the mixed-mode part against the server mixed makes
// and the two-backing-files part against the server two makes.
func ptOpenTwiceWith(ctx context.Context, env *scenarios.Env, mixed, two scenarios.Subject) results.Result {
	a := runPart(ctx, env, "mixed", mixed, openMixed)
	b := runPart(ctx, env, "two-backing", two, openTwoBacking)
	return mergeParts(a, b)
}

// part is the result of one half of a scenario that needs two servers.
type part struct {
	name string
	res  results.Result
}

// runPart runs steps on a rig of its own in a subdirectory of env.Dir.
func runPart(ctx context.Context, env *scenarios.Env, name string, sub scenarios.Subject, steps func(*rig, *rand.ChaCha8) []openStep) part {
	senv := *env
	senv.Dir = filepath.Join(env.Dir, name)
	if err := os.Mkdir(senv.Dir, 0o755); err != nil {
		return part{name, scenarios.ErrorResult("scratch directory: %v", err)}
	}
	r, rng, _, err := seededRig(ctx, &senv, sub, "po"+name[:1], "file", openTwiceSize)
	if err != nil {
		return part{name, scenarios.ErrorResult("%v", err)}
	}
	checkOpenSteps(r, steps(r, rng))
	return part{name, r.result()}
}

// mergeParts reports parts as one result: facts prefixed with the part's
// name, the worst status, and the reasons of the parts that set it.
func mergeParts(parts ...part) results.Result {
	rank := map[results.Status]int{results.Pass: 0, results.Skip: 1, results.Fail: 2, results.Error: 3}
	out := results.Result{Status: results.Pass, Facts: map[string]string{}}
	for _, p := range parts {
		if rank[p.res.Status] > rank[out.Status] {
			out.Status = p.res.Status
		}
		for k, v := range p.res.Facts {
			out.Facts[p.name+"."+k] = v
		}
		out.Log = append(out.Log, p.res.Log...)
	}
	var reasons []string
	for _, p := range parts {
		if p.res.Reason != "" && (p.res.Status == out.Status || out.Status == results.Pass) {
			reasons = append(reasons, p.name+": "+p.res.Reason)
		}
	}
	out.Reason = strings.Join(reasons, "; ")
	return out
}

// openStep is a pair of opens of one inode, the second of which the
// kernel must refuse once the server answered the pair as want says.
type openStep struct {
	name string
	// want says what the server's two replies must be for the step to
	// have exercised its case; it returns "" or why it was not exercised.
	want func(first, second wire.OpenReply) string
	// second is the errno of the second open(2); 0 if it succeeded.
	second unix.Errno
	// ran is false when the step ended before its second open.
	ran bool
}

// openMixed opens "file" for passthrough, then for cached I/O, and the
// other way round. The mixed kind answers read-only opens without
// passthrough and read-write ones with it.
func openMixed(r *rig, rng *rand.ChaCha8) []openStep {
	model, err := os.ReadFile(r.b("file"))
	if err != nil {
		r.failf("read the backing file: %v", err)
		return nil
	}
	ptThenCached := openStep{name: "pt_then_cached", want: wantPassthroughThenCached}
	cachedThenPT := openStep{name: "cached_then_pt", want: wantCachedThenPassthrough}
	steps := []*openStep{&ptThenCached, &cachedThenPT}

	pt, err := unix.Open(r.m("file"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		r.failf("%s: first open (read-write, passthrough): %v", ptThenCached.name, err)
		return deref(steps)
	}
	ptThenCached.second = secondOpen(r, &ptThenCached, unix.O_RDONLY)
	// The file open for passthrough still works, and writes through it
	// reach the backing file.
	chunk := randomBytes(rng, 3000)
	if n, err := unix.Pwrite(pt, chunk, 5000); err != nil || n != len(chunk) {
		r.failf("%s: pwrite through the passthrough descriptor: wrote %d, %v", ptThenCached.name, n, err)
	} else {
		copy(model[5000:], chunk)
	}
	r.compareFd(ptThenCached.name+": read through the passthrough descriptor", pt, model)
	r.compareFile(ptThenCached.name+": backing file", r.b("file"), model)
	unix.Close(pt)

	cached, err := unix.Open(r.m("file"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		r.failf("%s: first open (read-only, cached): %v", cachedThenPT.name, err)
		return deref(steps)
	}
	cachedThenPT.second = secondOpen(r, &cachedThenPT, unix.O_RDWR)
	r.compareFd(cachedThenPT.name+": read through the cached descriptor", cached, model)
	unix.Close(cached)
	return deref(steps)
}

// openTwoBacking opens "file" twice for passthrough; the per-open kind
// answers the second open with a backing file of its own (a copy).
func openTwoBacking(r *rig, rng *rand.ChaCha8) []openStep {
	model, err := os.ReadFile(r.b("file"))
	if err != nil {
		r.failf("read the backing file: %v", err)
		return nil
	}
	step := openStep{name: "second_backing", want: wantTwoBackingFiles}
	fd, err := unix.Open(r.m("file"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		r.failf("%s: first open: %v", step.name, err)
		return []openStep{step}
	}
	defer unix.Close(fd)
	step.second = secondOpen(r, &step, unix.O_RDWR)
	chunk := randomBytes(rng, 4096)
	if n, err := unix.Pwrite(fd, chunk, 10000); err != nil || n != len(chunk) {
		r.failf("%s: pwrite through the first descriptor: wrote %d, %v", step.name, n, err)
	} else {
		copy(model[10000:], chunk)
	}
	r.compareFd(step.name+": read through the first descriptor", fd, model)
	r.compareFile(step.name+": backing file", r.b("file"), model)
	return []openStep{step}
}

// secondOpen opens the file again with flags while the first open is
// live, records the kernel's answer as a fact, and closes what it got.
func secondOpen(r *rig, s *openStep, flags int) unix.Errno {
	s.ran = true
	fd, err := unix.Open(r.m("file"), flags|unix.O_CLOEXEC, 0)
	var errno unix.Errno
	if err != nil && !errors.As(err, &errno) {
		r.failf("%s: second open: %v", s.name, err)
	}
	r.facts[s.name+".second_open"] = scenarios.ErrnoText(errno)
	if err == nil {
		unix.Close(fd)
	}
	return errno
}

func deref(steps []*openStep) []openStep {
	out := make([]openStep, len(steps))
	for i, s := range steps {
		out[i] = *s
	}
	return out
}

// checkOpenSteps stops the server and judges each step by what the server
// answered: a step the server did not make incompatible proves nothing,
// and one it did must have been refused.
func checkOpenSteps(r *rig, steps []openStep) {
	st := r.stop()
	if st == nil {
		r.failf("the server reported nothing: which opens were mixed is unknown")
		return
	}
	opens := st.Opens
	for _, s := range steps {
		if !s.ran {
			continue
		}
		if len(opens) < 2 {
			r.failf("%s: the server saw %d OPENs for this step's two opens", s.name, len(opens))
			return
		}
		first, second := opens[0], opens[1]
		opens = opens[2:]
		r.facts[s.name+".replies"] = describeReply(first) + ", then " + describeReply(second)
		if why := s.want(first, second); why != "" {
			r.failf("%s: not exercised: %s", s.name, why)
			continue
		}
		switch s.second {
		case 0:
			r.failf("%s: the kernel accepted the second open (%s after %s); fs/fuse/iomode.c refuses it", s.name, describeReply(second), describeReply(first))
		case unix.EIO:
		default:
			r.notes = append(r.notes, fmt.Sprintf("%s: refused with %s where fs/fuse/iomode.c (6.9 … 6.18) answers EIO", s.name, scenarios.ErrnoText(s.second)))
		}
	}
	if len(opens) > 0 {
		r.failf("the server saw %d OPENs more than the scenario made", len(opens))
	}
}

func describeReply(o wire.OpenReply) string {
	switch {
	case !o.Status.Ok():
		return fmt.Sprintf("error %v", o.Status)
	case o.Passthrough():
		return fmt.Sprintf("passthrough (backing id %d)", o.BackingID)
	case o.OpenFlags&fuseabi.FOpenPassthrough != 0:
		return "FOPEN_PASSTHROUGH without a backing id"
	}
	return "cached"
}

func wantPassthroughThenCached(first, second wire.OpenReply) string {
	if !first.Passthrough() || !second.Status.Ok() || second.OpenFlags&fuseabi.FOpenPassthrough != 0 {
		return "the server answered " + describeReply(first) + ", then " + describeReply(second) + ", not passthrough then cached"
	}
	return ""
}

func wantCachedThenPassthrough(first, second wire.OpenReply) string {
	if !first.Status.Ok() || first.OpenFlags&fuseabi.FOpenPassthrough != 0 || !second.Passthrough() {
		return "the server answered " + describeReply(first) + ", then " + describeReply(second) + ", not cached then passthrough"
	}
	return ""
}

func wantTwoBackingFiles(first, second wire.OpenReply) string {
	if !first.Passthrough() || !second.Passthrough() || first.BackingID == second.BackingID {
		return "the server answered " + describeReply(first) + ", then " + describeReply(second) + ", not two different backing files"
	}
	return ""
}

// compareFd fails the scenario unless pread of fd from offset 0 returns
// want. Unlike compareFile it opens nothing, which would be one more OPEN
// for the server.
func (r *rig) compareFd(what string, fd int, want []byte) {
	got := make([]byte, 0, len(want))
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Pread(fd, buf, int64(len(got)))
		if err != nil {
			r.failf("%s: pread at %d: %v", what, len(got), err)
			return
		}
		if n == 0 {
			break
		}
		got = append(got, buf[:n]...)
	}
	if p := compareData(got, want); p != "" {
		r.failf("%s: %s", what, p)
	}
}
