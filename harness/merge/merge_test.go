package merge

import (
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
)

func run(host string, start time.Time, names ...string) *results.Run {
	r := &results.Run{Schema: results.SchemaVersion, Started: start, Finished: start.Add(time.Minute),
		Host: results.Host{CPUModel: host, CPUs: 2, Accel: "auto"}}
	for _, n := range names {
		r.Kernels = append(r.Kernels, results.Kernel{Name: n, Status: results.Pass,
			Results: []results.Result{{ID: "fuse-init", Kind: results.Probe, Status: results.Pass}}})
	}
	return r
}

func TestMerge(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	got, err := Merge([]Shard{
		{Path: "a", Run: run("EPYC", t0.Add(time.Minute), "debian:7.0/cloud", "debian:6.12/cloud")},
		{Path: "b", Run: run("EPYC", t0, "debian:6.9/cloud")},
		{Path: "c", Run: run("Xeon", t0.Add(2*time.Minute), "debian:6.1/cloud")},
	})
	assert.NilError(t, err)
	var names []string
	for _, k := range got.Kernels {
		names = append(names, k.Name)
	}
	assert.DeepEqual(t, names, []string{"debian:6.1/cloud", "debian:6.9/cloud", "debian:6.12/cloud", "debian:7.0/cloud"})
	assert.Equal(t, got.Host.CPUModel, "EPYC", "the first shard's host")
	assert.Check(t, got.Started.Equal(t0))
	assert.Check(t, got.Finished.Equal(t0.Add(3*time.Minute)))
	// Only the kernel from another host carries its own.
	assert.Check(t, is.Equal(got.HostOf(&got.Kernels[0]).CPUModel, "Xeon"))
	assert.Check(t, got.Kernels[0].Host != nil)
	for _, k := range got.Kernels[1:] {
		assert.Check(t, k.Host == nil, "%s", k.Name)
		assert.Check(t, is.Equal(got.HostOf(&k).CPUModel, "EPYC"))
	}
}

// Inputs that cannot make one run are errors naming every shard at fault.
func TestMergeErrors(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	future := run("EPYC", t0, "debian:6.1/cloud")
	future.Schema = results.SchemaVersion + 1
	for _, tc := range []struct {
		name   string
		shards []Shard
		want   string
	}{
		{"none", nil, "merge: no runs given"},
		{"same kernel twice", []Shard{
			{Path: "a/results.json", Run: run("EPYC", t0, "debian:6.1/cloud")},
			{Path: "b/results.json", Run: run("EPYC", t0, "debian:6.12/cloud", "debian:6.1/cloud")},
		}, `kernel "debian:6.1/cloud" is in both a/results.json and b/results.json: shards must not overlap`},
		{"schemas differ", []Shard{
			{Path: "a", Run: run("EPYC", t0, "debian:6.12/cloud")},
			{Path: "b", Run: future},
		}, "b: schema 2, but a has schema 1"},
		{"empty shard", []Shard{
			{Path: "a", Run: run("EPYC", t0, "debian:6.12/cloud")},
			{Path: "b", Run: run("EPYC", t0)},
		}, "b: no kernels: an interrupted or empty run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Merge(tc.shards)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestNatural(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"debian:6.1/cloud", "debian:6.12/cloud", -1},
		{"debian:6.9/cloud", "debian:6.12/cloud", -1},
		{"debian:6.19/cloud", "debian:7.0/cloud", -1},
		{"debian:7.0/cloud", "debian:7.0/cloud", 0},
		{"debian:6.12/cloud@bookworm", "debian:6.12/cloud@trixie", -1},
		{"6.01", "6.1", 0},
		{"a", "ab", -1},
		{"src:./linux", "debian:6.1", 1},
	} {
		assert.Check(t, is.Equal(Natural(tc.a, tc.b), tc.want), "%q vs %q", tc.a, tc.b)
		assert.Check(t, is.Equal(Natural(tc.b, tc.a), -tc.want), "%q vs %q", tc.b, tc.a)
	}
}

func TestConsoleName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"01-debian-6.1-cloud-bookworm.console.log", true},
		{"", false},
		{".", false},
		{"..", false},
		{"../x.console.log", false},
		{"/etc/passwd", false},
		{`a\b.console.log`, false},
		{"sub/x.console.log", false},
	} {
		_, ok := ConsoleName(tc.name)
		assert.Check(t, is.Equal(ok, tc.ok), "%q", tc.name)
	}
}
