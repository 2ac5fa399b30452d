package server

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

	"github.com/fusematrix/fusematrix/scenarios/server/internal/servertest"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// allowedCPUs is the Cpus_allowed_list of every thread of pid, by thread.
func allowedCPUs(t *testing.T, pid int) map[string]string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	assert.NilError(t, err)
	out := map[string]string{}
	for _, task := range tasks {
		data, err := os.ReadFile(filepath.Join(dir, task.Name(), "status"))
		assert.NilError(t, err)
		for line := range strings.Lines(string(data)) {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				out[task.Name()] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

// needCPUs skips on a machine where pinning to CPU 0 cannot be told
// apart from no pinning at all.
func needCPUs(t *testing.T) {
	t.Helper()
	var set unix.CPUSet
	assert.NilError(t, unix.SchedGetaffinity(0, &set))
	if set.Count() < 2 || !set.IsSet(0) {
		t.Skipf("this process may run on %d CPU(s): pinning to CPU 0 would be invisible", set.Count())
	}
}

func TestStartOn(t *testing.T) {
	needCPUs(t)
	var before unix.CPUSet
	assert.NilError(t, unix.SchedGetaffinity(0, &before))

	cmd := exec.Command("sleep", "30")
	assert.NilError(t, startOn([]int{0}, cmd.Start))
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for task, cpus := range allowedCPUs(t, cmd.Process.Pid) {
		assert.Check(t, is.Equal(cpus, "0"), "thread %s", task)
	}

	// The caller's own mask is back, whatever thread it runs on now.
	var after unix.CPUSet
	assert.NilError(t, unix.SchedGetaffinity(0, &after))
	assert.Check(t, after == before, "mask %v, was %v", after, before)

	started := false
	start := func() error { started = true; return nil }
	assert.Check(t, is.ErrorContains(startOn([]int{-1}, start), "no such CPU"))
	assert.Check(t, is.ErrorContains(startOn([]int{1 << 20}, start), "no such CPU"))
	assert.Check(t, !started, "started despite a bad CPU")

	assert.NilError(t, startOn(nil, start))
	assert.Check(t, started, "no CPUs means start as it is")
}

// Server processes, Go and C alike, run where loopback.Spec.CPUs says, every
// thread of them.
func TestServerCPUs(t *testing.T) {
	servertest.NeedMount(t)
	needCPUs(t)
	t.Run("go", func(t *testing.T) {
		p, err := Launcher{}.Start(context.Background(), loopback.Spec{Kind: loopback.KindNoop, Size: 1 << 20, CPUs: []int{0}}, t.TempDir())
		assert.NilError(t, err)
		t.Cleanup(func() { _, _ = p.Stop() })
		_, err = os.ReadFile(filepath.Join(p.Dir, wire.NoopName))
		assert.NilError(t, err)
		threads := allowedCPUs(t, p.Pid())
		assert.Check(t, len(threads) > 1, "a Go server has more than one thread")
		for task, cpus := range threads {
			assert.Check(t, is.Equal(cpus, "0"), "thread %s", task)
		}
	})
	t.Run("peer", func(t *testing.T) {
		bin := buildPeer(t)
		p := startPeer(t, PeerSpec{Path: bin, Size: 1 << 20, CPUs: []int{0}})
		_, err := os.ReadFile(filepath.Join(p.Dir, wire.NoopName))
		assert.NilError(t, err)
		for task, cpus := range allowedCPUs(t, p.Pid()) {
			assert.Check(t, is.Equal(cpus, "0"), "thread %s", task)
		}
	})
}
