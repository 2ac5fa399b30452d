package report

import (
	"fmt"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// requestsRun is three kernels whose requests probe saw the same shape
// except where a kernel changed it: 6.12 adds passthrough modes, 6.16
// lists a directory in 64 KiB requests.
func requestsRun() *results.Run {
	facts := func(kv ...string) results.Result {
		r := results.Result{ID: string(contract.Requests), Kind: results.Probe, Status: results.Pass, Facts: map[string]string{}}
		for i := 0; i+1 < len(kv); i += 2 {
			r.Facts[kv[i]] = kv[i+1]
		}
		return r
	}
	common := []string{
		"read_size_max", "131072", "interrupt", "sent",
		"write_4k_classic.opcodes", "WRITE:4,GETXATTR:4", "write_4k_classic_noxattr.opcodes", "WRITE:4,GETXATTR:1",
		"open_close_classic.opcodes", "OPEN:1,RELEASE:1,FLUSH:1",
	}
	pt := []string{"write_4k_passthrough.opcodes", "GETXATTR:4", "seq_read_passthrough.opcodes", "none"}
	kernel := func(name, release string, passthrough bool, r results.Result) results.Kernel {
		return results.Kernel{Name: name, Release: release, Status: results.Pass, Accel: "tcg",
			Capabilities: &results.Capabilities{FuseMajor: 7, FuseMinor: 38, Passthrough: passthrough},
			Results:      []results.Result{r}}
	}
	return &results.Run{Schema: results.SchemaVersion, Kernels: []results.Kernel{
		kernel("debian:6.1/cloud", "6.1.0-57-cloud-amd64", false, facts(append(common,
			"readdirplus_size", "4096", "readdir_classic.opcodes", "OPENDIR:1,RELEASEDIR:1,READDIRPLUS:9",
			"stat_after_write_classic.opcodes", "GETATTR:1")...)),
		kernel("debian:6.12/cloud", "6.12.118+deb12-cloud-amd64", true, facts(append(append(common, pt...),
			"readdirplus_size", "4096", "readdir_classic.opcodes", "OPENDIR:1,RELEASEDIR:1,READDIRPLUS:9",
			"stat_after_write_classic.opcodes", "none")...)),
		kernel("debian:6.16/cloud", "6.16.12+deb13-cloud-amd64", true, facts(append(append(common, pt...),
			"readdirplus_size", "65536", "readdir_classic.opcodes", "OPENDIR:1,RELEASEDIR:1,READDIRPLUS:2",
			"stat_after_write_classic.opcodes", "none")...)),
	}}
}

// gridText writes a group's rows as text: each cell's text and class.
func gridText(g htmlGroup) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s)\n", g.Name, g.Note)
	for _, r := range g.Rows {
		fmt.Fprintf(&b, "%-34s", r.Head)
		for _, c := range r.Cells {
			fmt.Fprintf(&b, " | %s [%s]", c.Text, c.Class)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestRequestRowsGolden: the grid shows a row for each request fact that
// differs between kernels, marked where a kernel differs from the one to
// its left, and none for a fact all kernels agree on or only some have.
func TestRequestRowsGolden(t *testing.T) {
	g := gridOf(requestsRun())
	var group *htmlGroup
	for i := range g.Groups {
		if g.Groups[i].Name == "requests" {
			group = &g.Groups[i]
		}
	}
	assert.Assert(t, group != nil, "no requests group")
	golden.Assert(t, gridText(*group), "requests-grid.golden")
	var heads []string
	for _, r := range group.Rows {
		heads = append(heads, r.Head)
	}
	assert.Check(t, is.DeepEqual(heads, []string{"readdirplus_size", "stat_after_write_classic.opcodes", "readdir_classic.opcodes"}))
	assert.Check(t, is.Contains(group.Rows[2].Cells[2].Title, "OPENDIR:1,RELEASEDIR:1,READDIRPLUS:2 (was OPENDIR:1,RELEASEDIR:1,READDIRPLUS:9)"))

	out := render(t, HTML, requestsRun())
	assert.Check(t, is.Contains(out, ">requests<"))
	assert.Check(t, is.Contains(out, "readdirplus_size"))

	// A run without the probe, or where every kernel agrees, has no group.
	same := requestsRun()
	same.Kernels = same.Kernels[:1]
	for _, gr := range gridOf(same).Groups {
		assert.Check(t, gr.Name != "requests", "a group of one kernel")
	}
}
