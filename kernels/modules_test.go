package kernels

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fusematrix/fusematrix/kernels/internal/fakearchive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// testModule is a module of a fabricated modules tree.
type testModule struct {
	path    string // below the modules directory, e.g. "kernel/fs/fuse/fuse.ko.xz"
	depends string
}

// guestModuleTree is shaped like Debian 6.1's: what GuestModules needs is
// all modules, with dependencies among them.
var guestModuleTree = []testModule{
	{"kernel/fs/fuse/fuse.ko", ""},
	{"kernel/drivers/virtio/virtio.ko", ""},
	{"kernel/drivers/virtio/virtio_ring.ko.xz", ""},
	{"kernel/drivers/virtio/virtio_pci_modern_dev.ko.zst", ""},
	{"kernel/drivers/virtio/virtio_pci.ko", "virtio_pci_modern_dev,virtio_ring,virtio"},
	{"kernel/drivers/char/virtio_console.ko", "virtio_ring,virtio"},
	{"kernel/drivers/misc/pvpanic/pvpanic.ko", ""},
	{"kernel/drivers/misc/pvpanic/pvpanic-mmio.ko", "pvpanic"},
	{"kernel/drivers/misc/pvpanic/pvpanic-pci.ko", "pvpanic"},
	{"kernel/drivers/net/dummy.ko", ""},
}

func moduleBytes(m testModule) []byte {
	name := filepath.Base(m.path)
	name = strings.ReplaceAll(name[:strings.Index(name, ".ko")], "-", "_")
	mod := fakearchive.Module("license=GPL", "depends="+m.depends, "name="+name)
	for _, suffix := range []string{".xz", ".zst"} {
		if strings.HasSuffix(m.path, suffix) {
			return fakearchive.Compress(mod, suffix)
		}
	}
	return mod
}

func writeModuleTree(t *testing.T, modules []testModule, builtin ...string) string {
	dir := filepath.Join(t.TempDir(), "lib", "modules", "6.1.0-50-cloud-amd64")
	for _, m := range modules {
		p := filepath.Join(dir, m.path)
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, moduleBytes(m), 0o644))
	}
	if builtin != nil {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte(strings.Join(builtin, "\n")+"\n"), 0o644))
	}
	return dir
}

func moduleNames(load []Module) []string {
	var names []string
	for _, m := range load {
		names = append(names, m.Name)
	}
	return names
}

func TestModules(t *testing.T) {
	for _, tc := range []struct {
		name        string
		modules     []testModule
		builtin     []string // lines of modules.builtin; nil: no such file
		patterns    []string
		wantLoad    []string
		wantBuiltin []string
		err         string
	}{
		{
			name:     "guest modules, dependencies first and once",
			modules:  guestModuleTree,
			patterns: GuestModules,
			wantLoad: []string{"fuse", "virtio_pci_modern_dev", "virtio_ring", "virtio", "virtio_pci", "virtio_console", "pvpanic", "pvpanic_mmio", "pvpanic_pci"},
		},
		{
			name: "built-ins are reported, not loaded",
			modules: []testModule{
				{"kernel/drivers/misc/pvpanic/pvpanic.ko.xz", ""},
				{"kernel/drivers/misc/pvpanic/pvpanic-mmio.ko.xz", "pvpanic"},
			},
			builtin:     []string{"kernel/fs/fuse/fuse.ko", "kernel/drivers/virtio/virtio_pci.ko", "kernel/drivers/char/virtio_console.ko", "kernel/drivers/misc/pvpanic/pvpanic-pci.ko"},
			patterns:    GuestModules,
			wantLoad:    []string{"pvpanic", "pvpanic_mmio"},
			wantBuiltin: []string{"fuse", "virtio_pci", "virtio_console", "pvpanic_pci"},
		},
		{
			name:     "dashes and underscores are the same",
			modules:  guestModuleTree,
			patterns: []string{"pvpanic-mmio", "virtio-ring"},
			wantLoad: []string{"pvpanic", "pvpanic_mmio", "virtio_ring"},
		},
		{
			name:     "a module asked twice or as a dependency comes once",
			modules:  guestModuleTree,
			patterns: []string{"virtio", "virtio_console", "virtio_console", "virtio_*"},
			wantLoad: []string{"virtio", "virtio_ring", "virtio_console", "virtio_pci_modern_dev", "virtio_pci"},
		},
		{
			name:     "a glob matching nothing is fine",
			modules:  guestModuleTree,
			patterns: []string{"nothing*", "fuse"},
			wantLoad: []string{"fuse"},
		},
		{
			name:     "a dependency that is built in is not loaded",
			modules:  []testModule{{"kernel/drivers/char/virtio_console.ko", "virtio_ring,virtio"}},
			builtin:  []string{"kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko"},
			patterns: []string{"virtio_console"},
			wantLoad: []string{"virtio_console"},
		},
		{
			name:     "an exact name that does not exist",
			modules:  guestModuleTree,
			patterns: []string{"fuse", "nothing"},
			err:      `module "nothing" not found in`,
		},
		{
			name:     "a missing dependency",
			modules:  []testModule{{"kernel/a.ko", "b"}},
			patterns: []string{"a"},
			err:      "module b, needed by a, not found",
		},
		{
			name:     "a dependency cycle",
			modules:  []testModule{{"kernel/a.ko", "b"}, {"kernel/b.ko", "c"}, {"kernel/c.ko", "a"}},
			patterns: []string{"a"},
			err:      "dependency cycle: a -> b -> c -> a",
		},
		{
			name:     "a bad pattern",
			modules:  guestModuleTree,
			patterns: []string{"[fuse"},
			err:      `module pattern "[fuse"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &Kernel{Release: "6.1.0-50-cloud-amd64", ModulesDir: writeModuleTree(t, tc.modules, tc.builtin...)}
			load, builtin, err := k.Modules(tc.patterns...)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, moduleNames(load), tc.wantLoad)
			assert.DeepEqual(t, builtin, tc.wantBuiltin)
			for _, m := range load {
				assert.Check(t, strings.HasPrefix(m.Path, k.ModulesDir+"/"), m.Path)
			}
		})
	}
}

func TestModulesWithoutModulesDir(t *testing.T) {
	load, builtin, err := (&Kernel{Image: "/boot/vmlinuz"}).Modules(GuestModules...)
	assert.NilError(t, err)
	assert.Check(t, load == nil && builtin == nil)
}

func TestModuleOpen(t *testing.T) {
	dir := writeModuleTree(t, guestModuleTree)
	k := &Kernel{ModulesDir: dir}
	load, _, err := k.Modules("virtio_pci")
	assert.NilError(t, err)
	assert.Assert(t, is.Len(load, 4))
	for i, m := range load {
		rc, err := m.Open()
		assert.NilError(t, err)
		got, err := io.ReadAll(rc)
		assert.NilError(t, err)
		assert.NilError(t, rc.Close())
		// The uncompressed bytes are an ELF object, whatever the file's
		// compression.
		assert.Check(t, bytes.HasPrefix(got, []byte("\x7fELF")), "%s (%s) is not decompressed", m.Name, m.Path)
		for _, tm := range guestModuleTree {
			if filepath.Join(dir, tm.path) == m.Path {
				want := fakearchive.Module("license=GPL", "depends="+tm.depends, "name="+m.Name)
				assert.Check(t, bytes.Equal(got, want), "module %d: %s", i, m.Name)
			}
		}
	}
}
