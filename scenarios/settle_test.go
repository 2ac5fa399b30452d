package scenarios

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParseSchedstat(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     time.Duration
		wantErr  string
	}{
		{name: "kernel format", in: "123456789 2000 17\n", want: 123456789},
		{name: "zero", in: "0 0 0\n", want: 0},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "not a number", in: "x 1 2", wantErr: "invalid syntax"},
		{name: "negative", in: "-5 1 2", wantErr: "invalid syntax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSchedstat([]byte(tc.in))
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, got, tc.want)
		})
	}
}

func TestThreadsRuntime(t *testing.T) {
	if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d/schedstat", os.Getpid())); err != nil {
		t.Skipf("this kernel keeps no schedstat: %v", err)
	}
	before, err := threadsRuntime(os.Getpid())
	assert.NilError(t, err)
	// Spin until the scheduler has charged this process for it.
	deadline := time.Now().Add(5 * time.Second)
	var after time.Duration
	for after <= before && time.Now().Before(deadline) {
		for i := 0; i < 1e6; i++ {
			_ = i * i
		}
		after, err = threadsRuntime(os.Getpid())
		assert.NilError(t, err)
	}
	assert.Check(t, after > before, "runtime %v then %v", before, after)

	_, err = threadsRuntime(1 << 30)
	assert.Check(t, is.ErrorContains(err, "threads of"))
}

// TestSettle watches a process that sleeps, which settles at once, and
// one that spins, which never does.
func TestSettle(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for settleLimit")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d/schedstat", os.Getpid())); err != nil {
		t.Skipf("this kernel keeps no schedstat: %v", err)
	}
	start := func(script string) int {
		cmd := exec.Command("sh", "-c", script)
		assert.NilError(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		return cmd.Process.Pid
	}
	ctx := context.Background()

	waited, quiet, err := settle(ctx, start("sleep 30"))
	assert.NilError(t, err)
	assert.Check(t, quiet, "a sleeping process is quiet")
	assert.Check(t, waited < settleLimit, "waited %v", waited)

	waited, quiet, err = settle(ctx, start("while :; do :; done"))
	assert.NilError(t, err)
	assert.Check(t, !quiet, "a spinning process is never quiet")
	assert.Check(t, waited >= settleLimit, "gave up after %v", waited)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, quiet, err = settle(cancelled, start("while :; do :; done"))
	assert.Check(t, is.ErrorIs(err, context.Canceled))
	assert.Check(t, !quiet)
}
