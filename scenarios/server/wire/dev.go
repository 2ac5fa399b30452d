package wire

import (
	"fmt"
	"sync"
	"syscall"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
)

// dev is the /dev/fuse descriptor of a mount served by a loop of its own
// (devLoop, uringLoop): the loop's end, and the backing ioctls other
// goroutines issue on it meanwhile.
type dev struct {
	fd int
	// fdMu keeps fd open under the ioctls of other goroutines; the loop
	// itself is the only one to close it.
	fdMu   sync.RWMutex
	closed bool

	done chan struct{}
	once sync.Once
	err  error
}

func newDev(fd int) dev { return dev{fd: fd, done: make(chan struct{})} }

// mountDev opens /dev/fuse and mounts it at mountpoint as go-fuse's
// direct mount does (same source, type, flags and options, so that the
// kernel cannot tell the two apart), and returns the descriptor.
func mountDev(mountpoint string, opts *fuse.MountOptions) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return -1, err
	}
	fd, err := unix.Open(DevFuse, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	source := opts.FsName
	if source == "" {
		source = opts.Name
	}
	data := fmt.Sprintf("fd=%d,rootmode=%o,user_id=%d,group_id=%d,max_read=%d",
		fd, st.Mode&unix.S_IFMT, unix.Geteuid(), unix.Getegid(), opts.MaxWrite)
	if err := unix.Mount(source, mountpoint, "fuse."+opts.Name, unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// backingOpen issues FUSE_DEV_IOC_BACKING_OPEN on the device.
func (l *dev) backingOpen(bm *fuseabi.BackingMap) (int32, syscall.Errno) {
	id, errno := l.ioctl(fuseabi.DevIocBackingOpen, unsafe.Pointer(bm))
	return int32(id), errno
}

// backingClose issues FUSE_DEV_IOC_BACKING_CLOSE on the device.
func (l *dev) backingClose(id int32) syscall.Errno {
	_, errno := l.ioctl(fuseabi.DevIocBackingClose, unsafe.Pointer(&id))
	return errno
}

// ioctl issues req on the device unless the loop has closed it: after
// that the number may already name another file.
func (l *dev) ioctl(req uintptr, arg unsafe.Pointer) (uintptr, syscall.Errno) {
	l.fdMu.RLock()
	defer l.fdMu.RUnlock()
	if l.closed {
		return 0, syscall.EBADF
	}
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(l.fd), req, uintptr(arg))
	return r, errno
}

// finish records why the loop ended and releases the device.
func (l *dev) finish(err error) {
	l.once.Do(func() {
		l.err = err
		l.fdMu.Lock()
		l.closed = true
		unix.Close(l.fd)
		l.fdMu.Unlock()
		close(l.done)
	})
}

// Wait returns once the loop has ended, with the error that ended it, if
// it was not the connection's end.
func (l *dev) Wait() error {
	<-l.done
	return l.err
}
