package contract

import (
	"fmt"
	"regexp"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
)

func TestParamsRoundTrip(t *testing.T) {
	for _, p := range []Params{
		{},
		{Run: "^passthrough"},
		{Run: "seq read|pt/(integrity|fsync)", Port: "fm.1"},
		{Run: "x", Count: 7, BenchRuns: 3, BenchMiB: 64, Profile: true},
		{Shell: true},
		{Daemons: []string{"my-fs.v2"}},
		{Daemons: []string{"bindfs", "sshfs", "fuse-overlayfs"}},
		{Count: MaxCount, BenchRuns: MaxCount, BenchMiB: MaxBenchMiB},
	} {
		t.Run(p.Cmdline(), func(t *testing.T) {
			assert.NilError(t, p.Check())
			var got Params
			found, err := got.ParseCmdline("console=ttyS0 panic=-1 " + p.Cmdline() + " quiet")
			assert.NilError(t, err)
			assert.Check(t, found)
			want := p
			if want.Port == "" {
				want.Port = PortName
			}
			assert.DeepEqual(t, got, want)
		})
	}
}

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		name, cmdline string
		want          Params
		found         bool
		err           string
	}{
		{name: "host", cmdline: "console=ttyS0 quiet panic=1"},
		{name: "init arguments", cmdline: "quiet -- fusematrix.run=x"},
		{
			name:    "bad values keep what was there",
			cmdline: "fusematrix.bench_mib=lots fusematrix.count=0 fusematrix.bench_runs=0 fusematrix.profile=yes fusematrix.colour=red",
			want:    Params{Count: 2, BenchMiB: 8},
			found:   true,
			err: `kernel command line: fusematrix.bench_mib="lots" is not a size in MiB` + "\n" +
				`kernel command line: fusematrix.count="0" is not a count from 1 to 1000` + "\n" +
				`kernel command line: fusematrix.bench_runs="0" is not a run count from 1 to 1000` + "\n" +
				`kernel command line: fusematrix.profile="yes" is not a boolean` + "\n" +
				"kernel command line: unknown key fusematrix.colour",
		},
		{
			name:    "daemons",
			cmdline: "fusematrix.daemon=a,b fusematrix.daemon=c,c fusematrix.daemon=d,,e fusematrix.daemon=../x",
			want:    Params{Count: 2, BenchMiB: 8, Daemons: []string{"a", "b"}},
			found:   true,
			err: `kernel command line: fusematrix.daemon="c,c" is not a list of distinct daemon names` + "\n" +
				`kernel command line: fusematrix.daemon="d,,e" is not a list of distinct daemon names` + "\n" +
				`kernel command line: fusematrix.daemon="../x" is not a list of distinct daemon names`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Params{Count: 2, BenchMiB: 8}
			want := tc.want
			if !tc.found {
				want = got
			}
			found, err := got.ParseCmdline(tc.cmdline)
			if tc.err == "" {
				assert.NilError(t, err)
			} else {
				assert.Error(t, err, tc.err)
			}
			assert.Check(t, is.Equal(found, tc.found))
			assert.DeepEqual(t, got, want)
		})
	}
}

func TestParamsCheck(t *testing.T) {
	for _, p := range []Params{
		{Run: `a"b`}, {Run: "a\nb"}, {Port: "a b"}, {Count: MaxCount + 1}, {BenchRuns: -1}, {BenchMiB: MaxBenchMiB + 1},
		{Daemons: []string{"a", "a"}}, {Daemons: []string{"a,b"}}, {Daemons: []string{""}},
	} {
		assert.Check(t, p.Check() != nil, "%+v", p)
	}
}

func TestSplitCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{in: "", want: nil},
		{in: "console=ttyS0  quiet\n", want: []string{"console=ttyS0", "quiet"}},
		{in: `fusematrix.run="seq read" panic=-1`, want: []string{"fusematrix.run=seq read", "panic=-1"}},
		{in: `a="" b`, want: []string{"a=", "b"}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			assert.DeepEqual(t, SplitCmdline(tc.in), tc.want)
		})
	}
}

// The ids must pass the host's decoder, and each names one check.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]{0,127}$`)

func TestIDs(t *testing.T) {
	seen := map[ID]bool{}
	all := Checks()
	for _, id := range Expectations {
		all = append(all, Check{ID: id, Kind: results.Expectation})
	}
	for _, c := range all {
		assert.Check(t, idPattern.MatchString(string(c.ID)), c.ID)
		assert.Check(t, !seen[c.ID], "%s twice", c.ID)
		seen[c.ID] = true
		_, cell := ParseCell(c.ID)
		assert.Check(t, is.Equal(cell, c.Kind == results.Benchmark && c.ID != SeqRead), c.ID)
	}
	assert.Check(t, is.Len(Checks(), len(checks)+len(Cells())))
}

func TestCellRoundTrip(t *testing.T) {
	cells := Cells()
	assert.Check(t, is.Len(cells, len(Ops)*len(Blocks)*(len(Modes)-1)+len(Blocks)), "passthrough-noxattr measures writes only")
	for _, c := range cells {
		got, ok := ParseCell(c.ID())
		assert.Check(t, ok, c.ID())
		assert.Check(t, is.Equal(got, c))
	}
	for _, bad := range []ID{"bench/read/noop", "bench/read/noop/x", "bench/read/noop/0", "bench//noop/4096", "seq-read", "bench/a/b/1/2"} {
		_, ok := ParseCell(bad)
		assert.Check(t, !ok, bad)
	}
	// A cell id holds what the report needs, whatever the mode.
	c, ok := ParseCell("bench/write/future-mode/65536")
	assert.Check(t, ok)
	assert.Check(t, is.Equal(c, Cell{Op: Write, Mode: "future-mode", Block: 64 << 10}))
}

func TestSelect(t *testing.T) {
	ids := func(pattern string) []ID {
		cs, err := Select(pattern)
		assert.NilError(t, err)
		var out []ID
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	probes := []ID{FuseInit, PassthroughIoctl, FuseFeatures, Requests, IOUring}
	assert.DeepEqual(t, ids("^pt/fsync$"), append(probes[:len(probes):len(probes)], PtFsync))
	assert.Check(t, is.Len(ids(""), len(checks)), "cells only when named")
	assert.Check(t, is.Len(ids("^bench/"), len(probes)+len(Cells())))
	assert.DeepEqual(t, ids("^bench/read/noop/4096$"), append(probes[:len(probes):len(probes)], "bench/read/noop/4096"))
	assert.DeepEqual(t, ids(ProbesOnly), probes)
	_, err := Select("(")
	assert.ErrorContains(t, err, `scenario pattern "("`)
}

func TestFactsDistinct(t *testing.T) {
	seen := map[Fact]bool{}
	for _, f := range append([]Fact{FactProtocol, FactPassthrough, FactPassthroughABI, FactInitFlags, FactMaxReadahead,
		FactMaxPagesLimit, FactNegotiated, FactBackingOpen, FactBackingID, FactBackingClose, FactWritebackCache,
		FactIOUring, FactRequestTimeout, FactVirtiofs, FactCUSE, FactFusectl}, MisuseCases...) {
		assert.Check(t, !seen[f], "%s twice", f)
		seen[f] = true
	}
	r := &results.Result{Facts: map[string]string{"negotiated": "yes"}, Metrics: map[string]float64{"noop_mbps": 3}}
	assert.Check(t, is.Equal(FactNegotiated.Of(r), "yes"))
	assert.Check(t, is.Equal(FactBackingOpen.Of(nil), ""))
	v, ok := MBPS(Noop).Of(r)
	assert.Check(t, ok && v == 3, fmt.Sprint(v))
}

// Every metric the contract names is a rate, a ratio of rates or a
// count: results.ReadFile refuses a negative one, and its ranges
// (X_min, X_max) are held to X_min ≤ X ≤ X_max. A metric that may be
// negative needs a name results.NonNegative does not claim.
func TestMetricsNonNegative(t *testing.T) {
	names := []Metric{MetricMedian, MetricMin, MetricMax, MetricRatioNative, MetricRatioNativeMin, MetricRatioNativeMax,
		MetricRatioNoop, MetricRatioLibfuseNoop}
	for _, m := range Modes {
		names = append(names, MBPS(m))
	}
	for _, m := range names {
		assert.Check(t, results.NonNegative(string(m)), "%s", m)
	}
	assert.Check(t, is.DeepEqual(results.BadMetrics(map[string]float64{
		string(MetricMedian): 2, string(MetricMin): 1, string(MetricMax): 3,
		string(MetricRatioNative): 0.5, string(MetricRatioNativeMin): 0.6, string(MetricRatioNativeMax): 0.7,
	}), map[string]string{string(MetricRatioNative): `0.5 is outside its range "ratio_native_min"–"ratio_native_max", 0.6–0.7`}))
}

func TestKernelReport(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{
		{"BUG: KASAN: use-after-free in fuse_passthrough_read_iter+0x1c/0x80", true},
		{"BUG: sleeping function called from invalid context at mm/slab.c:332", true},
		{"kernel BUG at fs/fuse/file.c:1234!", true},
		{"Oops: 0000 [#1] PREEMPT SMP NOPTI", true},
		{"WARNING: CPU: 1 PID: 70 at fs/fuse/iomode.c:101 fuse_file_io_release+0x5c/0x70", true},
		{"WARNING: possible circular locking dependency detected", true},
		{"UBSAN: shift-out-of-bounds in fs/fuse/inode.c:1420:3", true},
		{"general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1]", true},
		{"INFO: task agent:93 blocked for more than 120 seconds.", true},
		{"INFO: task agent:93 exited", false},
		{"fuse: init (API version 7.41)", false},
		{"virtio_console virtio1: Error allocating inbufs", false},
		{"audit: type=1400 apparmor=\"DENIED\" BUG: not at the start", false},
	} {
		assert.Check(t, is.Equal(KernelReport(tc.line), tc.want), tc.line)
	}
}

// The requests probe's facts are distinct, named as a predicate names
// them (issue 25's examples among them), and its phases' facts each end
// in a suffix the contract names.
func TestRequestFacts(t *testing.T) {
	facts := RequestFacts()
	seen := map[Fact]bool{}
	for _, f := range facts {
		assert.Check(t, !seen[f], "%s twice", f)
		seen[f] = true
	}
	assert.Check(t, seen["readdirplus_size"])
	assert.Check(t, seen["write_4k_passthrough.opcodes"])
	assert.Check(t, seen["write_4k_passthrough_noxattr.opcodes"])
	assert.Check(t, !seen["readdir_classic_noxattr.opcodes"], "the noxattr mounts only write")
	assert.Check(t, is.DeepEqual(RequestPhaseFacts("open_close", "classic"), []Fact{"open_close_classic.opcodes", "open_close_classic.open_flags"}))
	assert.Check(t, is.DeepEqual(ProbeFacts[Requests], facts))
}
