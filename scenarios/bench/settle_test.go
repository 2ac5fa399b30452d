package bench

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

func TestParseStatState(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     byte
		wantErr  string
	}{
		{name: "sleeping", in: "42 (sh) S 1 42 42 0 -1", want: 'S'},
		{name: "running", in: "42 (fusematrix-noop) R 1 42", want: 'R'},
		{name: "name with parentheses and spaces", in: "42 (a) R (b c) S 1 42", want: 'S'},
		{name: "no name", in: "42 sh S 1", wantErr: "no command name"},
		{name: "no state", in: "42 (sh)", wantErr: "no state"},
		{name: "state too long", in: "42 (sh) SR 1", wantErr: "no state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatState([]byte(tc.in))
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, got, tc.want)
		})
	}
}

func TestIdle(t *testing.T) {
	for _, tc := range []struct {
		name          string
		busy, elapsed time.Duration
		want          bool
	}{
		{name: "no CPU", busy: 0, elapsed: settleWindow, want: true},
		{name: "just under the rate", busy: settleBusy - 1, elapsed: settleWindow, want: true},
		{name: "at the rate", busy: settleBusy, elapsed: settleWindow, want: false},
		// A look that came late measured a longer window: the same CPU
		// is a lower rate.
		{name: "late look", busy: 2 * settleBusy, elapsed: 4 * settleWindow, want: true},
		// A look that came early is judged as a full window, never as
		// a higher rate than was seen.
		{name: "early look", busy: settleBusy / 2, elapsed: settleWindow / 4, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, idle(tc.busy, tc.elapsed), tc.want)
		})
	}
}

// TestSettle watches a process that sleeps, which settles at once, and
// one that spins but is starved of CPU, which never does: the case a
// loaded machine makes of any busy process.
func TestSettle(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for settleLimit")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d/schedstat", os.Getpid())); err != nil {
		t.Skipf("this kernel keeps no schedstat: %v", err)
	}
	for _, tool := range []string{"taskset", "nice"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: %v", tool, err)
		}
	}
	start := func(args ...string) int {
		cmd := exec.Command(args[0], args[1:]...)
		assert.NilError(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		return cmd.Process.Pid
	}
	const spin = "while :; do :; done"
	ctx := context.Background()

	waited, quiet, err := settle(ctx, start("sh", "-c", "sleep 30"))
	assert.NilError(t, err)
	assert.Check(t, quiet, "a sleeping process is quiet")
	assert.Check(t, waited < settleLimit, "waited %v", waited)

	// On one CPU beside a spinner of normal priority, a spinner at nice
	// 19 gets about 1.5% of it: less CPU per window than settleBusy.
	start("taskset", "-c", "0", "sh", "-c", spin)
	waited, quiet, err = settle(ctx, start("taskset", "-c", "0", "nice", "-n", "19", "sh", "-c", spin))
	assert.NilError(t, err)
	assert.Check(t, !quiet, "a starved spinning process is never quiet")
	assert.Check(t, waited >= settleLimit, "gave up after %v", waited)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, quiet, err = settle(cancelled, start("sh", "-c", spin))
	assert.Check(t, is.ErrorIs(err, context.Canceled))
	assert.Check(t, !quiet)
}
