package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/harness/bisect"
	"github.com/fusematrix/fusematrix/kernels"
)

func TestBisectUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bisect"}, "no predicate"},
		{[]string{"bisect", "-good", "debian:6.1", "pt/integrity=fail"}, "-good and -bad are required"},
		{[]string{"bisect", "-good", "a", "-bad", "b", "pt/integrty=fail"}, `no check has the id "pt/integrty"`},
		{[]string{"bisect", "-good", "a", "-bad", "b", "passthrough-ioctl.o_pth=ok"}, `passthrough-ioctl reports no fact "o_pth"`},
		{[]string{"bisect", "-good", "a", "-bad", "b", "pt/integrity"}, "no comparison"},
		{[]string{"bisect", "-good", "a", "-bad", "b", "-repeat", "0", "pt/integrity=fail"}, "-repeat from 1 to 100"},
		{[]string{"bisect", "-good", "a", "-bad", "b", "pt/integrity=fail", "pt/fsync=fail"}, "one predicate"},
		// Issue 21 row 5: each was accepted, and the run booted both ends
		// before it could only answer "old" everywhere (exit 1).
		{[]string{"bisect", "-good", "a", "-bad", "b", "fuse-init.protocol=>7.41"}, `the value ">7.41" after = starts with an operator character`},
		{[]string{"bisect", "-good", "a", "-bad", "b", "bench/read/passthrough/131072:no_such_metric<0.8"}, `reports no metric "no_such_metric"`},
		{[]string{"bisect", "-good", "a", "-bad", "b", "bench/read/passthrough/131072:ratio_native<NaN"}, `"NaN" is not a finite number`},
		{[]string{"bisect", "-good", "a", "-bad", "b", "bench/read/passthrough/131072:ratio_native<Inf"}, `"Inf" is not a finite number`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out := fusematrix(t, append(tc.args[:1:1], append([]string{"-q"}, tc.args[1:]...)...)...)
			assert.Equal(t, code, 2, out)
			assert.Check(t, is.Contains(out, tc.want))
		})
	}
	code, out := fusematrix(t, "bisect", "run", "-kernel", "x", "nonsense")
	assert.Equal(t, code, 128, "git bisect run's abort: %s", out)
}

// A packaged-version bisection between the default matrix's kernels,
// 6.1 (no passthrough) and 6.12 (passthrough offered), names the first
// 6.12 build the suites carry and the 6.1 build before it; a resumed run
// boots nothing again; bisect run answers git's way.
func TestBisectPackaged(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU guests with kernels from the Debian mirror; run without -short")
	}
	const good, bad, pred = "debian:6.1/cloud@bookworm", "debian:6.12/cloud@bookworm", "fuse-init.passthrough=offered"
	history, err := kernels.History(context.Background(), good, bad, kernels.Options{})
	assert.NilError(t, err)
	assert.Assert(t, len(history) >= 2)
	out := t.TempDir()
	code, text := fusematrix(t, "bisect", "-accel", "tcg", "-out", out, "-good", good, "-bad", bad, pred)
	assert.Equal(t, code, 0, text)
	r := readBisect(t, out)
	assert.Equal(t, r.Outcome, "found")
	assert.Equal(t, r.LastOld.Selector, history[0].Selector)
	assert.Equal(t, r.FirstNew.Selector, history[1].Selector, "every 6.12 build offers passthrough: the first is the answer")
	assert.Check(t, strings.HasPrefix(r.LastOld.Release, "6.1."), r.LastOld.Release)
	assert.Check(t, strings.HasPrefix(r.FirstNew.Release, "6.12."), r.FirstNew.Release)
	assert.Check(t, is.Equal(r.Certainty, "exact"))
	assert.Check(t, len(r.Steps) <= 2+bits(len(history))+1, "%d steps for %d candidates", len(r.Steps), len(history))
	for _, st := range r.Steps {
		assert.Check(t, is.Contains(st.Command, "fusematrix matrix -run '^fuse-init$'"))
		assert.Check(t, st.Runs[0].Results != "")
	}
	md, err := os.ReadFile(filepath.Join(out, "bisect.md"))
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(md), r.FirstNew.Selector))

	steps, err := os.ReadDir(filepath.Join(out, "steps"))
	assert.NilError(t, err)
	code, text = fusematrix(t, "bisect", "-accel", "tcg", "-out", out, "-resume", "-good", good, "-bad", bad, pred)
	assert.Equal(t, code, 0, text)
	again, err := os.ReadDir(filepath.Join(out, "steps"))
	assert.NilError(t, err)
	assert.Check(t, is.Len(again, len(steps)), "a resumed bisection boots no step again")
	assert.Check(t, is.Equal(readBisect(t, out).FirstNew.Selector, r.FirstNew.Selector))

	// Ends that do not bracket the change the predicate names stop the
	// bisection after the first end; one kernel is no range at all.
	code, text = fusematrix(t, "bisect", "-q", "-accel", "tcg", "-out", t.TempDir(), "-good", good, "-bad", bad, "fuse-init.passthrough!=offered")
	assert.Equal(t, code, 1, text)
	assert.Check(t, is.Contains(text, "already shows the new behaviour"))
	code, text = fusematrix(t, "bisect", "-q", "-accel", "tcg", "-out", t.TempDir(), "-good", good, "-bad", good, pred)
	assert.Equal(t, code, 2, text)
	assert.Check(t, is.Contains(text, "a bisection needs two ends"))

	for kernel, want := range map[string]int{good: 0, bad: 1} {
		code, text := fusematrix(t, "bisect", "run", "-q", "-accel", "tcg", "-out", t.TempDir(), "-kernel", kernel, pred)
		assert.Check(t, is.Equal(code, want), text)
	}
}

func readBisect(t *testing.T, dir string) bisect.Report {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "bisect.json"))
	assert.NilError(t, err)
	var r bisect.Report
	assert.NilError(t, json.Unmarshal(data, &r))
	return r
}
