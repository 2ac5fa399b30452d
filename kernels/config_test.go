package kernels

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
)

// A fabricated config in the layout `make oldconfig` writes, with the
// options fusematrix keeps among others it must drop.
const fabricatedConfig = `#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.12.117 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"
CONFIG_IO_URING=y

#
# File systems
#
CONFIG_FUSE_FS=m
CONFIG_CUSE=m
# CONFIG_VIRTIO_FS is not set
CONFIG_FUSE_DAX=y
CONFIG_FUSE_PASSTHROUGH=y
# CONFIG_FUSE_IO_URING is not set
CONFIG_FUSE_SOMETHING_STRING="a \"quoted\" value"
CONFIG_FUSE_NUMBER=16
CONFIG_OVERLAY_FS=m
# CONFIG_FUSE_NOT_AN_OPTION because this comment says so
`

func TestConfigOptions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	for _, tc := range []struct {
		name   string
		config string // file path; "" = no config
		want   map[string]string
		err    string
	}{
		{name: "fabricated", config: write("config-full", fabricatedConfig), want: map[string]string{
			"CONFIG_IO_URING":              "y",
			"CONFIG_FUSE_FS":               "m",
			"CONFIG_CUSE":                  "m",
			"CONFIG_VIRTIO_FS":             "n",
			"CONFIG_FUSE_DAX":              "y",
			"CONFIG_FUSE_PASSTHROUGH":      "y",
			"CONFIG_FUSE_IO_URING":         "n",
			"CONFIG_FUSE_SOMETHING_STRING": `a "quoted" value`,
			"CONFIG_FUSE_NUMBER":           "16",
		}},
		{name: "no fuse options", config: write("config-nofuse", "CONFIG_OVERLAY_FS=y\n# CONFIG_EXT2_FS is not set\n"), want: map[string]string{}},
		{name: "no config", want: nil},
		{name: "missing file", config: filepath.Join(dir, "nonexistent"), err: "kernel config: open"},
		{name: "garbage", config: write("config-garbage", "CONFIG_FUSE_FS=y\nthis is not a config\n"), err: "config-garbage:2: not a config line"},
		{name: "bad string", config: write("config-badstring", "CONFIG_FUSE_X=\"unterminated\n"), err: "CONFIG_FUSE_X: bad string value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &Kernel{Config: tc.config}
			got, err := k.ConfigOptions()
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want)
		})
	}
}
