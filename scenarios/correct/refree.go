package correct

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
)

// The checks every daemon gets that need no reference
// (contract.DaemonOwnChecks): they judge the daemon through its own mount
// alone, by what holds of any FUSE file system, so that they run for a
// daemon with or without {backing}, and a NOOP server whose files are all
// zeros passes them as a loopback does.
//
// Why not go-fuse's posixtest, already a dependency: its functions take a
// *testing.T, which only package testing makes (through testing.RunTests
// or MainStart, which its documentation reserves for "go test"), and end a
// failing check with runtime.Goexit; the agent is no test binary. They
// also assume what a daemon under test need not give: an empty mount to
// write at its top, extended attributes (XAttr fails on ENOTSUP where
// these checks record a fact), and go-fuse's own process (FdLeak counts
// the test process's descriptors). So the write check does its steps
// itself, each modelled on the posixtest function named beside it, in a
// directory of its own, judged by what any server owes and reporting what
// the daemon does not support as a fact.
var (
	daemonMounted = scenarios.Scenario{
		ID:          contract.DaemonMounted,
		Description: "the daemon mounts within its wait, and statfs and stat of its root answer (the root a directory)",
		AnyServer:   true,
		OwnFiles:    true,
		Run:         daemonMountedRun,
	}
	daemonReadAll = scenarios.Scenario{
		ID:          contract.DaemonReadAll,
		Description: "every directory of the mount lists, every entry stats as readdir typed it, every symlink reads, every regular file reads to its st_size (bounded)",
		AnyServer:   true,
		OwnFiles:    true,
		Run:         daemonReadAllRun,
	}
	daemonWrite = scenarios.Scenario{
		ID:          contract.DaemonWrite,
		Description: "in a fresh directory: write and read back past the page cache, fsync, O_APPEND, truncate, rename, unlink, mkdir/rmdir, symlink, xattrs, flock and OFD locks; a skip on a read-only mount",
		AnyServer:   true,
		OwnFiles:    true,
		Run:         daemonWriteRun,
	}
	daemonUnmount = scenarios.Scenario{
		ID:          contract.DaemonUnmount,
		Description: "an unmount ends the daemon: every process of its group or session exits, cleanly, within the grace",
		AnyServer:   true,
		OwnFiles:    true,
		Run:         daemonUnmountRun,
	}
)

// daemonOwn returns the reference-free checks in the contract's order.
func daemonOwn() []scenarios.Scenario {
	return []scenarios.Scenario{daemonMounted, daemonReadAll, daemonWrite, daemonUnmount}
}

// onlyDaemon is the result of a reference-free check run against a
// server that is no user's daemon: they are the daemon's checks alone.
var onlyDaemon = results.Result{Status: results.Skip, Reason: "only for a daemon under test"}

// fuseSuperMagic is statfs's f_type of every FUSE mount (fs/fuse/inode.c
// sets it whatever the daemon answers).
const fuseSuperMagic = 0x65735546

func daemonMountedRun(ctx context.Context, env *scenarios.Env) results.Result {
	sub, ok := env.Subject.(scenarios.DaemonSubject)
	if !ok {
		return onlyDaemon
	}
	r, err := prepareRig(env, sub, nil)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	start := time.Now()
	if err := r.mount(ctx, sub); err != nil {
		// Mounting is what this check judges: a daemon that does not
		// mount fails it (the other checks call it an error, since they
		// could test nothing).
		return results.Result{Status: results.Fail, Reason: err.Error(),
			Facts: map[string]string{"mount_wait_s": fmt.Sprint(sub.Spec.Wait().Seconds())}}
	}
	r.facts["mount_s"] = fmt.Sprintf("%.3f", time.Since(start).Seconds())
	r.facts["mount_wait_s"] = fmt.Sprint(sub.Spec.Wait().Seconds())
	var sfs unix.Statfs_t
	if err := unix.Statfs(r.mnt, &sfs); err != nil {
		r.failf("statfs of the root: %v", err)
	} else {
		r.facts["statfs_type"] = fmt.Sprintf("%#x", sfs.Type)
		r.facts["statfs_bsize"] = fmt.Sprint(sfs.Bsize)
		r.facts["statfs_blocks"] = fmt.Sprint(sfs.Blocks)
		r.facts["statfs_files"] = fmt.Sprint(sfs.Files)
		r.facts["statfs_namelen"] = fmt.Sprint(sfs.Namelen)
		r.facts["read_only"] = fmt.Sprint(sfs.Flags&unix.ST_RDONLY != 0)
		if sfs.Type != fuseSuperMagic {
			r.failf("statfs of the root says f_type %#x, not FUSE's %#x: the root is not the daemon's mount", sfs.Type, fuseSuperMagic)
		}
	}
	// Forced to the daemon: a GETATTR it answers, not the kernel's copy
	// of what it said at mount.
	var sx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, r.mnt, unix.AT_STATX_FORCE_SYNC, unix.STATX_BASIC_STATS, &sx); err != nil {
		r.failf("stat of the root: %v", err)
	} else {
		r.facts["root_mode"] = fmt.Sprintf("%#o", sx.Mode)
		r.facts["root_ino"] = fmt.Sprint(sx.Ino)
		if sx.Mode&unix.S_IFMT != unix.S_IFDIR {
			r.failf("stat of the root says mode %#o: not a directory", sx.Mode)
		}
	}
	return r.result()
}

// The bounds of read-all: a daemon may show a tree of any size (a network
// file system, a 4 GiB NOOP file), and a check must end within its time
// limit under TCG.
const (
	// readAllBudget is how many bytes read-all reads in all.
	readAllBudget = 128 << 20
	// readAllWhole is the largest file read whole; of a larger one the
	// first and last readAllSample bytes are read, which still shows
	// whether it reads to its st_size.
	readAllWhole  = 64 << 20
	readAllSample = 1 << 20
	// readAllEntries and readAllDepth bound the walk.
	readAllEntries = 10000
	readAllDepth   = 16
)

// readAllSeed is what read-all puts in the backing directory of a daemon
// that has one, so that a loopback shows files of several shapes: sizes
// that are no multiple of a page, an empty file, a nested directory.
func readAllSeed() map[string][]byte {
	rng := rand.NewChaCha8([32]byte{'r', 'a'})
	return map[string][]byte{
		"data":              randomBytes(rng, 1<<20+17),
		"empty":             nil,
		"dir/small":         randomBytes(rng, 4097),
		"dir/deeper/a-page": randomBytes(rng, 4096),
	}
}

func daemonReadAllRun(ctx context.Context, env *scenarios.Env) results.Result {
	sub, ok := env.Subject.(scenarios.DaemonSubject)
	if !ok {
		return onlyDaemon
	}
	var files map[string][]byte
	if sub.Spec.Backed() {
		files = readAllSeed()
	}
	r, err := prepareRig(env, sub, files)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	if files != nil {
		if err := os.Symlink("data", r.b("link")); err != nil {
			return scenarios.ErrorResult("backing symlink: %v", err)
		}
	}
	if err := r.mount(ctx, sub); err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	w := &walker{r: r, ctx: ctx, left: readAllBudget}
	var root unix.Stat_t
	if err := unix.Lstat(r.mnt, &root); err != nil {
		r.failf("lstat of the root: %v", err)
		return r.result()
	}
	w.dev = root.Dev
	w.dir(r.mnt, 0)
	r.facts["dirs"] = strconv.Itoa(w.dirs)
	r.facts["files"] = strconv.Itoa(w.files)
	r.facts["symlinks"] = strconv.Itoa(w.links)
	r.facts["other_entries"] = strconv.Itoa(w.other)
	r.facts["bytes_read"] = strconv.FormatInt(readAllBudget-w.left, 10)
	if w.sampled > 0 {
		r.facts["files_sampled"] = strconv.Itoa(w.sampled)
		r.notes = append(r.notes, fmt.Sprintf("%d file(s) larger than %d MiB or past the %d MiB budget read only at their start and end", w.sampled, readAllWhole>>20, readAllBudget>>20))
	}
	if w.unread > 0 {
		r.facts["files_unread"] = strconv.Itoa(w.unread)
		r.notes = append(r.notes, fmt.Sprintf("%d file(s) not read: the %d MiB budget was spent", w.unread, readAllBudget>>20))
	}
	if len(w.denied) > 0 {
		r.facts["denied"] = strings.Join(w.denied, ", ")
		r.notes = append(r.notes, "refused to root, which a daemon may: "+strings.Join(w.denied, ", "))
	}
	if w.truncated {
		r.facts["walk_truncated"] = "true"
		r.notes = append(r.notes, fmt.Sprintf("walk stopped at %d entries or depth %d", readAllEntries, readAllDepth))
	}
	if w.dirs+w.files+w.links+w.other == 0 {
		r.notes = append(r.notes, "the root lists no entry")
	}
	return r.result()
}

// walker reads a daemon's tree through its mount.
type walker struct {
	r   *rig
	ctx context.Context
	dev uint64
	// left is the byte budget still to spend.
	left                      int64
	entries                   int
	dirs, files, links, other int
	sampled, unread           int
	denied                    []string
	truncated                 bool
}

// rel is path as the daemon's tree names it, for reasons.
func (w *walker) rel(path string) string {
	rel, err := filepath.Rel(w.r.mnt, path)
	if err != nil || rel == "." {
		return "/"
	}
	return "/" + rel
}

// refused says whether err is the daemon's refusal to root: a policy a
// daemon may have, not a fault.
func refused(err error) bool {
	return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)
}

// dir lists dir and visits every entry, depth first.
func (w *walker) dir(dir string, depth int) {
	if w.ctx.Err() != nil {
		w.r.untested = append(w.r.untested, fmt.Sprintf("time ran out before %s was read", w.rel(dir)))
		return
	}
	if depth > readAllDepth {
		w.truncated = true
		return
	}
	entries, err := os.ReadDir(dir)
	switch {
	case refused(err):
		w.denied = append(w.denied, w.rel(dir))
		return
	case err != nil:
		w.r.failf("readdir %s: %v", w.rel(dir), err)
		if len(entries) == 0 {
			return
		}
	}
	for _, e := range entries {
		if w.entries++; w.entries > readAllEntries {
			w.truncated = true
			return
		}
		path := filepath.Join(dir, e.Name())
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			// readdir listed it: a lookup must find it (nothing else
			// changes the tree meanwhile).
			w.r.failf("lstat %s, which readdir listed: %v", w.rel(path), err)
			continue
		}
		got := fs.FileMode(0)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			got = fs.ModeDir
		case unix.S_IFLNK:
			got = fs.ModeSymlink
		case unix.S_IFREG:
		default:
			got = fs.ModeIrregular // compared by kind only, below
		}
		// os.ReadDir falls back to lstat where readdir gave no type, so
		// a difference is the daemon contradicting itself.
		want := e.Type() & (fs.ModeDir | fs.ModeSymlink)
		if got&(fs.ModeDir|fs.ModeSymlink) != want {
			w.r.failf("%s: readdir says type %v, lstat says mode %#o", w.rel(path), e.Type(), st.Mode)
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			w.dirs++
			if st.Dev == w.dev {
				w.dir(path, depth+1)
			}
		case unix.S_IFLNK:
			w.links++
			if _, err := os.Readlink(path); err != nil {
				w.r.failf("readlink %s: %v", w.rel(path), err)
			}
		case unix.S_IFREG:
			w.files++
			w.file(path, st.Size)
		default:
			w.other++ // a device, fifo or socket: opening it could block
		}
	}
}

// file reads path to its st_size: whole while the budget lasts and it is
// no larger than readAllWhole, else its first and last readAllSample
// bytes. A read that ends early or fails is the daemon's fault; a file a
// NOOP server fills with zeros reads as well as any.
func (w *walker) file(path string, size int64) {
	if w.left <= 0 {
		w.unread++
		return
	}
	f, err := os.Open(path)
	if refused(err) {
		w.denied = append(w.denied, w.rel(path))
		return
	}
	if err != nil {
		w.r.failf("open %s: %v", w.rel(path), err)
		return
	}
	defer f.Close()
	if size <= min(readAllWhole, w.left) {
		if err := w.readRange(f, 0, size); err != nil {
			w.r.failf("read %s (st_size %d): %v", w.rel(path), size, err)
		}
		return
	}
	w.sampled++
	head := min(size, readAllSample)
	if err := w.readRange(f, 0, head); err != nil {
		w.r.failf("read %s (st_size %d): %v", w.rel(path), size, err)
		return
	}
	tail := min(size-head, readAllSample)
	if err := w.readRange(f, size-tail, tail); err != nil {
		w.r.failf("read the end of %s (st_size %d): %v", w.rel(path), size, err)
	}
}

// readRange reads n bytes of f from off with 128 KiB reads, as an
// application would, and fails on an error or an end of file before
// off+n.
func (w *walker) readRange(f *os.File, off, n int64) error {
	buf := make([]byte, 128<<10)
	for done := int64(0); done < n; {
		if w.ctx.Err() != nil {
			return fmt.Errorf("time ran out at offset %d", off+done)
		}
		m, err := f.ReadAt(buf[:min(int64(len(buf)), n-done)], off+done)
		done += int64(m)
		w.left -= int64(m)
		if err == io.EOF && done < n {
			return fmt.Errorf("short read: the file ended at offset %d", off+done)
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("at offset %d: %w", off+done, err)
		}
	}
	return nil
}

// A step of the write check: "" when it held, else what went wrong. A
// step that found the daemon lacks an optional feature says so with
// errUnsupported, which is a fact, not a fault.
type writeStep struct {
	name string
	// like names the posixtest function the step is modelled on.
	like string
	run  func(dir string, rng *rand.ChaCha8) error
}

// unsupported wraps the errno by which a daemon says it lacks a feature.
type unsupported struct{ err error }

func (u unsupported) Error() string { return "unsupported: " + u.err.Error() }

// optional turns an errno that says "not supported" into unsupported.
func optional(err error, errnos ...unix.Errno) error {
	for _, e := range errnos {
		if errors.Is(err, e) {
			return unsupported{err}
		}
	}
	return err
}

var writeSteps = []writeStep{
	{"write", "FileBasic, FileLarge", stepWrite},
	{"fsync", "", stepFsync},
	{"append", "AppendWrite", stepAppend},
	{"truncate", "TruncateFile", stepTruncate},
	{"rename", "RenameOverwriteDestExist", stepRename},
	{"unlink", "LinkUnlinkRename", stepUnlink},
	{"mkdir", "MkdirRmdir", stepMkdir},
	{"symlink", "SymlinkReadlink", stepSymlink},
	{"xattr", "XAttr", stepXattr},
	{"locks", "FcntlFlockLocksFile", stepLocks},
}

// refusesCreate are the answers to the first mkdir by which a daemon says
// it creates nothing (a NOOP server, an archive): its write check skips.
var refusesCreate = []unix.Errno{unix.EROFS, unix.ENOSYS, unix.EOPNOTSUPP, unix.EPERM, unix.EACCES}

func daemonWriteRun(ctx context.Context, env *scenarios.Env) results.Result {
	sub, ok := env.Subject.(scenarios.DaemonSubject)
	if !ok {
		return onlyDaemon
	}
	r, err := newRig(ctx, env, sub, nil)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(r.mnt, &sfs); err != nil {
		r.failf("statfs of the root: %v", err)
		return r.result()
	}
	if sfs.Flags&unix.ST_RDONLY != 0 {
		r.facts["read_only"] = "statfs"
		r.skip = "read-only mount (statfs of the root says ST_RDONLY): nothing to write"
		return r.result()
	}
	// A fresh directory: a daemon's own files are left alone, and a name
	// no earlier run can have used.
	dir := filepath.Join(r.mnt, fmt.Sprintf("fusematrix-write-%d-%x", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		var errno unix.Errno
		if errors.As(err, &errno) && slices.Contains(refusesCreate, errno) {
			r.facts["read_only"] = unix.ErrnoName(errno)
			what := "it creates no directory"
			if errno == unix.EROFS {
				what = "read-only mount"
			}
			r.skip = fmt.Sprintf("%s (mkdir of a fresh directory at its root answered %s): nothing to write", what, unix.ErrnoName(errno))
			return r.result()
		}
		r.failf("mkdir of a fresh directory at the root: %v", err)
		return r.result()
	}
	r.facts["read_only"] = "false"
	rng := rand.NewChaCha8([32]byte{'w', 'r'})
	var unsup []string
	for _, s := range writeSteps {
		sub := filepath.Join(dir, s.name)
		err := os.Mkdir(sub, 0o755)
		if err == nil {
			err = s.run(sub, rng)
		}
		var u unsupported
		switch {
		case err == nil:
			r.facts["step."+s.name] = "ok"
		case errors.As(err, &u):
			r.facts["step."+s.name] = u.Error()
			unsup = append(unsup, s.name+" ("+u.err.Error()+")")
		default:
			r.facts["step."+s.name] = "fail"
			r.failf("%s: %v", s.name, err)
		}
	}
	if len(unsup) > 0 {
		r.notes = append(r.notes, "not supported, which FUSE allows: "+strings.Join(unsup, ", "))
	}
	if err := os.RemoveAll(dir); err != nil {
		r.notes = append(r.notes, "cleanup: "+err.Error())
	}
	return r.result()
}

// readBack reads path through the daemon, not the page cache, and
// compares it with want. The kernel keeps what was written in its page
// cache, from which a read would answer even for a daemon that dropped
// the writes. A fresh open drops it, unless the daemon answers
// FOPEN_KEEP_CACHE: so fsync writes back what a writeback cache holds,
// POSIX_FADV_DONTNEED then drops the clean pages, and the size is asked
// of the daemon (AT_STATX_FORCE_SYNC).
func readBack(path string, want []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_ = f.Sync() // fsync's own step judges it
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("fadvise: %w", err)
	}
	var sx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_STATX_FORCE_SYNC, unix.STATX_SIZE, &sx); err != nil {
		return fmt.Errorf("statx: %w", err)
	}
	got, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if p := compareData(got, want); p != "" {
		return fmt.Errorf("read back: %s", p)
	}
	if int64(sx.Size) != int64(len(want)) {
		return fmt.Errorf("the daemon says size %d, want %d", sx.Size, len(want))
	}
	return nil
}

// stepWrite writes a file in pieces (the last not page-aligned, one
// overwriting the middle) and reads it back.
func stepWrite(dir string, rng *rand.ChaCha8) error {
	path := filepath.Join(dir, "file")
	want := randomBytes(rng, 256<<10+3)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer f.Close()
	for off := 0; off < len(want); off += 100 << 10 {
		if _, err := f.WriteAt(want[off:min(off+100<<10, len(want))], int64(off)); err != nil {
			return fmt.Errorf("write at %d: %w", off, err)
		}
	}
	patch := randomBytes(rng, 5000)
	copy(want[70000:], patch)
	if _, err := f.WriteAt(patch, 70000); err != nil {
		return fmt.Errorf("overwrite at 70000: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return readBack(path, want)
}

// stepFsync writes and syncs: fsync and fdatasync must succeed (a daemon
// that does not implement FSYNC gets success from the kernel).
func stepFsync(dir string, rng *rand.ChaCha8) error {
	path := filepath.Join(dir, "file")
	want := randomBytes(rng, 64<<10)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(want); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := unix.Fsync(int(f.Fd())); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("fdatasync: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return readBack(path, want)
}

// stepAppend writes through O_APPEND from two opens: each write lands at
// the end, whatever the file offset.
func stepAppend(dir string, _ *rand.ChaCha8) error {
	path := filepath.Join(dir, "file")
	for _, part := range []string{"hello", "world"} {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open O_APPEND: %w", err)
		}
		for _, b := range []string{part[:2], part[2:]} {
			if _, err := f.Write([]byte(b)); err != nil {
				f.Close()
				return fmt.Errorf("write: %w", err)
			}
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("close: %w", err)
		}
	}
	return readBack(path, []byte("helloworld"))
}

// stepTruncate shrinks a file by path and extends it through a
// descriptor: what stays reads the same, what is added reads as zeros.
func stepTruncate(dir string, rng *rand.ChaCha8) error {
	path := filepath.Join(dir, "file")
	data := randomBytes(rng, 20000)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := os.Truncate(path, 1000); err != nil {
		return fmt.Errorf("truncate to 1000: %w", err)
	}
	if err := readBack(path, data[:1000]); err != nil {
		return fmt.Errorf("after truncate to 1000: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(5000); err != nil {
		return fmt.Errorf("ftruncate to 5000: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	want := append(slices.Clone(data[:1000]), make([]byte, 4000)...)
	if err := readBack(path, want); err != nil {
		return fmt.Errorf("after ftruncate to 5000: %w", err)
	}
	return nil
}

// stepRename renames a file, then renames another over it.
func stepRename(dir string, rng *rand.ChaCha8) error {
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	da, dc := randomBytes(rng, 3000), randomBytes(rng, 7000)
	if err := os.WriteFile(a, da, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(c, dc, 0o644); err != nil {
		return err
	}
	if err := os.Rename(a, b); err != nil {
		return fmt.Errorf("rename a to b: %w", err)
	}
	if err := gone(a); err != nil {
		return fmt.Errorf("after rename a to b: %w", err)
	}
	if err := readBack(b, da); err != nil {
		return fmt.Errorf("after rename a to b: %w", err)
	}
	if err := os.Rename(c, b); err != nil {
		return fmt.Errorf("rename c over b: %w", err)
	}
	if err := gone(c); err != nil {
		return fmt.Errorf("after rename c over b: %w", err)
	}
	if err := readBack(b, dc); err != nil {
		return fmt.Errorf("after rename c over b: %w", err)
	}
	return listed(dir, "b")
}

// stepUnlink removes a file: lookup and readdir must no longer find it.
func stepUnlink(dir string, _ *rand.ChaCha8) error {
	path := filepath.Join(dir, "file")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "kept"), nil, 0o644); err != nil {
		return err
	}
	if err := unix.Unlink(path); err != nil {
		return fmt.Errorf("unlink: %w", err)
	}
	if err := gone(path); err != nil {
		return fmt.Errorf("after unlink: %w", err)
	}
	return listed(dir, "kept")
}

// stepMkdir makes a directory, a file in it, and removes both: a
// directory that is not empty must not be removed.
func stepMkdir(dir string, _ *rand.ChaCha8) error {
	sub := filepath.Join(dir, "sub")
	if err := unix.Mkdir(sub, 0o755); err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(sub, &st); err != nil {
		return fmt.Errorf("lstat of the new directory: %w", err)
	} else if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("the new directory has mode %#o", st.Mode)
	}
	if err := os.WriteFile(filepath.Join(sub, "inner"), []byte("x"), 0o644); err != nil {
		return fmt.Errorf("a file in the new directory: %w", err)
	}
	if err := listed(sub, "inner"); err != nil {
		return err
	}
	if err := unix.Rmdir(sub); err == nil {
		return errors.New("rmdir of a directory holding a file succeeded")
	} else if !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("rmdir of a directory holding a file: %w, want ENOTEMPTY", err)
	}
	if err := unix.Unlink(filepath.Join(sub, "inner")); err != nil {
		return fmt.Errorf("unlink: %w", err)
	}
	if err := unix.Rmdir(sub); err != nil {
		return fmt.Errorf("rmdir: %w", err)
	}
	if err := gone(sub); err != nil {
		return fmt.Errorf("after rmdir: %w", err)
	}
	return listed(dir)
}

// stepSymlink makes a symlink to a name that does not exist: readlink
// gives the target back as written. A daemon without symlinks says so
// with EPERM (as Linux file systems do) or ENOSYS.
func stepSymlink(dir string, _ *rand.ChaCha8) error {
	link, target := filepath.Join(dir, "link"), "../no/such/target"
	if err := unix.Symlink(target, link); err != nil {
		return optional(fmt.Errorf("symlink: %w", err), unix.EPERM, unix.ENOSYS, unix.EOPNOTSUPP)
	}
	got, err := os.Readlink(link)
	if err != nil {
		return fmt.Errorf("readlink: %w", err)
	}
	if got != target {
		return fmt.Errorf("readlink says %q, want %q", got, target)
	}
	var st unix.Stat_t
	if err := unix.Lstat(link, &st); err != nil {
		return fmt.Errorf("lstat: %w", err)
	} else if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return fmt.Errorf("lstat says mode %#o, not a symlink", st.Mode)
	}
	return nil
}

// stepXattr sets, gets, lists and removes a user attribute. Extended
// attributes are optional in FUSE: ENOTSUP on the set is a fact.
func stepXattr(dir string, _ *rand.ChaCha8) error {
	path := filepath.Join(dir, "file")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return err
	}
	name, value := "user.fusematrix", []byte("a value\x00with a NUL")
	if err := unix.Setxattr(path, name, value, 0); err != nil {
		return optional(fmt.Errorf("setxattr: %w", err), unix.ENOTSUP, unix.ENOSYS)
	}
	buf := make([]byte, 256)
	n, err := unix.Getxattr(path, name, buf)
	if err != nil {
		return fmt.Errorf("getxattr: %w", err)
	}
	if !bytes.Equal(buf[:n], value) {
		return fmt.Errorf("getxattr says %q, want %q", buf[:n], value)
	}
	n, err = unix.Listxattr(path, buf)
	if err != nil {
		return fmt.Errorf("listxattr: %w", err)
	}
	if !slices.Contains(strings.Split(string(buf[:n]), "\x00"), name) {
		return fmt.Errorf("listxattr says %q, without %s", buf[:n], name)
	}
	if err := unix.Removexattr(path, name); err != nil {
		return fmt.Errorf("removexattr: %w", err)
	}
	if _, err := unix.Getxattr(path, name, buf); !errors.Is(err, unix.ENODATA) {
		return fmt.Errorf("getxattr after removexattr: %v, want ENODATA", err)
	}
	return nil
}

// stepLocks takes flock and OFD locks from two opens of one file: each
// kind of lock held by one blocks the other's, and released frees it. A
// daemon that takes locks itself and refuses them says so with ENOLCK or
// ENOSYS (the kernel handles them itself for a daemon that does not).
// OFD locks, not POSIX ones: a process's POSIX locks never conflict with
// its own.
func stepLocks(dir string, _ *rand.ChaCha8) error {
	path := filepath.Join(dir, "file")
	if err := os.WriteFile(path, make([]byte, 100), 0o644); err != nil {
		return err
	}
	f1, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f1.Close()
	f2, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f2.Close()
	fd1, fd2 := int(f1.Fd()), int(f2.Fd())
	lockErr := func(what string, err error) error {
		return optional(fmt.Errorf("%s: %w", what, err), unix.ENOLCK, unix.ENOSYS, unix.EOPNOTSUPP)
	}
	if err := unix.Flock(fd1, unix.LOCK_EX); err != nil {
		return lockErr("flock LOCK_EX", err)
	}
	if err := unix.Flock(fd2, unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		return fmt.Errorf("flock LOCK_EX of a second open while the first holds it: %v, want EWOULDBLOCK", err)
	}
	if err := unix.Flock(fd1, unix.LOCK_UN); err != nil {
		return fmt.Errorf("flock LOCK_UN: %w", err)
	}
	if err := unix.Flock(fd2, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("flock LOCK_EX of the second open once released: %w", err)
	}
	if err := unix.Flock(fd2, unix.LOCK_UN); err != nil {
		return fmt.Errorf("flock LOCK_UN: %w", err)
	}
	wr := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: 0, Len: 50}
	if err := unix.FcntlFlock(uintptr(fd1), unix.F_OFD_SETLK, &wr); err != nil {
		return lockErr("F_OFD_SETLK", err)
	}
	probe := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: 10, Len: 1}
	if err := unix.FcntlFlock(uintptr(fd2), unix.F_OFD_GETLK, &probe); err != nil {
		return fmt.Errorf("F_OFD_GETLK: %w", err)
	} else if probe.Type != unix.F_WRLCK {
		return fmt.Errorf("F_OFD_GETLK from a second open says lock type %d, want the first's F_WRLCK", probe.Type)
	}
	again := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: 10, Len: 1}
	if err := unix.FcntlFlock(uintptr(fd2), unix.F_OFD_SETLK, &again); !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
		return fmt.Errorf("F_OFD_SETLK of a second open over the first's lock: %v, want EAGAIN", err)
	}
	free := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: 60, Len: 10}
	if err := unix.FcntlFlock(uintptr(fd2), unix.F_OFD_SETLK, &free); err != nil {
		return fmt.Errorf("F_OFD_SETLK of a second open past the first's lock: %w", err)
	}
	un := unix.Flock_t{Type: unix.F_UNLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(uintptr(fd1), unix.F_OFD_SETLK, &un); err != nil {
		return fmt.Errorf("F_OFD_SETLK F_UNLCK: %w", err)
	}
	if err := unix.FcntlFlock(uintptr(fd2), unix.F_OFD_SETLK, &again); err != nil {
		return fmt.Errorf("F_OFD_SETLK of a second open once released: %w", err)
	}
	return nil
}

// gone says whether path no longer exists.
func gone(path string) error {
	var st unix.Stat_t
	err := unix.Lstat(path, &st)
	switch {
	case err == nil:
		return fmt.Errorf("%s still exists", filepath.Base(path))
	case !errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("lstat %s: %v, want ENOENT", filepath.Base(path), err)
	}
	return nil
}

// listed says whether readdir of dir lists exactly names.
func listed(dir string, names ...string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("readdir: %w", err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, names) {
		return fmt.Errorf("readdir of %s lists %q, want %q", filepath.Base(dir), got, names)
	}
	return nil
}

func daemonUnmountRun(ctx context.Context, env *scenarios.Env) results.Result {
	sub, ok := env.Subject.(scenarios.DaemonSubject)
	if !ok {
		return onlyDaemon
	}
	r, err := newRig(ctx, env, sub, nil)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	// Something answered first, so that the daemon is serving, not
	// still starting up, when the unmount comes.
	if _, err := os.ReadDir(r.mnt); err != nil {
		// read-all judges that: this check judges the unmount.
		r.notes = append(r.notes, fmt.Sprintf("readdir of the root: %v", err))
	}
	if d, ok := r.proc.(interface{ Pids() []int }); ok {
		r.facts["processes"] = strconv.Itoa(len(d.Pids()))
	}
	start := time.Now()
	r.stop()
	r.facts["unmount_s"] = fmt.Sprintf("%.3f", time.Since(start).Seconds())
	if len(r.leftovers) > 0 {
		r.failf("processes of the daemon still ran after its unmount (killed): %s", strings.Join(r.leftovers, ", "))
	}
	return r.result()
}
