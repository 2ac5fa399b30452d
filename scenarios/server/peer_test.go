package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/scenarios/server/internal/servertest"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// buildPeer compiles guest/nullfs/nullfs.c the way `make peer` does: a
// static binary against libfuse3. It skips when there is no C compiler or
// no libfuse3 for pkg-config to find.
func buildPeer(tb testing.TB) string {
	tb.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		tb.Skipf("building the C NOOP peer needs a C compiler: %v", err)
	}
	if _, err := exec.LookPath("pkg-config"); err != nil {
		tb.Skipf("building the C NOOP peer needs pkg-config: %v", err)
	}
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "--static", "fuse3").Output()
	if err != nil {
		tb.Skipf("building the C NOOP peer needs libfuse3-dev (pkg-config fuse3: %v)", err)
	}
	out := filepath.Join(tb.TempDir(), "fusematrix-nullfs")
	args := append([]string{"-O2", "-Wall", "-Wextra", "-Werror", "-static", "-o", out,
		filepath.Join("..", "..", "guest", "nullfs", "nullfs.c")}, strings.Fields(string(flags))...)
	if msg, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		tb.Fatalf("cc %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	return out
}

// startPeer starts the peer at a new mount point, stopped at the end.
func startPeer(t *testing.T, spec PeerSpec) *Process {
	t.Helper()
	if spec.Mountpoint == "" {
		spec.Mountpoint = t.TempDir()
	}
	p, err := StartPeer(context.Background(), spec)
	assert.NilError(t, err)
	t.Cleanup(func() { _, _ = p.Stop() })
	return p
}

// startGoNoop starts the Go NOOP server as the bench does: a process of
// its own (Launcher).
func startGoNoop(t *testing.T, size int64) *Process {
	t.Helper()
	p, err := Launcher{}.Start(context.Background(), loopback.Spec{Kind: loopback.KindNoop, Size: size}, t.TempDir())
	assert.NilError(t, err)
	t.Cleanup(func() { _, _ = p.Stop() })
	return p
}

func TestPeer(t *testing.T) {
	servertest.NeedMount(t)
	bin := buildPeer(t)

	t.Run("version", func(t *testing.T) {
		v, err := PeerVersion(context.Background(), bin)
		assert.NilError(t, err)
		assert.Check(t, strings.HasPrefix(v, "libfuse 3."), "version %q", v)
	})

	t.Run("file", func(t *testing.T) {
		const size = 5<<20 + 7
		p := startPeer(t, PeerSpec{Path: bin, Name: "data", Size: size})
		st, err := os.Stat(filepath.Join(p.Dir, "data"))
		assert.NilError(t, err)
		assert.Check(t, is.Equal(st.Size(), int64(size)))
		assert.Check(t, is.Equal(st.Mode(), os.FileMode(0o644)))
		entries, err := os.ReadDir(p.Dir)
		assert.NilError(t, err)
		assert.Assert(t, is.Len(entries, 1))
		assert.Check(t, is.Equal(entries[0].Name(), "data"))
		_, err = os.Stat(filepath.Join(p.Dir, "other"))
		assert.Check(t, errors.Is(err, os.ErrNotExist), "stat of a name the peer does not have: %v", err)
	})

	t.Run("reads", func(t *testing.T) {
		const size = 3<<20 + 100
		p := startPeer(t, PeerSpec{Path: bin, Size: size})
		f, err := os.Open(filepath.Join(p.Dir, wire.NoopName))
		assert.NilError(t, err)
		defer f.Close()
		for _, tc := range []struct {
			off   int64
			block int
			want  int
		}{
			{off: 0, block: 4 << 10, want: 4 << 10},
			{off: 12345, block: 4 << 10, want: 4 << 10},
			{off: 1 << 20, block: 128 << 10, want: 128 << 10},
			{off: 0, block: 1 << 20, want: 1 << 20},
			{off: 2<<20 + 4096, block: 1 << 20, want: 1<<20 - 4096 + 100},
			{off: size - 10, block: 4 << 10, want: 10},
			{off: size, block: 4 << 10, want: 0},
		} {
			buf := bytes.Repeat([]byte{0xff}, tc.block)
			n, err := f.ReadAt(buf, tc.off)
			if tc.want < tc.block {
				assert.Check(t, is.Equal(err, io.EOF), "off %d block %d", tc.off, tc.block)
			} else {
				assert.Check(t, err, "off %d block %d", tc.off, tc.block)
			}
			assert.Check(t, is.Equal(n, tc.want), "off %d block %d", tc.off, tc.block)
			assert.Check(t, is.Equal(bytes.Count(buf[:n], []byte{0}), n), "off %d block %d: non-zero bytes", tc.off, tc.block)
		}
	})

	t.Run("writes", func(t *testing.T) {
		const size = 1 << 20
		p := startPeer(t, PeerSpec{Path: bin, Size: size})
		path := filepath.Join(p.Dir, wire.NoopName)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		assert.NilError(t, err)
		for _, block := range []int{4 << 10, 128 << 10, 1 << 20} {
			n, err := f.Write(bytes.Repeat([]byte{0xaa}, block))
			assert.Check(t, err)
			assert.Check(t, is.Equal(n, block))
		}
		assert.NilError(t, f.Close())
		st, err := os.Stat(path)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(st.Size(), int64(size)), "truncation or writes changed the size")
		data, err := os.ReadFile(path)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(bytes.Count(data, []byte{0}), size), "written bytes came back")
	})

	t.Run("mount", func(t *testing.T) {
		p := startPeer(t, PeerSpec{Path: bin, Size: 1})
		g := startGoNoop(t, 1)
		pm, gm := onlyMount(t, p.Dir), onlyMount(t, g.Dir)
		// Mounted by libfuse's own mount code, named as nullfs.c names it.
		assert.Check(t, is.Equal(pm.FsType, "fuse."+PeerFsName))
		assert.Check(t, is.Equal(pm.Source, PeerFsName))
		// Same mount flags and the same options for the kernel,
		// max_read included, as the Go server's.
		assert.Check(t, is.Equal(pm.Options, gm.Options))
		assert.Check(t, is.Equal(pm.SuperOptions, gm.SuperOptions))
		assert.Check(t, is.Contains(pm.SuperOptions, fmt.Sprintf("max_read=%d", wire.MaxWrite)))
		// And served by the peer process itself.
		assert.Check(t, holdsDevFuse(t, p.Pid()), "peer process has no %s open", wire.DevFuse)
	})

	t.Run("connection", func(t *testing.T) {
		p := startPeer(t, PeerSpec{Path: bin, Size: 1})
		g := startGoNoop(t, 1)
		for _, knob := range []string{"max_background", "congestion_threshold"} {
			pv, gv := connectionKnob(t, p.Dir, knob), connectionKnob(t, g.Dir, knob)
			assert.Check(t, is.Equal(pv, gv), "%s: peer %s, Go %s", knob, pv, gv)
		}
	})

	// The kernel must ask the peer what it asks the Go server, or the
	// comparison compares different work.
	t.Run("requests", func(t *testing.T) {
		const readSize, writeSize = 8 << 20, 2 << 20
		for _, block := range []int{4 << 10, 128 << 10, 1 << 20} {
			t.Run(fmt.Sprint(block), func(t *testing.T) {
				p := startPeer(t, PeerSpec{Path: bin, Size: readSize, Count: true})
				g := startGoNoop(t, readSize)
				assert.NilError(t, servertest.ReadWriteAll(filepath.Join(p.Dir, wire.NoopName), block, readSize, writeSize))
				assert.NilError(t, servertest.ReadWriteAll(filepath.Join(g.Dir, wire.NoopName), block, readSize, writeSize))
				ps, err := p.Stop()
				assert.NilError(t, err)
				gs, err := g.Stop()
				assert.NilError(t, err)

				t.Logf("peer %v, Go %v", ps.Requests, gs.Requests)
				assert.Check(t, is.Equal(ps.ReadBytes, gs.ReadBytes))
				assert.Check(t, ps.ReadBytes >= readSize, "peer READs asked for %d bytes of %d", ps.ReadBytes, readSize)
				assert.Check(t, is.Equal(ps.WriteBytes, int64(writeSize)))
				assert.Check(t, is.Equal(gs.WriteBytes, int64(writeSize)))
				for _, op := range []string{"READ", "WRITE", "GETXATTR", "SETATTR", "OPEN", "FLUSH"} {
					assert.Check(t, is.Equal(ps.Requests[op], gs.Requests[op]), "%s: peer %v, Go %v", op, ps.Requests, gs.Requests)
				}
				readMax, writeMax := p.Largest()
				assert.Check(t, is.Equal(readMax, int64(wire.MaxWrite)))
				assert.Check(t, is.Equal(writeMax, int64(min(block, wire.MaxWrite))))
			})
		}
	})

	t.Run("threads", func(t *testing.T) {
		for _, tc := range []struct {
			single bool
			want   func(n int) bool
		}{
			{single: false, want: func(n int) bool { return n >= 2 }},
			{single: true, want: func(n int) bool { return n == 1 }},
		} {
			p := startPeer(t, PeerSpec{Path: bin, Size: 1 << 20, SingleThreaded: tc.single})
			_, err := os.ReadFile(filepath.Join(p.Dir, wire.NoopName))
			assert.NilError(t, err)
			tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.Pid()))
			assert.NilError(t, err)
			assert.Check(t, tc.want(len(tasks)), "single-threaded %v: %d threads", tc.single, len(tasks))
		}
	})

	t.Run("stop-with-open-file", func(t *testing.T) {
		p := startPeer(t, PeerSpec{Path: bin, Size: 1 << 20})
		f, err := os.Open(filepath.Join(p.Dir, wire.NoopName))
		assert.NilError(t, err)
		defer f.Close()
		pid := p.Pid()
		_, err = p.Stop()
		assert.NilError(t, err)
		assert.Check(t, is.ErrorIs(syscall.Kill(pid, 0), syscall.ESRCH), "peer process %d still exists", pid)
		ms, err := mountsAt(p.Dir)
		assert.NilError(t, err)
		assert.Check(t, is.Len(ms, 0), "mounts left at %s", p.Dir)
		_, err = f.Read(make([]byte, 10))
		assert.Check(t, err != nil, "a file of a stopped peer still reads")
		assert.Check(t, is.Len(p.Stderr(), 0))
	})

	t.Run("unmounted-from-outside", func(t *testing.T) {
		p := startPeer(t, PeerSpec{Path: bin, Size: 1})
		assert.NilError(t, unix.Unmount(p.Dir, 0))
		select {
		case <-p.Exited():
		case <-time.After(time.Minute):
			t.Fatal("peer still runs a minute after its file system was unmounted")
		}
		assert.Check(t, p.waitErr, "peer exit")
		assert.Check(t, is.Len(p.Stderr(), 0), "the peer printed something")
		_, err := p.Stop()
		assert.Check(t, is.ErrorContains(err, "had exited before it was stopped"))
	})

	t.Run("start-errors", func(t *testing.T) {
		hang := filepath.Join(t.TempDir(), "hang")
		assert.NilError(t, os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755))
		busy := startPeer(t, PeerSpec{Path: bin, Size: 1})
		for _, tc := range []struct {
			name    string
			spec    PeerSpec
			timeout time.Duration
			want    string
		}{
			{name: "no binary", spec: PeerSpec{Path: filepath.Join(t.TempDir(), "absent")}, want: "start peer"},
			{name: "no mount point", spec: PeerSpec{Path: bin, Mountpoint: filepath.Join(t.TempDir(), "absent")}, want: "failed to access mountpoint"},
			{name: "bad name", spec: PeerSpec{Path: bin, Name: "a/b"}, want: "not one path component"},
			{name: "negative size", spec: PeerSpec{Path: bin, Size: -1}, want: "negative"},
			{name: "already mounted", spec: PeerSpec{Path: bin, Mountpoint: busy.Dir}, want: "already has a fuse." + PeerFsName + " mount"},
			{name: "never mounts", spec: PeerSpec{Path: hang}, timeout: 200 * time.Millisecond, want: "did not mount: context deadline exceeded"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.spec.Mountpoint == "" {
					tc.spec.Mountpoint = t.TempDir()
				}
				ctx := context.Background()
				if tc.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.timeout)
					defer cancel()
				}
				p, err := StartPeer(ctx, tc.spec)
				if p != nil {
					_, _ = p.Stop()
				}
				assert.Check(t, is.ErrorContains(err, tc.want))
			})
		}
	})
}

func onlyMount(t *testing.T, dir string) mountEntry {
	t.Helper()
	ms, err := mountsAt(dir)
	assert.NilError(t, err)
	assert.Assert(t, is.Len(ms, 1), "mounts at %s", dir)
	return ms[0]
}

func holdsDevFuse(t *testing.T, pid int) bool {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	assert.NilError(t, err)
	for _, fd := range fds {
		if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); target == wire.DevFuse {
			return true
		}
	}
	return false
}

// connectionKnob reads one of the connection's settings from fusectl.
func connectionKnob(t *testing.T, dir, knob string) string {
	t.Helper()
	conn, err := wire.Connection(dir)
	assert.NilError(t, err)
	data, err := os.ReadFile(filepath.Join(wire.FusectlDir, conn, knob))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("no %s: fusectl is not mounted at %s", knob, wire.FusectlDir)
	}
	assert.NilError(t, err)
	return strings.TrimSpace(string(data))
}

func TestPeerSpecArgs(t *testing.T) {
	for _, tc := range []struct {
		spec PeerSpec
		want []string
	}{
		{spec: PeerSpec{Mountpoint: "/m", Name: "zero", Size: 42}, want: []string{"/m", "zero", "42"}},
		{spec: PeerSpec{Mountpoint: "/m", Name: "z", Size: 0, SingleThreaded: true}, want: []string{"-s", "/m", "z", "0"}},
		{spec: PeerSpec{Mountpoint: "/m", Name: "z", Size: 1, NoXattr: true, Count: true}, want: []string{"-x", "-c", "/m", "z", "1"}},
	} {
		assert.Check(t, is.DeepEqual(tc.spec.args(), tc.want))
	}
}

func TestParsePeerCounts(t *testing.T) {
	for _, tc := range []struct {
		name       string
		lines      []string
		want       wire.Stats
		rmax, wmax int64
		err        string
	}{
		{
			name: "counts",
			lines: []string{"something else",
				peerCountsPrefix + "LOOKUP=1 READ=64 WRITE=16 FSYNC=0 GETXATTR=16 read_bytes=8388608 write_bytes=2097152 read_max=131072 write_max=131072"},
			want: wire.Stats{Reads: 64, ReadBytes: 8 << 20, Writes: 16, WriteBytes: 2 << 20,
				Requests: map[string]int64{"LOOKUP": 1, "READ": 64, "WRITE": 16, "GETXATTR": 16}},
			rmax: 131072, wmax: 131072,
		},
		{name: "last line wins", lines: []string{peerCountsPrefix + "READ=1", peerCountsPrefix + "READ=2"},
			want: wire.Stats{Reads: 2, Requests: map[string]int64{"READ": 2}}},
		{name: "none", lines: []string{"fuse: mount failed"}, err: "no request counts"},
		{name: "bad number", lines: []string{peerCountsPrefix + "READ=x"}, err: `bad field "READ=x"`},
		{name: "unknown field", lines: []string{peerCountsPrefix + "bogus=1"}, err: `unknown field "bogus=1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, rmax, wmax, err := parsePeerCounts(tc.lines)
			if tc.err != "" {
				assert.Check(t, is.ErrorContains(err, tc.err))
				return
			}
			assert.NilError(t, err)
			assert.Check(t, is.DeepEqual(st, tc.want))
			assert.Check(t, is.Equal(rmax, tc.rmax))
			assert.Check(t, is.Equal(wmax, tc.wmax))
		})
	}
}

func TestParseMountInfo(t *testing.T) {
	for _, tc := range []struct {
		line string
		want mountEntry
		ok   bool
	}{
		{
			line: "43 27 0:40 / /tmp/x rw,nosuid,nodev,relatime - fuse.fusematrix-nullfs fusematrix-nullfs rw,user_id=0,group_id=0,max_read=131072",
			want: mountEntry{Dev: "0:40", Point: "/tmp/x", Options: "rw,nosuid,nodev,relatime", FsType: "fuse.fusematrix-nullfs", Source: "fusematrix-nullfs",
				SuperOptions: "rw,user_id=0,group_id=0,max_read=131072"},
			ok: true,
		},
		{
			line: `36 35 98:0 /mnt1 /mnt/a\040b\134c rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue`,
			want: mountEntry{Dev: "98:0", Point: `/mnt/a b\c`, Options: "rw,noatime", FsType: "ext3", Source: "/dev/root", SuperOptions: "rw,errors=continue"},
			ok:   true,
		},
		{line: `1 2 0:1 / /x\04 rw - t s o`, want: mountEntry{Dev: "0:1", Point: `/x\04`, Options: "rw", FsType: "t", Source: "s", SuperOptions: "o"}, ok: true},
		{line: "43 27 0:40 / /tmp/x rw", ok: false},
		{line: "43 27 / - a b c", ok: false},
	} {
		got, ok := parseMountInfo(tc.line)
		assert.Check(t, is.Equal(ok, tc.ok), tc.line)
		assert.Check(t, is.DeepEqual(got, tc.want), tc.line)
	}
}

func TestPeerAvailableAt(t *testing.T) {
	dir := t.TempDir()
	exe, plain := filepath.Join(dir, "exe"), filepath.Join(dir, "plain")
	assert.NilError(t, os.WriteFile(exe, nil, 0o755))
	assert.NilError(t, os.WriteFile(plain, nil, 0o644))
	for _, tc := range []struct {
		path, why string
	}{
		{path: exe},
		{path: plain, why: "not an executable file"},
		{path: dir, why: "not an executable file"},
		{path: filepath.Join(dir, "absent"), why: "no C NOOP peer at"},
	} {
		path, why := peerAvailableAt(tc.path)
		if tc.why == "" {
			assert.Check(t, is.Equal(path, tc.path))
			assert.Check(t, is.Equal(why, ""))
		} else {
			assert.Check(t, is.Equal(path, ""))
			assert.Check(t, is.Contains(why, tc.why))
		}
	}
}

// BenchmarkPeerVsGoNoop reads a 256 MiB NOOP file sequentially through
// the C peer (libfuse's multi-threaded loop, and one thread) and through
// the Go NOOP server (a process of its own, as in the bench), at 4 KiB and
// 1 MiB, on this machine's kernel. Compare the MB/s of the servers at one
// block size; never a pass/fail figure.
func BenchmarkPeerVsGoNoop(b *testing.B) {
	if err := wire.CanMount(); err != nil {
		b.Skipf("cannot mount FUSE here: %v", err)
	}
	bin := buildPeer(b)
	const size = 256 << 20
	for _, block := range []int{4 << 10, 1 << 20} {
		for _, srv := range []string{"libfuse", "libfuse-single", "go"} {
			b.Run(fmt.Sprintf("block=%d/server=%s", block, srv), func(b *testing.B) {
				dir := b.TempDir()
				var stop func() error
				switch srv {
				case "libfuse", "libfuse-single":
					p, err := StartPeer(context.Background(), PeerSpec{Path: bin, Mountpoint: dir, Size: size, SingleThreaded: srv == "libfuse-single"})
					if err != nil {
						b.Fatal(err)
					}
					stop = func() error { _, err := p.Stop(); return err }
				case "go":
					p, err := Launcher{}.Start(context.Background(), loopback.Spec{Kind: loopback.KindNoop, Size: size}, dir)
					if err != nil {
						b.Fatal(err)
					}
					stop = func() error { _, err := p.Stop(); return err }
				}
				path := filepath.Join(dir, wire.NoopName)
				buf := make([]byte, block)
				b.SetBytes(size)
				b.ResetTimer()
				for b.Loop() {
					if err := readFile(path, buf, size); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if err := stop(); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// readFile reads path to its end with buf and allocates nothing.
func readFile(path string, buf []byte, size int64) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	var total int64
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return err
		}
		if n == 0 {
			break
		}
		total += int64(n)
	}
	if err := unix.Close(fd); err != nil {
		return err
	}
	if total != size {
		return fmt.Errorf("read %d bytes, want %d", total, size)
	}
	return nil
}
