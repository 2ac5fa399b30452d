package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// loadModules loads the modules listed in list, in order, and returns what
// the host should hear about it. A failure does not stop the agent: the
// fuse-init probe reports what the missing module means.
func loadModules(list string) []string {
	data, err := os.ReadFile(list)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return []string{fmt.Sprintf("modules: %v", err)}
	}
	var notes []string
	var loaded, present, failed int
	for _, line := range strings.Split(string(data), "\n") {
		path := strings.TrimSpace(line)
		if path == "" || strings.HasPrefix(path, "#") {
			continue
		}
		switch err := loadModule(path); {
		case err == nil:
			loaded++
		case errors.Is(err, unix.EEXIST):
			present++
		default:
			failed++
			notes = append(notes, fmt.Sprintf("load module %s: %v", path, err))
		}
	}
	return append(notes, fmt.Sprintf("modules: %d loaded, %d already present, %d failed", loaded, present, failed))
}

func loadModule(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	flags := 0
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		if strings.HasSuffix(path, ext) {
			// The kernel decompresses, when built to.
			flags |= unix.MODULE_INIT_COMPRESSED_FILE
		}
	}
	if err := unix.FinitModule(fd, "", flags); err != nil {
		return fmt.Errorf("finit_module: %w", err)
	}
	return nil
}

const fusectlDir = wire.FusectlDir

// ensureFusectl mounts the FUSE control file system, through which a stuck
// connection can be aborted; u-root's init does not mount it.
func ensureFusectl() error {
	if _, err := os.Stat(fusectlDir); err != nil {
		return fmt.Errorf("fusectl: %w (is FUSE loaded?)", err)
	}
	mounts, err := readMountinfo("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("fusectl: %w", err)
	}
	for _, m := range mounts {
		if m.dir == fusectlDir && m.fstype == "fusectl" {
			return nil
		}
	}
	if err := unix.Mount("fusectl", fusectlDir, "fusectl", 0, ""); err != nil {
		return fmt.Errorf("mount fusectl at %s: %w", fusectlDir, err)
	}
	return nil
}

// scratchRoot prepares the directory scenarios get their scratch space
// in. Without one configured, it mounts a tmpfs so that benchmarks read
// from memory and nothing of the initramfs is touched.
func scratchRoot(dir string) (string, []string, error) {
	if dir != "" {
		return dir, nil, os.MkdirAll(dir, 0o755)
	}
	if err := os.MkdirAll(DefaultScratch, 0o755); err != nil {
		return "", nil, err
	}
	if err := unix.Mount("fusematrix", DefaultScratch, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return DefaultScratch, []string{fmt.Sprintf("tmpfs at %s: %v; using the directory as it is", DefaultScratch, err)}, nil
	}
	return DefaultScratch, nil, nil
}

// daemonScratch prepares, below the root a daemon runs in, the directory
// its checks get their scratch space in: a tmpfs, as scratchRoot's, so
// that the daemon's files are in memory like everything else's, mounted
// once however many checks use it.
func daemonScratch(root string) (string, error) {
	dir := filepath.Join(root, contract.RootScratch)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var st, parent unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return "", err
	}
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil {
		return "", err
	}
	if st.Dev != parent.Dev {
		return dir, nil // mounted already
	}
	if err := unix.Mount("fusematrix", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return "", fmt.Errorf("tmpfs at %s: %w", dir, err)
	}
	return dir, nil
}

// findPort waits until a virtio port named name has a device node and
// returns its path. Without udev the name is only in sysfs.
func findPort(ctx context.Context, sysRoot, devRoot, name string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		var seen []string
		files, _ := filepath.Glob(filepath.Join(sysRoot, "class/virtio-ports/*/name"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			got := strings.TrimSpace(string(data))
			seen = append(seen, got)
			if got != name {
				continue
			}
			dev := filepath.Join(devRoot, filepath.Base(filepath.Dir(f)))
			if _, err := os.Stat(dev); err == nil {
				return dev, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no virtio port named %q after %s (ports: %q)", name, wait, seen)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for virtio port %q: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// openPort opens a virtio port for blocking writes. The descriptor is
// opened without O_NONBLOCK, so os.NewFile leaves it out of Go's
// netpoller and every write is a plain write(2): a Go program waiting on a
// virtio console through epoll can miss its wakeup and hang forever.
func openPort(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	major, minor uint32
	dir          string
	fstype       string
}

func readMountinfo(path string) ([]mountEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

// parseMountinfo reads the format of proc(5): "id parent major:minor root
// mountpoint options [optional...] - fstype source superoptions".
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if len(fields) < 5 || sep < 5 || sep+1 >= len(fields) {
			return nil, fmt.Errorf("mountinfo: malformed line %q", sc.Text())
		}
		maj, min, ok := strings.Cut(fields[2], ":")
		major, err1 := strconv.ParseUint(maj, 10, 32)
		minor, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo: bad device %q", fields[2])
		}
		out = append(out, mountEntry{
			major: uint32(major), minor: uint32(minor),
			dir: unescapeOctal(fields[4]), fstype: fields[sep+1],
		})
	}
	return out, sc.Err()
}

// unescapeOctal undoes the \NNN escapes the kernel writes for space, tab,
// newline and backslash in paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountsUnder returns the mounts at or below dir, deepest first, so that
// they can be unmounted in that order.
func mountsUnder(mounts []mountEntry, dir string) []mountEntry {
	dir = filepath.Clean(dir)
	var out []mountEntry
	for _, m := range mounts {
		if m.dir == dir || strings.HasPrefix(m.dir, dir+"/") {
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b mountEntry) int {
		return strings.Count(b.dir, "/") - strings.Count(a.dir, "/")
	})
	return out
}

// connection is the fusectl directory name of a FUSE mount: the kernel
// names it after the super block's dev_t, MKDEV(major, minor).
func (m mountEntry) connection() string {
	return strconv.FormatUint(uint64(m.major)<<20|uint64(m.minor), 10)
}

func (m mountEntry) isFUSE() bool {
	return m.fstype == "fuse" || strings.HasPrefix(m.fstype, "fuse.")
}

// abortFUSE aborts the FUSE connections mounted under dir: every request
// in flight or to come fails at once, so a scenario stuck on a wedged
// server returns and its mounts can go. Only the scenario's own
// connections are touched, which matters when the agent runs on a host.
func abortFUSE(dir string) []string {
	mounts, err := readMountinfo("/proc/self/mountinfo")
	if err != nil {
		return []string{fmt.Sprintf("abort FUSE connections: %v", err)}
	}
	var notes []string
	for _, m := range mountsUnder(mounts, dir) {
		if !m.isFUSE() {
			continue
		}
		abort := filepath.Join(fusectlDir, m.connection(), "abort")
		if err := os.WriteFile(abort, []byte("1"), 0); err != nil {
			notes = append(notes, fmt.Sprintf("abort FUSE connection of %s: %v", m.dir, err))
			continue
		}
		notes = append(notes, fmt.Sprintf("aborted FUSE connection %s of %s", m.connection(), m.dir))
	}
	return notes
}

// clearDir detaches every mount under dir and removes it. Detaching first
// keeps RemoveAll from walking into a FUSE mount, where it would delete
// through the server or hang on a stuck one. A FUSE mount left behind is
// aborted before it is detached: once detached it is out of mountinfo and
// out of reach, and a file still open on it would make this process hang
// on exit, flushing to a server that dies with it.
func clearDir(dir string) error {
	mounts, err := readMountinfo("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mountsUnder(mounts, dir) {
		if m.isFUSE() {
			_ = os.WriteFile(filepath.Join(fusectlDir, m.connection(), "abort"), []byte("1"), 0)
		}
		if err := unix.Unmount(m.dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("detach %s: %w", m.dir, err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, os.RemoveAll(dir))
	}
	return errors.Join(errs...)
}

// powerOff ends the machine. If power-off returns (it should not), a
// restart does it: the host runs QEMU with -no-reboot.
func powerOff(console io.Writer) {
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	fmt.Fprintf(console, "fusematrix: power off: %v; restarting instead\n", err)
	err = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	fmt.Fprintf(console, "fusematrix: restart: %v\n", err)
}
