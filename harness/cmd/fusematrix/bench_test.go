package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// benchRun is a finished bench of one kernel with passthrough, from an
// agent that did not send ratio_noop.
func benchRun() results.Run {
	started := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	cell := func(id string, median float64) results.Result {
		return results.Result{ID: id, Kind: results.Benchmark, Status: results.Pass,
			Metrics: map[string]float64{"mbps_median": median, "mbps_min": median - 1, "mbps_max": median + 1}}
	}
	return results.Run{
		Schema: results.SchemaVersion, Started: started, Finished: started.Add(time.Minute),
		Host: results.Host{CPUs: 2, Jobs: 1, Accel: "tcg"},
		Kernels: []results.Kernel{{
			Name: "debian:6.12/cloud", Release: "6.12.117+deb12-cloud-amd64", Accel: "tcg", Status: results.Pass,
			Results: []results.Result{
				cell("bench/read/native/131072", 400),
				cell("bench/read/noop/131072", 125),
				cell("bench/read/passthrough/131072", 375),
			},
		}},
	}
}

// bench -from re-renders a saved run without booting: the table with
// the host-computed passthrough/noop ratio on stdout, and the chart and
// HTML report next to the run, or in -out.
func TestBenchFrom(t *testing.T) {
	path := writeJSON(t, benchRun())
	dir := filepath.Dir(path)

	code, out := fusematrix(t, "bench", "-from", path)
	assert.Equal(t, code, 0, out)
	assert.Check(t, is.Contains(out, "pt/noop"))
	assert.Check(t, is.Regexp(`read\s+128K\s+400\s+125\s+-\s+375\s+3\.00\s+-\n`, out))
	for _, name := range []string{"bench.svg", "bench.png", "report.html"} {
		assert.Check(t, is.Contains(out, filepath.Join(dir, name)))
	}
	svg, err := os.ReadFile(filepath.Join(dir, "bench.svg"))
	assert.NilError(t, err)
	assert.Check(t, bytes.HasPrefix(svg, []byte("<?xml")))
	assert.Check(t, bytes.Contains(svg, []byte("debian:6.12/cloud: read")))
	b, err := os.ReadFile(filepath.Join(dir, "bench.png"))
	assert.NilError(t, err)
	_, err = png.Decode(bytes.NewReader(b))
	assert.NilError(t, err)
	html, err := os.ReadFile(filepath.Join(dir, "report.html"))
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(html), "<svg"))
	assert.Check(t, is.Contains(string(html), "<td>3.00</td>"))
	// Nothing half-written is left behind.
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	assert.Check(t, is.Len(left, 0))

	other := filepath.Join(t.TempDir(), "charts")
	code, out = fusematrix(t, "bench", "-format", "markdown", "-out", other, "-from", path)
	assert.Equal(t, code, 0, out)
	assert.Check(t, is.Contains(out, "| read | 128K | 400 | 125 | - | 375 | 3.00 |"))
	for _, name := range []string{"bench.svg", "bench.png", "report.html"} {
		_, err := os.Stat(filepath.Join(other, name))
		assert.Check(t, err)
	}
}

func TestBenchFromRefuses(t *testing.T) {
	good := writeJSON(t, benchRun())
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"kernels with -from", []string{"-from", good, "debian:6.1/cloud"}, "debian:6.1/cloud would have no effect"},
		{"boot flags with -from", []string{"-runs", "2", "-from", good}, "-runs would have no effect"},
		{"unknown format", []string{"-format", "svg", "-from", good}, `-format "svg"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := fusematrix(t, append([]string{"bench"}, tc.args...)...)
			assert.Equal(t, code, 2, out)
			assert.Check(t, is.Contains(out, tc.err))
		})
	}
	// A file it cannot read is bad input too, exit 2: a run with one id
	// twice in a kernel may not render either way (issue 21 row 4).
	h := hostileRuns(t)
	for path, want := range map[string]string{
		filepath.Join(t.TempDir(), "nope.json"): "no such file",
		h.dup:                                   `result "fuse-init" appears more than once`,
		h.fifo:                                  "not a regular file (a named pipe)",
		h.minAboveMax:                           hostileCell + `: metric "mbps_min": 1801 is above "mbps_max", 1800`,
		h.negative:                              hostileCell + `: metric "mbps_min": -1600 is negative`,
	} {
		code, out := fusematrix(t, "bench", "-from", path)
		assert.Equal(t, code, 2, out)
		assert.Check(t, is.Contains(out, want))
		code, out = fusematrix(t, "caps", "-from", path)
		assert.Equal(t, code, 2, out)
		assert.Check(t, is.Contains(out, want))
	}
}

// matrix writes report.html next to results.json.
func TestMatrixWritesHTML(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest with a kernel from the Debian mirror; run without -short")
	}
	out := t.TempDir()
	code, text := fusematrix(t, "matrix", "-q", "-accel", "tcg", "-run", contract.ProbesOnly, "-out", out, "debian:6.12/cloud@bookworm")
	assert.Equal(t, code, 0, text)
	assert.Check(t, is.Contains(text, filepath.Join(out, "report.html")))
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(html), "debian:6.12/cloud@bookworm"))
	assert.Check(t, is.Contains(string(html), "fuse-init"))
	assert.Check(t, !strings.Contains(string(html), "<svg"), "no bench cells, no chart")
}
