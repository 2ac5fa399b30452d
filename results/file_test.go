package results

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func fileRun() Run {
	return Run{
		Schema: SchemaVersion,
		Host:   Host{CPUs: 2, Jobs: 1, Accel: "tcg"},
		Kernels: []Kernel{{
			Name: "debian:6.12/cloud", Status: Pass,
			Results: []Result{
				{ID: "fuse-init", Kind: Probe, Status: Pass},
				{ID: "pt/integrity", Kind: Scenario, Status: Pass},
			},
		}},
	}
}

func marshal(t *testing.T, r Run) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	assert.NilError(t, err)
	return b
}

func TestDecode(t *testing.T) {
	dup := fileRun()
	// issue 21 row 4: the same id twice in a kernel, a pass then a fail.
	dup.Kernels[0].Results = append(dup.Kernels[0].Results, Result{ID: "pt/integrity", Kind: Scenario, Status: Fail})
	twoKernels := fileRun()
	// The same id in two kernels (even of one name) is what a run is.
	twoKernels.Kernels = append(twoKernels.Kernels, twoKernels.Kernels[0])
	noID := fileRun()
	noID.Kernels[0].Results[1].ID = ""
	badKernel := fileRun()
	badKernel.Kernels[0].Status = "green"
	for _, tc := range []struct {
		name string
		in   []byte
		err  string
	}{
		{"good", marshal(t, fileRun()), ""},
		{"same id in two kernels", marshal(t, twoKernels), ""},
		{"duplicate id", marshal(t, dup), `kernel "debian:6.12/cloud": result "pt/integrity" appears more than once`},
		{"no id", marshal(t, noID), `kernel "debian:6.12/cloud", result 1: no id`},
		{"kernel status", marshal(t, badKernel), `unknown status "green"`},
		{"not json", []byte("hello"), "not a fusematrix run"},
		{"no kernels", []byte(`{"schema":1}`), "no schema or no kernels"},
		{"future", []byte(`{"schema":99,"kernels":[]}`), "schema 99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run, err := Decode(tc.in)
			if tc.err == "" {
				assert.NilError(t, err)
				assert.Assert(t, run != nil)
				return
			}
			assert.ErrorContains(t, err, tc.err)
		})
	}
}

// A benchmark cell's figures that no measurement gives are bad input,
// named by kernel, result and metric (issue 21 row 12): MB/s, ratios and
// counts below zero, a range whose minimum exceeds its maximum, a median
// outside its range. A metric whose name says nothing of its sign may be
// negative.
func TestDecodeMetrics(t *testing.T) {
	cell := func(m map[string]float64) []byte {
		r := fileRun()
		r.Kernels[0].Results = append(r.Kernels[0].Results, Result{ID: "bench/read/passthrough/131072", Kind: Benchmark, Status: Pass, Metrics: m})
		return marshal(t, r)
	}
	good := func(edit func(map[string]float64)) map[string]float64 {
		m := map[string]float64{
			"mbps_median": 1800, "mbps_min": 1700, "mbps_max": 1900,
			"ratio_native": 0.93, "ratio_native_min": 0.9, "ratio_native_max": 0.95, "ratio_noop": 1.2,
			"cpu_s_per_gib": 0.4, "ctxsw_per_gib": 3000, "daemon_read_calls_per_gib": 8200,
		}
		if edit != nil {
			edit(m)
		}
		return m
	}
	const at = `kernel "debian:6.12/cloud", result "bench/read/passthrough/131072": metric `
	for _, tc := range []struct {
		name string
		in   []byte
		err  string
	}{
		{"plausible", cell(good(nil)), ""},
		{"a ratio without its range", cell(map[string]float64{"ratio_native": 0.5}), ""},
		{"median on its range's edge", cell(good(func(m map[string]float64) { m["mbps_median"] = 1900 })), ""},
		{"a difference may be negative", cell(good(func(m map[string]float64) { m["delta_mbps_vs_last"] = -40 })), ""},
		{"zero MB/s", cell(map[string]float64{"mbps_median": 0, "mbps_min": 0, "mbps_max": 0}), ""},
		{"negative MB/s", cell(good(func(m map[string]float64) { m["mbps_min"] = -5 })),
			at + `"mbps_min": -5 is negative, and a rate, ratio or count cannot be`},
		{"negative ratio", cell(good(func(m map[string]float64) { m["ratio_noop"] = -1.2 })), at + `"ratio_noop": -1.2 is negative`},
		{"negative count", cell(good(func(m map[string]float64) { m["ctxsw_per_gib"] = -1 })), at + `"ctxsw_per_gib": -1 is negative`},
		{"negative seq-read figure", cell(map[string]float64{"native_mbps": -300, "passthrough_ratio": 0.9}), at + `"native_mbps": -300 is negative`},
		{"min above max", cell(good(func(m map[string]float64) { m["mbps_min"] = 2000 })),
			at + `"mbps_min": 2000 is above "mbps_max", 1900`},
		{"ratio min above max", cell(good(func(m map[string]float64) { m["ratio_native_min"], m["ratio_native_max"] = 0.95, 0.9 })),
			at + `"ratio_native_min": 0.95 is above "ratio_native_max", 0.9`},
		{"median outside its range", cell(good(func(m map[string]float64) { m["mbps_median"] = 2500 })),
			at + `"mbps_median": 2500 is outside its range "mbps_min"–"mbps_max", 1700–1900`},
		{"ratio outside its range", cell(good(func(m map[string]float64) { m["ratio_native"] = 0.5 })),
			at + `"ratio_native": 0.5 is outside its range`},
		{"any paired range", cell(map[string]float64{"latency_us_min": 9, "latency_us_max": 3}), at + `"latency_us_min": 9 is above "latency_us_max", 3`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			if tc.err == "" {
				assert.NilError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.err)
		})
	}
	// JSON holds no NaN or infinity; a run built in memory may.
	assert.Check(t, is.DeepEqual(BadMetrics(map[string]float64{"x": math.NaN(), "mbps_max": math.Inf(1), "delta": -1}),
		map[string]string{"x": "not a finite number", "mbps_max": "not a finite number"}))
	assert.Check(t, is.Nil(BadMetrics(map[string]float64{"delta": -1})))
}

// A FIFO, a device or a folder without results.json is refused at once:
// opening a FIFO for reading would wait for a writer for ever (issue 21
// row 10).
func TestReadFileKinds(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	assert.NilError(t, os.Mkdir(good, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(good, "results.json"), marshal(t, fileRun()), 0o644))
	fifo := filepath.Join(dir, "fifo")
	assert.NilError(t, os.Mkdir(fifo, 0o755))
	assert.NilError(t, syscall.Mkfifo(filepath.Join(fifo, "results.json"), 0o644))
	huge := filepath.Join(dir, "huge.json")
	f, err := os.Create(huge)
	assert.NilError(t, err)
	assert.NilError(t, f.Truncate(MaxFileBytes+1)) // sparse
	assert.NilError(t, f.Close())

	for _, tc := range []struct {
		name, path, err string
	}{
		{"folder", good, ""},
		{"file", filepath.Join(good, "results.json"), ""},
		{"fifo in folder", fifo, "not a regular file (a named pipe)"},
		{"fifo", filepath.Join(fifo, "results.json"), "not a regular file"},
		{"device", "/dev/zero", "not a regular file"},
		{"empty folder", t.TempDir(), "no such file"},
		{"too large", huge, "larger than 64 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := ReadFile(tc.path)
				done <- err
			}()
			select {
			case err := <-done:
				if tc.err == "" {
					assert.NilError(t, err)
				} else {
					assert.Check(t, is.ErrorContains(err, tc.err))
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("ReadFile(%s) still blocked after 10 s", tc.path)
			}
		})
	}
}

// FuzzDecode feeds Decode, the reader of every results file compare,
// merge, caps -from and bisect use: it must never panic, and a run it
// accepts holds no id twice in a kernel and no metric BadMetrics refuses.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"schema":1,"kernels":[{"name":"k","status":"pass","results":[{"id":"a","status":"pass"},{"id":"a","status":"fail"}]}]}`))
	f.Add([]byte(`{"schema":1,"kernels":[{"name":"k","status":"pass","results":[{"id":"a","status":"pass","metrics":{"mb_s":1}}]}]}`))
	f.Add([]byte(`{"schema":1,"kernels":[{"name":"k","status":"pass","results":[{"id":"a","status":"pass","metrics":{"mbps_min":3,"mbps_max":2}}]}]}`))
	f.Add([]byte(`{"schema":1,"kernels":[]}`))
	f.Add([]byte(`{"schema":1,"kernels":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		run, err := Decode(b)
		if err != nil {
			return
		}
		for _, k := range run.Kernels {
			seen := map[string]bool{}
			for _, r := range k.Results {
				if seen[r.ID] {
					t.Fatalf("accepted %q twice in kernel %q", r.ID, k.Name)
				}
				seen[r.ID] = true
				if bad := BadMetrics(r.Metrics); bad != nil {
					t.Fatalf("accepted %q with metrics %v", r.ID, bad)
				}
			}
		}
	})
}
