package kernels_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/kernels"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"gotest.tools/v3/assert"
)

// TestWideMatrixFromMirror resolves every kernel of the wide matrix from
// the configured mirror (indexes only), then fetches the newest 7.x kernel,
// which uses the newer package layout (about 40 MB the first time, into
// the user's cache), and boots it under TCG: the agent must say hello and
// FUSE must initialise.
func TestWideMatrixFromMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: reads the configured Debian mirror and boots a guest")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	opts := kernels.Options{Logf: t.Logf}
	wide, err := kernels.DefaultCatalog.Matrix("wide")
	assert.NilError(t, err)
	newest := ""
	resolved := 0
	for _, name := range wide {
		res, err := kernels.Lookup(ctx, name, opts)
		if err != nil {
			// A mirror may list an image whose parts it no longer carries;
			// say so, but the matrix as a whole must still resolve.
			t.Logf("%s: %v", name, err)
			continue
		}
		resolved++
		t.Logf("%s: %s, %d package(s)", name, res.Source(), len(res.Parts))
		if strings.HasPrefix(name, "debian:7.") && len(res.Parts) > 1 {
			newest = name
		}
	}
	assert.Assert(t, resolved >= len(wide)/2, "only %d of %d wide kernels resolve", resolved, len(wide))
	assert.Assert(t, newest != "", "no 7.x kernel of the newer layout in the wide matrix resolves")

	k, err := kernels.Fetch(ctx, newest, opts)
	assert.NilError(t, err)
	assert.Check(t, strings.Contains(k.Image, "/usr/lib/modules/"), "not the newer layout: %s", k.Image)

	run, err := harness.Run(ctx, harness.Options{
		Kernels: []string{newest},
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
	assert.Equal(t, len(run.Kernels), 1)
	kr := run.Kernels[0]
	assert.Equal(t, kr.Status, results.Pass, "%s: %s\n%s", kr.Name, kr.Error, strings.Join(kr.ConsoleTail, "\n"))
	assert.Check(t, kr.HelloSeconds > 0)
	assert.Check(t, strings.HasPrefix(kr.Release, strings.TrimPrefix(strings.TrimSuffix(newest, "/cloud"), "debian:")), kr.Release)
	init := kr.Result("fuse-init")
	assert.Assert(t, init != nil, "no fuse-init result")
	assert.Equal(t, init.Status, results.Pass, init.Reason)
	t.Logf("%s: release %s, hello after %.1fs, FUSE %d.%d", newest, kr.Release, kr.HelloSeconds, kr.Capabilities.FuseMajor, kr.Capabilities.FuseMinor)
}
