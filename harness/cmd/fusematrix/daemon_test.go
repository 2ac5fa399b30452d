package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// -list prints what a selection runs, a daemon's checks under its prefix,
// and boots nothing; a pattern that selects nothing is a usage error.
func TestList(t *testing.T) {
	catalog := filepath.Join(t.TempDir(), "catalog.conf")
	assert.NilError(t, os.WriteFile(catalog, []byte("[daemon myfs]\nbinary = /bin/true\nargs = {mnt}\n"), 0o644))
	for _, tc := range []struct {
		name      string
		args      []string
		want, not []string
	}{
		{"matrix", []string{"matrix", "-list"}, []string{"fuse-init ", "pt/integrity "}, []string{"bench/"}},
		{"bench", []string{"bench", "-list", "-run", "^bench/read/.*/4096$"}, []string{"fuse-init ", "bench/read/noop/4096 ", "bench/read/native/4096 "},
			[]string{"pt/integrity", "131072", "write"}},
		{"bench with a daemon", []string{"bench", "-list", "-daemon", "/bin/true", "-daemon-name", "t"},
			[]string{"bench/read/noop/4096 ", "daemon/t/bench/read/4096 ", "daemon/t/bench/write/1048576 "}, []string{"daemon/t/pt/"}},
		{"matrix with a daemon", []string{"matrix", "-list", "-daemon", "/bin/true", "-daemon-name", "t", "-run", "^pt/integrity$"},
			[]string{"pt/integrity ", "daemon/t/pt/integrity "}, []string{"bench", "daemon/t/passthrough"}},
		{"a daemon of the catalog", []string{"bench", "-list", "-catalog", catalog, "-daemon", "myfs"},
			[]string{"daemon/myfs/bench/read/4096 "}, []string{"daemon/t/"}},
		{"a daemon of the catalog renamed", []string{"bench", "-list", "-catalog", catalog, "-daemon", "myfs", "-daemon-name", "yours"},
			[]string{"daemon/yours/bench/read/4096 "}, []string{"daemon/myfs/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := fusematrixStreams(t, append(tc.args, "-qemu", "/nonexistent/qemu")...)
			assert.Equal(t, code, 0, stderr)
			for _, w := range tc.want {
				assert.Check(t, is.Contains(stdout, w))
			}
			for _, n := range tc.not {
				assert.Check(t, !strings.Contains(stdout, n), "%q in\n%s", n, stdout)
			}
		})
	}
	code, _, stderr := fusematrixStreams(t, "matrix", "-list", "-run", "^nothing$")
	assert.Equal(t, code, 2)
	assert.Check(t, is.Contains(stderr, `scenario pattern "^nothing$" matches no check`))
	// A bench whose pattern names no cell is a usage error, not a boot
	// that measures nothing.
	for _, list := range []string{"-q", "-list"} {
		code, _, stderr = fusematrixStreams(t, "bench", list, "-run", "noop/131072$", "-qemu", "/nonexistent/qemu", "debian:6.12")
		assert.Equal(t, code, 2)
		assert.Check(t, is.Contains(stderr, `-run "noop/131072$" selects no benchmark cell: cells are selected only by a pattern that names them`), list)
	}
}
