package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
)

// Unserved is a FUSE connection that nothing serves: mounted, with the
// kernel's INIT request read and answered only when the caller says so
// (ReplyInit), after which no request is read from /dev/fuse. It is what
// a probe of the io_uring commands needs: a connection in each state the
// kernel checks, whose requests only the probe's ring may take.
type Unserved struct {
	Dir string
	// Fd is the connection's /dev/fuse descriptor.
	Fd int
	// Init is the kernel's INIT request: what it offers.
	Init   fuse.InitIn
	unique uint64
	conn   string
}

// MountUnserved mounts a connection at dir, as mountLoop does, and reads
// the kernel's INIT request, which mount(2) queued.
func MountUnserved(dir, name string) (*Unserved, error) {
	fd, err := mountDev(dir, &fuse.MountOptions{Name: "fusematrix", FsName: name, MaxWrite: MaxWrite})
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	u := &Unserved{Dir: dir, Fd: fd}
	// Not Connection: its stat(2) of the root would wait for a GETATTR
	// that nothing answers.
	u.conn, _ = mountedConnection(dir)
	buf := make([]byte, loopBuffer)
	n, err := unix.Read(fd, buf)
	if err != nil {
		u.Close()
		return nil, fmt.Errorf("read INIT: %w", err)
	}
	h := (*fuse.InHeader)(unsafe.Pointer(&buf[0]))
	if n < int(unsafe.Sizeof(*h)) || h.Opcode != opInit {
		u.Close()
		return nil, fmt.Errorf("first request (%d bytes) is not INIT", n)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&u.Init)), unsafe.Sizeof(u.Init)), buf[:n])
	u.unique = h.Unique
	return u, nil
}

// Offered is the INIT flags the kernel offered (flags | flags2<<32).
func (u *Unserved) Offered() uint64 {
	return fuseabi.InitFlags(u.Init.Flags, u.Init.Flags2)
}

// ReplyInit accepts protocol 7.x at the kernel's minor with flags (of
// those offered, and FUSE_INIT_EXT), MaxWrite as max_write and its pages
// as max_pages. Once the write returns the connection is initialized.
func (u *Unserved) ReplyInit(flags uint64) error {
	flags |= fuseabi.InitExt
	out := struct {
		h fuse.OutHeader
		o fuse.InitOut
	}{}
	out.h = fuse.OutHeader{Length: uint32(unsafe.Sizeof(out)), Unique: u.unique}
	out.o = fuse.InitOut{
		Major:               u.Init.Major,
		Minor:               u.Init.Minor,
		MaxReadAhead:        u.Init.MaxReadAhead,
		Flags:               uint32(flags),
		Flags2:              uint32(flags >> 32),
		MaxBackground:       12,
		CongestionThreshold: 9,
		MaxWrite:            MaxWrite,
		MaxPages:            MaxWrite / 4096,
	}
	if _, err := unix.Write(u.Fd, unsafe.Slice((*byte)(unsafe.Pointer(&out)), unsafe.Sizeof(out))); err != nil {
		return fmt.Errorf("reply to INIT: %w", err)
	}
	return nil
}

// Close aborts the connection (which fails every request waiting on it
// and ends whatever a ring still holds), detaches the mount and closes
// the descriptor.
func (u *Unserved) Close() error {
	var errs []error
	if u.conn != "" {
		if err := AbortConnection(u.conn); err != nil {
			errs = append(errs, fmt.Errorf("abort: %w", err))
		}
	}
	if err := unix.Unmount(u.Dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		errs = append(errs, fmt.Errorf("detach %s: %w", u.Dir, err))
	}
	if err := unix.Close(u.Fd); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// mountedConnection names the FUSE connection mounted at dir, as
// Connection does, from the device numbers /proc/self/mountinfo gives
// the mount, without a request to its server.
func mountedConnection(dir string) (string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	conn := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// "46 27 0:41 / /mnt rw,... - fuse.x src opts": the last mount
		// at dir is the one on top.
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[4] != dir {
			continue
		}
		major, minor, ok := strings.Cut(f[2], ":")
		a, err1 := strconv.ParseUint(major, 10, 32)
		b, err2 := strconv.ParseUint(minor, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return "", fmt.Errorf("mountinfo: device %q", f[2])
		}
		conn = strconv.FormatUint(a<<20|b, 10)
	}
	if conn == "" {
		return "", fmt.Errorf("%s is not in /proc/self/mountinfo", dir)
	}
	return conn, nil
}
