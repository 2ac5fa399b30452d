package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/internal/scentest"
	"github.com/fusematrix/fusematrix/scenarios/probe"
	"github.com/fusematrix/fusematrix/scenarios/server"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

func TestMedianMinMax(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want stats
	}{
		{name: "none", in: nil, want: stats{}},
		{name: "one", in: []float64{3}, want: stats{median: 3, min: 3, max: 3}},
		{name: "odd", in: []float64{5, 1, 9, 3, 7}, want: stats{median: 5, min: 1, max: 9}},
		{name: "even takes the mean of the middle two", in: []float64{10, 2, 4, 8}, want: stats{median: 6, min: 2, max: 10}},
		{name: "repeats", in: []float64{2, 2, 1}, want: stats{median: 2, min: 1, max: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]float64(nil), tc.in...)
			assert.Equal(t, medianMinMax(tc.in), tc.want)
			assert.DeepEqual(t, tc.in, in) // the caller's order is kept
		})
	}
}

func TestRatios(t *testing.T) {
	pt4k := benchCell{op: "write", mode: "passthrough", block: 4096}
	for _, tc := range []struct {
		name        string
		cell        benchCell
		median      float64
		medians     map[benchCell]float64
		missing     map[benchCell]string
		paired      map[string][]float64
		unpaired    map[string]string
		wantMetrics map[string]float64
		wantFacts   map[string]string
	}{
		{
			name: "passthrough against native and noop", cell: pt4k, median: 30,
			medians:     map[benchCell]float64{pt4k.in("native"): 60, pt4k.in("noop"): 10},
			wantMetrics: map[string]float64{"ratio_native": 0.5, "ratio_noop": 3},
			wantFacts:   map[string]string{},
		},
		{
			name: "classic has no noop ratio", cell: pt4k.in("classic"), median: 30,
			medians:     map[benchCell]float64{pt4k.in("native"): 60, pt4k.in("noop"): 10},
			wantMetrics: map[string]float64{"ratio_native": 0.5},
			wantFacts:   map[string]string{},
		},
		{
			name: "other op and block do not count", cell: pt4k, median: 30,
			medians: map[benchCell]float64{
				{op: "read", mode: "native", block: 4096}: 60, {op: "write", mode: "noop", block: 1 << 20}: 10,
			},
			wantMetrics: map[string]float64{},
			wantFacts: map[string]string{
				"ratio_native": "native write/4096 not measured in this run",
				"ratio_noop":   "noop write/4096 not measured in this run",
			},
		},
		{
			name: "noop failed", cell: pt4k.in("passthrough-noxattr"), median: 30,
			medians:     map[benchCell]float64{pt4k.in("native"): 60, pt4k: 15},
			missing:     map[benchCell]string{pt4k.in("noop"): "error: run 1: noop server did not mount"},
			wantMetrics: map[string]float64{"ratio_native": 0.5, "ratio_passthrough": 2},
			wantFacts:   map[string]string{"ratio_noop": "noop write/4096 gave no figure in this run (error: run 1: noop server did not mount)"},
		},
		{
			name: "go noop against the C peer", cell: pt4k.in("noop"), median: 9,
			medians:     map[benchCell]float64{pt4k.in("native"): 60, pt4k.in("libfuse-noop"): 10},
			wantMetrics: map[string]float64{"ratio_native": 0.15, "ratio_libfuse_noop": 0.9},
			wantFacts:   map[string]string{},
		},
		{
			name: "peer skipped", cell: pt4k.in("noop"), median: 9,
			medians:     map[benchCell]float64{pt4k.in("native"): 60},
			missing:     map[benchCell]string{pt4k.in("libfuse-noop"): "skip: no peer"},
			wantMetrics: map[string]float64{"ratio_native": 0.15},
			wantFacts:   map[string]string{"ratio_libfuse_noop": "libfuse-noop write/4096 gave no figure in this run (skip: no peer)"},
		},
		{
			name: "paired runs win over medians", cell: pt4k.in("noop"), median: 9,
			medians: map[benchCell]float64{pt4k.in("native"): 60, pt4k.in("libfuse-noop"): 10},
			paired: map[string][]float64{
				"native":       {0.2, 0.19, 0.21},
				"libfuse-noop": {1.0, 0.7, 0.95, 0.8},
			},
			wantMetrics: map[string]float64{
				"ratio_native": 0.2, "ratio_native_min": 0.19, "ratio_native_max": 0.21,
				"ratio_libfuse_noop": 0.875, "ratio_libfuse_noop_min": 0.7, "ratio_libfuse_noop_max": 1.0,
			},
			wantFacts: map[string]string{},
		},
		{
			name: "a wide spread is flagged", cell: pt4k, median: 30,
			medians: map[benchCell]float64{pt4k.in("noop"): 10},
			paired:  map[string][]float64{"native": {0.3, 0.9, 1.0}},
			wantMetrics: map[string]float64{
				"ratio_native": 0.9, "ratio_native_min": 0.3, "ratio_native_max": 1.0, "ratio_noop": 3,
			},
			wantFacts: map[string]string{
				"ratio_native_noisy": "run-by-run ratios span 0.30–1.00: something disturbed this cell's runs; measure again before trusting the median",
			},
		},
		{
			name: "faster than native is flagged", cell: pt4k, median: 30,
			medians: map[benchCell]float64{pt4k.in("noop"): 10},
			paired:  map[string][]float64{"native": {1.8, 3.1, 2.5}},
			wantMetrics: map[string]float64{
				"ratio_native": 2.5, "ratio_native_min": 1.8, "ratio_native_max": 3.1, "ratio_noop": 3,
			},
			wantFacts: map[string]string{
				"ratio_native_noisy": "2.50× the native runs beside it, more than FUSE over the same tmpfs should manage: the native runs were likely disturbed; measure again before trusting it",
			},
		},
		{
			name: "a Go NOOP faster than the C one is not flagged", cell: pt4k.in("noop"), median: 9,
			paired: map[string][]float64{"native": {0.2, 0.21, 0.19}, "libfuse-noop": {1.3, 1.4, 1.2}},
			wantMetrics: map[string]float64{
				"ratio_native": 0.2, "ratio_native_min": 0.19, "ratio_native_max": 0.21,
				"ratio_libfuse_noop": 1.3, "ratio_libfuse_noop_min": 1.2, "ratio_libfuse_noop_max": 1.4,
			},
			wantFacts: map[string]string{},
		},
		{
			name: "failed pair falls back to medians", cell: pt4k.in("noop"), median: 9,
			medians:     map[benchCell]float64{pt4k.in("native"): 60, pt4k.in("libfuse-noop"): 10},
			unpaired:    map[string]string{"libfuse-noop": "paired libfuse-noop run 2: no mount"},
			wantMetrics: map[string]float64{"ratio_native": 0.15, "ratio_libfuse_noop": 0.9},
			wantFacts:   map[string]string{},
		},
		{
			name: "failed pair and no median says both", cell: pt4k.in("noop"), median: 9,
			medians:     map[benchCell]float64{pt4k.in("native"): 60},
			unpaired:    map[string]string{"libfuse-noop": "paired libfuse-noop run 2: no mount"},
			wantMetrics: map[string]float64{"ratio_native": 0.15},
			wantFacts: map[string]string{
				"ratio_libfuse_noop": "paired libfuse-noop run 2: no mount; libfuse-noop write/4096 not measured in this run",
			},
		},
		{
			name: "zero median is no figure", cell: pt4k, median: 30,
			medians:     map[benchCell]float64{pt4k.in("native"): 0, pt4k.in("noop"): 10},
			wantMetrics: map[string]float64{"ratio_noop": 3},
			wantFacts:   map[string]string{"ratio_native": "native write/4096 not measured in this run"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := newBenchSet()
			maps.Copy(set.medians, tc.medians)
			maps.Copy(set.missing, tc.missing)
			r := results.Result{Metrics: map[string]float64{}, Facts: map[string]string{}}
			i := modeIndex(seqModes(), tc.cell.mode)
			assert.Assert(t, i >= 0, "no mode %q", tc.cell.mode)
			set.ratios(tc.cell, seqModes()[i], tc.median, tc.paired, tc.unpaired, &r)
			assert.DeepEqual(t, r.Metrics, tc.wantMetrics)
			assert.DeepEqual(t, r.Facts, tc.wantFacts)
		})
	}
}

func TestPairRatios(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mbps, pair []float64
		want       []float64
	}{
		{name: "run by run", mbps: []float64{10, 30, 5}, pair: []float64{20, 30, 50}, want: []float64{0.5, 1, 0.1}},
		{name: "a pair run missing", mbps: []float64{10, 30}, pair: []float64{20}},
		{name: "a pair run that took no time", mbps: []float64{10, 30}, pair: []float64{20, 0}},
		{name: "none", mbps: nil, pair: nil, want: []float64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := pairRatios(tc.mbps, tc.pair)
			if tc.want == nil {
				assert.Check(t, is.Nil(got))
				return
			}
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

// TestRecord checks what a cell leaves for the ratios of later cells.
func TestRecord(t *testing.T) {
	c := benchCell{op: "read", mode: "noop", block: 4096}
	for _, tc := range []struct {
		name        string
		r           results.Result
		wantMedian  float64
		wantMissing string
	}{
		{name: "pass", r: results.Result{Status: results.Pass, Metrics: map[string]float64{"mbps_median": 42}}, wantMedian: 42},
		{name: "skip", r: results.Result{Status: results.Skip, Reason: "no passthrough"}, wantMissing: "skip: no passthrough"},
		{name: "pass without figure", r: results.Result{Status: results.Pass}, wantMissing: "pass"},
		{name: "long reason is clipped", r: results.Result{Status: results.Error, Reason: strings.Repeat("x", 300)},
			wantMissing: "error: " + strings.Repeat("x", 153) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := newBenchSet()
			set.record(c, tc.r)
			assert.Check(t, is.Equal(set.medians[c], tc.wantMedian))
			assert.Check(t, is.Equal(set.missing[c], tc.wantMissing))
		})
	}
}

func TestFormatRequests(t *testing.T) {
	many := map[string]int64{}
	for i := range 15 {
		many[fmt.Sprintf("OP%02d", i)] = int64(100 + i)
	}
	for _, tc := range []struct {
		name   string
		counts map[string]int64
		gib    float64
		want   string
	}{
		{name: "sorted by name, per GiB", counts: map[string]int64{"READ": 8, "GETXATTR": 4, "OPEN": 1}, gib: 0.5,
			want: "GETXATTR=8 OPEN=2 READ=16"},
		{name: "zero counts left out", counts: map[string]int64{"READ": 0, "LOOKUP": 3}, gib: 1, want: "LOOKUP=3"},
		{name: "none", counts: nil, gib: 1, want: "none"},
		{name: "no bytes moved", counts: map[string]int64{"READ": 1}, gib: 0, want: "none"},
		// The eleven most frequent keep their names; the other four
		// (OP00…OP03: 100+101+102+103) are summed.
		{name: "bounded", counts: many, gib: 1,
			want: "OP04=104 OP05=105 OP06=106 OP07=107 OP08=108 OP09=109 OP10=110 OP11=111 OP12=112 OP13=113 OP14=114 OTHERS=406"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, formatRequests(tc.counts, tc.gib), tc.want)
		})
	}
}

func TestParseTaskStat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    time.Duration
		wantErr string
	}{
		// utime 150 and stime 50 ticks: fields 14 and 15.
		{name: "plain", in: "42 (agent) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 5 0 10 1000 100",
			want: 2 * time.Second},
		{name: "name with spaces and parentheses", in: "42 (a (b) c) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 10 1000 100",
			want: 100 * time.Millisecond},
		{name: "no name", in: "42 agent S", wantErr: "no command name"},
		{name: "short", in: "42 (agent) S 1 2 3", wantErr: "want at least 13"},
		{name: "bad number", in: "42 (agent) S 1 42 42 0 -1 0 0 0 0 0 x 50 0", wantErr: "field 14"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTaskStat([]byte(tc.in))
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, got, tc.want)
		})
	}
}

func TestBytesPerRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		op    string
		block int
		runs  int
		limit int64
		want  int64
	}{
		{name: "4K read over 5 runs", op: "read", block: 4 << 10, runs: 5, want: (32 << 20) / 5 / 4096 * 4096},
		{name: "4K write over 5 runs", op: "write", block: 4 << 10, runs: 5, want: (8 << 20) / 5 / 4096 * 4096},
		{name: "1M read over 5 runs, whole blocks", op: "read", block: 1 << 20, runs: 5, want: 38 << 20},
		{name: "128K write over 5 runs, whole blocks", op: "write", block: 128 << 10, runs: 5, want: (96 << 20) / 5 / (128 << 10) * (128 << 10)},
		{name: "1M write once", op: "write", block: 1 << 20, runs: 1, want: 192 << 20},
		{name: "zero runs count as one", op: "read", block: 128 << 10, runs: 0, want: 96 << 20},
		{name: "limit caps", op: "read", block: 128 << 10, runs: 1, limit: 1 << 20, want: 1 << 20},
		{name: "never below one block", op: "write", block: 1 << 20, runs: 1, limit: 1000, want: 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, bytesPerRun(tc.op, tc.block, tc.runs, tc.limit), tc.want)
		})
	}
}

func TestParseProcStat(t *testing.T) {
	const stat = "cpu  10 1 20 1000 5 3 4 2 7 0\ncpu0 5 0 10 500 2 1 2 1 0 0\nintr 1 2\nctxt 4242\nbtime 1\n"
	for _, tc := range []struct {
		name    string
		in      string
		want    procStat
		wantErr string
	}{
		// busy = user+nice+system+irq+softirq+steal; idle, iowait and
		// guest (already in user) are not.
		{name: "busy and ctxt", in: stat, want: procStat{busy: 10 + 1 + 20 + 3 + 4 + 2, ctxsw: 4242}},
		{name: "no ctxt", in: "cpu  1 1 1 1 1 1 1 1\n", wantErr: "no cpu or ctxt line"},
		{name: "short cpu line", in: "cpu 1 2 3\nctxt 1\n", wantErr: "cpu line has 4 fields"},
		{name: "bad number", in: "cpu  1 x 1 1 1 1 1 1\nctxt 1\n", wantErr: "cpu field 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tc.in))
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, got, tc.want)
		})
	}
	busy, ctxsw := procStat{busy: 350, ctxsw: 10}.since(procStat{busy: 100, ctxsw: 4})
	assert.Check(t, is.Equal(busy, 2500*time.Millisecond))
	assert.Check(t, is.Equal(ctxsw, uint64(6)))
}

// TestUserHZ checks the constant behind cpu_s_per_gib against the clock
// tick the kernel hands this process (AT_CLKTCK, what sysconf reads).
func TestUserHZ(t *testing.T) {
	const atClktck = 17
	auxv, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		t.Skipf("no auxiliary vector: %v", err)
	}
	for i := 0; i+16 <= len(auxv); i += 16 {
		if binary.NativeEndian.Uint64(auxv[i:]) == atClktck {
			assert.Equal(t, binary.NativeEndian.Uint64(auxv[i+8:]), uint64(userHZ))
			return
		}
	}
	t.Fatal("no AT_CLKTCK in the auxiliary vector")
}

func TestBenchIDs(t *testing.T) {
	ss := newBenchSet().cells()
	want := 0
	for _, op := range contract.Ops {
		want += len(modesFor(seqModes(), string(op))) * len(contract.Blocks)
	}
	assert.Equal(t, len(ss), want, "the contract's cells are the modes' cells")
	var ids []contract.ID
	for _, s := range ss {
		ids = append(ids, s.ID)
		c, ok := contract.ParseCell(s.ID)
		assert.Check(t, ok, s.ID)
		i := modeIndex(seqModes(), string(c.Mode))
		assert.Check(t, i >= 0 && seqModes()[i].measures(string(c.Op)), "%s: no mode measures it", s.ID)
	}
	for _, want := range []contract.ID{"bench/read/native/4096", "bench/write/passthrough/131072", "bench/read/noop/1048576", "bench/write/passthrough-noxattr/4096"} {
		assert.Check(t, is.Contains(ids, want))
	}
	// Reads never ask for xattrs: no read cell without them.
	assert.Check(t, !slices.Contains(ids, "bench/read/passthrough-noxattr/4096"))
	// Native precedes every other mode of its op and block, and noop every
	// passthrough mode: the ratios need their medians.
	seen := map[string]bool{}
	for _, s := range ss {
		f := strings.Split(strings.TrimPrefix(string(s.ID), contract.BenchPrefix), "/")
		assert.Assert(t, is.Len(f, 3), s.ID)
		key := f[0] + "/" + f[2]
		seen[f[1]+"/"+key] = true
		assert.Check(t, seen["native/"+key], "%s runs before its native cell", s.ID)
		if strings.HasPrefix(f[1], "passthrough") {
			assert.Check(t, seen["noop/"+key], "%s runs before its noop cell", s.ID)
		}
	}
}

// TestBenchCells runs cells on the host with tiny files, each server a
// process of its own, and checks their shape; speed is not the point.
func TestBenchCells(t *testing.T) {
	caps := hostCapabilities(t)
	set := newBenchSet()
	env := func(block int) *scenarios.Env {
		e := scentest.Env(t)
		e.Capabilities, e.BenchRuns, e.BenchBytes = caps, 2, int64(16*block)
		return e
	}
	const block = 64 << 10
	var cells []benchCell
	for _, op := range contract.Ops {
		for _, m := range modesFor(seqModes(), string(op)) {
			cells = append(cells, benchCell{op: string(op), mode: m.name, block: block})
		}
	}
	for _, c := range cells {
		t.Run(c.op+"/"+c.mode, func(t *testing.T) {
			if strings.HasSuffix(c.mode, "-uring") {
				if why := scenarios.URingMissing(); why != "" {
					t.Skip(why)
				}
				// The cell switches fuse.enable_uring on for its mounts.
				if os.Getenv("FUSEMATRIX_HOST_URING") != "1" {
					t.Skip("switching fuse.enable_uring on is up to the machine's owner: set FUSEMATRIX_HOST_URING=1")
				}
			}
			r := set.run(context.Background(), env(c.block), c)
			pt := strings.HasPrefix(c.mode, "passthrough")
			if pt && !caps.Passthrough {
				assert.Equal(t, r.Status, results.Skip)
				assert.Check(t, is.Contains(r.Reason, "FUSE_PASSTHROUGH"))
				return
			}
			if c.mode == "libfuse-noop" {
				if _, why := server.PeerAvailable(); why != "" {
					assert.Equal(t, r.Status, results.Skip)
					assert.Check(t, is.Equal(r.Reason, why))
					return
				}
			}
			assert.Equal(t, r.Status, results.Pass, r.Reason)
			for _, m := range []string{"mbps_median", "mbps_min", "mbps_max", "ratio_native"} {
				v, ok := r.Metrics[m]
				assert.Check(t, ok && v > 0, "%s = %v", m, v)
			}
			// Reading 1 MiB of tmpfs may honestly switch no context on
			// the host; every FUSE request does (the reader sleeps until
			// the server answers).
			cs, ok := r.Metrics["ctxsw_per_gib"]
			assert.Check(t, ok && cs >= 0, "ctxsw_per_gib = %v", cs)
			if c.mode != "native" {
				assert.Check(t, cs > 0, "ctxsw_per_gib = %v through a FUSE server", cs)
			}
			// A run of 1 MiB on the host can finish inside one 10 ms
			// clock tick, so the CPU figures may honestly be zero here.
			cpu, ok := r.Metrics["cpu_s_per_gib"]
			assert.Check(t, ok && cpu >= 0, "cpu_s_per_gib = %v", cpu)
			assert.Check(t, r.Metrics["mbps_min"] <= r.Metrics["mbps_median"] && r.Metrics["mbps_median"] <= r.Metrics["mbps_max"])
			// Every figure a cell gives is one whose sign the host's
			// reader knows, and within what it accepts.
			for m := range r.Metrics {
				assert.Check(t, results.NonNegative(m), "%s: a metric results.NonNegative does not know", m)
			}
			assert.Check(t, is.Nil(results.BadMetrics(r.Metrics)))
			assert.Check(t, is.Equal(r.Facts["runs"], "2"))
			assert.Check(t, is.Equal(r.Facts["placement"], benchPlacement().note))
			assert.Check(t, is.Equal(r.Facts["bytes_per_run"], strconv.Itoa(16*block)))
			if c.mode == "native" {
				assert.Check(t, is.Equal(r.Metrics["ratio_native"], 1.0))
				_, has := r.Metrics["daemon_requests_per_gib"]
				assert.Check(t, !has, "native has no daemon")
				return
			}
			// Every FUSE figure is divided by a native run made right
			// before it.
			assert.Check(t, is.Contains(r.Facts["paired_with"], "native"))
			assert.Check(t, is.Contains(strings.Join(r.Log, "\n"), "ratio to native, run by run"))
			if c.mode == "noop" {
				_, why := server.PeerAvailable()
				assert.Check(t, is.Equal(strings.Contains(r.Facts["paired_with"], "libfuse-noop"), why == ""), r.Facts["paired_with"])
				// The figure comes with the loop that served it.
				assert.Check(t, is.Contains(r.Facts["threads"], "one goroutine"))
			}
			assert.Check(t, is.Equal(r.Facts["max_write"], "131072"))
			srv, ok := r.Metrics["server_cpu_s_per_gib"]
			assert.Check(t, ok && srv >= 0, "server_cpu_s_per_gib = %v", srv)
			assert.Check(t, r.Metrics["daemon_requests_per_gib"] > 0, "every mount sees at least an OPEN")
			assert.Check(t, is.Contains(r.Facts["requests"], "OPEN="))
			_, hasNoop := r.Metrics["ratio_noop"]
			// noop-uring is given as a ratio to noop over /dev/fuse too.
			assert.Check(t, is.Equal(hasNoop, pt || c.mode == "noop-uring"), "ratio_noop only on passthrough cells and noop-uring")
			if pt {
				assert.Check(t, r.Metrics["ratio_noop"] > 0)
				assert.Check(t, !strings.Contains(r.Facts["requests"], "READ="), r.Facts["requests"])
				assert.Check(t, !strings.Contains(r.Facts["requests"], "WRITE="), r.Facts["requests"])
			} else {
				wantOp := map[string]string{"read": "READ=", "write": "WRITE="}[c.op]
				assert.Check(t, is.Contains(r.Facts["requests"], wantOp))
			}
		})
	}
	for _, op := range []string{"read", "write"} {
		t.Run(op+"/passthrough label on a classic mount", func(t *testing.T) {
			if !caps.Passthrough {
				t.Skip("this kernel does not offer FUSE_PASSTHROUGH")
			}
			mislabel := newBenchSet()
			mislabel.modes = func() []seqMode {
				ms := seqModes()
				ms[modeIndex(ms, "passthrough")].mount = ms[modeIndex(ms, "classic")].mount
				return ms
			}
			r := mislabel.run(context.Background(), env(block), benchCell{op: op, mode: "passthrough", block: block})
			assert.Equal(t, r.Status, results.Fail)
			assert.Check(t, is.Contains(r.Reason, "passthrough not in use"))
			assert.Check(t, is.Contains(r.Reason, strings.ToUpper(op)+" requests reached the daemon"))
			assert.Check(t, is.Len(r.Metrics, 0), "a mislabelled figure must not be reported")
		})
	}
	t.Run("server that does not count requests", func(t *testing.T) {
		set := newBenchSet()
		set.modes = func() []seqMode {
			ms := seqModes()
			i := modeIndex(ms, "noop")
			noop := ms[i].mount
			ms[i].mount = func(ctx context.Context, env *scenarios.Env, req mountRequest) (scenarios.Mounted, string, error) {
				d, name, err := noop(ctx, env, req)
				return uncounted{d}, name, err
			}
			return ms
		}
		r := set.run(context.Background(), env(block), benchCell{op: "read", mode: "noop", block: block})
		assert.Equal(t, r.Status, results.Pass, r.Reason)
		assert.Check(t, is.Equal(r.Facts["requests"], "not counted by this server"))
		_, has := r.Metrics["daemon_requests_per_gib"]
		assert.Check(t, !has, "no request figure without counts")
	})
	t.Run("no native cell, paired native runs", func(t *testing.T) {
		r := newBenchSet().run(context.Background(), env(block), benchCell{op: "read", mode: "noop", block: block})
		assert.Equal(t, r.Status, results.Pass, r.Reason)
		assert.Check(t, r.Metrics["ratio_native"] > 0, "ratio_native = %v", r.Metrics["ratio_native"])
		assert.Check(t, r.Metrics["ratio_native_min"] <= r.Metrics["ratio_native"] && r.Metrics["ratio_native"] <= r.Metrics["ratio_native_max"],
			"ratio_native %v outside its spread %v–%v", r.Metrics["ratio_native"], r.Metrics["ratio_native_min"], r.Metrics["ratio_native_max"])
		assert.Check(t, is.Contains(r.Facts["paired_with"], "native"))
	})
	t.Run("pair mode that fails", func(t *testing.T) {
		set := newBenchSet()
		set.modes = func() []seqMode {
			ms := seqModes()
			i := modeIndex(ms, "libfuse-noop")
			ms[i].unavailable = nil
			ms[i].mount = func(ctx context.Context, env *scenarios.Env, req mountRequest) (scenarios.Mounted, string, error) {
				return nil, "", errors.New("peer would not mount")
			}
			return ms
		}
		r := set.run(context.Background(), env(block), benchCell{op: "read", mode: "noop", block: block})
		assert.Equal(t, r.Status, results.Pass, r.Reason)
		assert.Check(t, is.Equal(r.Facts["unpaired"], "paired libfuse-noop run 1: peer would not mount"))
		assert.Check(t, is.Equal(r.Facts["paired_with"], "native"))
		_, has := r.Metrics["ratio_libfuse_noop"]
		assert.Check(t, !has)
		assert.Check(t, is.Equal(r.Facts["ratio_libfuse_noop"],
			"paired libfuse-noop run 1: peer would not mount; libfuse-noop read/65536 not measured in this run"))
	})
}

// uncounted is a daemon that reports no counts by opcode, as a server
// that is not fusematrix's own may.
type uncounted struct{ scenarios.Mounted }

func (u uncounted) Stop() (wire.Stats, error) {
	st, err := u.Mounted.Stop()
	st.Requests = nil
	return st, err
}

// TestBenchXattr measures 4 KiB passthrough writes with and without
// xattrs on the host and counts what reaches the daemon: the kernel's
// security.capability check before each write is a GETXATTR, until the
// server answers ENOSYS.
func TestBenchXattr(t *testing.T) {
	caps := hostCapabilities(t)
	scentest.NeedPassthrough(t, caps)
	set := newBenchSet()
	const block, runs, bytes = 4096, 2, 256 * 4096
	for _, tc := range []struct {
		mode string
		// atLeast and atMost bound the GETXATTRs per run.
		atLeast, atMost int64
	}{
		{mode: "passthrough", atLeast: bytes / runs / block, atMost: 1 << 40},
		{mode: "passthrough-noxattr", atLeast: 0, atMost: 1},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			env := scentest.Env(t)
			env.Capabilities, env.BenchRuns, env.BenchBytes = caps, runs, bytes/runs
			r := set.run(context.Background(), env, benchCell{op: "write", mode: tc.mode, block: block})
			assert.Equal(t, r.Status, results.Pass, r.Reason)
			got := requestsPerRun(t, r.Facts["requests"], "GETXATTR", float64(bytes)/(1<<30), runs)
			assert.Check(t, got >= tc.atLeast && got <= tc.atMost, "GETXATTR per run = %d, want %d…%d (%s)", got, tc.atLeast, tc.atMost, r.Facts["requests"])
		})
	}
}

// requestsPerRun reads op's per-GiB figure from a requests fact and turns
// it back into a count per run.
func requestsPerRun(t *testing.T, fact, op string, gib float64, runs int) int64 {
	t.Helper()
	for _, f := range strings.Fields(fact) {
		if v, ok := strings.CutPrefix(f, op+"="); ok {
			n, err := strconv.ParseFloat(v, 64)
			assert.NilError(t, err)
			return int64(math.Round(n * gib / float64(runs)))
		}
	}
	return 0
}

// TestBenchProfile profiles the NOOP server of a cell and checks that the
// summary reaches the result's log.
func TestBenchProfile(t *testing.T) {
	caps := hostCapabilities(t)
	env := scentest.Env(t)
	env.Capabilities, env.BenchRuns, env.BenchBytes, env.Profile = caps, 2, 4<<20, true
	r := newBenchSet().run(context.Background(), env, benchCell{op: "read", mode: "noop", block: 4096})
	assert.Equal(t, r.Status, results.Pass, r.Reason)
	_, failed := r.Facts["profile"]
	assert.Check(t, !failed, "profile: %s", r.Facts["profile"])
	assert.Assert(t, len(r.Log) > 0)
	assert.Check(t, is.Contains(r.Log[0], "profile: 2 server processes"))
	for _, l := range r.Log {
		// Besides the profile: the paired ratios, and on a busy test
		// machine a note that a run began before things went quiet.
		assert.Check(t, strings.HasPrefix(l, "profile: ") || strings.HasPrefix(l, "ratio to ") || strings.HasPrefix(l, "run "), l)
	}
	t.Log(strings.Join(r.Log, "\n"))

	// Native has no server to profile.
	env = scentest.Env(t)
	env.Capabilities, env.BenchRuns, env.BenchBytes, env.Profile = caps, 1, 1<<20, true
	r = newBenchSet().run(context.Background(), env, benchCell{op: "read", mode: "native", block: 4096})
	assert.Equal(t, r.Status, results.Pass, r.Reason)
	// A busy test machine may add a note that the guest never went
	// quiet; a profile line there would be wrong.
	for _, l := range r.Log {
		assert.Check(t, !strings.HasPrefix(l, "profile:"), l)
	}
}

// TestMain lets the test binary serve file systems for server.Launcher,
// as the agent does.
func TestMain(m *testing.M) { scentest.Main(m) }

// hostCapabilities runs the fuse-init probe on this machine.
func hostCapabilities(t *testing.T) *results.Capabilities {
	t.Helper()
	return scentest.Capabilities(t, probe.All())
}
