package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/internal/scentest"
	"github.com/fusematrix/fusematrix/scenarios/testbin"
)

// daemonCell is the scenario of a daemon's cell for op at block.
func daemonCell(t *testing.T, s Suite, op contract.Op, block int) scenarios.Scenario {
	t.Helper()
	id := contract.DaemonCellID(op, block)
	for _, sc := range s.ForDaemon() {
		if sc.ID == id {
			return sc
		}
	}
	t.Fatalf("no daemon cell %s", id)
	return scenarios.Scenario{}
}

// A daemon's cells measure it through its mount, as a ratio to the native
// runs beside them and to the NOOP cell measured before them in the same
// suite, with the kernel's count of the daemon's read calls; a daemon
// without a backing directory is measured on its largest file, else on
// one written through its mount, or skips when neither can be; without a
// daemon the cells skip.
func TestDaemonCells(t *testing.T) {
	caps := hostCapabilities(t)
	bin := testbin.Go(t, "../server/testdata/nopassthrough")
	env := func(spec *contract.DaemonSpec) *scenarios.Env {
		e := scentest.Env(t)
		e.Capabilities, e.BenchRuns, e.BenchBytes = caps, 2, 4<<20
		if spec != nil {
			e.Subject = scenarios.DaemonSubject{Spec: spec}
		}
		return e
	}
	backed := &contract.DaemonSpec{Name: "lo", Path: bin, Args: []string{"{mnt}", "{backing}"}}

	s := NewSuite()
	noop := s.set.run(context.Background(), env(nil), benchCell{op: "read", mode: "noop", block: 128 << 10})
	assert.Assert(t, is.Equal(noop.Status, results.Pass), noop.Reason)
	for _, op := range []contract.Op{contract.Read, contract.Write} {
		r := scenarios.Run(context.Background(), daemonCell(t, s, op, 128<<10), env(backed))
		assert.Assert(t, is.Equal(r.Status, results.Pass), "%s: %s", op, r.Reason)
		assert.Check(t, is.Equal(r.Facts["mode"], "daemon/lo"))
		assert.Check(t, is.Equal(r.Facts["server"], "daemon lo"))
		assert.Check(t, is.Equal(r.Facts["daemon_exit"], "0"), "how the daemon ended goes with the cell")
		assert.Check(t, r.Metrics["mbps_median"] > 0)
		assert.Check(t, r.Metrics["ratio_native"] > 0, "%v", r.Metrics)
		t.Logf("%s: %v %v", op, r.Metrics, r.Facts)
		calls := r.Metrics["daemon_read_calls_per_gib"]
		// A daemon that serves the data reads at least one request per
		// 128 KiB from /dev/fuse.
		assert.Check(t, calls >= (1<<30)/(128<<10)/2, "read calls per GiB: %v", calls)
		if op == contract.Read {
			assert.Check(t, r.Metrics["ratio_noop"] > 0, "%v %v", r.Metrics, r.Facts)
		} else {
			assert.Check(t, is.Contains(r.Facts["ratio_noop"], "not measured in this run"))
		}
	}

	// Without a backing directory: the largest file at the top of the
	// mount when it holds a run, else a file written through the mount
	// (it lands in the directory the daemon shows), else a skip.
	shown := t.TempDir()
	unbacked := &contract.DaemonSpec{Name: "null", Path: bin, Args: []string{"{mnt}", shown}}
	through := filepath.Join(shown, throughFile)
	assert.NilError(t, os.WriteFile(filepath.Join(shown, "small"), make([]byte, 4096), 0o644))
	for _, op := range []contract.Op{contract.Read, contract.Write} {
		r := scenarios.Run(context.Background(), daemonCell(t, s, op, 4096), env(unbacked))
		assert.Check(t, is.Equal(r.Status, results.Pass), "%s: %s", op, r.Reason)
		assert.Check(t, is.Contains(r.Facts["file"], "written through the mount"))
		info, err := os.Stat(through)
		if assert.Check(t, err, "%s: nothing was written through the mount", op) {
			assert.Check(t, info.Size() > 4096, "%s: %d bytes", op, info.Size())
		}
		assert.NilError(t, os.Remove(through))
	}
	assert.NilError(t, writePattern(context.Background(), filepath.Join(shown, "big"), 4<<20))
	r := scenarios.Run(context.Background(), daemonCell(t, s, contract.Read, 4096), env(unbacked))
	assert.Check(t, is.Equal(r.Status, results.Pass), r.Reason)
	_, err := os.Stat(through)
	assert.Check(t, os.IsNotExist(err), "a large enough file was there to read: %v", err)
	assert.NilError(t, os.Remove(filepath.Join(shown, "big")))
	// Nothing can be written there: the cells skip, saying why.
	assert.NilError(t, os.Mkdir(through, 0o755))
	for _, op := range []contract.Op{contract.Read, contract.Write} {
		r := scenarios.Run(context.Background(), daemonCell(t, s, op, 4096), env(unbacked))
		assert.Check(t, is.Equal(r.Status, results.Skip), "%s: %s", op, r.Reason)
		assert.Check(t, is.Contains(r.Reason, "serves no backing directory"), op)
		assert.Check(t, is.Contains(r.Reason, "through its mount"), op)
	}

	// A file system smaller than a run (an image): the cells skip, the
	// write cell once it fills up during a run.
	small := t.TempDir()
	assert.NilError(t, unix.Mount("tmpfs", small, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() { _ = unix.Unmount(small, unix.MNT_DETACH) })
	tiny := &contract.DaemonSpec{Name: "tiny", Path: bin, Args: []string{"{mnt}", small}}
	for _, op := range []contract.Op{contract.Read, contract.Write} {
		r := scenarios.Run(context.Background(), daemonCell(t, s, op, 4096), env(tiny))
		assert.Check(t, is.Equal(r.Status, results.Skip), "%s: %s", op, r.Reason)
		assert.Check(t, is.Contains(r.Reason, "no space left on device"), op)
	}

	r = scenarios.Run(context.Background(), daemonCell(t, s, contract.Read, 4096), env(nil))
	assert.Check(t, is.Equal(r.Status, results.Skip))
	assert.Check(t, is.Contains(r.Reason, "only for a daemon under test"))
}

// libfuse mounts, then forks into the background and the parent exits:
// the cell must watch the child, never the parent it saw at mount (which
// lost 1 bench run in 5 to "open /proc/PID/stat: no such file").
func TestDaemonCellsForking(t *testing.T) {
	caps := hostCapabilities(t)
	ll := &contract.DaemonSpec{Name: "ll", Path: testbin.PassthroughLL(t), Args: []string{"-o", "source={backing}", "{mnt}"}}
	s := NewSuite()
	for i := range 5 {
		e := scentest.Env(t)
		e.Capabilities, e.BenchRuns, e.BenchBytes, e.Subject = caps, 3, 2<<20, scenarios.DaemonSubject{Spec: ll}
		r := scenarios.Run(context.Background(), daemonCell(t, s, contract.Read, 128<<10), e)
		assert.Assert(t, is.Equal(r.Status, results.Pass), "try %d: %s", i+1, r.Reason)
		assert.Check(t, r.Metrics["server_cpu_s_per_gib"] > 0, "the child's CPU is watched: %v", r.Metrics)
	}
}
