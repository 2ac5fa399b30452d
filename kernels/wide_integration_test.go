package kernels_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/kernels"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestWideMatrixFromMirror resolves every kernel of the wide matrix from
// the configured mirror (indexes only): each must resolve, since a part
// the guest does not need (linux-modules, linux-base) no longer drops a
// kernel. Then it fetches the newest complete 7.x kernel, which uses the
// newer package layout (about 40 MB the first time, into the user's
// cache), and boots it under TCG: the agent must say hello and FUSE must
// initialise.
//
// With FUSEMATRIX_WIDE_MISSING=1 it also boots a kernel whose modules and
// base the mirror lacks (6.19, 7.0 and 7.1 today), from its linux-binary
// alone, whose result must name what was missing: one more download and
// boot, which make test does without.
func TestWideMatrixFromMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: reads the configured Debian mirror and boots a guest")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	opts := kernels.Options{Logf: t.Logf}
	wide, err := kernels.DefaultCatalog.Matrix("wide")
	assert.NilError(t, err)
	newest, partial := "", ""
	missing := map[string][]string{}
	for _, name := range wide {
		res, err := kernels.Lookup(ctx, name, opts)
		if !assert.Check(t, err) {
			continue
		}
		t.Logf("%s: %s, %d package(s), missing %q", name, res.Source(), len(res.Parts), res.Missing)
		missing[name] = res.Missing
		if strings.HasPrefix(name, "debian:7.") && len(res.Parts) > 1 && len(res.Missing) == 0 {
			newest = name
		}
		if len(res.Missing) > 0 {
			partial = name
		}
	}
	assert.Assert(t, newest != "", "no complete 7.x kernel of the newer layout in the wide matrix resolves")
	boot := []string{newest}
	switch {
	case partial == "":
		t.Logf("every wide kernel is complete on this mirror: nothing missing to boot without")
	case os.Getenv("FUSEMATRIX_WIDE_MISSING") == "1":
		boot = append(boot, partial)
	default:
		t.Logf("%s lacks %q on this mirror; FUSEMATRIX_WIDE_MISSING=1 boots it too", partial, missing[partial])
	}

	k, err := kernels.Fetch(ctx, newest, opts)
	assert.NilError(t, err)
	assert.Check(t, strings.Contains(k.Image, "/usr/lib/modules/"), "not the newer layout: %s", k.Image)

	run, err := harness.Run(ctx, harness.Options{
		Kernels: boot,
		OutDir:  t.TempDir(),
		Accel:   "tcg",
		Params:  contract.Params{Run: contract.ProbesOnly},
		Kernel:  opts,
		Logf:    t.Logf,
		SourceDir: func() string {
			wd, err := filepath.Abs("..")
			assert.NilError(t, err)
			return wd
		}(),
	})
	assert.NilError(t, err)
	assert.Equal(t, len(run.Kernels), len(boot))
	for _, kr := range run.Kernels {
		assert.Check(t, is.DeepEqual(kr.Missing, missing[kr.Name]), kr.Name)
		if !assert.Check(t, kr.Status == results.Pass, "%s: %s\n%s", kr.Name, kr.Error, strings.Join(kr.ConsoleTail, "\n")) {
			continue
		}
		assert.Check(t, kr.HelloSeconds > 0, kr.Name)
		assert.Check(t, strings.HasPrefix(kr.Release, strings.TrimPrefix(strings.TrimSuffix(kr.Name, "/cloud"), "debian:")), kr.Release)
		init := kr.Result("fuse-init")
		if assert.Check(t, init != nil, "%s: no fuse-init result", kr.Name) {
			assert.Check(t, init.Status == results.Pass, "%s: %s", kr.Name, init.Reason)
			t.Logf("%s: release %s, hello after %.1fs, FUSE %d.%d, missing %q", kr.Name, kr.Release, kr.HelloSeconds, kr.Capabilities.FuseMajor, kr.Capabilities.FuseMinor, kr.Missing)
		}
	}
}
