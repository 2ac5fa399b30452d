package kernels

import (
	"bufio"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fusematrix/fusematrix/kernels/modinfo"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestDefaultMatrixFromMirror fetches the default kernels from the mirror
// the machine's apt sources name (about 60 MB the first time, into the
// user's cache, where later runs and `make matrix` find them) and checks
// facts about them that the guest agent relies on.
func TestDefaultMatrixFromMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: downloads kernels from the configured Debian mirror")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	opts := Options{Logf: t.Logf}

	t.Run("6.1", func(t *testing.T) {
		k, err := Resolve(ctx, "debian:6.1/cloud", opts)
		assert.NilError(t, err)
		t.Logf("resolved %s: release %s, image %s", k.Source, k.Release, k.Image)
		assert.Check(t, strings.HasPrefix(k.Release, "6.1.0-"), k.Release)
		assert.Check(t, strings.HasSuffix(k.Release, "-cloud-amd64"), k.Release)
		assertFile(t, k.Image)
		assertFile(t, k.Config)

		load, builtin, err := k.Modules(GuestModules...)
		assert.NilError(t, err)
		names := moduleNames(load)
		t.Logf("load %v, built in %v", names, builtin)
		for _, want := range []string{"fuse", "virtio_pci", "virtio_console"} {
			assert.Check(t, is.Contains(names, want))
		}
		assert.Check(t, slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "pvpanic") }), names)
		// virtio_pci needs virtio_pci_modern_dev (and legacy) on 6.1; the
		// closure must hold them and put them first.
		assertDepsFirst(t, load)
		assert.Check(t, slices.Index(names, "virtio_pci_modern_dev") >= 0 &&
			slices.Index(names, "virtio_pci_modern_dev") < slices.Index(names, "virtio_pci"), names)
		assert.Check(t, slices.Index(names, "pvpanic") >= 0 &&
			slices.Index(names, "pvpanic") < slices.Index(names, "pvpanic_mmio"), names)
	})

	t.Run("6.12", func(t *testing.T) {
		k, err := Resolve(ctx, "debian:6.12/cloud", opts)
		assert.NilError(t, err)
		t.Logf("resolved %s: release %s, image %s", k.Source, k.Release, k.Image)
		assert.Check(t, strings.HasPrefix(k.Release, "6.12."), k.Release)
		assertFile(t, k.Image)

		load, builtin, err := k.Modules(GuestModules...)
		assert.NilError(t, err)
		t.Logf("load %v, built in %v", moduleNames(load), builtin)
		for _, want := range []string{"fuse", "virtio_pci", "virtio_console"} {
			assert.Check(t, is.Contains(builtin, want))
		}
		assertDepsFirst(t, load)
		assert.Check(t, configHas(t, k.Config, "CONFIG_FUSE_PASSTHROUGH=y"))
	})
}

func assertFile(t *testing.T, name string) {
	t.Helper()
	st, err := os.Stat(name)
	if assert.Check(t, err) {
		assert.Check(t, st.Mode().IsRegular() && st.Size() > 0, "%s: %v", name, st.Mode())
	}
}

// assertDepsFirst checks load order against each module's own depends=.
func assertDepsFirst(t *testing.T, load []Module) {
	t.Helper()
	pos := map[string]int{}
	for i, m := range load {
		_, dup := pos[m.Name]
		assert.Check(t, !dup, "%s listed twice", m.Name)
		pos[m.Name] = i
	}
	for i, m := range load {
		deps := dependsOf(t, m)
		for _, d := range deps {
			j, ok := pos[d]
			assert.Check(t, ok && j < i, "%s depends on %s, which is not loaded before it", m.Name, d)
		}
	}
}

func configHas(t *testing.T, config, line string) bool {
	t.Helper()
	f, err := os.Open(config)
	assert.NilError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sc.Text() == line {
			return true
		}
	}
	assert.NilError(t, sc.Err())
	return false
}

func dependsOf(t *testing.T, m Module) []string {
	t.Helper()
	info, err := modinfo.Read(m.Path)
	assert.NilError(t, err)
	return info.Depends()
}

// BenchmarkResolveWarm resolves the default matrix from a warm cache: no
// network, no unpacking. Run it after TestDefaultMatrixFromMirror.
func BenchmarkResolveWarm(b *testing.B) {
	ctx := context.Background()
	for _, name := range DefaultMatrix {
		if _, err := Resolve(ctx, name, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		for _, name := range DefaultMatrix {
			if _, err := Resolve(ctx, name, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkResolveCold resolves the default matrix into an empty cache
// each time, fetching about 70 MB from the configured mirror: run it with
// -benchtime=1x.
func BenchmarkResolveCold(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		opts := Options{CacheDir: b.TempDir()}
		for _, name := range DefaultMatrix {
			if _, err := Resolve(ctx, name, opts); err != nil {
				b.Fatal(err)
			}
		}
	}
}
