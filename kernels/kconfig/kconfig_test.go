package kconfig

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
)

func TestParseFragment(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want []Option
		err  string
	}{
		{name: "options, comments and blank lines", text: "# why\nCONFIG_FUSE_FS=y\n\n# CONFIG_DEBUG_INFO is not set\n  CONFIG_LOG_BUF_SHIFT=17\nCONFIG_CMDLINE=\"a b\"\n",
			want: []Option{
				{Name: "CONFIG_FUSE_FS", Value: "y", Line: 2},
				{Name: "CONFIG_DEBUG_INFO", Value: "n", Line: 4},
				{Name: "CONFIG_LOG_BUF_SHIFT", Value: "17", Line: 5},
				{Name: "CONFIG_CMDLINE", Value: "a b", Line: 6},
			}},
		{name: "same value twice", text: "CONFIG_A=y\nCONFIG_A=y\n", want: []Option{{Name: "CONFIG_A", Value: "y", Line: 1}}},
		{name: "conflicting values", text: "CONFIG_A=y\n# CONFIG_A is not set\n", err: "config fragment line 2: CONFIG_A=n, but line 1 says y"},
		{name: "not a config line", text: "CONFIG_A=y\nFUSE_FS=y\n", err: "config fragment line 2: not a config line"},
		{name: "trailing comment", text: "CONFIG_A=\"x\" # why\n", err: "config fragment line 1: CONFIG_A: bad string value"},
		{name: "empty", text: "# nothing\n", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFragment([]byte(tc.text))
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

func TestCheckConfig(t *testing.T) {
	config := filepath.Join(t.TempDir(), "config")
	assert.NilError(t, os.WriteFile(config, []byte(`#
# Linux/x86 6.12.117 Kernel Configuration
#
CONFIG_FUSE_FS=y
CONFIG_CUSE=m
# CONFIG_FUSE_PASSTHROUGH is not set
CONFIG_LOG_BUF_SHIFT=17
CONFIG_VIRTIO=y
CONFIG_VIRTIO=n
`), 0o644))
	for _, tc := range []struct {
		name string
		want string // fragment
		bad  []Mismatch
	}{
		{name: "all met", want: "CONFIG_FUSE_FS=y\nCONFIG_CUSE=m\nCONFIG_LOG_BUF_SHIFT=17\n# CONFIG_FUSE_PASSTHROUGH is not set\n# CONFIG_ABSENT is not set\n"},
		{name: "not set", want: "CONFIG_FUSE_PASSTHROUGH=y\n", bad: []Mismatch{{Name: "CONFIG_FUSE_PASSTHROUGH", Want: "y", Got: "n"}}},
		{name: "module instead of built in", want: "CONFIG_CUSE=y\n", bad: []Mismatch{{Name: "CONFIG_CUSE", Want: "y", Got: "m"}}},
		{name: "absent", want: "CONFIG_PVPANIC=y\nCONFIG_FUSE_FS=y\n", bad: []Mismatch{{Name: "CONFIG_PVPANIC", Want: "y"}}},
		{name: "other value", want: "CONFIG_LOG_BUF_SHIFT=18\n", bad: []Mismatch{{Name: "CONFIG_LOG_BUF_SHIFT", Want: "18", Got: "17"}}},
		{name: "the last assignment wins", want: "CONFIG_VIRTIO=y\n", bad: []Mismatch{{Name: "CONFIG_VIRTIO", Want: "y", Got: "n"}}},
		{name: "built in but wanted off", want: "# CONFIG_FUSE_FS is not set\n", bad: []Mismatch{{Name: "CONFIG_FUSE_FS", Want: "n", Got: "y"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := ParseFragment([]byte(tc.want))
			assert.NilError(t, err)
			bad, err := Check(config, want)
			assert.NilError(t, err)
			assert.DeepEqual(t, bad, tc.bad)
		})
	}
	_, err := Check(filepath.Join(t.TempDir(), "none"), nil)
	assert.ErrorContains(t, err, "no such file")
}
