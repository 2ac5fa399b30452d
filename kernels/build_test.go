package kernels

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fusematrix/fusematrix/kernels/flock"
	"github.com/fusematrix/fusematrix/kernels/kconfig"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestFuseConfig checks the project's fragment: it parses, builds
// everything in (a built kernel has no modules), and holds what the guest
// cannot run without.
func TestFuseConfig(t *testing.T) {
	opts, err := kconfig.ParseFragment(FuseConfig())
	assert.NilError(t, err)
	got := map[string]string{}
	for _, o := range opts {
		got[o.Name] = o.Value
		assert.Check(t, is.Equal(o.Value, "y"), "%s (line %d)", o.Name, o.Line)
	}
	for _, name := range []string{
		"FUSE_FS", "FUSE_PASSTHROUGH", "VIRTIO_PCI", "VIRTIO_CONSOLE", "SERIAL_8250_CONSOLE",
		"PVPANIC", "TMPFS", "DEVTMPFS", "BLK_DEV_INITRD", "64BIT", "BINFMT_ELF", "PROC_FS", "SYSFS",
		"FUTEX", "EPOLL", "EVENTFD", "PRINTK", "TTY",
	} {
		assert.Check(t, is.Equal(got["CONFIG_"+name], "y"), name)
	}
}

func TestBuildKey(t *testing.T) {
	base := buildKey("git abc", "tinyconfig", []byte("CONFIG_A=y\n"))
	assert.Equal(t, base, buildKey("git abc", "tinyconfig", []byte("CONFIG_A=y\n")), "same inputs, same key")
	assert.Equal(t, len(base), 16)
	for name, key := range map[string]string{
		"commit":   buildKey("git abd", "tinyconfig", []byte("CONFIG_A=y\n")),
		"dirty":    buildKey("git abc dirty 0123", "tinyconfig", []byte("CONFIG_A=y\n")),
		"base":     buildKey("git abc", "defconfig", []byte("CONFIG_A=y\n")),
		"fragment": buildKey("git abc", "tinyconfig", []byte("CONFIG_A=m\n")),
	} {
		assert.Check(t, key != base, "a different %s gives the same key", name)
	}
}

// fakeMakefile stands in for a kernel's Makefile: it knows the targets
// Build runs, logs each (with make's -j flag) to $FAKE_LOG and does its
// work at once. olddefconfig drops CONFIG_NODEP, as Kconfig drops an
// option whose dependency is off, and CONFIG_NOT_IN_TREE, which no Kconfig
// file defines; FAKE_FAIL makes bzImage fail after printing more lines
// than an error quotes, and FAKE_SLEEP makes it write its shell's pid to
// that file and then sleep in a child, as a compiler runs under make.
const fakeMakefile = `VERSION = 6
PATCHLEVEL = 99
SUBLEVEL = 0
EXTRAVERSION = -fake

tinyconfig defconfig:
	@echo "$@" >> $(FAKE_LOG)
	@printf 'CONFIG_BASE_%s=y\n# CONFIG_FUSE_FS is not set\n' $@ > $(O)/.config
olddefconfig:
	@echo "$@" >> $(FAKE_LOG)
	@grep -v -e '^CONFIG_NODEP=' -e '^CONFIG_NOT_IN_TREE=' $(O)/.config > $(O)/.config.new || true
	@mv $(O)/.config.new $(O)/.config
bzImage:
	@echo "$@ $(filter -j%,$(MAKEFLAGS))" >> $(FAKE_LOG)
	@if [ -n "$(FAKE_SLEEP)" ]; then echo $$$$ > $(FAKE_SLEEP).tmp; mv $(FAKE_SLEEP).tmp $(FAKE_SLEEP); sleep 300; echo slept; fi
	@for i in $$(seq 1 45); do echo "  CC      file$$i.o"; done
	@if [ -n "$(FAKE_FAIL)" ]; then echo "file45.c:1: error: fake failure" >&2; exit 1; fi
	@mkdir -p $(O)/arch/x86/boot
	@cp $(O)/.config $(O)/arch/x86/boot/bzImage
kernelrelease:
	@echo 6.99.0-fake
`

// fakeTree makes a source tree that passes for a kernel's, with the fake
// Makefile, and returns it and the log of make targets run.
func fakeTree(t *testing.T) (src, log string) {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed: the fake kernel tree needs it")
	}
	dir := t.TempDir()
	src = filepath.Join(dir, "linux")
	for _, d := range []string{"scripts/kconfig", "arch/x86", "fs/fuse"} {
		assert.NilError(t, os.MkdirAll(filepath.Join(src, d), 0o755))
	}
	for name, text := range map[string]string{
		"Makefile":        fakeMakefile,
		"Kconfig":         "source \"fs/fuse/Kconfig\"\nconfig NODEP\n\tbool \"needs something\"\n",
		"fs/fuse/Kconfig": "config FUSE_FS\n\ttristate \"FUSE\"\nmenuconfig FUSE_PASSTHROUGH\n\tbool \"passthrough\"\n",
	} {
		assert.NilError(t, os.WriteFile(filepath.Join(src, name), []byte(text), 0o644))
	}
	log = filepath.Join(dir, "make.log")
	t.Setenv("FAKE_LOG", log)
	return src, log
}

func makeLog(t *testing.T, log string) []string {
	t.Helper()
	data, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	assert.NilError(t, err)
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

const testFragment = "CONFIG_FUSE_FS=y\nCONFIG_FUSE_PASSTHROUGH=y\n"

func TestBuildFakeTree(t *testing.T) {
	src, log := fakeTree(t)
	cache := t.TempDir()
	var lines []string
	var mu sync.Mutex
	opts := BuildOptions{Src: src, Base: BaseTinyconfig, Jobs: 3, Fragment: []byte(testFragment), Options: Options{
		CacheDir: cache,
		Logf: func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, fmt.Sprintf(format, args...))
		},
	}}
	ctx := context.Background()

	k, err := Build(ctx, opts)
	assert.NilError(t, err)
	assert.DeepEqual(t, makeLog(t, log), []string{"tinyconfig", "olddefconfig", "bzImage -j3"})
	assert.Equal(t, k.Release, "6.99.0-fake")
	assert.Equal(t, k.ModulesDir, "")
	assert.Check(t, strings.HasPrefix(k.Image, filepath.Join(cache, BuiltDir)+"/"), k.Image)
	assert.Check(t, is.Contains(k.Source, "built from "+src))
	assert.Check(t, is.Contains(k.Source, "base tinyconfig"))
	config, err := os.ReadFile(k.Config)
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(config), "CONFIG_BASE_tinyconfig=y\n"))
	assert.Check(t, is.Contains(string(config), "CONFIG_FUSE_PASSTHROUGH=y\n"))
	image, err := os.ReadFile(k.Image)
	assert.NilError(t, err)
	assert.Equal(t, string(image), string(config), "the image is not the one make built")
	opt, err := k.ConfigOptions()
	assert.NilError(t, err)
	assert.Equal(t, opt["CONFIG_FUSE_FS"], "y")
	assert.Check(t, is.Contains(strings.Join(lines, "\n"), "is not a git work tree"))

	// The user's tree is only read.
	entries, err := os.ReadDir(src)
	assert.NilError(t, err)
	assert.Equal(t, len(entries), 5, "files appeared in the source tree")

	// Same key: from the cache, make not run.
	again, err := Build(ctx, opts)
	assert.NilError(t, err)
	assert.DeepEqual(t, again, k)
	assert.Equal(t, len(makeLog(t, log)), 3, "make ran for a cached build")

	// Another base is another build; the default base is defconfig.
	def, err := Build(ctx, BuildOptions{Src: src, Jobs: 1, Fragment: []byte(testFragment), Options: Options{CacheDir: cache}})
	assert.NilError(t, err)
	assert.Check(t, def.Image != k.Image)
	assert.DeepEqual(t, makeLog(t, log)[3:], []string{"defconfig", "olddefconfig", "bzImage -j1"})

	// A base file replaces the make target; its content is part of the key.
	baseFile := filepath.Join(t.TempDir(), "my.config")
	assert.NilError(t, os.WriteFile(baseFile, []byte("CONFIG_MINE=y\n"), 0o644))
	own, err := Build(ctx, BuildOptions{Src: src, Base: baseFile, Jobs: 1, Fragment: []byte(testFragment), Options: Options{CacheDir: cache}})
	assert.NilError(t, err)
	assert.DeepEqual(t, makeLog(t, log)[6:], []string{"olddefconfig", "bzImage -j1"})
	config, err = os.ReadFile(own.Config)
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(config), "CONFIG_MINE=y\n"))
	assert.NilError(t, os.WriteFile(baseFile, []byte("CONFIG_MINE=m\n"), 0o644))
	_, err = Build(ctx, BuildOptions{Src: src, Base: baseFile, Jobs: 1, Fragment: []byte(testFragment), Options: Options{CacheDir: cache}})
	assert.NilError(t, err)
	assert.Equal(t, len(makeLog(t, log)), 10, "a changed base file did not rebuild")

	// A damaged entry is rebuilt, not used.
	assert.NilError(t, os.WriteFile(k.Image, []byte("damaged"), 0o644))
	fixed, err := Build(ctx, opts)
	assert.NilError(t, err)
	assert.Equal(t, len(makeLog(t, log)), 13, "a damaged entry was used")
	image, err = os.ReadFile(fixed.Image)
	assert.NilError(t, err)
	config, err = os.ReadFile(fixed.Config)
	assert.NilError(t, err)
	assert.Equal(t, string(image), string(config))

	// The selector builds with the project's fragment, once.
	opts.Fragment = nil
	withFuse, err := Build(ctx, opts)
	assert.NilError(t, err)
	assert.Equal(t, len(makeLog(t, log)), 16)
	sel, err := Resolve(ctx, "src:"+src+",base=tinyconfig,j=3", Options{CacheDir: cache})
	assert.NilError(t, err)
	assert.Equal(t, sel.Image, withFuse.Image)
	assert.Equal(t, sel.Name, "src:"+src+",base=tinyconfig,j=3")
	assert.Equal(t, len(makeLog(t, log)), 16, "make ran for a cached build")
	opt, err = sel.ConfigOptions()
	assert.NilError(t, err)
	assert.Equal(t, opt["CONFIG_FUSE_PASSTHROUGH"], "y")
}

// TestBuildConcurrent starts two builds of one key at once: the lock lets
// one build while the other waits and then takes its result.
func TestBuildConcurrent(t *testing.T) {
	src, log := fakeTree(t)
	opts := BuildOptions{Src: src, Base: BaseTinyconfig, Jobs: 1, Fragment: []byte(testFragment), Options: Options{CacheDir: t.TempDir()}}
	var wg sync.WaitGroup
	ks := make([]*Kernel, 2)
	errs := make([]error, 2)
	for i := range ks {
		wg.Go(func() { ks[i], errs[i] = Build(context.Background(), opts) })
	}
	wg.Wait()
	assert.NilError(t, errs[0])
	assert.NilError(t, errs[1])
	assert.Equal(t, ks[0].Image, ks[1].Image)
	assert.DeepEqual(t, makeLog(t, log), []string{"tinyconfig", "olddefconfig", "bzImage -j1"})
}

func TestBuildWaitsForLock(t *testing.T) {
	src, log := fakeTree(t)
	opts := BuildOptions{Src: src, Base: BaseTinyconfig, Fragment: []byte(testFragment), Options: Options{CacheDir: t.TempDir()}}
	b, err := newBuilder(context.Background(), opts)
	assert.NilError(t, err)
	assert.NilError(t, os.MkdirAll(b.root, 0o755))
	unlock, err := flock.Lock(context.Background(), b.entryPath()+".lock", nil)
	assert.NilError(t, err)
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = Build(ctx, opts)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, len(makeLog(t, log)), 0, "make ran while another process held the lock")
}

func TestBuildErrors(t *testing.T) {
	src, log := fakeTree(t)
	cache := t.TempDir()
	build := func(fragment string) error {
		_, err := Build(context.Background(), BuildOptions{Src: src, Base: BaseTinyconfig, Fragment: []byte(fragment), Options: Options{CacheDir: cache}})
		return err
	}

	t.Run("options that did not take effect", func(t *testing.T) {
		err := build(testFragment + "CONFIG_NODEP=y\nCONFIG_NOT_IN_TREE=y\n")
		assert.ErrorContains(t, err, "1 option(s) of the config fragment did not take effect (base tinyconfig)")
		assert.ErrorContains(t, err, "CONFIG_NODEP=y: absent from the result (a dependency is off)")
		assert.Check(t, !strings.Contains(err.Error(), "CONFIG_NOT_IN_TREE"), "an option the tree lacks is a warning: %v", err)
		assert.Check(t, !strings.Contains(err.Error(), "CONFIG_FUSE_FS"), err.Error())
		assert.Check(t, !strings.Contains(strings.Join(makeLog(t, log), " "), "bzImage"), "built despite the config")
		kept, _ := filepath.Glob(filepath.Join(cache, BuiltDir, "linux-*", manifestName))
		assert.Check(t, is.Len(kept, 0), "a failed build left a cache entry")
	})

	// A tree older than an option (FUSE_PASSTHROUGH before 6.9) must still
	// build, or bisection could not cross the release that added it.
	t.Run("an option the tree does not define is a warning", func(t *testing.T) {
		var logged []string
		logf := func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }
		k, err := Build(context.Background(), BuildOptions{Src: src, Base: BaseTinyconfig,
			Fragment: []byte(testFragment + "CONFIG_NOT_IN_TREE=y\n"), Options: Options{CacheDir: t.TempDir(), Logf: logf}})
		assert.NilError(t, err)
		assert.Check(t, k.Image != "")
		assert.Check(t, is.Contains(strings.Join(logged, "\n"),
			"warning: CONFIG_NOT_IN_TREE=y: no Kconfig file of this tree defines it"))
	})

	t.Run("compiler failure quotes the last lines", func(t *testing.T) {
		t.Setenv("FAKE_FAIL", "1")
		err := build(testFragment)
		assert.ErrorContains(t, err, "make -j")
		assert.ErrorContains(t, err, "file45.c:1: error: fake failure")
		assert.ErrorContains(t, err, "  CC      file10.o")
		assert.Check(t, !strings.Contains(err.Error(), "file5.o"), "quoted more than the last %d lines", tailLines)
		kept, _ := filepath.Glob(filepath.Join(cache, BuiltDir, "linux-*", manifestName))
		assert.Check(t, is.Len(kept, 0), "a failed build left a cache entry")
	})

	t.Run("not a kernel tree", func(t *testing.T) {
		dir := t.TempDir()
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "Makefile"), []byte("all:\n"), 0o644))
		_, err := Build(context.Background(), BuildOptions{Src: dir, Options: Options{CacheDir: cache}})
		assert.ErrorContains(t, err, dir+" is not a Linux source tree (no Kconfig)")
		_, err = Build(context.Background(), BuildOptions{Src: filepath.Join(dir, "none"), Options: Options{CacheDir: cache}})
		assert.ErrorContains(t, err, "is not a Linux source tree (no Makefile)")
	})

	t.Run("tree configured in place", func(t *testing.T) {
		assert.NilError(t, os.WriteFile(filepath.Join(src, ".config"), nil, 0o644))
		defer os.Remove(filepath.Join(src, ".config"))
		err := build(testFragment)
		assert.ErrorContains(t, err, "was configured or built in place (it has .config)")
	})

	t.Run("bad fragment or base", func(t *testing.T) {
		assert.ErrorContains(t, build("CONFIG_A=y\n# CONFIG_A is not set\n"), "config fragment line 2")
		_, err := Build(context.Background(), BuildOptions{Src: src, Base: "/nonexistent/config", Options: Options{CacheDir: cache}})
		assert.ErrorContains(t, err, "base config")
	})
}

func TestSrcSelectorErrors(t *testing.T) {
	src, _ := fakeTree(t)
	for _, tc := range []struct{ name, err string }{
		{name: "src:", err: "want src:DIR"},
		{name: "src:" + src + ",j=0", err: "j=0: want a positive number"},
		{name: "src:" + src + ",jobs=2", err: `option "jobs=2"`},
		{name: "src:" + src + ",base=", err: `option "base="`},
	} {
		_, err := Resolve(context.Background(), tc.name, Options{CacheDir: t.TempDir()})
		assert.ErrorContains(t, err, tc.err, tc.name)
	}
	_, err := Lookup(context.Background(), "src:"+src, Options{CacheDir: t.TempDir()})
	assert.ErrorContains(t, err, "built from source, not a Debian package")
}

func TestSourceStatus(t *testing.T) {
	src, log := fakeTree(t)
	o := Options{CacheDir: t.TempDir()}
	ctx := context.Background()
	sel := "src:" + src + ",base=tinyconfig"

	before, err := SourceStatus(ctx, sel, o)
	assert.NilError(t, err)
	assert.Check(t, !before.Cached)
	assert.Check(t, is.Equal(before.Version, "6.99.0-fake"))
	assert.Check(t, is.Equal(before.Src, src))
	assert.Check(t, is.Equal(before.Base, BaseTinyconfig))
	assert.Check(t, is.Contains(before.State, "tree "+src))
	assert.Check(t, is.Len(makeLog(t, log), 0), "status built something")

	k, err := Resolve(ctx, sel, o)
	assert.NilError(t, err)
	after, err := SourceStatus(ctx, sel, o)
	assert.NilError(t, err)
	assert.Check(t, after.Cached)
	assert.Check(t, is.Equal(after.Entry, before.Entry))
	assert.Check(t, strings.HasPrefix(k.Image, after.Entry+"/"), "image %s outside entry %s", k.Image, after.Entry)
	st, err := os.Stat(k.Image)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(after.Size, st.Size()))

	// Another base is another build, not cached yet.
	other, err := SourceStatus(ctx, "src:"+src, o)
	assert.NilError(t, err)
	assert.Check(t, !other.Cached)
	assert.Check(t, is.Equal(other.Base, BaseDefconfig))
	assert.Check(t, other.Entry != after.Entry)

	for _, tc := range []struct{ sel, err string }{
		{sel: "src:", err: "want src:DIR"},
		{sel: "src:" + t.TempDir(), err: "is not a Linux source tree"},
		{sel: "src:" + src + ",j=x", err: "want a positive number"},
	} {
		_, err := SourceStatus(ctx, tc.sel, o)
		assert.Check(t, is.ErrorContains(err, tc.err), tc.sel)
	}
}
