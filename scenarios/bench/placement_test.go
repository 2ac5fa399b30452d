package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/scenarios/internal/scentest"
)

func TestBenchPlacement(t *testing.T) {
	var set unix.CPUSet
	assert.NilError(t, unix.SchedGetaffinity(0, &set))
	pl := benchPlacement()
	if set.Count() < 2 {
		assert.Check(t, is.Len(pl.server, 0))
		assert.Check(t, is.Equal(pl.note, "not pinned: one CPU"))
		return
	}
	// The last CPU this process may use.
	last := -1
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			last = c
		}
	}
	assert.Check(t, is.DeepEqual(pl.server, []int{last}))
	assert.Check(t, is.Equal(pl.note, fmt.Sprintf("server on CPU %d of %d, timed loop left to the scheduler", last, set.Count())))
}

// Every mode's server runs on the CPUs the bench asks for, every thread
// of it.
func TestModesPinServers(t *testing.T) {
	scentest.NeedMount(t)
	var set unix.CPUSet
	assert.NilError(t, unix.SchedGetaffinity(0, &set))
	if set.Count() < 2 || !set.IsSet(0) {
		t.Skipf("this process may run on %d CPU(s): pinning to CPU 0 would be invisible", set.Count())
	}
	for _, m := range seqModes() {
		if m.mount == nil {
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			if m.unavailable != nil {
				if why := m.unavailable(); why != "" {
					t.Skip(why)
				}
			}
			env := scentest.Env(t)
			backing := filepath.Join(env.Dir, "backing")
			assert.NilError(t, os.Mkdir(backing, 0o755))
			assert.NilError(t, os.WriteFile(filepath.Join(backing, seqFile), []byte("x"), 0o644))
			d, _, err := mountMode(context.Background(), env, m, mountRequest{backing: backing, size: 1 << 20, cpus: []int{0}})
			assert.NilError(t, err)
			defer func() { _, _ = d.Stop() }()
			tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", d.Pid()))
			assert.NilError(t, err)
			for _, task := range tasks {
				status, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", d.Pid(), task.Name()))
				assert.NilError(t, err)
				assert.Check(t, is.Contains(string(status), "Cpus_allowed_list:\t0\n"), "thread %s", task.Name())
			}
		})
	}
}
