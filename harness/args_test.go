package harness

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/kernels"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

func TestAgentArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{name: "defaults", o: Options{}, want: "fusematrix.port=fusematrix.0"},
		{name: "all", o: Options{Params: contract.Params{Run: "pt/|classic/", BenchMiB: 64, BenchRuns: 2, Count: 3, Profile: true}, Append: "fuse.x=1"},
			want: "fusematrix.port=fusematrix.0 fusematrix.run=pt/|classic/ fusematrix.bench_mib=64 fusematrix.bench_runs=2 fusematrix.count=3 fusematrix.profile=1 fuse.x=1"},
		{name: "count 1 is the default", o: Options{Params: contract.Params{Count: 1}}, want: "fusematrix.port=fusematrix.0"},
		{name: "pattern with a space is quoted", o: Options{Params: contract.Params{Run: "a b"}}, want: `fusematrix.port=fusematrix.0 fusematrix.run="a b"`},
		{name: "user's args last, to override", o: Options{Append: "fusematrix.port=x"}, want: "fusematrix.port=fusematrix.0 fusematrix.port=x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, agentArgs(tc.o), tc.want)
		})
	}
}

func TestRunRejectsUnquotablePattern(t *testing.T) {
	_, err := Run(context.Background(), Options{Params: contract.Params{Run: `a"b`}, OutDir: t.TempDir()})
	assert.ErrorContains(t, err, "cannot carry a double quote")
}

// A kernel resolved without a signature check says so in its result, in
// results.json.
func TestRecordKernelUnverified(t *testing.T) {
	k := &kernels.Kernel{Source: "linux-image-x 1 (bookworm)", Release: "6.1.0-1-cloud-amd64", Unverified: "InRelease of bookworm not signature-checked: no archive keyring"}
	kr := results.Kernel{Release: "6.1.0-1-cloud-amd64"}
	recordKernel(&kr, "debian:6.1", k)
	assert.Equal(t, kr.Unverified, k.Unverified)
	b, err := json.Marshal(kr)
	assert.NilError(t, err)
	assert.Check(t, strings.Contains(string(b), `"unverified":"InRelease of bookworm not signature-checked: no archive keyring"`), string(b))

	recordKernel(&kr, "debian:6.1", &kernels.Kernel{Source: k.Source})
	b, err = json.Marshal(kr)
	assert.NilError(t, err)
	assert.Check(t, !strings.Contains(string(b), "unverified"), string(b))
}

// A kernel booted without packages the archive lacks says so in its
// result, as "missing"; one that lacks nothing has no such field.
func TestRecordKernelMissing(t *testing.T) {
	missing := []string{"linux-base-7.1.13+deb13-cloud-amd64 (= 7.1.13-1~bpo13+1)", "linux-modules-7.1.13+deb13-cloud-amd64 (= 7.1.13-1~bpo13+1)"}
	k := &kernels.Kernel{Source: "linux-image-7.1.13+deb13-cloud-amd64 7.1.13-1~bpo13+1 (trixie-backports)", Release: "7.1.13+deb13-cloud-amd64", Missing: missing}
	var kr results.Kernel
	recordKernel(&kr, "debian:7.1/cloud", k)
	assert.DeepEqual(t, kr.Missing, missing)
	b, err := json.Marshal(kr)
	assert.NilError(t, err)
	assert.Check(t, strings.Contains(string(b), `"missing":["linux-base-7.1.13+deb13-cloud-amd64 (= 7.1.13-1~bpo13+1)","linux-modules-7.1.13+deb13-cloud-amd64 (= 7.1.13-1~bpo13+1)"]`), string(b))

	recordKernel(&kr, "debian:7.1/cloud", &kernels.Kernel{Source: k.Source})
	b, err = json.Marshal(kr)
	assert.NilError(t, err)
	assert.Check(t, !strings.Contains(string(b), "missing"), string(b))
}

// A bench selection must name a cell; the C peer goes into the guests
// only for a selection with a cell that measures it.
func TestBenchSelection(t *testing.T) {
	for _, tc := range []struct {
		run      string
		noCell   bool
		needPeer bool
	}{
		{run: "^bench/", needPeer: true},
		{run: "^bench/read/passthrough/"},
		{run: "^bench/read/" + string(contract.LibfuseNoop) + "/", needPeer: true},
		{run: "^pt/", noCell: true},
		{run: "(", noCell: false}, // a bad pattern is Run's to report
	} {
		t.Run(tc.run, func(t *testing.T) {
			o := Options{Params: contract.Params{Run: tc.run}}
			err := o.CheckBench()
			if tc.noCell {
				assert.Check(t, is.ErrorContains(err, "selects no benchmark cell"))
			} else {
				assert.Check(t, err)
			}
			assert.Check(t, is.Equal(o.NeedsPeer(), tc.needPeer))
		})
	}
}
