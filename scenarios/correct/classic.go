package correct

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
)

// Classic FUSE scenarios: they run on every kernel, so that a kernel
// without passthrough still has a meaningful row.

var classicFallback = scenarios.Scenario{
	ID:          contract.ClassicFallback,
	Description: "the passthrough loopback serves correct data on every kernel: through classic FUSE where the kernel lacks passthrough",
	Needs:       scenarios.NeedOwnServer,
	Run:         against(loopback.KindLoopback, classicFallbackWith),
}

const fallbackSize = 512<<10 + 77

func classicFallbackWith(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	r, rng, model, err := seededRig(ctx, env, sub, "cf", "data", fallbackSize)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	r.compareFile("first read through the mount", r.m("data"), model)
	if fd, err := unix.Open(r.m("data"), unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
		r.failf("open: %v", err)
	} else {
		pick := rand.New(rand.NewPCG(3, 3))
		for i := 0; i < 32 && len(r.problems) < 3; i++ {
			off := pick.IntN(len(model))
			n := 1 + pick.IntN(min(32<<10, len(model)-off))
			if i%2 == 0 {
				chunk := randomBytes(rng, n)
				if got, err := unix.Pwrite(fd, chunk, int64(off)); err != nil || got != n {
					r.failf("pwrite of %d bytes at %d: wrote %d, %v", n, off, got, err)
					continue
				}
				copy(model[off:], chunk)
				continue
			}
			buf := make([]byte, n)
			got, err := unix.Pread(fd, buf, int64(off))
			if err != nil {
				r.failf("pread of %d bytes at %d: %v", n, off, err)
			} else if p := compareData(buf[:got], model[off:off+n]); p != "" {
				r.failf("pread of %d bytes at %d: %s (relative to the read)", n, off, p)
			}
		}
		unix.Close(fd)
	}
	r.compareBoth("after random reads and writes", "data", model)

	st := r.stop()
	if st == nil {
		return r.result()
	}
	pt := len(st.Opens) > 0
	for _, o := range st.Opens {
		pt = pt && o.Passthrough()
	}
	path := "classic"
	if pt {
		path = "passthrough"
	}
	r.facts["path"] = path
	switch c := env.Capabilities; {
	case c == nil:
		r.notes = append(r.notes, "fuse-init did not report whether the kernel offers passthrough; served through "+path)
	case !c.Passthrough:
		// The fallback is what this scenario is for: prove it happened.
		for i, o := range st.Opens {
			if o.OpenFlags&fuseabi.FOpenPassthrough != 0 {
				r.failf("open reply %d carried FOPEN_PASSTHROUGH on a kernel that does not offer it", i+1)
			}
		}
		if st.Reads == 0 || st.Writes == 0 {
			r.failf("only %d READ and %d WRITE requests reached the daemon: the data did not go through classic FUSE", st.Reads, st.Writes)
		}
	case pt:
		r.notes = append(r.notes, "the kernel offers passthrough and served the file through it; the classic fallback runs on kernels without FUSE_PASSTHROUGH")
	}
	return r.result()
}

var classicBasics = scenarios.Scenario{
	ID:          contract.ClassicBasics,
	Description: "create, write, rename, readdir, symlink, truncate, xattr and unlink through a classic FUSE loopback agree with the backing directory",
	AnyServer:   true,
	Run:         against(loopback.KindClassic, classicBasicsWith),
}

func classicBasicsWith(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	r, err := newRig(ctx, env, sub, nil)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	if err := basicsSteps(r); err != nil {
		r.failf("%v", err)
	}
	return r.result()
}

// basicsSteps stops at the first step whose failure makes the later ones
// meaningless; mismatches that leave the tree usable are recorded and the
// steps go on.
func basicsSteps(r *rig) error {
	content := []byte("fusematrix classic basics\n")
	if err := os.WriteFile(r.m("a"), content, 0o644); err != nil {
		return fmt.Errorf("create and write: %w", err)
	}
	r.compareBoth("create and write", "a", content)

	if err := os.Rename(r.m("a"), r.m("b")); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	if _, err := os.Lstat(r.m("a")); !errors.Is(err, os.ErrNotExist) {
		r.failf("rename: the old name still resolves (%v)", err)
	}
	r.compareBoth("rename", "b", content)

	if err := os.Mkdir(r.m("d"), 0o755); err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	if err := os.Symlink("b", r.m("l")); err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	r.checkNames("readdir after create, rename, mkdir and symlink", []string{"b", "d", "l"})
	if target, err := os.Readlink(r.m("l")); err != nil || target != "b" {
		r.failf("readlink: %q, %v; want \"b\"", target, err)
	}
	if fi, err := os.Lstat(r.m("l")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		r.failf("lstat of the symlink: %v, %v", fi, err)
	}
	r.compareFile("read through the symlink", r.m("l"), content)

	if err := os.Truncate(r.m("b"), 10); err != nil {
		r.failf("truncate: %v", err)
	} else {
		r.compareBoth("truncate to 10", "b", content[:10])
		if fi, err := os.Stat(r.m("b")); err != nil || fi.Size() != 10 {
			r.failf("truncate to 10: stat says %v, %v", fi, err)
		}
	}

	r.xattrs("b")

	for _, name := range []string{"l", "b"} {
		if err := os.Remove(r.m(name)); err != nil {
			r.failf("unlink %s: %v", name, err)
		}
	}
	if err := os.Remove(r.m("d")); err != nil {
		r.failf("rmdir: %v", err)
	}
	r.checkNames("readdir after unlink and rmdir", nil)
	return nil
}

// checkNames compares the names in the mount's root and in the backing
// directory with want.
func (r *rig) checkNames(step string, want []string) {
	for _, dir := range []struct{ what, path string }{{"the mount", r.mnt}, {"the backing directory", r.backing}} {
		entries, err := os.ReadDir(dir.path)
		if err != nil {
			r.failf("%s: %s: %v", step, dir.what, err)
			continue
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, want) {
			r.failf("%s: %s lists %q, want %q", step, dir.what, names, want)
		}
	}
}

// xattrs sets, reads, lists and removes an extended attribute on name. A
// user.* attribute needs tmpfs 6.6+ as the backing store, so trusted.*
// (root) is tried next. When the mount refuses both, the backing file
// says whose refusal it is: one the backing file accepts is FUSE's, a
// failure; one the backing file refuses too leaves the part untested,
// which makes the check an error rather than a pass.
func (r *rig) xattrs(name string) {
	path := r.m(name)
	var attr string
	var refused []string
	for _, a := range []string{"user.fusematrix", "trusted.fusematrix"} {
		err := unix.Setxattr(path, a, []byte("v1"), 0)
		if err == nil {
			attr = a
			break
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOTSUP) {
			r.failf("setxattr %s: %v", a, err)
			return
		}
		refused = append(refused, fmt.Sprintf("%s: %v", a, err))
	}
	if attr == "" && r.foreign != "" {
		// Extended attributes are optional in FUSE, and a daemon that
		// refuses them all alike (libfuse's passthrough_ll by default)
		// has chosen so: said, not failed.
		r.facts["xattr"] = "not supported by the daemon"
		r.notes = append(r.notes, fmt.Sprintf("xattr: %s supports none (%v)", r.foreign, refused))
		return
	}
	if attr == "" {
		r.facts["xattr"] = "untested"
		for _, a := range []string{"user.fusematrix-probe", "trusted.fusematrix-probe"} {
			if err := unix.Setxattr(r.b(name), a, []byte("v1"), 0); err == nil {
				unix.Removexattr(r.b(name), a)
				r.failf("xattr: the mount refused every attribute (%v), yet the backing file takes %s", refused, a)
				return
			}
		}
		r.untested = append(r.untested, fmt.Sprintf("xattr: neither the mount nor its backing file system takes user.* or trusted.* attributes (%v)", refused))
		return
	}
	r.facts["xattr"] = attr
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(path, attr, buf); err != nil || string(buf[:n]) != "v1" {
		r.failf("getxattr %s: %q, %v; want \"v1\"", attr, buf[:max(n, 0)], err)
	}
	if n, err := unix.Getxattr(r.b(name), attr, buf); err != nil || string(buf[:n]) != "v1" {
		r.failf("getxattr %s on the backing file: %q, %v; want \"v1\"", attr, buf[:max(n, 0)], err)
	}
	list := make([]byte, 1024)
	if n, err := unix.Listxattr(path, list); err != nil || !slices.Contains(splitNul(list[:max(n, 0)]), attr) {
		r.failf("listxattr: %q, %v; want %s among them", splitNul(list[:max(n, 0)]), err, attr)
	}
	if err := unix.Removexattr(path, attr); err != nil {
		r.failf("removexattr %s: %v", attr, err)
	} else if _, err := unix.Getxattr(path, attr, buf); !errors.Is(err, unix.ENODATA) {
		r.failf("getxattr after removexattr: %v, want ENODATA", err)
	}
}

func splitNul(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := slices.Index(b, 0)
		if i < 0 {
			i = len(b)
		}
		if i > 0 {
			out = append(out, string(b[:i]))
		}
		b = b[min(i+1, len(b)):]
	}
	return out
}
