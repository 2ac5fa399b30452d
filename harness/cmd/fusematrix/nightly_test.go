package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/harness/compare"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// TestNightlyLocal runs the nightly's steps (.github/workflows/nightly.yml)
// on this machine with real boots: one shard per kernel, each a separate
// fusematrix process writing its own folder, then merge, then compare with
// a baseline. The shards run the probes and one paired benchmark cell, so
// that both kinds of regression the nightly exists to catch can be shown:
// the baseline is the merged run with one result made a pass (6.1's
// passthrough-ioctl, a skip there) and one cell made faster (6.12's
// classic read), and compare must exit 1 naming exactly those two.
func TestNightlyLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("boots two kernels")
	}
	const cell = "bench/read/classic/131072"
	kernels := []string{"debian:6.1/cloud@bookworm", "debian:6.12/cloud@bookworm"}
	dir := t.TempDir()
	shards := make([]string, len(kernels))
	noisy := "" // the cell still noisy after three tries on a loaded machine
	for i, k := range kernels {
		shards[i] = filepath.Join(dir, fmt.Sprintf("shard%d", i+1), "bench")
		// Shards run one after the other, as on machines of their own. A
		// cell whose paired runs another test's guest disturbed is marked
		// noisy and never judged, which is right for compare and useless
		// here (this test is about the pipeline): such a shard runs again,
		// twice at most.
		for try := 1; ; try++ {
			os.RemoveAll(shards[i])
			code, text := fusematrix(t, "bench", "-q", "-accel", "tcg", "-peer", "", "-runs", "3",
				"-run", "^"+cell+"$", "-out", shards[i], k)
			assert.Equal(t, code, 0, "shard %s: %s", k, text)
			shard := readRun(t, shards[i])
			r := shard.Kernels[0].Result(cell)
			assert.Assert(t, r != nil, "%s has no %s", k, cell)
			if contract.FactRatioNoisy.Of(r) == "" {
				break
			}
			if try == 3 {
				noisy = k
				break
			}
			t.Logf("%s: %s noisy (%s); measuring again", k, cell, contract.FactRatioNoisy.Of(r))
		}
	}

	merged := filepath.Join(dir, "merged", "bench")
	code, text := fusematrix(t, "merge", "-out", merged, shards[1], shards[0])
	assert.Equal(t, code, 0, text)
	run := readRun(t, merged)
	assert.Assert(t, is.Len(run.Kernels, 2))
	for i, k := range run.Kernels {
		assert.Check(t, is.Equal(k.Name, kernels[i]))
		r := k.Result(cell)
		assert.Assert(t, r != nil, "%s has no %s", k.Name, cell)
		assert.Check(t, is.Equal(r.Status, results.Pass), "%s: %s", k.Name, r.Reason)
	}
	pt := run.Kernels[0].Result(string(contract.PassthroughIoctl))
	assert.Assert(t, pt != nil && pt.Status == results.Skip, "6.1 offers no passthrough: %+v", pt)

	// The baseline: last night's merged run, as the report job downloads it.
	base := run
	base.Kernels = slices.Clone(run.Kernels)
	for i := range base.Kernels {
		base.Kernels[i].Results = slices.Clone(run.Kernels[i].Results)
	}
	was := base.Kernels[0].Result(string(contract.PassthroughIoctl))
	was.Status, was.Reason = results.Pass, ""
	faster := base.Kernels[1].Result(cell)
	faster.Metrics = map[string]float64{}
	for name, v := range run.Kernels[1].Result(cell).Metrics {
		faster.Metrics[name] = v
	}
	for _, m := range []contract.Metric{contract.MetricMedian, contract.MetricMin, contract.MetricMax} {
		faster.Metrics[string(m)] *= 3
	}
	baseline := filepath.Join(dir, "baseline")
	assert.NilError(t, os.MkdirAll(baseline, 0o755))
	assert.NilError(t, harness.WriteFile(filepath.Join(baseline, "results.json"), func(w io.Writer) error { return results.WriteJSON(w, &base) }))

	code, text = fusematrix(t, "compare", "-format", "json", baseline, merged)
	assert.Equal(t, code, 1, text)
	var r compare.Report
	assert.NilError(t, json.Unmarshal([]byte(text), &r), text)
	var regressed []string
	for _, k := range r.Kernels {
		for _, f := range k.Findings {
			if f.Verdict == compare.Regression {
				regressed = append(regressed, k.Name+" "+f.ID+" "+f.What)
			}
		}
	}
	want := []string{
		"debian:6.1/cloud@bookworm passthrough-ioctl status",
		"debian:6.12/cloud@bookworm " + cell + " slower",
	}
	if noisy == kernels[1] {
		// compare rightly leaves a disturbed cell unjudged, so the faster
		// baseline cannot show here; the status regression still must.
		t.Logf("%s: %s stayed noisy: its throughput regression is not shown on this loaded machine", noisy, cell)
		want = want[:1]
	}
	assert.Check(t, is.DeepEqual(regressed, want), text)

	code, text = fusematrix(t, "compare", merged, merged)
	assert.Equal(t, code, 0, text)
}
