package report

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/fusematrix/fusematrix/results"
)

// daemonResults are the results of a daemon called name: its four own
// checks (own[i] the status of each), data checks (pass data[0], fail
// data[1], skip data[2] of them), its passthrough check, and bench cells.
func daemonResults(name string, own [4]results.Status, data [3]int, pt *results.Result, bench map[string]float64) []results.Result {
	var out []results.Result
	for i, id := range []string{"mount", "read-all", "write", "unmount"} {
		out = append(out, results.Result{ID: "daemon/" + name + "/" + id, Kind: results.Scenario, Status: own[i], Reason: "why"})
	}
	ids := []string{"pt/integrity", "pt/size-after-write", "pt/mmap-shared", "pt/fsync", "pt/open-twice", "pt/unmount-open", "pt/abort-open", "classic/basics"}
	for i, id := range ids[:data[0]+data[1]+data[2]] {
		s := results.Pass
		switch {
		case i >= data[0]+data[1]:
			s = results.Skip
		case i >= data[0]:
			s = results.Fail
		}
		out = append(out, results.Result{ID: "daemon/" + name + "/" + id, Kind: results.Scenario, Status: s})
	}
	if pt != nil {
		pt.ID, pt.Kind = "daemon/"+name+"/passthrough", results.Scenario
		out = append(out, *pt)
	}
	for op, ratio := range bench {
		out = append(out, results.Result{ID: "daemon/" + name + "/bench/" + op + "/131072", Kind: results.Benchmark, Status: results.Pass,
			Metrics: map[string]float64{"mbps_median": 100 * ratio, "ratio_native": ratio, "daemon_read_calls_per_gib": 8200}})
	}
	return out
}

// clientsRun is three daemons on a kernel without passthrough and one
// with it: one correct, one whose write check and some data checks fail,
// one read-only without a backing directory that never mounted on 6.1.
func clientsRun() *results.Run {
	p := results.Pass
	k61, k612 := kernel61(), kernel612()
	k61.Results = append(k61.Results, daemonResults("bindfs", [4]results.Status{p, p, p, p}, [3]int{8, 0, 0},
		&results.Result{Status: results.Skip, Reason: "kernel does not offer FUSE_PASSTHROUGH"}, nil)...)
	k612.Results = append(k612.Results, daemonResults("bindfs", [4]results.Status{p, p, p, p}, [3]int{8, 0, 0},
		&results.Result{Status: results.Skip, Facts: map[string]string{"passthrough": "false", "claimed": "false", "daemon_read_calls_per_gib": "24688"}},
		map[string]float64{"read": 0.31, "write": 0.12})...)
	k61.Results = append(k61.Results, daemonResults("rclone", [4]results.Status{p, p, results.Fail, p}, [3]int{2, 6, 0},
		&results.Result{Status: results.Skip, Reason: "kernel does not offer FUSE_PASSTHROUGH"}, nil)...)
	k612.Results = append(k612.Results, daemonResults("rclone", [4]results.Status{p, p, results.Fail, p}, [3]int{2, 5, 1},
		&results.Result{Status: results.Fail, Facts: map[string]string{"passthrough": "false", "claimed": "true", "daemon_read_calls_per_gib": "41504"}}, nil)...)
	k61.Results = append(k61.Results, daemonResults("squashfuse", [4]results.Status{results.Error, results.Error, results.Error, results.Error}, [3]int{0, 0, 8},
		&results.Result{Status: results.Error, Reason: "did not mount"}, nil)...)
	k612.Results = append(k612.Results, daemonResults("squashfuse", [4]results.Status{p, p, results.Skip, p}, [3]int{0, 0, 8},
		&results.Result{Status: results.Skip, Reason: "no file to read"}, nil)...)
	return run(k61, k612)
}

func TestClientTable(t *testing.T) {
	r := clientsRun()
	var texts []string
	for _, row := range clientRows(r) {
		var cells []string
		for _, c := range row.cells {
			cells = append(cells, c.Text)
		}
		texts = append(texts, row.daemon+" "+row.kernel+": "+strings.Join(cells, " | "))
	}
	assert.DeepEqual(t, texts, []string{
		"bindfs debian-6.1: yes | 4/4 | 8/8 | not offered | - | - | -",
		"bindfs debian-6.12: yes | 4/4 | 8/8 | not used | 0.31 | 0.12 | 8,200",
		"rclone debian-6.1: yes | 3/4 (write FAIL) | 2/8 (6 FAIL) | not offered | - | - | -",
		"rclone debian-6.12: yes | 3/4 (write FAIL) | 2/7 (5 FAIL) | not used (claimed) | - | - | 41,504",
		"squashfuse debian-6.1: NO | 0/4 (mount ERROR, read-all ERROR, write ERROR, unmount ERROR) | skip | ERROR | - | - | -",
		"squashfuse debian-6.12: yes | 3/3 (write skip) | skip | not measured | - | - | -",
	})
	// A run without daemons has no table.
	assert.Check(t, is.Len(clientRows(caseRun("healthy")), 0))
	assert.Check(t, !strings.Contains(render(t, Markdown, caseRun("healthy")), "**Daemons**"))
	assert.Check(t, !strings.Contains(render(t, HTML, caseRun("healthy")), `id="daemons"`))

	md := render(t, Markdown, r)
	start := strings.Index(md, "**Daemons**")
	assert.Assert(t, start >= 0, md)
	end := strings.Index(md[start:], "\n**Figures**")
	assert.Assert(t, end >= 0, md)
	golden.Assert(t, md[start:start+end], "clients.md.golden")
	page := render(t, HTML, r)
	assert.Check(t, is.Contains(page, `<h2 id="daemons">Daemons</h2>`))
	assert.Check(t, is.Contains(page, `<td class="fail">3/4 (write FAIL)</td>`))
}

func TestGroupThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 8192: "8,192", 1234567: "1,234,567", -4096: "-4,096"} {
		assert.Check(t, is.Equal(groupThousands(n), want))
	}
}

// The same table for a terminal, and in caps' and bench's Markdown (the
// nightly's step summary); nothing of it without daemons.
func TestClientsElsewhere(t *testing.T) {
	r := clientsRun()
	text := render(t, Clients, r)
	assert.Check(t, is.Contains(text, "rclone      debian-6.12  yes     3/4 (write FAIL)"))
	assert.Check(t, is.Contains(text, "read calls/GiB"))
	for name, f := range map[string]func(io.Writer, *results.Run) error{"caps": CapsMarkdown, "bench": BenchMarkdown} {
		assert.Check(t, is.Contains(render(t, f, r), "| rclone | debian-6.12 | yes | **3/4 (write FAIL)** |"), name)
		assert.Check(t, !strings.Contains(render(t, f, caseRun("healthy")), "**Daemons**"), name)
	}
	assert.Check(t, is.Equal(render(t, Clients, caseRun("healthy")), ""))
}

// With DaemonsApart the grid leaves the daemons' columns to their table,
// and a daemon's failure is still in the notes.
func TestTableDaemonsApart(t *testing.T) {
	r := clientsRun()
	var all, apart bytes.Buffer
	assert.NilError(t, TableWith(&all, r, Options{}))
	assert.NilError(t, TableWith(&apart, r, Options{DaemonsApart: true}))
	grid := func(s string) string { return s[:strings.Index(s, "\nFigures")] }
	assert.Check(t, is.Contains(grid(all.String()), "daemon/bindfs/mount"))
	assert.Check(t, !strings.Contains(grid(apart.String()), "daemon/"), grid(apart.String()))
	assert.Check(t, is.Contains(grid(apart.String()), "fuse-init"))
	assert.Check(t, is.Contains(apart.String(), "daemon/rclone/write"), "the failure is in the notes")
}
