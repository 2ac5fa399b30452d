package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// fakeKernelMakefile does at once what `kernels build` asks of a kernel's
// Makefile (kernels/build_test.go tests the build itself). With FAKE_DROP
// set, olddefconfig drops the fragment, as Kconfig drops options a tree
// does not define.
const fakeKernelMakefile = `VERSION = 6
PATCHLEVEL = 99
tinyconfig defconfig:
	@echo 'CONFIG_BASE=y' > $(O)/.config
olddefconfig:
	@if [ -n "$(FAKE_DROP)" ]; then echo 'CONFIG_BASE=y' > $(O)/.config; fi
bzImage:
	@mkdir -p $(O)/arch/x86/boot && echo image > $(O)/arch/x86/boot/bzImage
kernelrelease:
	@echo 6.99.0-fake
`

func TestKernelsBuild(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed: the fake kernel tree needs it")
	}
	src := filepath.Join(t.TempDir(), "linux")
	for _, d := range []string{"scripts/kconfig", "arch/x86"} {
		assert.NilError(t, os.MkdirAll(filepath.Join(src, d), 0o755))
	}
	assert.NilError(t, os.WriteFile(filepath.Join(src, "Makefile"), []byte(fakeKernelMakefile), 0o644))
	// It defines only FUSE's options: the fragment's others are unknown
	// to it, which is a warning, while a dropped FUSE option is an error.
	assert.NilError(t, os.WriteFile(filepath.Join(src, "Kconfig"),
		[]byte("config FUSE_FS\n\ttristate \"FUSE\"\nconfig FUSE_PASSTHROUGH\n\tbool \"passthrough\"\n"), 0o644))
	t.Setenv("FUSEMATRIX_CACHE", t.TempDir())

	for _, tc := range []struct {
		name string
		args []string
		drop bool
		code int
		want []string
		not  []string
	}{
		{name: "no source", code: 2, want: []string{"usage: fusematrix kernels build"}},
		{name: "extra arguments", args: []string{"-src", src, "debian:6.12"}, code: 2, want: []string{"usage: fusematrix kernels build"}},
		{name: "not a kernel tree", args: []string{"-src", t.TempDir()}, code: 1, want: []string{"is not a Linux source tree (no Makefile)"}},
		// olddefconfig drops the fragment: the check names the options the
		// tree defines and nothing is built.
		{name: "fragment not applied", args: []string{"-q", "-src", src}, drop: true, code: 1,
			want: []string{"2 option(s) of the config fragment did not take effect (base defconfig)",
				"CONFIG_FUSE_FS=y: absent from the result", "CONFIG_FUSE_PASSTHROUGH=y: absent from the result"},
			not: []string{"CONFIG_VIRTIO_CONSOLE"}},
		{name: "built", args: []string{"-src", src, "-base", "tinyconfig", "-j", "1"},
			want: []string{"kernel build: make tinyconfig", "release  6.99.0-fake\n", "/built/linux-", "/bzImage\n", "time     ", "boot it  fusematrix matrix src:" + src + ",base=tinyconfig"}},
		{name: "cached", args: []string{"-src", src, "-base", "tinyconfig"},
			want: []string{"is cached", "release  6.99.0-fake\n"}, not: []string{"make tinyconfig"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.drop {
				t.Setenv("FAKE_DROP", "1")
			}
			code, out := fusematrix(t, append([]string{"kernels", "build"}, tc.args...)...)
			assert.Equal(t, code, tc.code, out)
			for _, w := range tc.want {
				assert.Check(t, is.Contains(out, w))
			}
			for _, w := range tc.not {
				assert.Check(t, !strings.Contains(out, w), "%q in:\n%s", w, out)
			}
		})
	}
}
