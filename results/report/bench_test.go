package report

import (
	"testing"

	"gotest.tools/v3/golden"

	"github.com/fusematrix/fusematrix/results"
)

func benchResult(id string, median, ratio float64) results.Result {
	m := map[string]float64{"mbps_median": median, "mbps_min": median * 0.9, "mbps_max": median * 1.1}
	if ratio > 0 {
		m["ratio_native"] = ratio
	}
	return results.Result{ID: id, Kind: results.Benchmark, Status: results.Pass, Metrics: m}
}

func TestBench(t *testing.T) {
	noPT := results.Result{ID: "bench/read/passthrough/4096", Kind: results.Benchmark, Status: results.Skip,
		Reason: "kernel does not offer FUSE_PASSTHROUGH"}
	mislabelled := results.Result{ID: "bench/read/passthrough/1048576", Kind: results.Benchmark, Status: results.Fail,
		Reason: "passthrough not in use: 12 READ requests reached the daemon"}
	run := &results.Run{Kernels: []results.Kernel{
		{Name: "debian:6.1/cloud", Release: "6.1.0-56-cloud-amd64", Accel: "tcg", Status: results.Pass, Results: []results.Result{
			{ID: "fuse-init", Kind: results.Probe, Status: results.Pass},
			benchResult("bench/read/native/4096", 319.4, 1),
			benchResult("bench/read/noop/4096", 79.2, 0.248),
			noPT,
			benchResult("bench/read/native/1048576", 421, 1),
			{ID: "bench/read/passthrough/1048576", Kind: results.Benchmark, Status: results.Skip, Reason: noPT.Reason},
			benchResult("bench/write/native/1048576", 193, 1),
			// native failed or was not selected: no ratio
			benchResult("bench/write/classic/1048576", 57.1, 0),
		}},
		{Name: "debian:6.12/cloud", Release: "6.12.117+deb12-cloud-amd64", Accel: "tcg", Status: results.Pass, Results: []results.Result{
			benchResult("bench/read/native/1048576", 398, 1),
			mislabelled,
		}},
		{Name: "./bzImage", Status: results.Error, Error: "no hello within 2m0s"},
	}}
	golden.Assert(t, render(t, Bench, run), "bench.table.golden")
}
