package kernels

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fusematrix/fusematrix/kernels/deb"
	"github.com/fusematrix/fusematrix/kernels/internal/fakearchive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// olderLayoutDeb is a kernel image package laid out like Debian 12's: the
// image and config in boot/, modules below lib/modules/<release>/, and
// files a guest does not need.
func olderLayoutDeb(release string, modules []testModule, builtin ...string) []byte {
	dir := "./lib/modules/" + release + "/"
	entries := []fakearchive.Entry{
		{Name: "./", Dir: true},
		{Name: "./boot/", Dir: true},
		{Name: "./boot/vmlinuz-" + release, Body: []byte("image " + release)},
		{Name: "./boot/config-" + release, Body: []byte("CONFIG_FUSE_FS=y\n")},
		{Name: "./boot/System.map-" + release, Body: []byte("map")},
		{Name: dir + "modules.builtin", Body: []byte(strings.Join(builtin, "\n") + "\n")},
		{Name: dir + "modules.order", Body: []byte("")},
		{Name: dir + "modules.builtin.modinfo", Body: []byte("fuse.license=GPL\x00")},
		{Name: "./usr/share/doc/linux-image-" + release + "/changelog.Debian.gz", Body: []byte("doc")},
		{Name: "./usr/share/bug/linux-image-" + release, Link: "../doc"},
	}
	for _, m := range modules {
		entries = append(entries, fakearchive.Entry{Name: dir + m.path, Body: moduleBytes(m)})
	}
	return fakearchive.Deb(".xz", entries...)
}

// newerLayout returns the packages of a kernel laid out like Debian's 7.x
// backports: a meta linux-image package depending on linux-base (config,
// module lists), linux-binary (the image) and linux-modules.
func newerLayout(ver, version string) []fakearchive.Package {
	release := ver + "-cloud-amd64"
	dir := "./usr/lib/modules/" + release + "/"
	doc := func(name string) fakearchive.Entry {
		return fakearchive.Entry{Name: "./usr/share/doc/" + name + "/copyright", Body: []byte("GPL")}
	}
	name := func(kind string) string { return "linux-" + kind + "-" + release }
	pinned := func(kind string) string { return name(kind) + " (= " + version + ")" }
	return []fakearchive.Package{
		{
			Name: name("image"), Version: version,
			Depends: "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, " + pinned("base") + ", " + pinned("binary") + ", " + pinned("modules"),
			Deb:     fakearchive.Deb(".xz", doc(name("image"))),
		},
		{
			Name: name("base"), Version: version,
			Deb: fakearchive.Deb(".xz", doc(name("base")),
				fakearchive.Entry{Name: dir + "config", Body: []byte("CONFIG_FUSE_PASSTHROUGH=y\n")},
				fakearchive.Entry{Name: dir + "modules.builtin", Body: []byte("kernel/fs/fuse/fuse.ko\nkernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/char/virtio_console.ko\n")},
				fakearchive.Entry{Name: dir + "System.map", Body: []byte("map")},
			),
		},
		{
			Name: name("binary"), Version: version,
			Deb: fakearchive.Deb(".zst", doc(name("binary")),
				fakearchive.Entry{Name: dir + "vmlinuz", Body: []byte("image " + release)},
				fakearchive.Entry{Name: "./usr/share/bug/" + name("binary"), Link: name("base")},
			),
		},
		{
			Name: name("modules"), Version: version,
			Deb: fakearchive.Deb(".gz", doc(name("modules")),
				fakearchive.Entry{Name: dir + "kernel/drivers/misc/pvpanic/pvpanic.ko.zst", Body: moduleBytes(testModule{"pvpanic.ko.zst", ""})},
				fakearchive.Entry{Name: dir + "kernel/drivers/misc/pvpanic/pvpanic-mmio.ko.zst", Body: moduleBytes(testModule{"pvpanic-mmio.ko.zst", "pvpanic"})},
			),
		},
	}
}

var builtin612 = []string{"kernel/fs/fuse/fuse.ko", "kernel/drivers/virtio/virtio_pci.ko", "kernel/drivers/char/virtio_console.ko"}

// testArchive serves what Debian 12 serves, in miniature.
func testArchive(t *testing.T) *fakearchive.Server {
	pvpanic612 := []testModule{
		{"kernel/drivers/misc/pvpanic/pvpanic.ko.xz", ""},
		{"kernel/drivers/misc/pvpanic/pvpanic-mmio.ko.xz", "pvpanic"},
		{"kernel/drivers/misc/pvpanic/pvpanic-pci.ko.xz", "pvpanic"},
	}
	return fakearchive.Serve(t,
		fakearchive.Suite{Name: "bookworm", Packages: []fakearchive.Package{
			{Name: "linux-image-6.1.0-50-cloud-amd64", Version: "6.1.176-1", Deb: olderLayoutDeb("6.1.0-50-cloud-amd64", guestModuleTree)},
			{Name: "linux-image-6.1.0-50-cloud-amd64-unsigned", Version: "6.1.176-1", Deb: []byte("never fetched")},
			{Name: "vim", Version: "2:9.0-1", Deb: []byte("never fetched")},
		}},
		fakearchive.Suite{Name: "bookworm-security", Packages: []fakearchive.Package{
			{Name: "linux-image-6.1.0-56-cloud-amd64-dbg", Version: "6.1.192-2", Deb: []byte("never fetched")},
			{Name: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2", Deb: olderLayoutDeb("6.1.0-56-cloud-amd64", guestModuleTree)},
			{Name: "linux-image-6.12.117+deb12-cloud-amd64-unsigned", Version: "6.12.117-1~deb12u1", Deb: []byte("never fetched")},
			{Name: "linux-image-6.12.117+deb12-cloud-amd64", Version: "6.12.117-1~deb12u1", Deb: olderLayoutDeb("6.12.117+deb12-cloud-amd64", pvpanic612, builtin612...)},
			{Name: "linux-image-6.12-cloud-amd64", Version: "6.12.117-1~deb12u1", Depends: "linux-image-6.12.117+deb12-cloud-amd64 (= 6.12.117-1~deb12u1)", Deb: []byte("never fetched")},
		}},
		fakearchive.Suite{Name: "trixie-backports", Packages: newerLayout("7.3.4+deb13", "7.3.4-1~bpo13+1")},
	)
}

func testOptions(t *testing.T, srv *fakearchive.Server) (Options, *[]string) {
	var (
		mu   sync.Mutex
		logs []string
	)
	return Options{
		CacheDir:   t.TempDir(),
		Mirror:     srv.Mirror(),
		AptSources: t.TempDir(), // nothing configured: only Mirror counts
		Keyring:    fakearchive.Keyring(t, fakearchive.Key()),
		Logf: func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			logs = append(logs, fmt.Sprintf(format, args...))
		},
	}, &logs
}

func withSuites(t *testing.T, suites ...string) {
	old := Suites
	Suites = suites
	t.Cleanup(func() { Suites = old })
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	assert.NilError(t, err)
	return string(data)
}

func debRequests(srv *fakearchive.Server) []string {
	var debs []string
	for _, r := range srv.Requests() {
		if strings.HasSuffix(r, ".deb") {
			debs = append(debs, filepath.Base(r))
		}
	}
	return debs
}

func TestResolveOlderLayout(t *testing.T) {
	ctx := context.Background()
	srv := testArchive(t)
	opts, _ := testOptions(t, srv)
	entries := filepath.Join(opts.CacheDir, "kernels")

	t.Run("6.1", func(t *testing.T) {
		k, err := Resolve(ctx, "debian:6.1/cloud", opts)
		assert.NilError(t, err)
		entry := filepath.Join(entries, "linux-image-6.1.0-56-cloud-amd64_6.1.192-2")
		assert.DeepEqual(t, k, &Kernel{
			Name:       "debian:6.1/cloud",
			Source:     "linux-image-6.1.0-56-cloud-amd64 6.1.192-2 (bookworm-security)",
			Release:    "6.1.0-56-cloud-amd64",
			Image:      filepath.Join(entry, "boot/vmlinuz-6.1.0-56-cloud-amd64"),
			Config:     filepath.Join(entry, "boot/config-6.1.0-56-cloud-amd64"),
			ModulesDir: filepath.Join(entry, "lib/modules/6.1.0-56-cloud-amd64"),
		})
		assert.Equal(t, readFile(t, k.Image), "image 6.1.0-56-cloud-amd64")
		assert.Equal(t, readFile(t, k.Config), "CONFIG_FUSE_FS=y\n")
		for _, f := range []string{"modules.builtin", "modules.order", "modules.builtin.modinfo", "kernel/drivers/virtio/virtio_ring.ko.xz"} {
			_, err := os.Stat(filepath.Join(k.ModulesDir, f))
			assert.Check(t, err, f)
		}
		// Only what a guest needs is kept, and no .deb.
		for _, f := range []string{"boot/System.map-6.1.0-56-cloud-amd64", "usr"} {
			_, err := os.Lstat(filepath.Join(entry, f))
			assert.Check(t, errors.Is(err, os.ErrNotExist), f)
		}
		assert.DeepEqual(t, debRequests(srv), []string{"linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb"})

		load, builtin, err := k.Modules(GuestModules...)
		assert.NilError(t, err)
		assert.DeepEqual(t, moduleNames(load), []string{"fuse", "virtio_pci_modern_dev", "virtio_ring", "virtio", "virtio_pci", "virtio_console", "pvpanic", "pvpanic_mmio", "pvpanic_pci"})
		assert.Check(t, is.Len(builtin, 0))
	})

	t.Run("6.12", func(t *testing.T) {
		k, err := Resolve(ctx, "debian:6.12", opts)
		assert.NilError(t, err)
		assert.Equal(t, k.Source, "linux-image-6.12.117+deb12-cloud-amd64 6.12.117-1~deb12u1 (bookworm-security)")
		assert.Equal(t, k.Release, "6.12.117+deb12-cloud-amd64")
		assert.Equal(t, readFile(t, k.Image), "image 6.12.117+deb12-cloud-amd64")
		load, builtin, err := k.Modules(GuestModules...)
		assert.NilError(t, err)
		assert.DeepEqual(t, moduleNames(load), []string{"pvpanic", "pvpanic_mmio", "pvpanic_pci"})
		assert.DeepEqual(t, builtin, []string{"fuse", "virtio_pci", "virtio_console"})
	})

	t.Run("exact package", func(t *testing.T) {
		k, err := Resolve(ctx, "debian:linux-image-6.1.0-50-cloud-amd64", opts)
		assert.NilError(t, err)
		assert.Equal(t, k.Name, "debian:linux-image-6.1.0-50-cloud-amd64")
		assert.Equal(t, k.Source, "linux-image-6.1.0-50-cloud-amd64 6.1.176-1 (bookworm)")
		assert.Equal(t, k.Release, "6.1.0-50-cloud-amd64")
	})

	t.Run("meta package", func(t *testing.T) {
		before := len(debRequests(srv))
		k, err := Resolve(ctx, "debian:linux-image-6.12-cloud-amd64", opts)
		assert.NilError(t, err)
		assert.Equal(t, k.Source, "linux-image-6.12.117+deb12-cloud-amd64 6.12.117-1~deb12u1 (bookworm-security)")
		assert.Equal(t, len(debRequests(srv)), before, "the 6.12 image is cached already")
	})
}

func TestResolveNewerLayout(t *testing.T) {
	withSuites(t, "bookworm-security", "bookworm", "trixie-backports")
	srv := testArchive(t)
	opts, _ := testOptions(t, srv)
	k, err := Resolve(context.Background(), "debian:7.3/cloud", opts)
	assert.NilError(t, err)
	entry := filepath.Join(opts.CacheDir, "kernels", "linux-image-7.3.4+deb13-cloud-amd64_7.3.4-1~bpo13+1")
	modules := filepath.Join(entry, "usr/lib/modules/7.3.4+deb13-cloud-amd64")
	assert.DeepEqual(t, k, &Kernel{
		Name:       "debian:7.3/cloud",
		Source:     "linux-image-7.3.4+deb13-cloud-amd64 7.3.4-1~bpo13+1 (trixie-backports)",
		Release:    "7.3.4+deb13-cloud-amd64",
		Image:      filepath.Join(modules, "vmlinuz"),
		Config:     filepath.Join(modules, "config"),
		ModulesDir: modules,
	})
	assert.Equal(t, readFile(t, k.Image), "image 7.3.4+deb13-cloud-amd64")
	assert.Equal(t, readFile(t, k.Config), "CONFIG_FUSE_PASSTHROUGH=y\n")
	assert.DeepEqual(t, debRequests(srv), []string{
		"linux-image-7.3.4+deb13-cloud-amd64_7.3.4-1~bpo13+1_amd64.deb",
		"linux-base-7.3.4+deb13-cloud-amd64_7.3.4-1~bpo13+1_amd64.deb",
		"linux-binary-7.3.4+deb13-cloud-amd64_7.3.4-1~bpo13+1_amd64.deb",
		"linux-modules-7.3.4+deb13-cloud-amd64_7.3.4-1~bpo13+1_amd64.deb",
	})
	load, builtin, err := k.Modules(GuestModules...)
	assert.NilError(t, err)
	assert.DeepEqual(t, moduleNames(load), []string{"pvpanic", "pvpanic_mmio"})
	assert.DeepEqual(t, builtin, []string{"fuse", "virtio_pci", "virtio_console"})
}

// without returns the packages of a newer-layout kernel but those of the
// given kinds ("base", "binary", "modules"): what an archive lists before
// it carries every part, as the mirror did for 6.19, 7.0 and 7.1.
func without(packages []fakearchive.Package, kinds ...string) []fakearchive.Package {
	var out []fakearchive.Package
	for _, p := range packages {
		if !slices.ContainsFunc(kinds, func(kind string) bool { return strings.HasPrefix(p.Name, "linux-"+kind+"-") }) {
			out = append(out, p)
		}
	}
	return out
}

// A kernel whose linux-modules and linux-base the archive lacks boots
// from its linux-binary alone and says what it lacks; once the archive
// carries them, the cached entry unpacked without them is not reused.
func TestResolveNewerLayoutWithoutModulesAndBase(t *testing.T) {
	withSuites(t, "trixie-backports")
	srv := fakearchive.Serve(t, fakearchive.Suite{Name: "trixie-backports",
		Packages: without(newerLayout("7.0.1+deb13", "7.0.1-1~bpo13+1"), "base", "modules")})
	opts, logs := testOptions(t, srv)
	ctx := context.Background()
	missing := []string{
		"linux-base-7.0.1+deb13-cloud-amd64 (= 7.0.1-1~bpo13+1)",
		"linux-modules-7.0.1+deb13-cloud-amd64 (= 7.0.1-1~bpo13+1)",
	}

	res, err := Lookup(ctx, "debian:7.0/cloud", opts)
	assert.NilError(t, err)
	assert.Equal(t, res.Source(), "linux-image-7.0.1+deb13-cloud-amd64 7.0.1-1~bpo13+1 (trixie-backports)")
	assert.DeepEqual(t, res.Missing, missing)
	var parts []string
	for _, p := range res.Parts {
		parts = append(parts, p.Name+" "+p.Version)
	}
	assert.DeepEqual(t, parts, []string{
		"linux-image-7.0.1+deb13-cloud-amd64 7.0.1-1~bpo13+1",
		"linux-binary-7.0.1+deb13-cloud-amd64 7.0.1-1~bpo13+1",
	})
	_, ok := res.Cached()
	assert.Check(t, !ok)

	k, err := Resolve(ctx, "debian:7.0/cloud", opts)
	assert.NilError(t, err)
	entry := filepath.Join(opts.CacheDir, "kernels", "linux-image-7.0.1+deb13-cloud-amd64_7.0.1-1~bpo13+1")
	// Bootable: the image, and nothing else to go by.
	assert.DeepEqual(t, k, &Kernel{
		Name:    "debian:7.0/cloud",
		Source:  "linux-image-7.0.1+deb13-cloud-amd64 7.0.1-1~bpo13+1 (trixie-backports)",
		Release: "7.0.1+deb13-cloud-amd64",
		Image:   filepath.Join(entry, "usr/lib/modules/7.0.1+deb13-cloud-amd64/vmlinuz"),
		Missing: missing,
	})
	assert.Equal(t, readFile(t, k.Image), "image 7.0.1+deb13-cloud-amd64")
	assert.DeepEqual(t, debRequests(srv), []string{
		"linux-image-7.0.1+deb13-cloud-amd64_7.0.1-1~bpo13+1_amd64.deb",
		"linux-binary-7.0.1+deb13-cloud-amd64_7.0.1-1~bpo13+1_amd64.deb",
	})
	assert.Check(t, slices.Contains(*logs, "warning: kernel debian:7.0/cloud: "+strings.Join(missing, " and ")+
		" not in the archive; booting linux-image-7.0.1+deb13-cloud-amd64 without"), *logs)

	// No modules to load and no config: not an error.
	load, builtin, err := k.Modules(GuestModules...)
	assert.NilError(t, err)
	assert.Check(t, is.Len(load, 0))
	assert.Check(t, is.Len(builtin, 0))
	config, err := k.ConfigOptions()
	assert.NilError(t, err)
	assert.Check(t, is.Len(config, 0))

	// Cached: the same kernel, still saying what it lacks.
	again, err := Resolve(ctx, "debian:7.0/cloud", opts)
	assert.NilError(t, err)
	assert.DeepEqual(t, again, k)
	assert.Equal(t, len(debRequests(srv)), 2)
	size, ok := res.Cached()
	assert.Check(t, ok && size > 0)

	// Once the archive carries the rest, the kernel is unpacked again with
	// its modules and config: the entry made without them is not the
	// complete kernel.
	full := fakearchive.Serve(t, fakearchive.Suite{Name: "trixie-backports", Packages: newerLayout("7.0.1+deb13", "7.0.1-1~bpo13+1")})
	opts.Mirror = full.Mirror()
	complete, err := Lookup(ctx, "debian:7.0/cloud", opts)
	assert.NilError(t, err)
	assert.Check(t, is.Len(complete.Missing, 0))
	_, ok = complete.Cached()
	assert.Check(t, !ok, "an entry without modules passes for the complete kernel")
	k, err = Resolve(ctx, "debian:7.0/cloud", opts)
	assert.NilError(t, err)
	assert.Check(t, is.Len(k.Missing, 0))
	assert.Equal(t, k.ModulesDir, filepath.Join(entry, "usr/lib/modules/7.0.1+deb13-cloud-amd64"))
	assert.Equal(t, k.Config, filepath.Join(k.ModulesDir, "config"))
	assert.Equal(t, len(debRequests(full)), 4)
	_, ok = complete.Cached()
	assert.Check(t, ok)
	assert.Check(t, slices.Contains(*logs, "replacing cache entry "+entry+": unpacked from "+
		"linux-image-7.0.1+deb13-cloud-amd64 7.0.1-1~bpo13+1, linux-binary-7.0.1+deb13-cloud-amd64 7.0.1-1~bpo13+1; the archive now has "+
		"linux-image-7.0.1+deb13-cloud-amd64 7.0.1-1~bpo13+1, linux-base-7.0.1+deb13-cloud-amd64 7.0.1-1~bpo13+1, "+
		"linux-binary-7.0.1+deb13-cloud-amd64 7.0.1-1~bpo13+1, linux-modules-7.0.1+deb13-cloud-amd64 7.0.1-1~bpo13+1"), *logs)
	assert.Check(t, !slices.ContainsFunc(*logs, func(l string) bool { return strings.HasPrefix(l, "warning: replacing damaged") }), *logs)

	// And the other way: when the archive drops them again, the entry
	// with modules is not passed off as the kernel the results say lacks
	// them.
	opts.Mirror = srv.Mirror()
	_, ok = res.Cached()
	assert.Check(t, !ok, "an entry with modules passes for the kernel without them")
	k, err = Resolve(ctx, "debian:7.0/cloud", opts)
	assert.NilError(t, err)
	assert.DeepEqual(t, k.Missing, missing)
	assert.Equal(t, k.ModulesDir, "")
	assert.Equal(t, len(debRequests(srv)), 4)
}

// A kernel whose linux-binary, which holds the image, the archive lacks
// is not booted, whatever else it carries.
func TestResolveNewerLayoutWithoutBinary(t *testing.T) {
	withSuites(t, "trixie-backports")
	for _, tc := range []struct {
		name    string
		without []string
	}{
		{"binary only", []string{"binary"}},
		{"no part at all", []string{"base", "binary", "modules"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakearchive.Serve(t, fakearchive.Suite{Name: "trixie-backports",
				Packages: without(newerLayout("7.0.1+deb13", "7.0.1-1~bpo13+1"), tc.without...)})
			opts, _ := testOptions(t, srv)
			_, err := Resolve(context.Background(), "debian:7.0/cloud", opts)
			assert.Error(t, err, `kernel "debian:7.0/cloud": linux-binary-7.0.1+deb13-cloud-amd64 (= 7.0.1-1~bpo13+1), `+
				"needed by linux-image-7.0.1+deb13-cloud-amd64 7.0.1-1~bpo13+1, not found in trixie-backports")
			assert.Check(t, is.Len(debRequests(srv), 0))
		})
	}
}

func TestResolveWarmCacheNeedsNoNetwork(t *testing.T) {
	ctx := context.Background()
	srv := testArchive(t)
	opts, _ := testOptions(t, srv)
	var cold []*Kernel
	for _, name := range DefaultMatrix {
		k, err := Resolve(ctx, name, opts)
		assert.NilError(t, err)
		cold = append(cold, k)
	}
	// bookworm-backports is not published: its 404 is cached too.
	assert.Check(t, slices.Contains(srv.Requests(), "/debian/dists/bookworm-backports/InRelease"))
	requests := len(srv.Requests())

	warm := func(opts Options) {
		t.Helper()
		for i, name := range DefaultMatrix {
			k, err := Resolve(ctx, name, opts)
			assert.NilError(t, err)
			assert.DeepEqual(t, k, cold[i])
		}
	}
	warm(opts)
	assert.Equal(t, len(srv.Requests()), requests)

	srv.Close()
	warm(opts)
}

func TestResolveDamagedEntry(t *testing.T) {
	srv := testArchive(t)
	opts, logs := testOptions(t, srv)
	k, err := Resolve(context.Background(), "debian:6.1", opts)
	assert.NilError(t, err)
	assert.NilError(t, os.Remove(k.Image))
	k, err = Resolve(context.Background(), "debian:6.1", opts)
	assert.NilError(t, err)
	assert.Equal(t, readFile(t, k.Image), "image 6.1.0-56-cloud-amd64")
	assert.Equal(t, len(debRequests(srv)), 2)
	assert.Check(t, slices.ContainsFunc(*logs, func(l string) bool { return strings.HasPrefix(l, "warning: replacing damaged cache entry") }), *logs)
}

func TestResolveChecksumMismatch(t *testing.T) {
	ctx := context.Background()
	srv := testArchive(t)
	opts, _ := testOptions(t, srv)
	pkg := fakearchive.Package{Name: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2"}
	path := fakearchive.PoolPath("bookworm-security", pkg)
	good := olderLayoutDeb("6.1.0-56-cloud-amd64", guestModuleTree)
	bad := slices.Clone(good)
	bad[len(bad)/2] ^= 1
	srv.Replace(path, bad)

	_, err := Resolve(ctx, "debian:6.1/cloud", opts)
	assert.ErrorContains(t, err, `kernel "debian:6.1/cloud": download `+srv.URL+"/debian-security/pool/main/linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb: linux-image-6.1.0-56-cloud-amd64 6.1.192-2: SHA256 mismatch: expected ")
	assert.Check(t, !strings.Contains(err.Error(), "reachable"), "a bad file is not a network problem")
	assertNoEntries(t, opts.CacheDir)

	srv.Replace(path, good)
	_, err = Resolve(ctx, "debian:6.1/cloud", opts)
	assert.NilError(t, err)
}

// assertNoEntries checks that the kernels cache holds no entry but those
// of kernels, no partly unpacked tree and no download.
func assertNoEntries(t *testing.T, cacheDir string, kernels ...*Kernel) {
	t.Helper()
	root := filepath.Join(cacheDir, "kernels")
	entries, err := os.ReadDir(root)
	assert.NilError(t, err)
	for _, e := range entries {
		ok := strings.HasSuffix(e.Name(), ".lock")
		for _, k := range kernels {
			ok = ok || strings.HasPrefix(k.Image, filepath.Join(root, e.Name())+string(filepath.Separator))
		}
		assert.Check(t, ok, "left in the cache: %s", e.Name())
	}
}

func TestResolveLocalErrorsAreNotNetworkErrors(t *testing.T) {
	srv := testArchive(t)
	opts, _ := testOptions(t, srv)
	opts.CacheDir = filepath.Join(t.TempDir(), "file")
	assert.NilError(t, os.WriteFile(opts.CacheDir, nil, 0o644))
	_, err := Resolve(context.Background(), "debian:6.1", opts)
	assert.ErrorContains(t, err, "not a directory")
	assert.Check(t, !strings.Contains(err.Error(), "reachable"), err)
}

func TestResolveUnsafePackage(t *testing.T) {
	srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", Packages: []fakearchive.Package{{
		Name: "linux-image-6.1.0-50-cloud-amd64", Version: "6.1.176-1",
		Deb: fakearchive.Deb(".xz",
			fakearchive.Entry{Name: "./boot/vmlinuz-6.1.0-50-cloud-amd64", Body: []byte("image")},
			fakearchive.Entry{Name: "./lib/modules/6.1.0-50-cloud-amd64/../../../../../escaped.ko", Body: []byte("x")},
		),
	}}})
	opts, _ := testOptions(t, srv)
	_, err := Resolve(context.Background(), "debian:6.1", opts)
	assert.Assert(t, errors.Is(err, deb.ErrUnsafePath), "%v", err)
	assert.ErrorContains(t, err, "unpack linux-image-6.1.0-50-cloud-amd64 6.1.176-1")
	assertNoEntries(t, opts.CacheDir)
}

func TestResolveNotFound(t *testing.T) {
	srv := testArchive(t)
	opts, _ := testOptions(t, srv)
	for _, tc := range []struct{ name, err string }{
		{"debian:6.99/cloud", `kernel "debian:6.99/cloud" not found; nearest: 6.12, 7.3; available cloud series: 6.1, 6.12, 7.3`},
		{"debian:6.5/cloud", `kernel "debian:6.5/cloud" not found; nearest: 6.1, 6.12; available cloud series: 6.1, 6.12, 7.3`},
		{"debian:6.0/cloud", `kernel "debian:6.0/cloud" not found; nearest: 6.1; available cloud series: 6.1, 6.12, 7.3`},
		{"debian:7.3/cloud@bookworm", `kernel "debian:7.3/cloud@bookworm" not found; nearest: 6.12 in bookworm-security, bookworm; available cloud series: 6.1, 6.12`},
		{"debian:6.1/rt", `kernel "debian:6.1/rt" not found; no rt kernels in bookworm-security, bookworm, trixie-backports`},
		{"debian:linux-image-6.1.0-1-cloud-amd64", `kernel "debian:linux-image-6.1.0-1-cloud-amd64" not found in bookworm-security, bookworm, trixie-backports; nearest: linux-image-6.1.0-50-cloud-amd64`},
		{"debian:linux-image-6.1.0-53-cloud-amd64", `kernel "debian:linux-image-6.1.0-53-cloud-amd64" not found in bookworm-security, bookworm, trixie-backports; nearest: linux-image-6.1.0-50-cloud-amd64, linux-image-6.1.0-56-cloud-amd64`},
		{"debian:linux-image-6.1.0-50-cloud-amd64@trixie-backports", `kernel "debian:linux-image-6.1.0-50-cloud-amd64@trixie-backports" not found in trixie-backports; nearest: linux-image-7.3.4+deb13-cloud-amd64`},
		{"/nonexistent/vmlinuz", `kernel "/nonexistent/vmlinuz": stat /nonexistent/vmlinuz: no such file or directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Resolve(context.Background(), tc.name, opts)
			assert.Error(t, err, tc.err)
		})
	}
}

func TestResolveUnreachableMirror(t *testing.T) {
	srv := testArchive(t)
	opts, _ := testOptions(t, srv)
	srv.Close()
	_, err := Resolve(context.Background(), "debian:6.1/cloud", opts)
	assert.ErrorContains(t, err, "fetch bookworm")
	assert.ErrorContains(t, err, " index from "+srv.URL+"/debian")
	assert.Check(t, strings.HasSuffix(err.Error(), "(is the mirror reachable? set FUSEMATRIX_MIRROR to use another)"), err)
	assert.Check(t, !strings.Contains(err.Error(), "\n"), "not one line: %q", err)
}

func TestResolveMirrorFromAptSources(t *testing.T) {
	t.Setenv("FUSEMATRIX_MIRROR", "")
	srv := testArchive(t)
	opts, _ := testOptions(t, srv)
	opts.Mirror = ""
	sources := filepath.Join(opts.AptSources, "sources.list.d")
	assert.NilError(t, os.MkdirAll(sources, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(sources, "debian.sources"), []byte(fmt.Sprintf(`Types: deb
URIs: %s/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: %s/debian-security
Suites: bookworm-security
Components: main
`, srv.URL, srv.URL)), 0o644))
	k, err := Resolve(context.Background(), "debian:6.12/cloud", opts)
	assert.NilError(t, err)
	assert.Equal(t, k.Release, "6.12.117+deb12-cloud-amd64")
	// bookworm-backports is looked for where bookworm lives.
	assert.Check(t, slices.Contains(srv.Requests(), "/debian/dists/bookworm-backports/InRelease"))
}

func TestResolveNoMirror(t *testing.T) {
	t.Setenv("FUSEMATRIX_MIRROR", "")
	apt := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(apt, "sources.list.d"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(apt, "sources.list.d", "other.list"), []byte("deb http://other.example/x nodistro main\n"), 0o644))
	_, err := Resolve(context.Background(), "debian:6.1/cloud", Options{CacheDir: t.TempDir(), AptSources: apt})
	assert.Error(t, err, "kernels: no Debian mirror configured for "+strings.Join(Suites, ", ")+": add one to "+
		filepath.Join(apt, "sources.list.d")+" or set FUSEMATRIX_MIRROR")

	_, err = Resolve(context.Background(), "debian:6.1/cloud", Options{CacheDir: t.TempDir(), Mirror: "ftp://m.example/debian"})
	assert.ErrorContains(t, err, "only http:// and https://")
}

func TestResolveEnvironment(t *testing.T) {
	srv := testArchive(t)
	cache := t.TempDir()
	t.Setenv("FUSEMATRIX_MIRROR", srv.Mirror())
	t.Setenv("FUSEMATRIX_CACHE", cache)
	t.Setenv("FUSEMATRIX_KEYRING", fakearchive.Keyring(t, fakearchive.Key()))
	k, err := Resolve(context.Background(), "debian:6.1", Options{AptSources: t.TempDir()})
	assert.NilError(t, err)
	assert.Check(t, strings.HasPrefix(k.Image, filepath.Join(cache, "kernels")+"/"), k.Image)

	t.Setenv("FUSEMATRIX_SECURITY_MIRROR", srv.URL+"/nowhere")
	_, err = Resolve(context.Background(), "debian:6.1", Options{CacheDir: t.TempDir(), AptSources: t.TempDir()})
	assert.ErrorContains(t, err, "fetch bookworm-security index from "+srv.URL+"/nowhere")
}

func TestResolveLocalFile(t *testing.T) {
	image := filepath.Join(t.TempDir(), "bzImage")
	assert.NilError(t, os.WriteFile(image, []byte("image"), 0o644))
	k, err := Resolve(context.Background(), image, Options{})
	assert.NilError(t, err)
	assert.DeepEqual(t, k, &Kernel{Name: image, Source: "file " + image, Image: image})

	wd, err := os.Getwd()
	assert.NilError(t, err)
	rel, err := filepath.Rel(wd, image)
	assert.NilError(t, err)
	assert.Assert(t, strings.HasPrefix(rel, "../"), rel)
	k, err = Resolve(context.Background(), rel, Options{})
	assert.NilError(t, err)
	assert.DeepEqual(t, k, &Kernel{Name: rel, Source: "file " + image, Image: image})

	_, err = Resolve(context.Background(), filepath.Dir(image), Options{})
	assert.ErrorContains(t, err, "not a regular file")
}

func TestResolveConcurrent(t *testing.T) {
	srv := testArchive(t)
	opts, _ := testOptions(t, srv)
	// A run that died while unpacking left this behind.
	kernels := filepath.Join(opts.CacheDir, "kernels")
	stale := filepath.Join(kernels, ".tmp-linux-image-6.1.0-56-cloud-amd64_6.1.192-2_123")
	assert.NilError(t, os.MkdirAll(filepath.Join(stale, "boot"), 0o755))
	staleDeb := filepath.Join(kernels, ".tmp-linux-image-6.1.0-56-cloud-amd64_6.1.192-2_456.deb")
	assert.NilError(t, os.WriteFile(staleDeb, []byte("part"), 0o644))
	// Another entry's whose version starts like this one's is left alone.
	other := filepath.Join(kernels, ".tmp-linux-image-6.1.0-56-cloud-amd64_6.1.192-2-1_789")
	assert.NilError(t, os.MkdirAll(other, 0o755))

	const n = 4
	got := make([]*Kernel, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = Resolve(context.Background(), "debian:6.1", opts) })
	}
	wg.Wait()
	for i := range n {
		assert.NilError(t, errs[i])
		assert.DeepEqual(t, got[i], got[0])
	}
	// The lock let one run unpack while the others waited for it.
	assert.Equal(t, len(debRequests(srv)), 1)
	for _, name := range []string{stale, staleDeb} {
		_, err := os.Stat(name)
		assert.Check(t, errors.Is(err, os.ErrNotExist), "stale temporary file left: %s", name)
	}
	_, err := os.Stat(other)
	assert.Check(t, err, "another entry's temporary directory was removed")
}

// releasesArchive serves bookworm and trixie builds of the same 6.12
// release, as Debian does: trixie's compares newer.
func releasesArchive(t *testing.T) *fakearchive.Server {
	deb12 := "6.12.117+deb12-cloud-amd64"
	deb13 := "6.12.117+deb13-cloud-amd64"
	return fakearchive.Serve(t,
		fakearchive.Suite{Name: "bookworm-security", Packages: []fakearchive.Package{
			{Name: "linux-image-" + deb12, Version: "6.12.117-1~deb12u1", Deb: olderLayoutDeb(deb12, nil, builtin612...)},
			{Name: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2", Deb: olderLayoutDeb("6.1.0-56-cloud-amd64", guestModuleTree)},
		}},
		fakearchive.Suite{Name: "trixie-security", Packages: []fakearchive.Package{
			{Name: "linux-image-" + deb13, Version: "6.12.117-1", Deb: olderLayoutDeb(deb13, nil, builtin612...)},
		}},
		fakearchive.Suite{Name: "trixie-backports", Packages: append(newerLayout("7.3.4+deb13", "7.3.4-1~bpo13+1"),
			// A newer image whose parts the archive dropped: uninstallable.
			fakearchive.Package{
				Name: "linux-image-7.3.9+deb13-cloud-amd64", Version: "7.3.9-1~bpo13+1",
				Depends: "linux-base-7.3.9+deb13-cloud-amd64 (= 7.3.9-1~bpo13+1), linux-binary-7.3.9+deb13-cloud-amd64 (= 7.3.9-1~bpo13+1)",
				Deb:     []byte("never fetched"),
			})},
	)
}

func TestSuitePreference(t *testing.T) {
	srv := releasesArchive(t)
	opts, logs := testOptions(t, srv)
	ctx := context.Background()
	for _, tc := range []struct{ name, source string }{
		{"debian:6.12/cloud@bookworm", "linux-image-6.12.117+deb12-cloud-amd64 6.12.117-1~deb12u1 (bookworm-security)"},
		{"debian:6.12/cloud@bookworm-security", "linux-image-6.12.117+deb12-cloud-amd64 6.12.117-1~deb12u1 (bookworm-security)"},
		{"debian:6.12/cloud", "linux-image-6.12.117+deb13-cloud-amd64 6.12.117-1 (trixie-security)"},
		{"debian:6.12/cloud@trixie", "linux-image-6.12.117+deb13-cloud-amd64 6.12.117-1 (trixie-security)"},
		// 7.3.9 lacks its binary, which holds the image (its missing
		// base alone would not stop it).
		{"debian:7.3/cloud", "linux-image-7.3.4+deb13-cloud-amd64 7.3.4-1~bpo13+1 (trixie-backports)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Lookup(ctx, tc.name, opts)
			assert.NilError(t, err)
			assert.Equal(t, res.Source(), tc.source)
		})
	}
	assert.Check(t, slices.ContainsFunc(*logs, func(l string) bool {
		return strings.HasPrefix(l, "warning: kernel debian:7.3/cloud: linux-binary-7.3.9+deb13-cloud-amd64 (= 7.3.9-1~bpo13+1), needed by") &&
			strings.HasSuffix(l, "; using linux-image-7.3.4+deb13-cloud-amd64 7.3.4-1~bpo13+1 instead")
	}), *logs)

	// The default matrix reads bookworm's indexes only.
	fresh, _ := testOptions(t, srv)
	before := len(srv.Requests())
	for _, name := range DefaultMatrix {
		_, err := Lookup(ctx, name, fresh)
		assert.NilError(t, err)
	}
	for _, r := range srv.Requests()[before:] {
		assert.Check(t, strings.Contains(r, "/dists/bookworm"), "default matrix fetched %s", r)
	}
}
