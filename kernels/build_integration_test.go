package kernels_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/kernels"
	"github.com/fusematrix/fusematrix/kernels/kconfig"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"gotest.tools/v3/assert"
)

// TestKernelBuild builds a kernel from source with the project's fragment
// on a tinyconfig base, checks every option of the fragment in the
// result, boots it with the probes and checks that FUSE passthrough is
// offered. The tree is $KSRC, else Debian's linux-source-6.12 unpacked once
// into the user's cache. Opt-in (FUSEMATRIX_KERNEL_BUILD=1, as `make
// test-kernel-build` sets): it compiles a kernel, minutes of CPU.
func TestKernelBuild(t *testing.T) {
	if os.Getenv("FUSEMATRIX_KERNEL_BUILD") != "1" {
		t.Skip("compiles a kernel (minutes): set FUSEMATRIX_KERNEL_BUILD=1 or run make test-kernel-build")
	}
	if testing.Short() {
		t.Skip("compiles and boots a kernel; run without -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Minute)
	defer cancel()
	opts := kernels.Options{Logf: t.Logf}

	src := os.Getenv("KSRC")
	if src == "" {
		var err error
		src, err = kernels.DebianSource(ctx, "6.12", opts)
		assert.NilError(t, err)
	}
	t.Logf("source tree %s", src)

	start := time.Now()
	k, err := kernels.Build(ctx, kernels.BuildOptions{Src: src, Base: kernels.BaseTinyconfig, Options: opts})
	assert.NilError(t, err)
	took := time.Since(start)
	t.Logf("built %s in %v: %s", k.Release, took.Round(time.Second), k.Image)
	fmt.Printf("kernel build: %s (tinyconfig + fuse.config) in %v (0s when cached)\n", k.Release, took.Round(time.Second))

	// Build checks this itself; checking again here makes the test fail
	// if that check were lost.
	want, err := kconfig.ParseFragment(kernels.FuseConfig())
	assert.NilError(t, err)
	bad, err := kconfig.Check(k.Config, want)
	assert.NilError(t, err)
	assert.Equal(t, len(bad), 0, "fragment options not in %s: %v", k.Config, bad)
	assert.Equal(t, k.ModulesDir, "")

	root, err := filepath.Abs("..")
	assert.NilError(t, err)
	// Kept when the test fails: the console log says what the guest missed.
	out, err := os.MkdirTemp("", "fusematrix-kernel-build-")
	assert.NilError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("results and console log kept in %s", out)
			return
		}
		os.RemoveAll(out)
	})
	name := "src:" + src + ",base=tinyconfig"
	run, err := harness.Run(ctx, harness.Options{
		Kernels:   []string{name},
		OutDir:    out,
		Accel:     "tcg",
		Params:    contract.Params{Run: contract.ProbesOnly}, // the probes only
		SourceDir: root,
		Logf:      t.Logf,
	})
	assert.NilError(t, err)
	assert.Equal(t, len(run.Kernels), 1)
	kr := run.Kernels[0]
	assert.Equal(t, kr.Status, results.Pass, "%s\n%s", kr.Error, strings.Join(kr.ConsoleTail, "\n"))
	assert.Equal(t, kr.Release, k.Release)
	var probe *results.Result
	for i := range kr.Results {
		if kr.Results[i].ID == "fuse-init" {
			probe = &kr.Results[i]
		}
	}
	assert.Assert(t, probe != nil, "no fuse-init result among %d", len(kr.Results))
	assert.Equal(t, probe.Status, results.Pass, probe.Reason)
	assert.Assert(t, kr.Capabilities != nil)
	assert.Assert(t, kr.Capabilities.Passthrough, "the built kernel does not offer FUSE passthrough: %+v", kr.Capabilities)
	t.Logf("booted: hello after %.1fs, %d results, console log %s", kr.HelloSeconds, len(kr.Results), filepath.Join(out, kr.ConsoleLog))
}
