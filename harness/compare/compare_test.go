package compare

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

func load(t *testing.T, name string) *results.Run {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	assert.NilError(t, err)
	var run results.Run
	assert.NilError(t, json.Unmarshal(b, &run))
	return &run
}

func render(t *testing.T, f func(io.Writer, *Report) error, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	assert.NilError(t, f(&b, r))
	return b.String()
}

// The checked-in runs cover a status regression, a fix, a changed errno,
// a lost flag, a throughput drop beyond the noise and one within it, a
// kernel upgraded between the runs, TCG then KVM, a flaky result, a
// disturbed cell, a kernel gone and a new one.
func TestCompareGolden(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string
		regress  bool
	}{
		{name: "old-new", old: "old.json", new: "new.json", regress: true},
		{name: "same", old: "new.json", new: "new.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Compare(load(t, tc.old), load(t, tc.new), Options{OldPath: tc.old, NewPath: tc.new})
			assert.Check(t, is.Equal(r.Regressed, tc.regress))
			for format, render1 := range Renderers {
				ext := map[string]string{"table": "table", "markdown": "md", "json": "json"}[format]
				golden.Assert(t, render(t, render1, r), tc.name+"."+ext+".golden")
			}
		})
	}
}

// findings returns the findings for kernel name, keyed "ID what".
func findings(t *testing.T, r *Report, name string) map[string]Finding {
	t.Helper()
	for _, k := range r.Kernels {
		if k.Name == name {
			out := map[string]Finding{}
			for _, f := range k.Findings {
				key := f.ID + " " + f.What
				_, dup := out[key]
				assert.Check(t, !dup, "%s twice", key)
				out[key] = f
			}
			return out
		}
	}
	t.Fatalf("no kernel %s", name)
	return nil
}

// Each rule, one finding at a time, on the checked-in runs.
func TestCompareRules(t *testing.T) {
	r := Compare(load(t, "old.json"), load(t, "new.json"), Options{})
	f612 := findings(t, r, "debian:6.12/cloud@bookworm")
	for key, want := range map[string]Verdict{
		"pt/integrity status":                  Regression, // pass → fail
		"pt/direct-io status":                  Regression, // pass → skip
		"pt/abort-open status":                 Regression, // disappeared
		"pt/fsync status":                      Regression, // pass → fail, flaky
		"classic/basics status":                Fix,        // fail → pass
		"passthrough-ioctl o_path":             Regression, // ok → errno
		"passthrough-ioctl not_negotiated":     Change,     // errno → another errno
		"fuse-features param.enable_uring":     Change,     // a fact only one run has
		"fuse-init flag.direct_io_allow_mmap":  Regression, // withdrawn
		"bench/read/passthrough/131072 slower": Regression, // beyond the noise
		"bench/write/passthrough/4096 faster":  Change,
		"bench/read/noop/131072 not judged":    Info, // ratio_native_noisy
		"pt/fsync flaky":                       Info,
		" package":                             Info, // upgraded
	} {
		f, ok := f612[key]
		if assert.Check(t, ok, "no finding %q", key) {
			assert.Check(t, is.Equal(f.Verdict, want), key)
		}
	}
	assert.Check(t, is.Equal(f612["passthrough-ioctl not_negotiated"].Old, "EPERM"))
	assert.Check(t, is.Equal(f612["passthrough-ioctl not_negotiated"].New, "EINVAL"))
	_, ok := f612["bench/read/classic/131072 slower"]
	assert.Check(t, !ok, "a drop within the noise is not reported")
	for key := range f612 {
		_, id, _ := cutSpace(key)
		assert.Check(t, id != string(contract.FactProtocol) && id != string(contract.FactInitFlags),
			"fuse-init's facts that repeat the capabilities are not reported twice: %s", key)
		assert.Check(t, key != string(contract.SeqRead)+" slower", "seq-read is not compared")
	}
	k612 := kernelOf(r, "debian:6.12/cloud@bookworm")
	assert.Check(t, is.Equal(k612.Cells, 4))
	assert.Check(t, is.Equal(k612.Within, 2), "classic and native moved within the noise")
	assert.Check(t, k612.Upgraded)

	f61 := findings(t, r, "debian:6.1/cloud@bookworm")
	assert.Check(t, is.Len(f61, 1), "%v", f61)
	f, ok := f61[" not compared"]
	assert.Check(t, ok && f.Verdict == Info && f.Old == "tcg" && f.New == "kvm", "%+v", f)
	assert.Check(t, is.Equal(kernelOf(r, "debian:6.1/cloud@bookworm").Cells, 0), "TCG and KVM cells are not compared")

	assert.Check(t, is.Equal(findings(t, r, "debian:6.16/cloud@trixie")[" kernel"].Verdict, Regression))
	assert.Check(t, is.Equal(findings(t, r, "debian:6.17/cloud@trixie")[" kernel"].Verdict, Info))
	assert.Check(t, is.Equal(kernelOf(r, "debian:6.16/cloud@trixie").Presence, Gone))
	assert.Check(t, is.Equal(kernelOf(r, "debian:6.17/cloud@trixie").Presence, New))

	assert.Check(t, r.Regressed)
	assert.Check(t, is.DeepEqual(r.Counts, Counts{Regressions: 8, Fixes: 1, Changes: 3, Flaky: 1}))
	assert.Check(t, is.Len(r.Notes, 2), "seq-read left out; the new host's CPU model unknown: %v", r.Notes)
}

func cutSpace(s string) (string, string, bool) {
	for i := range s {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func kernelOf(r *Report, name string) *Kernel {
	for i := range r.Kernels {
		if r.Kernels[i].Name == name {
			return &r.Kernels[i]
		}
	}
	return nil
}

func cellRun(accel, model string, r results.Result) *results.Run {
	return &results.Run{Schema: results.SchemaVersion, Host: results.Host{CPUModel: model},
		Kernels: []results.Kernel{{Name: "k", Accel: accel, Status: results.Pass, Results: []results.Result{r}}}}
}

func cellResult(med, lo, hi, ratio, rlo, rhi float64) results.Result {
	return results.Result{ID: "bench/read/passthrough/4096", Kind: results.Benchmark, Status: results.Pass,
		Metrics: map[string]float64{
			string(contract.MetricMedian): med, string(contract.MetricMin): lo, string(contract.MetricMax): hi,
			string(contract.MetricRatioNative): ratio, string(contract.MetricRatioNativeMin): rlo, string(contract.MetricRatioNativeMax): rhi,
		}}
}

// A drop counts only beyond the noise both runs measured.
func TestThroughputNoise(t *testing.T) {
	old := cellResult(100, 90, 110, 0.8, 0.75, 0.85)
	for _, tc := range []struct {
		name string
		new  results.Result
		want string // the finding's What, "" for none
	}{
		{"MB/s range wholly below", cellResult(80, 70, 89, 0.8, 0.75, 0.85), "slower"},
		{"MB/s ranges touch", cellResult(80, 70, 90, 0.8, 0.75, 0.85), ""},
		{"ratio beyond threshold, range below", cellResult(100, 85, 115, 0.6, 0.55, 0.7), "slower"},
		{"ratio beyond threshold, ranges overlap", cellResult(100, 85, 115, 0.6, 0.55, 0.76), ""},
		{"ratio within threshold, range below", cellResult(100, 85, 115, 0.7, 0.69, 0.72), ""},
		{"MB/s range wholly above", cellResult(130, 120, 140, 0.8, 0.75, 0.85), "faster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Compare(cellRun("tcg", "cpu", old), cellRun("tcg", "cpu", tc.new), Options{})
			k := r.Kernels[0]
			assert.Check(t, is.Equal(k.Cells, 1))
			if tc.want == "" {
				assert.Check(t, is.Len(k.Findings, 0))
				assert.Check(t, is.Equal(k.Within, 1))
				assert.Check(t, !r.Regressed)
				return
			}
			assert.Assert(t, is.Len(k.Findings, 1))
			assert.Check(t, is.Equal(k.Findings[0].What, tc.want))
			assert.Check(t, is.Equal(r.Regressed, tc.want == "slower"))
		})
	}
	// -threshold moves the line.
	r := Compare(cellRun("tcg", "", old), cellRun("tcg", "", cellResult(100, 85, 115, 0.7, 0.69, 0.72)), Options{Threshold: 0.1})
	assert.Check(t, r.Regressed)
	assert.Check(t, is.Equal(r.Threshold, 0.1))

	// Hosts of different CPU models: not compared, and said why.
	r = Compare(cellRun("kvm", "cpu A", old), cellRun("kvm", "cpu B", cellResult(10, 9, 11, 0.1, 0.09, 0.11)), Options{})
	assert.Check(t, !r.Regressed)
	assert.Check(t, is.Len(r.Kernels[0].Findings, 0))
	assert.Check(t, is.DeepEqual(r.Notes, []string{"throughput is not compared: the hosts' CPU models differ (cpu A, then cpu B)"}))
	// The same model, known on both sides: no note.
	r = Compare(cellRun("kvm", "cpu A", old), cellRun("kvm", "cpu A", old), Options{})
	assert.Check(t, is.Len(r.Notes, 0))

	// In a merged run a kernel carries the host of its shard: its cells are
	// compared against that host, not the run's.
	merged := cellRun("kvm", "cpu A", cellResult(10, 9, 11, 0.1, 0.09, 0.11))
	merged.Kernels[0].Host = &results.Host{CPUModel: "cpu B"}
	r = Compare(cellRun("kvm", "cpu A", old), merged, Options{})
	assert.Check(t, !r.Regressed)
	assert.Check(t, is.Equal(r.Kernels[0].Cells, 0))
	assert.Check(t, is.Len(r.Kernels[0].Findings, 0))
	assert.Check(t, is.DeepEqual(r.Notes, []string{"throughput is not compared: the hosts' CPU models differ (cpu A, then cpu B)"}))
	merged.Host.CPUModel, merged.Kernels[0].Host.CPUModel = "cpu B", "cpu A"
	r = Compare(cellRun("kvm", "cpu A", old), merged, Options{})
	assert.Check(t, r.Regressed, "the kernel's own host is like the old run's")
}

// A probe fact that was ok and is now an errno is a regression; any other
// change of a fact is a change. A withdrawn flag or passthrough is a
// regression, an offered one a change.
func TestCapabilityRules(t *testing.T) {
	run := func(caps results.Capabilities, facts map[string]string) *results.Run {
		return &results.Run{Kernels: []results.Kernel{{Name: "k", Status: results.Pass, Capabilities: &caps,
			Results: []results.Result{{ID: string(contract.PassthroughIoctl), Kind: results.Probe, Status: results.Pass, Facts: facts}}}}}
	}
	pt := results.Capabilities{FuseMinor: 41, Passthrough: true, PassthroughABI: "upstream", InitFlags: []string{"a", "passthrough"}}
	none := results.Capabilities{FuseMinor: 40, InitFlags: []string{"a", "c"}}
	r := Compare(run(pt, map[string]string{"backing_open": "ok", "bad_fd": "EBADF", "o_path": "ok"}),
		run(none, map[string]string{"backing_open": "EPERM (operation not permitted)", "bad_fd": "EINVAL", "o_path": "yes"}), Options{})
	got := map[string]Verdict{}
	for _, f := range r.Kernels[0].Findings {
		got[f.What] = f.Verdict
	}
	assert.Check(t, is.DeepEqual(got, map[string]Verdict{
		"fuse_minor": Change, "passthrough": Regression, "flag.passthrough": Regression, "flag.c": Change,
		"backing_open": Regression, "bad_fd": Change, "o_path": Change,
	}))
	// The other way round nothing regressed.
	none.InitFlags = []string{"a"}
	r = Compare(run(none, map[string]string{"backing_open": "EPERM"}), run(pt, map[string]string{"backing_open": "ok"}), Options{})
	assert.Check(t, !r.Regressed)
	assert.Check(t, is.Equal(r.Counts.Changes, 4))
}

// Guest text cannot drive a terminal or break a Markdown table.
func TestHostileText(t *testing.T) {
	mk := func(status results.Status, reason string) *results.Run {
		return &results.Run{Kernels: []results.Kernel{{Name: "k\x1b[31m|x", Status: results.Pass,
			Results: []results.Result{{ID: "pt/x", Status: status, Reason: reason}}}}}
	}
	r := Compare(mk(results.Pass, ""), mk(results.Fail, "bad\n| ** \u202e\x1b]0;t\x07"), Options{})
	table := render(t, Table, r)
	assert.Check(t, !bytes.ContainsAny([]byte(table), "\x1b\x07\u202e"), table)
	mdText := render(t, Markdown, r)
	assert.Check(t, is.Contains(mdText, `| bad \| \*\* \\u202e\\x1b\]0;t\\x07 |`))
	assert.Check(t, is.Contains(mdText, `| k\\x1b\[31m\|x (-) |`))
}

// Worse is a regression, fail or error to pass a fix, any other move a
// change; a result only in the new run is a regression when it fails.
func TestStatusRules(t *testing.T) {
	const p, f, s, e = results.Pass, results.Fail, results.Skip, results.Error
	for _, tc := range []struct {
		old, new results.Status
		want     Verdict
	}{
		{p, f, Regression}, {p, e, Regression}, {p, s, Regression}, {s, f, Regression}, {s, e, Regression},
		{f, p, Fix}, {e, p, Fix},
		{s, p, Change}, {f, e, Change}, {e, f, Change}, {f, s, Change},
	} {
		mk := func(st results.Status) *results.Run {
			return &results.Run{Kernels: []results.Kernel{{Name: "k", Status: p, Results: []results.Result{{ID: "pt/x", Status: st}}}}}
		}
		r := Compare(mk(tc.old), mk(tc.new), Options{})
		if assert.Check(t, is.Len(r.Kernels[0].Findings, 1), "%s → %s", tc.old, tc.new) {
			assert.Check(t, is.Equal(r.Kernels[0].Findings[0].Verdict, tc.want), "%s → %s", tc.old, tc.new)
		}
		assert.Check(t, is.Equal(r.Regressed, tc.want == Regression))
	}

	kernel := func(st results.Status, rs ...results.Result) *results.Run {
		return &results.Run{Kernels: []results.Kernel{{Name: "k", Status: st, Error: "guest ended before done", Results: rs}}}
	}
	a, b, c := results.Result{ID: "a", Status: p}, results.Result{ID: "b", Status: p}, results.Result{ID: "c", Status: f}
	// A kernel that stopped early: its run and the results it lost, once.
	r := Compare(kernel(p, a, b, c), kernel(e, a), Options{})
	assert.Check(t, is.DeepEqual(r.Kernels[0].Findings, []Finding{
		{Verdict: Regression, Aspect: AspectKernel, What: "run", Old: "pass", New: "error", Note: "guest ended before done"},
		{Verdict: Regression, Aspect: AspectStatus, What: "results", Old: "2", New: "missing", Note: "b, c"},
	}))
	r = Compare(kernel(e, a), kernel(p, a), Options{})
	assert.Check(t, is.Equal(r.Kernels[0].Findings[0].Verdict, Fix))
	// Results only in the new run: a failing one regressed.
	r = Compare(kernel(p, a), kernel(p, a, b, c), Options{})
	assert.Check(t, is.DeepEqual(r.Kernels[0].Findings, []Finding{
		{Verdict: Info, Aspect: AspectStatus, ID: "b", What: "status", Old: "missing", New: "pass", Note: "not in the old run"},
		{Verdict: Regression, Aspect: AspectStatus, ID: "c", What: "status", Old: "missing", New: "fail", Note: "not in the old run"},
	}))
}

// Comparing 80,000 results looks each up in the other run by index (issue
// 21 row 11): a scan for each would step over billions of results, so the
// count of results scanned shows the work is linear where timings on a
// shared machine cannot. BenchmarkCompare measures it.
func TestCompareIndexes(t *testing.T) {
	const n = 80000
	old, new := bigRuns(n)
	before := results.Scanned()
	r := Compare(old, new, Options{})
	for _, render1 := range Renderers {
		render(t, render1, r)
	}
	scanned := results.Scanned() - before
	// A lookup of a probe or two per kernel may scan; a scan per result
	// would step over n²/4 results.
	assert.Check(t, scanned <= 64*n, "%d results scanned to compare %d: a scan per result", scanned, n)

	// And the verdicts are right: per kernel, 40 passes that now fail, 4
	// results gone and 4 new (passing), 400 cells judged.
	assert.Check(t, is.DeepEqual(r.Counts, Counts{Regressions: 2 * (40 + 4)}))
	for _, k := range r.Kernels {
		assert.Check(t, is.Equal(k.Cells, 400), k.Name)
		assert.Check(t, is.Equal(k.Within, 400), k.Name)
		assert.Check(t, is.Len(k.Findings, 40+4+4), k.Name)
	}
}

// A metric a cell gave in the old run and not in the new, or gave as no
// measurement does, is a regression naming it, even where throughput is
// not judged; a cell whose figures are all gone is not "not judged, ok"
// (issue 21 row 12).
func TestLostMetrics(t *testing.T) {
	old := cellResult(1800, 1700, 1900, 0.93, 0.9, 0.95)
	without := func(names ...string) results.Result {
		r := cellResult(1800, 1700, 1900, 0.93, 0.9, 0.95)
		for _, n := range names {
			delete(r.Metrics, n)
		}
		return r
	}
	const ratio, ratioMin, ratioMax = string(contract.MetricRatioNative), string(contract.MetricRatioNativeMin), string(contract.MetricRatioNativeMax)
	noNative := without(ratio, ratioMin, ratioMax)
	noNative.Facts = map[string]string{ratio: "native read/4096 gave no figure in this run (fail: short read)"}
	upsideDown := without()
	upsideDown.Metrics[string(contract.MetricMin)] = 2000
	for _, tc := range []struct {
		name     string
		old, new results.Result
		model    string // the new host's CPU model, "cpu" unless set
		want     []Finding
	}{
		{name: "ratio_native lost", old: old, new: without(ratio), want: []Finding{
			{Verdict: Regression, Aspect: AspectThroughput, What: ratio, Old: "0.93", New: "missing", Note: "the cell passed, but gave no ratio_native"}}},
		{name: "the agent says why", old: old, new: noNative, want: []Finding{
			{Verdict: Regression, Aspect: AspectThroughput, What: ratio, Old: "0.93", New: "missing", Note: "the cell passed, but: native read/4096 gave no figure in this run (fail: short read)"},
			{Verdict: Regression, Aspect: AspectThroughput, What: ratioMax, Old: "0.95", New: "missing", Note: "the cell passed, but gave no ratio_native_max"},
			{Verdict: Regression, Aspect: AspectThroughput, What: ratioMin, Old: "0.9", New: "missing", Note: "the cell passed, but gave no ratio_native_min"}}},
		{name: "every metric gone", old: old, new: without(slices.Collect(maps.Keys(old.Metrics))...), want: []Finding{
			{Verdict: Regression, Aspect: AspectThroughput, What: "metrics", Old: "6", New: "missing",
				Note: "the cell passed, but gave no figure: mbps_max, mbps_median, mbps_min, ratio_native, ratio_native_max, ratio_native_min"}}},
		{name: "a minimum above its maximum", old: old, new: upsideDown, want: []Finding{
			{Verdict: Regression, Aspect: AspectThroughput, What: "mbps_min", Old: "1700", New: "2000", Note: `not a measurement: 2000 is above "mbps_max", 1900`}}},
		{name: "lost on another host", old: old, new: without(ratio), model: "other cpu", want: []Finding{
			{Verdict: Regression, Aspect: AspectThroughput, What: ratio, Old: "0.93", New: "missing", Note: "the cell passed, but gave no ratio_native"}}},
		{name: "a metric only in the new run", old: without(ratio), new: old},
		{name: "none in either run", old: without(slices.Collect(maps.Keys(old.Metrics))...), new: without(slices.Collect(maps.Keys(old.Metrics))...), want: []Finding{
			{Verdict: Info, Aspect: AspectThroughput, What: "not judged", Old: "-", New: "-", Note: "no MB/s or ratio range in both runs"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.want {
				tc.want[i].ID = tc.old.ID
			}
			r := Compare(cellRun("kvm", "cpu", tc.old), cellRun("kvm", cmp.Or(tc.model, "cpu"), tc.new), Options{})
			assert.Check(t, is.DeepEqual(r.Kernels[0].Findings, tc.want))
			assert.Check(t, is.Equal(r.Regressed, len(tc.want) > 0 && tc.want[0].Verdict == Regression))
			assert.Check(t, is.Equal(r.Counts.Regressions, len(tc.want)*boolRank(r.Regressed)))
		})
	}
}

// How lost metrics read, on compare's checked-in new run with one cell
// that lost its ratio and one that lost every figure.
func TestLostMetricsGolden(t *testing.T) {
	new := load(t, "new.json")
	k := &new.Kernels[1]
	assert.Assert(t, is.Equal(k.Name, "debian:6.12/cloud@bookworm"))
	at := k.Index()
	delete(at.Result("bench/read/passthrough/131072").Metrics, string(contract.MetricRatioNative))
	at.Result("bench/write/passthrough/4096").Metrics = nil
	r := Compare(load(t, "new.json"), new, Options{OldPath: "new.json", NewPath: "lost.json"})
	assert.Check(t, r.Regressed)
	assert.Check(t, is.Equal(r.Counts.Regressions, 2))
	for format, render1 := range Renderers {
		if format != "json" {
			ext := map[string]string{"table": "table", "markdown": "md"}[format]
			golden.Assert(t, render(t, render1, r), "lost-metrics."+ext+".golden")
		}
	}
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A request fact that changed is a change with both values, one that did
// not is no finding (issue 25).
func TestRequestFactChange(t *testing.T) {
	run := func(size, opcodes string) *results.Run {
		return &results.Run{Schema: results.SchemaVersion, Kernels: []results.Kernel{{
			Name: "debian:6.12/cloud", Status: results.Pass, Accel: "tcg",
			Results: []results.Result{{ID: string(contract.Requests), Kind: results.Probe, Status: results.Pass, Facts: map[string]string{
				string(contract.FactReaddirplusSize):                                size,
				string(contract.RequestPhase("write_4k", "passthrough", "opcodes")): opcodes,
				string(contract.FactInterrupt):                                      "sent",
			}}},
		}}}
	}
	r := Compare(run("4096", "GETXATTR:4"), run("65536", "none"), Options{})
	got := findings(t, r, "debian:6.12/cloud")
	assert.Check(t, is.Len(got, 2), "%v", got)
	for key, want := range map[string][2]string{
		"requests readdirplus_size":             {"4096", "65536"},
		"requests write_4k_passthrough.opcodes": {"GETXATTR:4", "none"},
	} {
		f, ok := got[key]
		if assert.Check(t, ok, "no finding %q", key) {
			assert.Check(t, is.Equal(f.Verdict, Change), key)
			assert.Check(t, is.Equal(f.Aspect, AspectFact), key)
			assert.Check(t, is.DeepEqual([2]string{f.Old, f.New}, want), key)
		}
	}
	assert.Check(t, !r.Regressed)
	out := render(t, Renderers["table"], r)
	assert.Check(t, is.Contains(out, "readdirplus_size"))
	assert.Check(t, is.Contains(out, "65536"))
}

// A scenario's typed answers change without a regression: its status
// judges; its other facts (counters, notes) are not compared.
func TestScenarioFactChange(t *testing.T) {
	run := func(held, note string) *results.Run {
		return &results.Run{Schema: results.SchemaVersion, Kernels: []results.Kernel{{
			Name: "debian:7.3/cloud", Status: results.Pass, Accel: "tcg",
			Results: []results.Result{{ID: string(contract.ClassicKilled), Kind: results.Scenario, Status: results.Pass, Facts: map[string]string{
				string(contract.FactHeldRead): held,
				string(contract.FactUmount):   "ok",
				"server_stop":                 note,
			}}},
		}}}
	}
	r := Compare(run("ENOTCONN (transport endpoint is not connected)", "a"), run("EIO (input/output error)", "b"), Options{})
	got := findings(t, r, "debian:7.3/cloud")
	assert.Check(t, is.Len(got, 1), "%v", got)
	f, ok := got["classic/kill-mid-request held_read"]
	if assert.Check(t, ok, "%v", got) {
		assert.Check(t, is.Equal(f.Verdict, Change))
		assert.Check(t, is.Equal(f.Aspect, AspectFact))
		assert.Check(t, is.Equal(f.New, "EIO (input/output error)"))
	}
	assert.Check(t, !r.Regressed)
}
