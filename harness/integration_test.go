package harness

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fusematrix/fusematrix/harness/report"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func sourceDir(t testing.TB) string {
	dir, err := filepath.Abs("..")
	assert.NilError(t, err)
	return dir
}

// runDefault boots the default matrix under TCG, as make matrix does here.
// jobs is 2 for tests (faster) and 1 for benchmarks: two TCG guests on two
// cores halve each other's throughput.
func runDefault(t testing.TB, jobs, benchMiB int) (*results.Run, string) {
	if testing.Short() {
		t.Skip("boots QEMU guests with kernels fetched from the Debian mirror; run without -short")
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	run, err := Run(ctx, Options{
		OutDir:    out,
		Jobs:      jobs,
		Accel:     "tcg",
		Params:    contract.Params{BenchMiB: benchMiB},
		SourceDir: sourceDir(t),
		Reports:   map[string]func(io.Writer, *results.Run) error{"junit.xml": report.JUnit},
		Logf:      t.Logf,
	})
	assert.NilError(t, err)
	assert.Assert(t, is.Len(run.Kernels, 2))
	return run, out
}

// TestDefaultMatrix asserts what distinguishes the two default kernels:
// 6.1 predates passthrough (probe says not offered, scenario skips), 6.12
// offers it and a loopback read really goes through it. It fails if the
// guest, the stream or the probe breaks.
func TestDefaultMatrix(t *testing.T) {
	run, out := runDefault(t, 2, 32)
	old, cur := &run.Kernels[0], &run.Kernels[1]
	for _, k := range []*results.Kernel{old, cur} {
		assert.Equal(t, k.Status, results.Pass, "%s: %s\n%s", k.Name, k.Error, strings.Join(k.ConsoleTail, "\n"))
		assert.Equal(t, k.Accel, "tcg")
		assert.Assert(t, k.Capabilities != nil, k.Name)
		assert.Equal(t, k.Capabilities.FuseMajor, uint32(7))
		assert.Check(t, k.HelloSeconds > 0)
		_, err := os.Stat(filepath.Join(out, k.ConsoleLog))
		assert.Check(t, err)
		for _, id := range []string{"fuse-init", "passthrough-read", "seq-read"} {
			assert.Check(t, k.Result(id) != nil, "%s: no %s result", k.Name, id)
		}
		seq := k.Result("seq-read")
		assert.Equal(t, seq.Status, results.Pass, "%s: %s", k.Name, seq.Reason)
		for _, m := range []string{"native_mbps", "noop_mbps", "classic_mbps", "noop_ratio"} {
			assert.Check(t, seq.Metrics[m] > 0, "%s: %s = %v", k.Name, m, seq.Metrics[m])
		}
	}

	assert.Check(t, strings.HasPrefix(old.Release, "6.1."), old.Release)
	assert.Check(t, !old.Capabilities.Passthrough)
	assert.Check(t, !is.Contains(old.Capabilities.InitFlags, "passthrough")().Success())
	pr := old.Result("passthrough-read")
	assert.Check(t, is.Equal(pr.Status, results.Skip), pr.Reason)
	assert.Check(t, is.Contains(pr.Reason, "PASSTHROUGH"))
	_, has := old.Result("seq-read").Metrics["passthrough_mbps"]
	assert.Check(t, !has, "6.1 has no passthrough, yet a passthrough figure")

	assert.Check(t, strings.HasPrefix(cur.Release, "6.12."), cur.Release)
	assert.Check(t, cur.Capabilities.Passthrough)
	assert.Check(t, is.Contains(cur.Capabilities.InitFlags, "passthrough"))
	assert.Check(t, cur.Capabilities.FuseMinor > old.Capabilities.FuseMinor)
	pr = cur.Result("passthrough-read")
	assert.Check(t, is.Equal(pr.Status, results.Pass), pr.Reason)
	assert.Check(t, cur.Result("seq-read").Metrics["passthrough_mbps"] > 0)

	// Probes: facts that tell the kernels apart, from the kernels themselves.
	fact := func(k *results.Kernel, id, key string) string {
		r := k.Result(id)
		assert.Assert(t, r != nil, "%s: no %s result", k.Name, id)
		return r.Facts[key]
	}
	for _, k := range []*results.Kernel{old, cur} {
		assert.Check(t, k.OK(), "%s: a result failed", k.Name)
		var expectations int
		for _, r := range k.Results {
			if r.Kind == results.Expectation {
				expectations++
				assert.Check(t, r.Status != results.Fail, "%s %s: %s", k.Name, r.ID, r.Reason)
			}
		}
		assert.Check(t, expectations > 0, "%s: no expectations evaluated", k.Name)
		assert.Equal(t, k.Result("fuse-features").Status, results.Pass)
	}
	assert.Check(t, is.Equal(old.Result("passthrough-ioctl").Status, results.Skip))
	assert.Check(t, is.Equal(fact(old, "passthrough-ioctl", "not_negotiated"), "ENOTTY"))
	assert.Check(t, is.Equal(old.Capabilities.PassthroughABI, ""))
	_, has = old.Config["CONFIG_FUSE_PASSTHROUGH"]
	assert.Check(t, !has, "6.1 predates CONFIG_FUSE_PASSTHROUGH")
	assert.Check(t, is.Equal(old.Config["CONFIG_FUSE_FS"], "m"))

	assert.Check(t, is.Equal(cur.Result("passthrough-ioctl").Status, results.Pass))
	assert.Check(t, is.Equal(cur.Capabilities.PassthroughABI, "upstream"))
	assert.Check(t, is.Equal(cur.Config["CONFIG_FUSE_PASSTHROUGH"], "y"))
	for key, want := range map[string]string{
		"backing_open": "ok", "backing_close": "ok", "not_negotiated": "EPERM", "bad_fd": "EBADF",
		"flags_nonzero": "EINVAL", "stacked_too_deep": "ELOOP", "close_unknown": "ENOENT",
		"close_zero": "EINVAL", "writeback_cache": "refused",
	} {
		assert.Check(t, is.Equal(fact(cur, "passthrough-ioctl", key), want), key)
	}
	assert.Check(t, is.Equal(cur.Result("expect/passthrough-works").Status, results.Pass))

	// Correctness scenarios: passthrough ones skip where it is not offered,
	// classic ones pass everywhere.
	for _, id := range []string{"pt/integrity", "pt/size-after-write", "pt/mmap-shared", "pt/fsync"} {
		r := old.Result(id)
		assert.Assert(t, r != nil, "6.1: no %s", id)
		assert.Check(t, is.Equal(r.Status, results.Skip), "6.1 %s: %s", id, r.Reason)
		r = cur.Result(id)
		assert.Assert(t, r != nil, "6.12: no %s", id)
		assert.Check(t, is.Equal(r.Status, results.Pass), "6.12 %s: %s", id, r.Reason)
	}
	for _, id := range []string{"classic/fallback", "classic/basics"} {
		for _, k := range []*results.Kernel{old, cur} {
			r := k.Result(id)
			assert.Assert(t, r != nil, "%s: no %s", k.Name, id)
			assert.Check(t, is.Equal(r.Status, results.Pass), "%s %s: %s", k.Name, id, r.Reason)
		}
	}

	// What was returned is what was written.
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	assert.NilError(t, err)
	var written results.Run
	assert.NilError(t, json.Unmarshal(b, &written))
	assert.DeepEqual(t, written.Kernels, run.Kernels)
	_, err = os.Stat(filepath.Join(out, "junit.xml"))
	assert.Check(t, err)
}

// BenchmarkMatrix runs the default matrix once per iteration with the
// full 256 MiB seq-read and reports what each kernel measured. Run it
// with make bench.
func BenchmarkMatrix(b *testing.B) {
	for b.Loop() {
		start := time.Now()
		run, _ := runDefault(b, 1, 256)
		b.ReportMetric(time.Since(start).Seconds(), "matrix_s")
		for _, k := range run.Kernels {
			series := strings.Join(strings.SplitN(k.Release, ".", 3)[:2], ".")
			b.ReportMetric(k.HelloSeconds, "hello_s/"+series)
			if r := k.Result("seq-read"); r != nil {
				for _, m := range []string{"native_mbps", "noop_mbps", "classic_mbps", "passthrough_mbps", "noop_ratio", "passthrough_ratio"} {
					if v, ok := r.Metrics[m]; ok {
						b.ReportMetric(v, m+"/"+series)
					}
				}
			}
		}
	}
}

// TestReducedBench runs the 1 MiB read cells once on the default kernels
// and checks the table's shape: every cell present with positive figures,
// native at ratio 1, and no passthrough figure on 6.1. Speed is not
// asserted.
func TestReducedBench(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU guests with kernels fetched from the Debian mirror; run without -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run, err := Run(ctx, Options{
		OutDir: t.TempDir(), Jobs: 2, Accel: "tcg",
		Params:    contract.Params{Run: `^bench/read/.*/1048576$`, BenchRuns: 1, BenchMiB: 16},
		SourceDir: sourceDir(t), Logf: t.Logf,
	})
	assert.NilError(t, err)
	assert.Assert(t, is.Len(run.Kernels, 2))
	for i, k := range run.Kernels {
		assert.Equal(t, k.Status, results.Pass, "%s: %s", k.Name, k.Error)
		for _, mode := range []string{"native", "noop", "classic", "passthrough"} {
			id := "bench/read/" + mode + "/1048576"
			r := k.Result(id)
			assert.Assert(t, r != nil, "%s: no %s", k.Name, id)
			if mode == "passthrough" && i == 0 {
				assert.Check(t, is.Equal(r.Status, results.Skip), "%s: %s", k.Name, id)
				assert.Check(t, is.Len(r.Metrics, 0))
				continue
			}
			assert.Check(t, is.Equal(r.Status, results.Pass), "%s: %s: %s", k.Name, id, r.Reason)
			for _, m := range []string{"mbps_median", "mbps_min", "mbps_max", "cpu_s_per_gib", "ctxsw_per_gib", "ratio_native"} {
				assert.Check(t, r.Metrics[m] > 0, "%s: %s: %s = %v", k.Name, id, m, r.Metrics[m])
			}
			assert.Check(t, is.Equal(r.Facts["runs"], "1"))
			if mode == "native" {
				assert.Check(t, is.Equal(r.Metrics["ratio_native"], 1.0))
			}
		}
		for _, r := range k.Results {
			assert.Check(t, r.ID != "seq-read" && !strings.HasPrefix(r.ID, "bench/write/"), "%s ran %s", k.Name, r.ID)
		}
	}
}
