// Package wire holds what fusematrix serves at go-fuse's wire level
// (package fuse, fuse.RawFileSystem): what a mount is (Mount, Options,
// MountRaw and the /dev/fuse and fusectl helpers), the NOOP file system,
// the loops of its own that serve it (devLoop on /dev/fuse, uringLoop
// over FUSE's io_uring transport, which serves the loopback too), and
// the Observer that records what the daemon answered and what reached
// it, so that a scenario can prove that passthrough happened instead of
// assuming it, and the Recorder that keeps every request a recording
// mount reads from /dev/fuse (Options.Record), for the requests probe.
//
// File systems built on go-fuse's node tree (package fs) live in package
// loopback, which mounts them through MountRaw; running servers as
// processes of their own is package server's. Package wire imports
// neither, nor go-fuse's fs: of this project it may import only
// scenarios/fuseabi, scenarios/uring and scenarios/yield.
//
// Every mount is a direct mount(2) of /dev/fuse: guests have no fusermount.
package wire

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
)

// Options configure a mount.
type Options struct {
	// Passthrough leaves FUSE_PASSTHROUGH negotiable. When false the
	// server refuses the capability, which makes it a classic FUSE server
	// even on a kernel that offers passthrough.
	Passthrough bool
	// WritebackCache asks for FUSE_WRITEBACK_CACHE besides what go-fuse
	// asks for by default.
	WritebackCache bool
	// Logf receives go-fuse's own log lines, except its splice fallback
	// chatter. Nil drops them.
	Logf func(format string, args ...any)
	// Name shows up as the mount's fsname in /proc/self/mountinfo.
	Name string
	// NoXattr answers GETXATTR, LISTXATTR, SETXATTR and REMOVEXATTR with
	// ENOSYS, which the kernel remembers for the connection
	// (fc->no_getxattr and friends, fs/fuse/xattr.c). It matters for
	// writes: before each one the kernel checks whether it must strip
	// privileges, file_remove_privs → dentry_needs_remove_privs
	// (fs/inode.c) → security_inode_need_killpriv →
	// cap_inode_need_killpriv (security/commoncap.c) →
	// __vfs_getxattr(XATTR_NAME_CAPS), a GETXATTR "security.capability"
	// round trip to the daemon. FUSE never marks its inodes S_NOSEC, so
	// that happens on every write(2), passthrough ones included
	// (backing_file_write_iter in fs/backing-file.c calls
	// file_remove_privs on the FUSE file). go-fuse's loopback answers
	// ENODATA, which the kernel does not remember.
	NoXattr bool
	// Layer, when set, wraps the file system's RawFileSystem below the
	// Observer: file systems that answer OPEN with backing ids of their
	// own choosing do it there, registering through cb so that the
	// Observer records each registration.
	Layer func(fs fuse.RawFileSystem, cb Callbacks) fuse.RawFileSystem
	// Record, when set, serves the mount from a loop of its own that
	// records every request it reads from /dev/fuse into Record before
	// go-fuse parses it, and hands each to a goroutine of its own. Such
	// a mount also holds a GETXATTR of HoldXattr until the kernel
	// interrupts it (see Observer.GetXAttr). Notifications (Callbacks'
	// *Notify) are not available on it.
	Record *Recorder
	// CacheTimeout is how long the kernel may cache names and
	// attributes; 0 is one second.
	CacheTimeout time.Duration
	// URing serves the mount over FUSE's io_uring transport (uringLoop)
	// instead of /dev/fuse: the mount fails with ErrNoURing where the
	// kernel does not offer it. Only file systems that answer at once
	// and need nothing of go-fuse's Server but backing-file
	// registrations may: the NOOP file and the loopback.
	URing bool
	// loop serves from one goroutine (devLoop) instead of go-fuse's
	// Server; only file systems that need nothing of the Server may.
	loop bool
	// loopReads, with loop, is a buffer the file system's READ replies
	// are made over in place (see mountLoop).
	loopReads []byte
}

// Mount is a mounted, serving file system.
type Mount struct {
	// Dir is the mount point.
	Dir      string
	Observer *Observer
	srv      *fuse.Server
	// loop serves instead of srv for mounts with Options.loop or
	// Options.Record, uloop for mounts with Options.URing.
	loop  *devLoop
	uloop *uringLoop
	// conn names the connection in FusectlDir; empty if unknown.
	conn string
}

// KernelSettings returns the kernel's FUSE_INIT request: what the kernel
// offered, before the server picked from it.
func (m *Mount) KernelSettings() *fuse.InitIn {
	if m.uloop != nil {
		return &m.uloop.init
	}
	if m.loop != nil {
		return &m.loop.init
	}
	return m.srv.KernelSettings()
}

// Wait returns once the mount's server has stopped serving, with what
// stopped it if that was not the connection's end.
func (m *Mount) Wait() error {
	if m.uloop != nil {
		return m.uloop.Wait()
	}
	if m.loop != nil {
		return m.loop.Wait()
	}
	m.srv.Wait()
	return nil
}

// unmount asks the kernel to unmount and waits for the server to stop.
func (m *Mount) unmount() error {
	if m.loop == nil && m.uloop == nil {
		return m.srv.Unmount()
	}
	if err := unix.Unmount(m.Dir, 0); err != nil {
		return err
	}
	return m.Wait()
}

// InitReply returns the server's reply to the kernel's FUSE_INIT, for a
// mount served by a loop of its own (Noop, Options.Record); nil for
// others.
func (m *Mount) InitReply() *fuse.InitOut {
	if m.loop == nil {
		return nil
	}
	return &m.loop.initOut
}

// Unanswered returns the requests the mount's loop read from /dev/fuse
// and has not answered, oldest first: for a mount that records
// (Options.Record), what a caller that waited too long reports. Nil for
// other mounts.
func (m *Mount) Unanswered() []Unanswered {
	if m.loop == nil || !m.loop.concurrent {
		return nil
	}
	return m.loop.unanswered.list()
}

// RetrieveCache asks the kernel, with FUSE_NOTIFY_RETRIEVE, for up to
// size bytes of what it caches of node from offset. The kernel answers
// with a NOTIFY_REPLY request, which a Recorder sees and go-fuse drops.
// Only a mount served by a loop of its own can ask (Options.Record).
func (m *Mount) RetrieveCache(node, offset uint64, size uint32) error {
	if m.loop == nil {
		return fmt.Errorf("retrieve: %s is served by go-fuse's Server", m.Dir)
	}
	return m.loop.retrieve(node, offset, size)
}

// Server returns the go-fuse server behind the mount, nil for a mount
// served by a loop of its own (Noop, Options.Record, Options.URing).
func (m *Mount) Server() *fuse.Server { return m.srv }

// BackingOpen issues FUSE_DEV_IOC_BACKING_OPEN with bm, padding included,
// on the mount's /dev/fuse descriptor and returns the backing id or the
// kernel's errno. The caller owns the id and must BackingClose it.
// Unlike a registration the node bridge makes, this one leaves the mount's
// passthrough state alone and is not recorded by the Observer.
func (m *Mount) BackingOpen(bm fuseabi.BackingMap) (int32, syscall.Errno) {
	// Same layout (fuseabi tests pin it); go-fuse's padding is merely
	// unexported.
	if m.uloop != nil {
		return m.uloop.backingOpen(&bm)
	}
	if m.loop != nil {
		return m.loop.backingOpen(&bm)
	}
	return m.srv.RegisterBackingFd((*fuse.BackingMap)(unsafe.Pointer(&bm)))
}

// BackingClose issues FUSE_DEV_IOC_BACKING_CLOSE for id on the mount's
// /dev/fuse descriptor and returns the kernel's errno.
func (m *Mount) BackingClose(id int32) syscall.Errno {
	if m.uloop != nil {
		return m.uloop.backingClose(id)
	}
	if m.loop != nil {
		return m.loop.backingClose(id)
	}
	return m.srv.UnregisterBackingFd(id)
}

// ReleaseWait bounds how long Unmount waits for the kernel's RELEASE of
// files closed just before.
const ReleaseWait = 2 * time.Second

// Unmount unmounts and waits for the server to stop.
//
// The kernel sends RELEASE asynchronously after the last close; unmounting
// before the server has handled it drops the request, and the loopback's
// descriptor for the backing file stays open for the life of the process.
// So Unmount first gives outstanding releases a moment.
//
// When the kernel refuses (a file still open), the connection is aborted
// through fusectl and the mount detached, so that the mount point is free
// and no later close(2) can wait on a server that is gone; the refusal is
// returned.
func (m *Mount) Unmount() error {
	for deadline := time.Now().Add(ReleaseWait); m.Observer.handles.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(2 * time.Millisecond)
	}
	err := m.unmount()
	if err == nil {
		return nil
	}
	if m.conn != "" {
		if aerr := AbortConnection(m.conn); aerr != nil {
			err = errors.Join(err, fmt.Errorf("abort: %w", aerr))
		}
	}
	if derr := unix.Unmount(m.Dir, unix.MNT_DETACH); derr != nil && !errors.Is(derr, unix.EINVAL) {
		err = errors.Join(err, fmt.Errorf("detach: %w", derr))
	}
	return fmt.Errorf("unmount %s: %w", m.Dir, err)
}

// FusectlDir is where the FUSE control file system lists connections.
const FusectlDir = "/sys/fs/fuse/connections"

// Connection returns the name of the FUSE connection mounted at dir in
// FusectlDir: the kernel names it after the super block's dev_t,
// MKDEV(major, minor), which differs from the encoding stat(2) returns.
func Connection(dir string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return "", err
	}
	return strconv.FormatUint(uint64(unix.Major(st.Dev))<<20|uint64(unix.Minor(st.Dev)), 10), nil
}

// AbortConnection aborts the FUSE connection conn (as Connection names
// it) through fusectl: every request waiting on the server fails, and so
// does every later one.
func AbortConnection(conn string) error {
	return os.WriteFile(filepath.Join(FusectlDir, conn, "abort"), []byte("1"), 0)
}

// Settings are what a mount gives the file system build makes for it.
type Settings struct {
	// MountOptions are what the mount asks of the kernel and of go-fuse's
	// protocol server; build may change them.
	MountOptions *fuse.MountOptions
	// EntryTimeout and AttrTimeout are how long the kernel may cache
	// names and attributes.
	EntryTimeout, AttrTimeout time.Duration
	// Logger receives go-fuse's log lines (Options.Logf).
	Logger *log.Logger
	// Callbacks are the file system's way into the kernel: a node tree
	// takes them as its fs.ServerCallbacks.
	Callbacks Callbacks
}

// MountRaw serves at mountpoint, observed, the wire-level file system
// that build makes for the mount's settings.
func MountRaw(ctx context.Context, mountpoint string, o Options, build func(Settings) fuse.RawFileSystem) (*Mount, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	if o.Name == "" {
		o.Name = "fusematrix"
	}
	logger := log.New(logSink{o.Logf}, "go-fuse: ", 0)
	obs := &Observer{noXattr: o.NoXattr, hold: o.Record != nil}
	timeout := cmp.Or(o.CacheTimeout, time.Second)
	mo := fuse.MountOptions{
		DirectMount:       true,
		DirectMountStrict: true,
		FsName:            o.Name,
		Name:              "fusematrix",
		Logger:            logger,
		MaxWrite:          MaxWrite,
	}
	if !o.Passthrough {
		mo.DisabledCapabilities |= fuse.CAP_PASSTHROUGH
	}
	if o.WritebackCache {
		mo.ExtraCapabilities |= fuse.CAP_WRITEBACK_CACHE
	}
	obs.RawFileSystem = build(Settings{
		MountOptions: &mo,
		EntryTimeout: timeout,
		AttrTimeout:  timeout,
		Logger:       logger,
		Callbacks:    Callbacks{obs},
	})
	if o.Layer != nil {
		obs.RawFileSystem = o.Layer(obs.RawFileSystem, Callbacks{obs})
	}
	if o.URing {
		l, err := mountURing(ctx, mountpoint, obs, mo)
		if err != nil {
			return nil, fmt.Errorf("mount %s over io_uring: %w", mountpoint, err)
		}
		conn, _ := Connection(mountpoint)
		return &Mount{Dir: mountpoint, Observer: obs, uloop: l, conn: conn}, nil
	}
	if o.loop || o.Record != nil {
		l, err := mountLoop(ctx, mountpoint, obs, mo, o.loopReads, o.Record)
		if err != nil {
			return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
		}
		conn, _ := Connection(mountpoint)
		return &Mount{Dir: mountpoint, Observer: obs, loop: l, conn: conn}, nil
	}

	type made struct {
		srv *fuse.Server
		err error
	}
	done := make(chan made, 1)
	go func() {
		// NewServer reads the kernel's INIT synchronously; run it aside
		// so that a kernel that never sends one cannot hold ctx hostage.
		srv, err := fuse.NewServer(obs, mountpoint, &mo)
		if err == nil {
			go srv.Serve()
			err = srv.WaitMount()
			if err != nil {
				_ = srv.Unmount()
			}
		}
		done <- made{srv, err}
	}()
	select {
	case m := <-done:
		if m.err != nil {
			return nil, fmt.Errorf("mount %s: %w", mountpoint, m.err)
		}
		conn, _ := Connection(mountpoint)
		return &Mount{Dir: mountpoint, Observer: obs, srv: m.srv, conn: conn}, nil
	case <-ctx.Done():
		// Detaching ends the connection, which frees the goroutine above;
		// a server that came up anyway is taken down when it does.
		_ = unix.Unmount(mountpoint, unix.MNT_DETACH)
		go func() {
			if m := <-done; m.err == nil {
				_ = m.srv.Unmount()
			}
		}()
		return nil, fmt.Errorf("mount %s: %w", mountpoint, ctx.Err())
	}
}

// MaxWrite is the largest READ or WRITE a mount accepts: go-fuse's own
// default, spelled out so that benchmarks can report the setting behind
// their figures. go-fuse asks the kernel for MaxWrite/page size pages
// (max_pages in the INIT reply).
const MaxWrite = 128 << 10

// DevFuse is the device every mount opens.
const DevFuse = "/dev/fuse"

// CanMount reports why this process cannot mount FUSE directly, or nil:
// a direct mount needs /dev/fuse and CAP_SYS_ADMIN (checked as root, which
// is what the guest agent and privileged test runs are).
func CanMount() error {
	st, err := os.Stat(DevFuse)
	if err != nil {
		return fmt.Errorf("no %s: %w", DevFuse, err)
	}
	if st.Mode()&os.ModeCharDevice == 0 {
		return fmt.Errorf("%s is not a character device (%s)", DevFuse, st.Mode())
	}
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("mounting %s needs root, running as uid %d", DevFuse, uid)
	}
	return nil
}

// logSink drops go-fuse's splice fallback messages: it logs one whenever a
// reply does not fit its pipe, which on small-pipe kernels is every large
// read and would drown anything useful.
type logSink struct {
	logf func(format string, args ...any)
}

func (s logSink) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	if s.logf != nil && !strings.Contains(line, "trySplice") {
		s.logf("%s", line)
	}
	return len(p), nil
}
