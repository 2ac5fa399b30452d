package probe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

var passthroughIoctlProbe = scenarios.Scenario{
	ID:          contract.PassthroughIoctl,
	Description: "registers backing files with FUSE_DEV_IOC_BACKING_OPEN/CLOSE, correctly and in each wrong way, and records the kernel's answers",
	Run: func(ctx context.Context, env *scenarios.Env) results.Result {
		return passthroughIoctlWith(ctx, env, noopConn)
	},
}

// connMount mounts at mnt a file system serving the one file
// wire.NoopName: a connection whose /dev/fuse descriptor the probe
// issues ioctls on.
type connMount func(ctx context.Context, mnt string, o wire.Options) (*wire.Mount, error)

func noopConn(ctx context.Context, mnt string, o wire.Options) (*wire.Mount, error) {
	return wire.Noop(ctx, mnt, 1, o)
}

// ioctlRig is what every case of passthrough-ioctl works with.
type ioctlRig struct {
	env   *scenarios.Env
	mount connMount
	// pt asked for passthrough; its cases run only once BACKING_OPEN of
	// file worked on it.
	pt *wire.Mount
	// file is a regular file on tmpfs, dir a directory next to it.
	file, dir string
	// problems are things that went wrong around the kernel's answers
	// (an id that would not close, an unmount that failed).
	problems []string
}

// ioctlCase measures one fact on a rig whose pt connection negotiated
// passthrough. An error means the case could not be set up.
type ioctlCase struct {
	fact string
	run  func(ctx context.Context, r *ioctlRig) (string, error)
}

// ioctlCases are the misuses whose errnos passthrough-ioctl records, and
// the writeback-cache combination. Each value is "ok" or the errno name
// unless the case says otherwise.
var ioctlCases = []ioctlCase{
	{"bad_fd", func(ctx context.Context, r *ioctlRig) (string, error) {
		return r.tryOpen(r.pt, fuseabi.BackingMap{Fd: -1}), nil
	}},
	{"flags_nonzero", func(ctx context.Context, r *ioctlRig) (string, error) {
		return r.withFd(r.file, unix.O_RDONLY, func(fd int32) string {
			return r.tryOpen(r.pt, fuseabi.BackingMap{Fd: fd, Flags: 1})
		})
	}},
	{"padding_nonzero", func(ctx context.Context, r *ioctlRig) (string, error) {
		return r.withFd(r.file, unix.O_RDONLY, func(fd int32) string {
			return r.tryOpen(r.pt, fuseabi.BackingMap{Fd: fd, Padding: 1})
		})
	}},
	{"directory", func(ctx context.Context, r *ioctlRig) (string, error) {
		return r.withFd(r.dir, unix.O_RDONLY|unix.O_DIRECTORY, func(fd int32) string {
			return r.tryOpen(r.pt, fuseabi.BackingMap{Fd: fd})
		})
	}},
	{"o_path", func(ctx context.Context, r *ioctlRig) (string, error) {
		return r.withFd(r.file, unix.O_PATH, func(fd int32) string {
			return r.tryOpen(r.pt, fuseabi.BackingMap{Fd: fd})
		})
	}},
	{"stacked_too_deep", stackedTooDeep},
	{"close_unknown", func(ctx context.Context, r *ioctlRig) (string, error) {
		// Ids are handed out from 1 upwards; this one was never returned.
		return errnoName(r.pt.BackingClose(math.MaxInt32)), nil
	}},
	{"close_zero", func(ctx context.Context, r *ioctlRig) (string, error) {
		return errnoName(r.pt.BackingClose(0)), nil
	}},
	{"writeback_cache", writebackWithPassthrough},
}

// passthroughIoctlWith runs passthrough-ioctl on connections mount makes,
// so that tests can show it failing against servers that refuse
// passthrough.
func passthroughIoctlWith(ctx context.Context, env *scenarios.Env, mount connMount) results.Result {
	if err := wire.CanMount(); err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	r := &ioctlRig{env: env, mount: mount, file: filepath.Join(env.Dir, "backing"), dir: filepath.Join(env.Dir, "dir")}
	if err := os.WriteFile(r.file, []byte("fusematrix backing file\n"), 0o644); err != nil {
		return scenarios.ErrorResult("backing file: %v", err)
	}
	if err := os.Mkdir(r.dir, 0o755); err != nil {
		return scenarios.ErrorResult("backing directory: %v", err)
	}
	// Unmount failures and ids that would not close are known only now.
	return withCleanup(r.run(ctx), r.problems)
}

// withCleanup adds what went wrong in the probe's own clean-up (an
// unmount, a BACKING_CLOSE of an id BACKING_OPEN gave) to res. Either is
// the kernel refusing what it must allow, so a probe that passed or
// skipped fails: its facts stand, but the kernel did not behave.
func withCleanup(res results.Result, problems []string) results.Result {
	if len(problems) == 0 {
		return res
	}
	if res.Status == results.Pass || res.Status == results.Skip {
		res.Status = results.Fail
		res.Reason = joinReason("clean-up failed", []string{joinReason(res.Reason, problems)})
		return res
	}
	res.Reason = joinReason(res.Reason, problems)
	return res
}

func (r *ioctlRig) run(ctx context.Context) results.Result {
	res := results.Result{Status: results.Pass, Facts: map[string]string{}}
	// Every kernel can say what BACKING_OPEN does on a connection without
	// passthrough, including one that has never heard of the ioctl.
	v, err := notNegotiated(ctx, r)
	if err != nil {
		return scenarios.ErrorResult("not_negotiated: %v", err)
	}
	res.Facts["not_negotiated"] = v

	if why := ioctlMissing(r.env.Capabilities); why != "" {
		res.Status, res.Reason = results.Skip, why
		return res
	}
	pt, err := r.mountConn(ctx, "pt", wire.Options{Passthrough: true, Name: "fusematrix-pt"})
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	r.pt = pt
	defer r.unmount(pt)

	fail, err := backingOpenClose(r, res.Facts)
	if err != nil {
		return scenarios.ErrorResult("backing_open: %v", err)
	}
	if fail != "" {
		// Every misuse would meet the same refusal first and say nothing
		// about the check behind it.
		res.Status, res.Reason = results.Fail, fail
		return res
	}
	var broken []string
	for _, c := range ioctlCases {
		v, err := c.run(ctx, r)
		if err != nil {
			broken = append(broken, fmt.Sprintf("%s: %v", c.fact, err))
			continue
		}
		res.Facts[c.fact] = v
	}
	if len(broken) > 0 {
		res.Status, res.Reason = results.Error, strings.Join(broken, "; ")
	}
	return res
}

// ioctlMissing says why the upstream ioctls cannot be expected to work,
// or "".
func ioctlMissing(c *results.Capabilities) string {
	if c != nil && !c.Passthrough && c.PassthroughABI == fuseabi.ABIAndroid {
		return fmt.Sprintf("kernel offers Android's passthrough ABI (protocol %s), whose ioctl and open reply differ from upstream's; not probed", scenarios.Protocol(c))
	}
	return scenarios.PassthroughMissing(c)
}

// backingOpenClose registers the regular file on the passthrough
// connection and releases it again, recording negotiated, backing_open,
// backing_id and backing_close. It returns why the probe fails, or "",
// and an error when it could not ask.
func backingOpenClose(r *ioctlRig, facts map[string]string) (string, error) {
	fd, err := unix.Open(r.file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", r.file, err)
	}
	id, errno := r.pt.BackingOpen(fuseabi.BackingMap{Fd: int32(fd)})
	unix.Close(fd)
	facts["backing_open"] = errnoName(errno)
	// fuse_backing_open checks the connection first: root passes the
	// CAP_SYS_ADMIN half of it, so EPERM means passthrough was not
	// accepted in INIT, and any later refusal means it was.
	facts["negotiated"] = "yes"
	if errno != 0 {
		if errno == unix.EPERM || errno == unix.ENOTTY || errno == unix.EOPNOTSUPP {
			facts["negotiated"] = "no"
		}
		return "BACKING_OPEN of a regular tmpfs file failed as root: " + scenarios.ErrnoText(errno), nil
	}
	facts["backing_id"] = fmt.Sprint(id)
	errno = r.pt.BackingClose(id)
	facts["backing_close"] = errnoName(errno)
	if errno != 0 {
		return fmt.Sprintf("BACKING_CLOSE of id %d failed: %s", id, scenarios.ErrnoText(errno)), nil
	}
	return "", nil
}

// notNegotiated issues BACKING_OPEN on a connection whose server refused
// FUSE_PASSTHROUGH.
func notNegotiated(ctx context.Context, r *ioctlRig) (string, error) {
	m, err := r.mountConn(ctx, "classic", wire.Options{Name: "fusematrix-classic"})
	if err != nil {
		return "", err
	}
	defer r.unmount(m)
	return r.withFd(r.file, unix.O_RDONLY, func(fd int32) string {
		return r.tryOpen(m, fuseabi.BackingMap{Fd: fd})
	})
}

// stackedTooDeep registers, on the passthrough connection, a file that
// lives on another FUSE mount with passthrough. The kernel sets such a
// super block's stack depth to the max_stack_depth its server chose (1,
// go-fuse's default), which already reaches the limit of the connection
// registering it.
func stackedTooDeep(ctx context.Context, r *ioctlRig) (string, error) {
	lower, err := r.mountConn(ctx, "lower", wire.Options{Passthrough: true, Name: "fusematrix-lower"})
	if err != nil {
		return "", err
	}
	defer r.unmount(lower)
	// Without passthrough on the lower mount its stack depth stays 0 and
	// the case would measure nothing.
	v, err := r.withFd(r.file, unix.O_RDONLY, func(fd int32) string {
		return r.tryOpen(lower, fuseabi.BackingMap{Fd: fd})
	})
	if err != nil {
		return "", err
	}
	if v != "ok" {
		return "", fmt.Errorf("lower mount did not negotiate passthrough: BACKING_OPEN %s", v)
	}
	return r.withFd(filepath.Join(lower.Dir, wire.NoopName), unix.O_RDONLY, func(fd int32) string {
		return r.tryOpen(r.pt, fuseabi.BackingMap{Fd: fd})
	})
}

// writebackWithPassthrough asks for passthrough and the writeback cache on
// one connection and says whether the kernel kept passthrough: "accepted"
// when BACKING_OPEN works there, "refused" when it answers EPERM as it
// does on a connection without passthrough, otherwise the errno.
func writebackWithPassthrough(ctx context.Context, r *ioctlRig) (string, error) {
	m, err := r.mountConn(ctx, "writeback", wire.Options{Passthrough: true, WritebackCache: true, Name: "fusematrix-writeback"})
	if err != nil {
		return "", err
	}
	defer r.unmount(m)
	if m.KernelSettings().Flags64()&fuseabi.WritebackCache == 0 {
		return "", errors.New("kernel does not offer FUSE_WRITEBACK_CACHE")
	}
	v, err := r.withFd(r.file, unix.O_RDONLY, func(fd int32) string {
		return r.tryOpen(m, fuseabi.BackingMap{Fd: fd})
	})
	switch v {
	case "ok":
		v = "accepted"
	case "EPERM":
		v = "refused"
	}
	return v, err
}

// mountConn mounts a fresh connection at a new directory name in the
// scratch directory.
func (r *ioctlRig) mountConn(ctx context.Context, name string, o wire.Options) (*wire.Mount, error) {
	mnt := filepath.Join(r.env.Dir, name)
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return nil, fmt.Errorf("mount point: %w", err)
	}
	o.Logf = r.env.Printf
	return r.mount(ctx, mnt, o)
}

func (r *ioctlRig) unmount(m *wire.Mount) {
	if err := m.Unmount(); err != nil {
		r.problems = append(r.problems, err.Error())
	}
}

// withFd opens path with flags, hands the descriptor to f and closes it.
func (r *ioctlRig) withFd(path string, flags int, f func(fd int32) string) (string, error) {
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	return f(int32(fd)), nil
}

// tryOpen issues BACKING_OPEN with bm on m and returns "ok" or the errno
// name. An id it gets is closed at once: only the answer matters.
func (r *ioctlRig) tryOpen(m *wire.Mount, bm fuseabi.BackingMap) string {
	id, errno := m.BackingOpen(bm)
	if errno != 0 {
		return errnoName(errno)
	}
	if errno := m.BackingClose(id); errno != 0 {
		r.problems = append(r.problems, fmt.Sprintf("BACKING_CLOSE of id %d (fd %d) failed: %s", id, bm.Fd, scenarios.ErrnoText(errno)))
	}
	return "ok"
}

// errnoName is the kernel's name of e ("EPERM"), or "ok" for none.
func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	if name := unix.ErrnoName(e); name != "" {
		return name
	}
	return fmt.Sprintf("errno %d", int(e))
}

// joinReason appends notes to a reason.
func joinReason(reason string, notes []string) string {
	if reason != "" {
		notes = append([]string{reason}, notes...)
	}
	return strings.Join(notes, "; ")
}
