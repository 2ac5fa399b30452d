package modinfo

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/fusematrix/fusematrix/kernels/internal/fakearchive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestModuleName(t *testing.T) {
	for _, tc := range []struct {
		file, want string
		ok         bool
	}{
		{"fuse.ko", "fuse", true},
		{"kernel/drivers/misc/pvpanic/pvpanic-mmio.ko.xz", "pvpanic_mmio", true},
		{"/abs/virtio_pci.ko.zst", "virtio_pci", true},
		{"a-b_c.ko", "a_b_c", true},
		{"modules.builtin", "", false},
		{"fuse.ko.gz", "", false},
		{"fuse.o", "", false},
		{".ko", "", false},
		{"dir.ko/file", "", false},
	} {
		got, ok := ModuleName(tc.file)
		assert.Check(t, is.Equal(got, tc.want), tc.file)
		assert.Check(t, is.Equal(ok, tc.ok), tc.file)
	}
}

func TestParse(t *testing.T) {
	mod := fakearchive.Module("license=GPL", "depends=virtio_ring,virtio-pci-modern-dev,", "alias=pci:v1", "alias=pci:v2", "name=virtio_pci", "vermagic=6.1.0 SMP")
	info, err := Parse(mod)
	assert.NilError(t, err)
	assert.DeepEqual(t, info, Info{
		"license":  {"GPL"},
		"depends":  {"virtio_ring,virtio-pci-modern-dev,"},
		"alias":    {"pci:v1", "pci:v2"},
		"name":     {"virtio_pci"},
		"vermagic": {"6.1.0 SMP"},
	})
	assert.Equal(t, info.Get("name"), "virtio_pci")
	assert.Equal(t, info.Get("nothing"), "")
	assert.DeepEqual(t, info.Depends(), []string{"virtio_ring", "virtio_pci_modern_dev"})

	empty, err := Parse(fakearchive.Module("depends=", "name=fuse"))
	assert.NilError(t, err)
	assert.Check(t, is.Len(empty.Depends(), 0))

	_, err = Parse([]byte("not an elf file at all"))
	assert.ErrorContains(t, err, "not an ELF module")
}

func TestReadCompressed(t *testing.T) {
	mod := fakearchive.Module("depends=a,b", "name=m")
	dir := t.TempDir()
	for _, suffix := range []string{"", ".xz", ".zst"} {
		t.Run("ko"+suffix, func(t *testing.T) {
			path := filepath.Join(dir, "m.ko"+suffix)
			assert.NilError(t, os.WriteFile(path, fakearchive.Compress(mod, suffix), 0o644))

			rc, err := Open(path)
			assert.NilError(t, err)
			got, err := io.ReadAll(rc)
			assert.NilError(t, err)
			assert.NilError(t, rc.Close())
			assert.Check(t, bytes.Equal(got, mod), "Open did not return the uncompressed module")

			info, err := Read(path)
			assert.NilError(t, err)
			assert.DeepEqual(t, info.Depends(), []string{"a", "b"})
		})
	}
	t.Run("corrupt xz", func(t *testing.T) {
		path := filepath.Join(dir, "bad.ko.xz")
		assert.NilError(t, os.WriteFile(path, mod, 0o644))
		_, err := Read(path)
		assert.ErrorContains(t, err, path)
	})
}
