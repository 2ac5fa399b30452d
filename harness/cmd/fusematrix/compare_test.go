package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/harness/compare"
	"github.com/fusematrix/fusematrix/results"
)

// The runs harness/compare's golden tests compare.
var (
	compareOld = filepath.Join("..", "..", "compare", "testdata", "old.json")
	compareNew = filepath.Join("..", "..", "compare", "testdata", "new.json")
)

// compare exits 1 when anything regressed and 0 when nothing did, in
// every format; a folder stands for the results.json in it, and flags may
// follow the runs.
func TestCompareExit(t *testing.T) {
	code, out := fusematrix(t, "compare", compareOld, compareNew)
	assert.Equal(t, code, 1, out)
	assert.Check(t, is.Contains(out, "compare: REGRESSED: 8 regressions, 1 fix, 3 changes, 1 flaky\n"))
	assert.Check(t, is.Regexp(`REGRESSION +bench/read/passthrough/131072 +slower`, out))

	code, out = fusematrix(t, "compare", "-format", "markdown", compareOld, compareNew)
	assert.Equal(t, code, 1, out)
	assert.Check(t, is.Contains(out, "### fusematrix compare: REGRESSED"))

	code, out = fusematrix(t, "compare", compareOld, compareNew, "-format", "json")
	assert.Equal(t, code, 1, out)
	var r compare.Report
	assert.NilError(t, json.Unmarshal([]byte(out), &r), out)
	assert.Check(t, r.Regressed)
	assert.Check(t, is.Equal(r.Counts.Regressions, 8))

	dir := t.TempDir()
	b, err := os.ReadFile(compareNew)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644))
	code, out = fusematrix(t, "compare", dir, compareNew)
	assert.Equal(t, code, 0, out)
	assert.Check(t, is.Contains(out, "compare: ok: no regression"))

	// A larger -threshold does not hide a range wholly below the old one's;
	// the passthrough cell's MB/s range dropped too.
	code, out = fusematrix(t, "compare", "-threshold", "0.9", compareOld, compareNew)
	assert.Equal(t, code, 1, out)
	assert.Check(t, is.Regexp(`REGRESSION +bench/read/passthrough/131072 +slower +[^\n]*MB/s 1600–1800 wholly below`, out))
	assert.Check(t, !strings.Contains(out, "ratio_native -27%"), "beyond -threshold no more")
}

// A cell that passed in both runs but lost its figures is a regression,
// not a cell left unjudged (issue 21 row 12).
func TestCompareLostMetrics(t *testing.T) {
	code, out := fusematrix(t, "compare", compareNew, hostileRuns(t).lost)
	assert.Equal(t, code, 1, out)
	assert.Check(t, is.Contains(out, "compare: REGRESSED: 1 regression,"))
	assert.Check(t, is.Regexp(`REGRESSION +bench/read/passthrough/131072 +metrics +6 +missing +the cell passed, but gave no figure: mbps_max, mbps_median`, out))
	assert.Check(t, !regexp.MustCompile(`passthrough/131072 +not judged`).MatchString(out), out)
}

// hostile holds run files that no fusematrix wrote as they are.
type hostile struct {
	// dup is compare's new run with its first kernel's first result
	// repeated as a fail after the pass (issue 21 row 4).
	dup string
	// fifo is a folder whose results.json is a named pipe (row 10).
	fifo string
	// minAboveMax and negative are compare's new run with a cell's MB/s
	// range upside down, and negative (row 12).
	minAboveMax, negative string
	// lost is compare's new run with that cell's every metric gone: it
	// still passes (row 12).
	lost string
}

// hostileCell names the cell hostileRuns spoils, as errors name it.
const hostileCell = `kernel "debian:6.12/cloud@bookworm", result "bench/read/passthrough/131072"`

func hostileRuns(t *testing.T) hostile {
	t.Helper()
	dir := t.TempDir()
	b0, err := os.ReadFile(compareNew)
	assert.NilError(t, err)
	var run results.Run
	assert.NilError(t, json.Unmarshal(b0, &run))
	first := run.Kernels[0].Results[0]
	assert.Equal(t, first.Status, results.Pass)
	first.Status = results.Fail
	run.Kernels[0].Results = append(run.Kernels[0].Results, first)
	h := hostile{dup: filepath.Join(dir, "dup.json"), fifo: filepath.Join(dir, "fifo"),
		minAboveMax: filepath.Join(dir, "min-above-max.json"), negative: filepath.Join(dir, "negative.json")}
	b, err := json.Marshal(run)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(h.dup, b, 0o644))
	h.lost = filepath.Join(dir, "lost.json")
	for path, edit := range map[string]func(m map[string]float64){
		h.minAboveMax: func(m map[string]float64) { m["mbps_min"] = m["mbps_max"] + 1 },
		h.negative:    func(m map[string]float64) { m["mbps_min"] = -m["mbps_min"] },
		h.lost:        func(m map[string]float64) { clear(m) },
	} {
		var run results.Run
		assert.NilError(t, json.Unmarshal(b0, &run))
		cell := run.Kernels[1].Index().Result("bench/read/passthrough/131072")
		assert.Assert(t, cell != nil && run.Kernels[1].Name == "debian:6.12/cloud@bookworm")
		edit(cell.Metrics)
		b, err := json.Marshal(run)
		assert.NilError(t, err)
		assert.NilError(t, os.WriteFile(path, b, 0o644))
	}
	assert.NilError(t, os.Mkdir(h.fifo, 0o755))
	assert.NilError(t, syscall.Mkfifo(filepath.Join(h.fifo, "results.json"), 0o644))
	return h
}

// Input compare cannot read is a usage error: exit 2, one line saying
// what is wrong, nothing on stdout.
func TestCompareBadInput(t *testing.T) {
	bad := func(name string) string { return filepath.Join("testdata", "compare", name) }
	h := hostileRuns(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"truncated JSON", []string{bad("truncated.json"), compareNew}, "fusematrix compare: old: read run testdata/compare/truncated.json: not a fusematrix run: unexpected end of JSON input"},
		{"future schema", []string{compareOld, bad("future-schema.json")}, "fusematrix compare: new: read run testdata/compare/future-schema.json: fusematrix run of schema 2; this fusematrix reads schema 1"},
		{"not a results file", []string{bad("package.json"), compareNew}, "not a fusematrix run: no schema or no kernels"},
		{"folder without results", []string{t.TempDir(), compareNew}, "results.json: no such file or directory"},
		{"missing file", []string{compareOld, "nonexistent.json"}, "fusematrix compare: new: read run: stat nonexistent.json: no such file or directory"},
		{"same id twice", []string{compareNew, h.dup}, `fusematrix compare: new: read run ` + h.dup + `: kernel "debian:6.1/cloud@bookworm": result "fuse-init" appears more than once`},
		{"a FIFO", []string{h.fifo, compareNew}, "results.json: not a regular file (a named pipe)"},
		{"a cell's min above its max", []string{compareOld, h.minAboveMax},
			hostileCell + `: metric "mbps_min": 1801 is above "mbps_max", 1800: no measurement gives that`},
		{"negative MB/s", []string{h.negative, compareNew}, "fusematrix compare: old: read run " + h.negative + ": " +
			hostileCell + `: metric "mbps_min": -1600 is negative, and a rate, ratio or count cannot be`},
		{"one run", []string{compareOld}, "want two runs, OLD and NEW; got 1"},
		{"three runs", []string{compareOld, compareNew, compareNew}, "want two runs, OLD and NEW; got 3"},
		{"format", []string{"-format", "html", compareOld, compareNew}, `-format "html": want table, markdown or json`},
		{"threshold", []string{"-threshold", "-0.1", compareOld, compareNew}, "-threshold -0.1: want a fraction between 0 and 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := fusematrix(t, append([]string{"compare"}, tc.args...)...)
			assert.Equal(t, code, 2, out)
			assert.Check(t, is.Contains(out, tc.want))
			if !strings.HasSuffix(tc.name, " run") && !strings.HasSuffix(tc.name, " runs") { // these print the usage too
				assert.Check(t, is.Equal(strings.Count(out, "\n"), 1), "one line: %q", out)
			}
		})
	}
}
