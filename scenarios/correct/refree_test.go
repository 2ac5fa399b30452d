package correct

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/internal/scentest"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/testbin"
)

// runOwn runs the daemon's check id, as the agent would: through
// scenarios.Run, within the contract's time limit.
func runOwn(t *testing.T, caps *results.Capabilities, spec *contract.DaemonSpec, id contract.ID) results.Result {
	t.Helper()
	for _, c := range contract.DaemonScenarios() {
		if c.ID != id {
			continue
		}
		for _, s := range ForDaemon() {
			if s.ID == id {
				env := scentest.Env(t)
				env.Capabilities, env.Subject = caps, scenarios.DaemonSubject{Spec: spec}
				ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
				defer cancel()
				r := scenarios.Run(ctx, s, env)
				t.Logf("%s: %s %s %v", id, r.Status, r.Reason, r.Facts)
				return r
			}
		}
	}
	t.Fatalf("%s: no such check of a daemon", id)
	return results.Result{}
}

// nullfs builds the C NOOP server, guest/nullfs/nullfs.c, against
// libfuse: a daemon without {backing}, as the real boot runs it.
func nullfs(t *testing.T) string {
	t.Helper()
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "fuse3").Output()
	if err != nil {
		t.Skipf("the C NOOP server needs libfuse3-dev and pkg-config: %v", err)
	}
	out := filepath.Join(t.TempDir(), "nullfs")
	args := append([]string{"-O2", "-o", out, filepath.Join("..", "..", "guest", "nullfs", "nullfs.c")}, strings.Fields(string(flags))...)
	if msg, err := exec.Command("cc", args...).CombinedOutput(); err != nil {
		t.Skipf("cc nullfs: %v\n%s", err, msg)
	}
	return out
}

// ownNoop is fusematrix's own NOOP server run as a daemon without
// {backing}: one file of size zeros.
func ownNoop(t *testing.T, size int64) *contract.DaemonSpec {
	exe, err := os.Executable()
	assert.NilError(t, err)
	return &contract.DaemonSpec{Name: "noop", Path: "/bin/sh",
		Args: []string{"-c", fmt.Sprintf("exec %s serve -kind noop -size %d -mnt {mnt} 3>/dev/null", exe, size)}}
}

// The checks that need no reference pass every daemon that is right,
// with or without {backing}; a daemon that writes nothing skips the write
// check, saying why; and each fails a daemon that is wrong for the reason
// planted.
func TestDaemonOwnChecks(t *testing.T) {
	caps := hostCapabilities(t)
	own := []contract.ID{contract.DaemonMounted, contract.DaemonReadAll, contract.DaemonWrite, contract.DaemonUnmount}
	gofuse := testbin.Go(t, "github.com/hanwen/go-fuse/v2/example/loopback")
	pass, skip := results.Pass, results.Skip
	for _, tc := range []struct {
		name string
		spec func(t *testing.T) *contract.DaemonSpec
		// want is the status of each check of own, in order.
		want [4]results.Status
		// reason is what the write check's reason holds.
		reason string
		// facts are facts of the write check.
		facts map[string]string
	}{
		{"go-fuse loopback", func(t *testing.T) *contract.DaemonSpec {
			return &contract.DaemonSpec{Name: "gofuse", Path: gofuse, Args: []string{"-q", "-directmount", "{mnt}", "{backing}"}}
		}, [4]results.Status{pass, pass, pass, pass}, "", map[string]string{
			"step.write": "ok", "step.fsync": "ok", "step.append": "ok", "step.truncate": "ok", "step.rename": "ok",
			"step.unlink": "ok", "step.mkdir": "ok", "step.symlink": "ok", "step.xattr": "ok", "step.locks": "ok", "read_only": "false"}},
		{"go-fuse loopback read-only", func(t *testing.T) *contract.DaemonSpec {
			return &contract.DaemonSpec{Name: "gofuse-ro", Path: gofuse, Args: []string{"-q", "-ro", "-directmount", "{mnt}", "{backing}"}}
		}, [4]results.Status{pass, pass, skip, pass}, "read-only mount (statfs of the root says ST_RDONLY)", map[string]string{"read_only": "statfs"}},
		// Mounted read-write over a read-only directory, given as its
		// own argument (no {backing}): the first mkdir says EROFS.
		{"go-fuse loopback of a read-only directory", func(t *testing.T) *contract.DaemonSpec {
			dir := t.TempDir()
			assert.NilError(t, unix.Mount("tmpfs", dir, "tmpfs", unix.MS_RDONLY, ""))
			t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
			return &contract.DaemonSpec{Name: "gofuse-rodir", Path: gofuse, Args: []string{"-q", "-directmount", "{mnt}", dir}}
		}, [4]results.Status{pass, pass, skip, pass}, "read-only mount (mkdir of a fresh directory at its root answered EROFS)", map[string]string{"read_only": "EROFS"}},
		{"libfuse passthrough_ll", func(t *testing.T) *contract.DaemonSpec {
			return &contract.DaemonSpec{Name: "ll", Path: testbin.PassthroughLL(t), Args: []string{"-o", "source={backing}", "{mnt}"}}
		}, [4]results.Status{pass, pass, pass, pass}, "", map[string]string{"step.write": "ok", "step.locks": "ok"}},
		// A NOOP server, no {backing}: a 64 MiB file of zeros, which
		// reads as well as any; it creates nothing.
		{"fusematrix NOOP", func(t *testing.T) *contract.DaemonSpec { return ownNoop(t, 64<<20) },
			[4]results.Status{pass, pass, skip, pass}, "it creates no directory (mkdir of a fresh directory at its root answered", nil},
		// Larger than read-all reads whole: its end is still read.
		{"fusematrix NOOP of 4 GiB", func(t *testing.T) *contract.DaemonSpec { return ownNoop(t, 4<<30) },
			[4]results.Status{pass, pass, skip, pass}, "it creates no directory", nil},
		{"C NOOP server", func(t *testing.T) *contract.DaemonSpec {
			return &contract.DaemonSpec{Name: "nullfs", Path: nullfs(t), Args: []string{"{mnt}", "zeros", "67108864"}}
		}, [4]results.Status{pass, pass, skip, pass}, "it creates no directory (mkdir of a fresh directory at its root answered ENOSYS)", map[string]string{"read_only": "ENOSYS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec(t)
			for i, id := range own {
				r := runOwn(t, caps, spec, id)
				assert.Check(t, is.Equal(r.Status, tc.want[i]), "%s: %s", id, r.Reason)
				if id != contract.DaemonWrite {
					continue
				}
				assert.Check(t, is.Contains(r.Reason, tc.reason))
				for k, v := range tc.facts {
					assert.Check(t, is.Equal(r.Facts[k], v), "fact %s", k)
				}
			}
		})
	}

	// A daemon that reads like the loopback for everything but the
	// planted fault.
	broken := func(kind loopback.Kind) func(t *testing.T) *contract.DaemonSpec {
		return func(t *testing.T) *contract.DaemonSpec { return ownAsDaemon(t, kind) }
	}
	for _, tc := range []struct {
		name string
		spec func(t *testing.T) *contract.DaemonSpec
		id   contract.ID
		want string
	}{
		// The seeded file of 1 MiB + 17 bytes loses its last byte.
		{"reads short", broken(loopback.KindShortRead), contract.DaemonReadAll,
			"read /data (st_size 1048593): short read: the file ended at offset 1048592"},
		{"drops writes", broken(loopback.KindDropWrites), contract.DaemonWrite, "write: read back: got 0 bytes, want 262147"},
		// What the kernel caches of a write would read back right: the
		// read back must reach the daemon, whose reads are wrong.
		{"reads wrong bytes", broken(loopback.KindFlipBytes), contract.DaemonWrite, "write: read back: bytes differ at offset 0;"},
		{"fsync fails", broken(loopback.KindFsyncEIO), contract.DaemonWrite, "fsync: fsync: input/output error"},
		// A helper the daemon forked outlives its unmount. (Its output
		// goes elsewhere: one that kept the daemon's would hold up its
		// Wait, and the daemon would fail for not exiting.)
		{"leaves a process", func(t *testing.T) *contract.DaemonSpec {
			spec := ownAsDaemon(t, loopback.KindLoopback)
			spec.Args[1] = "sleep 300 >/dev/null 2>&1 & " + spec.Args[1]
			return spec
		}, contract.DaemonUnmount, "processes of the daemon still ran after its unmount (killed): "},
		{"does not exit", func(t *testing.T) *contract.DaemonSpec {
			spec := ownAsDaemon(t, loopback.KindLoopback)
			spec.Args[1] = strings.Replace(spec.Args[1], "exec ", "", 1) + "; sleep 300"
			spec.StopWait = 2
			return spec
		}, contract.DaemonUnmount, "did not exit within 2s of its unmount; killed"},
		{"never mounts", func(t *testing.T) *contract.DaemonSpec {
			return &contract.DaemonSpec{Name: "sleeper", Path: "/bin/sh", Args: []string{"-c", "sleep 30", "{mnt}"}, MountWait: 0.5}
		}, contract.DaemonMounted, "daemon sleeper did not mount at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runOwn(t, caps, tc.spec(t), tc.id)
			assert.Check(t, is.Equal(r.Status, results.Fail), r.Reason)
			assert.Check(t, is.Contains(r.Reason, tc.want))
		})
	}
}
