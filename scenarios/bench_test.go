package scenarios

import (
	"context"
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
)

func TestSummarize(t *testing.T) {
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
			assert.Equal(t, summarize(tc.in), tc.want)
			assert.DeepEqual(t, tc.in, in) // the caller's order is kept
		})
	}
}

func TestRatioTo(t *testing.T) {
	for _, tc := range []struct {
		name      string
		v, native float64
		have      bool
		want      float64
		wantOK    bool
	}{
		{name: "half", v: 50, native: 100, have: true, want: 0.5, wantOK: true},
		{name: "native itself", v: 100, native: 100, have: true, want: 1, wantOK: true},
		{name: "faster than native", v: 120, native: 100, have: true, want: 1.2, wantOK: true},
		{name: "native not measured", v: 50, have: false},
		{name: "native zero", v: 50, native: 0, have: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ratioTo(tc.v, tc.native, tc.have)
			assert.Equal(t, ok, tc.wantOK)
			assert.Equal(t, got, tc.want)
		})
	}
}

func TestBytesPerRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block int
		runs  int
		limit int64
		want  int64
	}{
		{name: "4K over 5 runs", block: 4 << 10, runs: 5, want: (32 << 20) / 5 / 4096 * 4096},
		{name: "1M over 5 runs, whole blocks", block: 1 << 20, runs: 5, want: 38 << 20},
		{name: "1M once", block: 1 << 20, runs: 1, want: 192 << 20},
		{name: "zero runs count as one", block: 128 << 10, runs: 0, want: 96 << 20},
		{name: "limit caps", block: 128 << 10, runs: 1, limit: 1 << 20, want: 1 << 20},
		{name: "never below one block", block: 1 << 20, runs: 1, limit: 1000, want: 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, bytesPerRun(tc.block, tc.runs, tc.limit), tc.want)
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
	ss := benchScenarios()
	assert.Equal(t, len(ss), len(benchOps)*len(benchModes)*len(benchBlocks))
	for _, want := range []string{"bench/read/native/4096", "bench/write/passthrough/131072", "bench/read/noop/1048576"} {
		assert.Check(t, is.Contains(IDs(ss), want))
	}
	// Native precedes every other mode of its op and block, which need
	// its median for ratio_native.
	seen := map[string]bool{}
	for _, s := range ss {
		f := strings.Split(strings.TrimPrefix(s.ID, BenchPrefix), "/")
		assert.Assert(t, is.Len(f, 3), s.ID)
		key := f[0] + "/" + f[2]
		if f[1] == "native" {
			seen[key] = true
		}
		assert.Check(t, seen[key], "%s runs before its native cell", s.ID)
	}
}

func TestSelectBench(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		want    int // bench cells selected
	}{
		{pattern: "", want: 0},
		{pattern: ".", want: 0},
		{pattern: "read", want: 0},
		{pattern: "^bench/", want: 24},
		{pattern: "bench/read/", want: 12},
		{pattern: "^bench/read/.*/1048576$", want: 4},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			ss, err := Select(tc.pattern)
			assert.NilError(t, err)
			n := 0
			for _, s := range ss {
				if strings.HasPrefix(s.ID, BenchPrefix) {
					n++
				}
			}
			assert.Equal(t, n, tc.want)
			if tc.pattern == "" {
				assert.Check(t, is.Contains(IDs(ss), "seq-read"))
			}
		})
	}
}

// TestBenchCells runs a few cells on the host with tiny files and checks
// their shape; speed is not the point.
func TestBenchCells(t *testing.T) {
	caps := hostCapabilities(t)
	set := &benchSet{native: map[string]float64{}}
	const block = 64 << 10
	env := func() *Env {
		e := testEnv(t)
		e.Capabilities, e.BenchRuns, e.BenchBytes = caps, 2, 1<<20
		return e
	}
	cells := []benchCell{
		{op: "read", mode: "native", block: block},
		{op: "read", mode: "noop", block: block},
		{op: "read", mode: "classic", block: block},
		{op: "read", mode: "passthrough", block: block},
		{op: "write", mode: "native", block: block},
		{op: "write", mode: "noop", block: block},
		{op: "write", mode: "classic", block: block},
		{op: "write", mode: "passthrough", block: block},
	}
	for _, c := range cells {
		t.Run(c.op+"/"+c.mode, func(t *testing.T) {
			r := set.run(context.Background(), env(), c)
			if c.mode == "passthrough" && !caps.Passthrough {
				assert.Equal(t, r.Status, results.Skip)
				assert.Check(t, is.Contains(r.Reason, "FUSE_PASSTHROUGH"))
				return
			}
			assert.Equal(t, r.Status, results.Pass, r.Reason)
			for _, m := range []string{"mbps_median", "mbps_min", "mbps_max", "ctxsw_per_gib", "ratio_native"} {
				v, ok := r.Metrics[m]
				assert.Check(t, ok && v > 0, "%s = %v", m, v)
			}
			// A run of 1 MiB on the host can finish inside one 10 ms
			// clock tick, so the CPU figure may honestly be zero here.
			cpu, ok := r.Metrics["cpu_s_per_gib"]
			assert.Check(t, ok && cpu >= 0, "cpu_s_per_gib = %v", cpu)
			assert.Check(t, r.Metrics["mbps_min"] <= r.Metrics["mbps_median"] && r.Metrics["mbps_median"] <= r.Metrics["mbps_max"])
			if c.mode == "native" {
				assert.Check(t, is.Equal(r.Metrics["ratio_native"], 1.0))
			} else {
				assert.Check(t, is.Equal(r.Facts["max_write"], "131072"))
			}
			assert.Check(t, is.Equal(r.Facts["runs"], "2"))
			assert.Check(t, is.Equal(r.Facts["bytes_per_run"], "1048576"))
		})
	}
	for _, op := range benchOps {
		t.Run(op+"/passthrough label on a classic mount", func(t *testing.T) {
			if !caps.Passthrough {
				t.Skip("this kernel does not offer FUSE_PASSTHROUGH")
			}
			mislabel := &benchSet{native: map[string]float64{}, modes: func(env *Env) []seqMode {
				ms := seqModes(env)
				ms[3].mount = ms[2].mount
				return ms
			}}
			r := mislabel.run(context.Background(), env(), benchCell{op: op, mode: "passthrough", block: block})
			assert.Equal(t, r.Status, results.Fail)
			assert.Check(t, is.Contains(r.Reason, "passthrough not in use"))
			assert.Check(t, is.Contains(r.Reason, strings.ToUpper(op)+" requests reached the daemon"))
			assert.Check(t, is.Len(r.Metrics, 0), "a mislabelled figure must not be reported")
		})
	}
	t.Run("no native figure", func(t *testing.T) {
		r := (&benchSet{native: map[string]float64{}}).run(context.Background(), env(), benchCell{op: "read", mode: "noop", block: block})
		assert.Equal(t, r.Status, results.Pass, r.Reason)
		_, has := r.Metrics["ratio_native"]
		assert.Check(t, !has)
		assert.Check(t, is.Contains(r.Facts["ratio_native"], "not measured"))
	})
}
