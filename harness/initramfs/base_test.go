package initramfs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/u-root/mkuimage/fileflag"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// projectOptions returns Options that build this project's real agent
// into a fresh cache.
func projectOptions(tb testing.TB) Options {
	tb.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	assert.NilError(tb, err)
	dir := filepath.Dir(strings.TrimSpace(string(gomod)))
	assert.Assert(tb, dir != "." && dir != "/", "not inside a module: %q", gomod)
	return Options{ModuleDir: dir, AgentPkg: DefaultAgentPkg, CacheDir: tb.TempDir()}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func TestBaseIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a u-root image with gobusybox (several seconds of CPU); skipped under -short")
	}
	ctx := context.Background()
	o := projectOptions(t)
	o.AgentArgs = []string{"-v", "two words"}
	agent := path.Base(o.AgentPkg)

	var mu sync.Mutex
	var logs []string
	o.Logf = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, fmt.Sprintf(format, args...))
		t.Logf(format, args...)
	}
	builds := func() (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range logs {
			if strings.HasPrefix(l, "building initramfs") {
				n++
			}
		}
		logs = nil
		return n
	}

	// A builder killed mid-way left this; the next build removes it.
	assert.NilError(t, os.MkdirAll(o.CacheDir, 0o755))
	stale := filepath.Join(o.CacheDir, strings.Repeat("0", 64)+partialSuffix+"1234")
	assert.NilError(t, os.WriteFile(stale, []byte("half an image"), 0o644))

	// Two concurrent callers with an empty cache: one builds, the other
	// waits for the lock and reuses the image.
	start := time.Now()
	var wg sync.WaitGroup
	var paths [2]string
	var errs [2]error
	for i := range paths {
		wg.Go(func() { paths[i], errs[i] = Base(ctx, o) })
	}
	wg.Wait()
	cold := time.Since(start)
	assert.NilError(t, errs[0])
	assert.NilError(t, errs[1])
	assert.Equal(t, paths[0], paths[1])
	assert.Equal(t, builds(), 1, "exactly one of two concurrent callers builds")
	_, err := os.Stat(stale)
	assert.Check(t, os.IsNotExist(err), "stale partial image must be removed")

	start = time.Now()
	again, err := Base(ctx, o)
	warm := time.Since(start)
	assert.NilError(t, err)
	assert.Equal(t, again, paths[0])
	assert.Equal(t, builds(), 0, "second run must be a cache hit")

	entries, err := os.ReadDir(o.CacheDir)
	assert.NilError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.DeepEqual(t, names, []string{filepath.Base(again), "lock"})
	fi, err := os.Stat(again)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(fi.Mode(), os.FileMode(0o644)))

	data, err := os.ReadFile(again)
	assert.NilError(t, err)
	_, got, end := readArchive(t, data, 0)
	assert.Check(t, is.Equal(end, int64(len(data))), "one archive, trailer last")
	const symlink = 0o120000
	assert.Check(t, is.Equal(got["init"], entry{mode: symlink | 0o777, data: "bbin/init"}))
	assert.Check(t, is.Equal(got["bin/uinit"], entry{mode: symlink | 0o777, data: "../bbin/" + agent}))
	for _, cmd := range []string{"init", agent} {
		_, ok := got["bbin/"+cmd]
		assert.Check(t, ok, "bbin/%s missing", cmd)
	}
	bb := got["bbin/bb"]
	assert.Check(t, is.Equal(bb.mode&modeTypeMask, uint64(modeRegular)))
	assert.Check(t, strings.HasPrefix(bb.data, "\x7fELF"), "bbin/bb is not an ELF binary")
	assert.Check(t, is.DeepEqual(fileflag.FileToArgv(got["etc/uinit.flags"].data), o.AgentArgs))
	for _, d := range []string{"dev", "proc", "sys", "tmp"} {
		assert.Check(t, is.Equal(got[d].mode&modeTypeMask, uint64(modeDir)), d)
	}

	// The real base takes an overlay.
	dst := filepath.Join(t.TempDir(), "kernel.cpio")
	assert.NilError(t, Overlay(ctx, again, dst, []File{BytesFile("/lib/modules/load", []byte("fuse\n"), 0o644)}))
	out, err := os.ReadFile(dst)
	assert.NilError(t, err)
	_, overlay, _ := readArchive(t, out, int64(len(data)))
	assert.Check(t, is.Equal(overlay["lib/modules/load"], entry{mode: modeRegular | 0o644, data: "fuse\n"}))

	o.Logf = nil
	keyStart := time.Now()
	_, err = cacheKey(ctx, mustDefaults(t, o))
	assert.NilError(t, err)
	t.Logf("agent %s: cold build %s (two concurrent callers), cache hit %s (key alone %s), image %d bytes (%.1f MiB)",
		o.AgentPkg, cold.Round(100*time.Millisecond), warm.Round(time.Millisecond), time.Since(keyStart).Round(time.Millisecond),
		len(data), float64(len(data))/(1<<20))
}

func mustDefaults(t *testing.T, o Options) Options {
	t.Helper()
	o, err := o.withDefaults()
	assert.NilError(t, err)
	return o
}

// BenchmarkBase measures building the base image from an empty cache
// (cold: gobusybox compiles everything) and reusing it (warm: the content
// hash only). Run with -benchtime 1x for the cold case.
func BenchmarkBase(b *testing.B) {
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			o := projectOptions(b)
			_, err := Base(ctx, o)
			assert.NilError(b, err)
		}
	})
	b.Run("warm", func(b *testing.B) {
		o := projectOptions(b)
		_, err := Base(ctx, o)
		assert.NilError(b, err)
		for b.Loop() {
			_, err := Base(ctx, o)
			assert.NilError(b, err)
		}
	})
}
