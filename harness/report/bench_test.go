package report

import (
	"bytes"
	"math"
	"testing"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

func benchResult(id string, median, ratio float64) results.Result {
	m := map[string]float64{"mbps_median": median, "mbps_min": median * 0.9, "mbps_max": median * 1.1}
	if ratio > 0 {
		m["ratio_native"] = ratio
	}
	return results.Result{ID: id, Kind: results.Benchmark, Status: results.Pass, Metrics: m}
}

// withRatioNoop is a passthrough cell from an agent that sends ratio_noop.
func withRatioNoop(r results.Result, v float64) results.Result {
	r.Metrics["ratio_noop"] = v
	return r
}

// withMetric is r with one more metric.
func withMetric(r results.Result, name string, v float64) results.Result {
	r.Metrics[name] = v
	return r
}

// disturbedCell is a cell whose paired native runs the guest flagged.
func disturbedCell(r results.Result) results.Result {
	r.Facts = map[string]string{"ratio_native_noisy": "1.60× the native runs beside it"}
	return r
}

var noPassthrough = "kernel does not offer FUSE_PASSTHROUGH"

// benchRun has one kernel of each kind the bench views meet: without
// passthrough, with passthrough and every mode (including two that the
// views know only by name order and one they do not know at all) and a
// user's daemon, with a cell that failed, and one that never ran.
func benchRun() *results.Run {
	noPT := results.Result{ID: "bench/read/passthrough/4096", Kind: results.Benchmark, Status: results.Skip, Reason: noPassthrough}
	mislabelled := results.Result{ID: "bench/read/passthrough/1048576", Kind: results.Benchmark, Status: results.Fail,
		Reason: "passthrough not in use: 12 READ requests reached the daemon"}
	return &results.Run{Schema: results.SchemaVersion, Started: started, Finished: started.Add(95e9), Host: host(), Kernels: []results.Kernel{
		{Name: "debian:6.1/cloud", Release: "6.1.0-56-cloud-amd64", Accel: "tcg", Status: results.Pass, Results: []results.Result{
			{ID: "fuse-init", Kind: results.Probe, Status: results.Pass},
			benchResult("bench/read/native/4096", 319.4, 1),
			benchResult("bench/read/noop/4096", 79.2, 0.248),
			noPT,
			benchResult("bench/read/native/1048576", 421, 1),
			benchResult("bench/read/noop/1048576", 140, 0.33),
			{ID: "bench/read/passthrough/1048576", Kind: results.Benchmark, Status: results.Skip, Reason: noPassthrough},
			benchResult("bench/write/native/1048576", 193, 1),
			// native failed or was not selected: no ratio
			benchResult("bench/write/classic/1048576", 57.1, 0),
		}},
		{Name: "debian:6.12/cloud", Release: "6.12.117+deb12-cloud-amd64", Accel: "kvm", Status: results.Pass, Results: []results.Result{
			benchResult("bench/read/native/4096", 300, 1),
			benchResult("bench/read/noop/4096", 110, 0.37),
			// Reported before the modes it sorts after.
			benchResult("bench/read/passthrough-noxattr/4096", 235, 0.78),
			benchResult("bench/read/passthrough/4096", 240, 0.8),
			benchResult("bench/read/libfuse-noop/4096", 120, 0.4),
			benchResult("bench/read/classic/4096", 107, 0.36),
			benchResult("bench/read/uring/4096", 200, 0.67),
			benchResult("bench/read/native/131072", 380, 1),
			benchResult("bench/read/noop/131072", 125, 0.33),
			// The guest's own ratio wins over the host's division.
			withRatioNoop(benchResult("bench/read/passthrough/131072", 395, 1.04), 3.2),
			benchResult("bench/read/native/1048576", 398, 1),
			benchResult("bench/read/noop/1048576", 170, 0.43),
			mislabelled,
			benchResult("bench/write/native/4096", 156, 1),
			benchResult("bench/write/noop/4096", 8, 0.05),
			disturbedCell(benchResult("bench/write/passthrough/4096", 10, 1.6)),
			// A user's daemon: a column of its own, and its ratio to noop,
			// the guest's where it sent one.
			withMetric(benchResult("daemon/gofuse/bench/read/4096", 220, 0.73), "daemon_read_calls_per_gib", 12.5),
			withRatioNoop(benchResult("daemon/gofuse/bench/read/131072", 190, 0.5), 1.5),
		}},
		{Name: "./bzImage", Status: results.Error, Error: "no hello within 2m0s"},
	}}
}

func TestBench(t *testing.T) {
	golden.Assert(t, render(t, Bench, benchRun()), "bench.table.golden")
	golden.Assert(t, render(t, BenchMarkdown, benchRun()), "bench.md.golden")
}

// The passthrough/noop column: the guest's ratio_noop when sent, else the
// two medians' quotient, else nothing.
func TestRatioNoop(t *testing.T) {
	pass := func(median float64) *results.Result {
		r := benchResult("bench/read/x/4096", median, 0)
		return &r
	}
	skipped := &results.Result{Status: results.Skip, Reason: noPassthrough}
	failed := &results.Result{Status: results.Fail, Metrics: map[string]float64{"mbps_median": 400}}
	noMedian := &results.Result{Status: results.Pass, Metrics: map[string]float64{"cpu_s_per_gib": 1}}
	guest := pass(400)
	guest.Metrics["ratio_noop"] = 3.5
	badGuest := pass(400)
	badGuest.Metrics["ratio_noop"] = math.Inf(1)
	for _, tc := range []struct {
		name              string
		passthrough, noop *results.Result
		want              float64
		ok                bool
	}{
		{"computed", pass(400), pass(100), 4, true},
		{"slower than noop", pass(50), pass(100), 0.5, true},
		{"guest metric", guest, pass(100), 3.5, true},
		{"guest metric without noop", guest, nil, 3.5, true},
		{"non-finite guest metric", badGuest, pass(200), 2, true},
		{"missing noop", pass(400), nil, 0, false},
		{"missing passthrough", nil, pass(100), 0, false},
		{"passthrough skipped", skipped, pass(100), 0, false},
		{"passthrough failed", failed, pass(100), 0, false},
		{"noop failed", pass(400), failed, 0, false},
		{"noop without median", pass(400), noMedian, 0, false},
		{"zero noop median", pass(400), pass(0), 0, false},
		{"zero passthrough median", pass(0), pass(100), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ratioNoop(tc.passthrough, tc.noop)
			assert.Equal(t, ok, tc.ok)
			assert.Equal(t, got, tc.want)
		})
	}
}

// The Go/C NOOP column: the guest's paired ratio when sent, else the
// medians' ratio.
func TestRatioGoC(t *testing.T) {
	pass := func(median float64) *results.Result {
		r := benchResult("bench/read/x/4096", median, 0)
		return &r
	}
	paired := pass(90)
	paired.Metrics["ratio_libfuse_noop"] = 0.8
	nan := pass(90)
	nan.Metrics["ratio_libfuse_noop"] = math.NaN()
	skipped := &results.Result{Status: results.Skip, Reason: "no peer"}
	for _, tc := range []struct {
		name   string
		goNoop *results.Result
		cNoop  *results.Result
		want   float64
		ok     bool
	}{
		{"paired wins over medians", paired, pass(100), 0.8, true},
		{"paired without the C cell", paired, nil, 0.8, true},
		{"medians", pass(90), pass(100), 0.9, true},
		{"non-finite guest metric", nan, pass(100), 0.9, true},
		{"C peer skipped", pass(90), skipped, 0, false},
		{"Go NOOP skipped", skipped, pass(100), 0, false},
		{"zero C median", pass(90), pass(0), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ratioGoC(tc.goNoop, tc.cNoop)
			assert.Equal(t, ok, tc.ok)
			assert.Equal(t, got, tc.want)
		})
	}
}

func TestSortModes(t *testing.T) {
	modes := []contract.Mode{"zeta", "passthrough", "alpha", "native", "libfuse-noop", "noop"}
	sortModes(modes)
	assert.DeepEqual(t, modes, []contract.Mode{"native", "noop", "libfuse-noop", "passthrough", "zeta", "alpha"})
}

func TestBenchNilRun(t *testing.T) {
	for name, f := range map[string]func() error{
		"Bench":         func() error { return Bench(&bytes.Buffer{}, nil) },
		"BenchMarkdown": func() error { return BenchMarkdown(&bytes.Buffer{}, nil) },
		"Chart":         func() error { return Chart(&bytes.Buffer{}, nil, "svg") },
		"HTML":          func() error { return HTML(&bytes.Buffer{}, nil) },
	} {
		assert.Check(t, f() != nil, name)
	}
}
