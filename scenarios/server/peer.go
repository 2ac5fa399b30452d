package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// The C NOOP peer (guest/nullfs/nullfs.c, built by `make peer`) is a
// libfuse3 file system that does what Noop does, request for request. It
// is the reference the Go NOOP server is measured against: if both move
// the same bytes at the same speed in the same guest, the Go server is not
// what limits the NOOP figure.

// PeerFsName is the fsname and the subtype the peer mounts with, so its
// mount reads "fuse.fusematrix-nullfs fusematrix-nullfs" in
// /proc/self/mountinfo.
const PeerFsName = "fusematrix-nullfs"

// PeerAvailable returns the peer binary this process can run, or why
// there is none.
func PeerAvailable() (path, why string) { return peerAvailableAt(contract.PeerPath) }

func peerAvailableAt(path string) (string, string) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Sprintf("no C NOOP peer at %s (the harness adds it when the host has built it: make peer)", path)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return "", fmt.Sprintf("%s is not an executable file (%s)", path, st.Mode())
	}
	return path, ""
}

// PeerVersion asks the peer at path which libfuse it was built with,
// e.g. "libfuse 3.14.0".
func PeerVersion(ctx context.Context, path string) (string, error) {
	out, err := exec.CommandContext(ctx, path, "-V").Output()
	if err != nil {
		return "", fmt.Errorf("peer %s -V: %w", path, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// PeerSpec says which peer to run and how.
type PeerSpec struct {
	// Path is the binary; "" is contract.PeerPath.
	Path string
	// Mountpoint is an existing directory.
	Mountpoint string
	// Name is the one file's name; "" is wire.NoopName.
	Name string
	// Size is the file's size in bytes.
	Size int64
	// SingleThreaded serves requests from one thread (-s); by default
	// libfuse's multi-threaded loop serves them, as go-fuse serves them
	// concurrently.
	SingleThreaded bool
	// NoXattr answers xattr requests with ENOSYS (-x), like
	// wire.Options.NoXattr for the Go server.
	NoXattr bool
	// Count makes the peer count requests (-c); Stop returns the counts.
	Count bool
	// CPUs, when set, are the only CPUs the peer and its threads may run
	// on.
	CPUs []int
}

func (s PeerSpec) args() []string {
	var a []string
	if s.SingleThreaded {
		a = append(a, "-s")
	}
	if s.NoXattr {
		a = append(a, "-x")
	}
	if s.Count {
		a = append(a, "-c")
	}
	return append(a, s.Mountpoint, s.Name, strconv.FormatInt(s.Size, 10))
}

// peerPoll is how often StartPeer looks for the mount.
const peerPoll = 5 * time.Millisecond

// StartPeer starts the peer and returns once its file is visible at the
// mount point. ctx bounds the start only; a peer that is not up by then is
// killed and its mount, if any, detached.
//
// The peer mounts by itself: as root, libfuse calls mount(2) directly, so
// no fusermount3 is involved (guests have none).
func StartPeer(ctx context.Context, spec PeerSpec) (*Process, error) {
	if spec.Path == "" {
		spec.Path = contract.PeerPath
	}
	if spec.Name == "" {
		spec.Name = wire.NoopName
	}
	if spec.Size < 0 {
		return nil, fmt.Errorf("peer: size %d is negative", spec.Size)
	}
	if strings.ContainsRune(spec.Name, '/') || spec.Name == "." || spec.Name == ".." {
		return nil, fmt.Errorf("peer: file name %q is not one path component", spec.Name)
	}
	if spec.Mountpoint == "" {
		return nil, errors.New("peer: no mount point")
	}
	dir, err := filepath.Abs(spec.Mountpoint)
	if err != nil {
		return nil, fmt.Errorf("peer: mount point: %w", err)
	}
	spec.Mountpoint = dir
	// A peer mount left there would pass for this one.
	if m, err := peerMountAt(dir); err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	} else if m != nil {
		return nil, fmt.Errorf("peer: %s already has a %s mount", dir, m.FsType)
	}

	p := newProcess(dir, "peer", "peer", cPeer{}, exec.Command(spec.Path, spec.args()...))
	p.Peer = spec
	if err := p.start(spec.CPUs); err != nil {
		return nil, fmt.Errorf("start peer %s: %w", spec.Path, err)
	}

	ready := make(chan error, 1)
	cancel := make(chan struct{})
	go func() { ready <- p.waitMounted(cancel) }()
	select {
	case err := <-ready:
		if err == nil {
			return p, nil
		}
		p.kill()
		return nil, fmt.Errorf("peer at %s: %w%s", dir, err, p.stderrNote())
	case <-p.exited:
		close(cancel)
		p.kill()
		return nil, fmt.Errorf("peer at %s exited before mounting (%v)%s", dir, p.waitErr, p.stderrNote())
	case <-ctx.Done():
		close(cancel)
		// Killing the peer ends its connection, which releases a stat
		// blocked in waitMounted.
		p.kill()
		return nil, fmt.Errorf("peer at %s did not mount: %w%s", dir, ctx.Err(), p.stderrNote())
	}
}

// waitMounted polls until the peer's mount is listed at p.Dir and its
// file answers stat with the expected size; a stat goes to the peer and
// can block, which is why the caller runs this aside.
func (p *Process) waitMounted(cancel <-chan struct{}) error {
	t := time.NewTicker(peerPoll)
	defer t.Stop()
	for {
		m, err := peerMountAt(p.Dir)
		if err != nil {
			return err
		}
		if m != nil {
			st, err := os.Stat(filepath.Join(p.Dir, p.Peer.Name))
			if err != nil {
				return fmt.Errorf("mounted, but: %w", err)
			}
			if !st.Mode().IsRegular() || st.Size() != p.Peer.Size {
				return fmt.Errorf("mounted, but %s is %s of %d bytes, want a regular file of %d", st.Name(), st.Mode(), st.Size(), p.Peer.Size)
			}
			return nil
		}
		select {
		case <-cancel:
			return errors.New("cancelled")
		case <-t.C:
		}
	}
}

// cPeer is the child of a Process that runs the C NOOP peer, which reports
// its counts on stderr.
type cPeer struct{}

func (cPeer) exitedEarly(err error) error {
	return fmt.Errorf("peer had exited before it was stopped: %v", err)
}

func (cPeer) abort(dir string) {
	if m, _ := peerMountAt(dir); m != nil {
		if conn, err := wire.Connection(dir); err == nil {
			_ = wire.AbortConnection(conn)
		}
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	}
}

func (cPeer) detachLeft(dir string) bool {
	if m, _ := peerMountAt(dir); m != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		return true
	}
	return false
}

// report reads the peer's counts from its stderr under PeerSpec.Count.
func (cPeer) report(p *Process, errs []error) (wire.Stats, error) {
	var st wire.Stats
	if p.Peer.Count {
		var err error
		if st, p.largestR, p.largestW, err = parsePeerCounts(p.stderr.Lines()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return st, fmt.Errorf("%w%s", err, p.stderrNote())
	}
	return st, nil
}

// peerCountsPrefix starts the line the peer prints at exit under -c.
const peerCountsPrefix = "fusematrix-nullfs: counts "

// parsePeerCounts reads the peer's counts line: opcode=N pairs named as
// OpcodeName names them, then read_bytes, write_bytes, read_max and
// write_max.
func parsePeerCounts(lines []string) (st wire.Stats, readMax, writeMax int64, err error) {
	var line string
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, peerCountsPrefix); ok {
			line = rest
		}
	}
	if line == "" {
		return wire.Stats{}, 0, 0, errors.New("peer printed no request counts")
	}
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		n, perr := strconv.ParseInt(v, 10, 64)
		if !ok || perr != nil {
			return wire.Stats{}, 0, 0, fmt.Errorf("peer counts: bad field %q", f)
		}
		switch k {
		case "read_bytes":
			st.ReadBytes = n
		case "write_bytes":
			st.WriteBytes = n
		case "read_max":
			readMax = n
		case "write_max":
			writeMax = n
		default:
			if k != strings.ToUpper(k) {
				return wire.Stats{}, 0, 0, fmt.Errorf("peer counts: unknown field %q", f)
			}
			if n > 0 {
				if st.Requests == nil {
					st.Requests = map[string]int64{}
				}
				st.Requests[k] = n
			}
		}
	}
	st.Reads, st.Writes, st.Fsyncs = st.Requests["READ"], st.Requests["WRITE"], st.Requests["FSYNC"]
	return st, readMax, writeMax, nil
}

// mountEntry is one line of /proc/self/mountinfo (proc(5)).
type mountEntry struct {
	// Options are the per-mount options (flags such as nosuid, nodev).
	Point, Options, FsType, Source, SuperOptions string
	// Dev is the file system's device, "major:minor": for FUSE, what
	// names its connection in fusectl (without asking the server).
	Dev string
}

// peerMountAt returns the peer's mount at dir, or nil.
func peerMountAt(dir string) (*mountEntry, error) {
	ms, err := mountsAt(dir)
	if err != nil {
		return nil, err
	}
	for i := range ms {
		if ms[i].FsType == "fuse."+PeerFsName {
			return &ms[i], nil
		}
	}
	return nil, nil
}

// mountsAt lists the mounts whose mount point is dir, oldest first.
func mountsAt(dir string) ([]mountEntry, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("mount table: %w", err)
	}
	var out []mountEntry
	for line := range bytes.Lines(data) {
		m, ok := parseMountInfo(string(bytes.TrimRight(line, "\n")))
		if ok && m.Point == dir {
			out = append(out, m)
		}
	}
	return out, nil
}

// parseMountInfo parses "id parent maj:min root point opts [optional...]
// - fstype source superopts".
func parseMountInfo(line string) (mountEntry, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	if !ok {
		return mountEntry{}, false
	}
	a, b := strings.Fields(pre), strings.Fields(post)
	if len(a) < 6 || len(b) < 3 {
		return mountEntry{}, false
	}
	return mountEntry{
		Dev:          a[2],
		Point:        unescapeMountInfo(a[4]),
		Options:      a[5],
		FsType:       b[0],
		Source:       unescapeMountInfo(b[1]),
		SuperOptions: b[2],
	}, true
}

// unescapeMountInfo undoes the kernel's octal escapes (\040 for a space,
// \011, \012, \134) in mountinfo fields.
func unescapeMountInfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
