package kernels

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestLocalKernelOptions(t *testing.T) {
	dir := t.TempDir()
	image := filepath.Join(dir, "bzImage")
	assert.NilError(t, os.WriteFile(image, []byte("image"), 0o644))
	writeConfig := func(name, text string) string {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	builtIn := writeConfig("config-y", "CONFIG_FUSE_FS=y\n")
	module := writeConfig("config-m", "CONFIG_FUSE_FS=m\n")
	none := writeConfig("config-n", "# CONFIG_FUSE_FS is not set\n")
	modules := filepath.Join(dir, "lib/modules/6.20.0")
	assert.NilError(t, os.MkdirAll(filepath.Join(modules, "kernel/fs/fuse"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(modules, "modules.builtin"), nil, 0o644))
	empty := filepath.Join(dir, "empty/6.20.0")
	assert.NilError(t, os.MkdirAll(empty, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(empty, "modules.builtin"), nil, 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(modules, "kernel/fs/fuse/fuse.ko"), moduleBytes(testModule{"kernel/fs/fuse/fuse.ko", ""}), 0o644))

	for _, tc := range []struct {
		name, warning, err string
		want               *Kernel
	}{
		{name: image, warning: "cannot tell whether FUSE is built in"},
		{name: image + ",config=" + builtIn, want: &Kernel{Config: builtIn}},
		{name: image + ",config=" + module, warning: "FUSE is a module (CONFIG_FUSE_FS=m) but no fuse module"},
		{name: image + ",config=" + module + ",modules=" + modules, want: &Kernel{Config: module, ModulesDir: modules, Release: "6.20.0"}},
		{name: image + ",config=" + none, warning: "FUSE is neither built in"},
		{name: image + ",modules=" + empty, warning: "FUSE is not among the modules given"},
		{name: image + ",modules=" + image, err: "not a directory"},
		{name: image + ",initrd=x", err: `option "initrd=x": want modules=DIR or config=FILE`},
	} {
		t.Run(strings.ReplaceAll(strings.TrimPrefix(tc.name, dir), "/", "_"), func(t *testing.T) {
			var logs []string
			k, err := Resolve(context.Background(), tc.name, Options{Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, k.Image, image)
			if tc.want != nil {
				assert.Equal(t, k.Config, tc.want.Config)
				assert.Equal(t, k.ModulesDir, tc.want.ModulesDir)
				assert.Equal(t, k.Release, tc.want.Release)
			}
			if tc.warning == "" {
				assert.Check(t, is.Len(logs, 0))
			} else {
				assert.Assert(t, is.Len(logs, 1))
				assert.Check(t, is.Contains(logs[0], tc.warning))
			}
		})
	}
}
