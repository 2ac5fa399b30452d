package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/scenarios/testbin"
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
		{"two daemons", []string{"matrix", "-list", "-catalog", catalog, "-daemon", "myfs", "-daemon", "/bin/true", "-run", "^daemon/.*/mount$"},
			[]string{"daemon/myfs/mount ", "daemon/true/mount "}, []string{"pt/integrity"}},
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
	// Several daemons run in one boot, so what describes one daemon
	// cannot be given, nor two of one name, nor several to a shell.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"matrix", "-list", "-daemon", "/bin/true", "-daemon", "/bin/false", "-daemon-args", "{mnt}"},
			"-daemon-args describes one daemon, and -daemon names 2"},
		{[]string{"matrix", "-list", "-daemon", "/bin/true", "-daemon", "/usr/bin/true"},
			"-daemon /bin/true and -daemon /usr/bin/true are both called true"},
		{[]string{"bench", "-list", "-catalog", catalog, "-daemon", "myfs", "-daemon", "myfs"},
			"are both called myfs"},
		{[]string{"shell", "-daemon", "/bin/true", "-daemon", "/bin/false", "debian:6.1/cloud"},
			"a shell mounts one daemon"},
		{[]string{"shell", "-daemon", "clients", "debian:6.1/cloud"},
			"a shell mounts one daemon"},
	} {
		code, _, stderr := fusematrixStreams(t, append(tc.args, "-qemu", "/nonexistent/qemu")...)
		assert.Check(t, is.Equal(code, 2), "%v: %s", tc.args, stderr)
		assert.Check(t, is.Contains(stderr, tc.want), "%v", tc.args)
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

// Issue 21, row 1: `matrix -daemon BIN -list` runs nothing BIN names. A
// daemon linked with -Wl,--dynamic-linker=/var/tmp/…/evil used to have
// evil run on the host (twice: --version, then the library trace), as
// whoever runs fusematrix: root in CI.
func TestDaemonLoaderNeverRuns(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skipf("gcc is not installed: %v", err)
	}
	// Not under /tmp: fusematrix once refused a loader there before
	// running it, and so never showed the hole.
	dir, err := os.MkdirTemp("/var/tmp", "fusematrix-evil-")
	if err != nil {
		t.Skipf("no directory outside /tmp: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	marker := filepath.Join(dir, "evil-ran")
	gcc := func(out, src string, flags ...string) string {
		c := filepath.Join(dir, out+".c")
		assert.NilError(t, os.WriteFile(c, []byte(src), 0o644))
		msg, err := exec.Command("gcc", append([]string{"-o", filepath.Join(dir, out), c}, flags...)...).CombinedOutput()
		assert.NilError(t, err, "%s", msg)
		return filepath.Join(dir, out)
	}
	evil := gcc("evil", `#include <stdio.h>
int main(void) { FILE *f = fopen(MARKER, "w"); if (f) { fputs("ran\n", f); fclose(f); } return 0; }
`, fmt.Sprintf("-DMARKER=%q", marker))
	daemon := gcc("daemon", "int main(void) { return 0; }", "-Wl,--dynamic-linker="+evil)

	code, _, stderr := fusematrixStreams(t, "matrix", "-daemon", daemon, "-list", "-qemu", "/nonexistent/qemu")
	_, statErr := os.Stat(marker)
	assert.Check(t, errors.Is(statErr, fs.ErrNotExist), "the loader the daemon names ran on the host: %v", statErr)
	assert.Check(t, is.Equal(code, 2), stderr)
	assert.Check(t, is.Contains(stderr, daemon+": its dynamic loader "+evil+" (PT_INTERP) is none of the standard x86-64 loaders"))

	// The marker is what evil leaves when it runs.
	assert.NilError(t, exec.Command(evil).Run())
	_, statErr = os.Stat(marker)
	assert.Check(t, statErr, "evil leaves no marker: the test proves nothing")
}

// A Debian package whose run-time closure cannot be satisfied is exit 2
// before anything boots, naming the clause and why, and so is -daemon-bin
// without a package; the archive is a fabricated one (fakemirror), signed
// with its own key.
func TestDaemonDebianBrokenClosure(t *testing.T) {
	mirrorBin := testbin.Go(t, "github.com/fusematrix/fusematrix/kernels/internal/fakearchive/fakemirror")
	keyring := filepath.Join(t.TempDir(), "keyring.gpg")
	srv := exec.Command(mirrorBin, keyring)
	stdin, err := srv.StdinPipe()
	assert.NilError(t, err)
	stdout, err := srv.StdoutPipe()
	assert.NilError(t, err)
	assert.NilError(t, srv.Start())
	t.Cleanup(func() {
		stdin.Close()
		srv.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	assert.NilError(t, err)
	mirror := strings.TrimSpace(line)

	t.Setenv("FUSEMATRIX_KEYRING", keyring)
	t.Setenv("FUSEMATRIX_CACHE", t.TempDir())
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"broken closure", []string{"-daemon", "debian:brokenfs@sid", "-daemon-args", "{backing} {mnt}"},
			"fusematrix matrix: -daemon debian:brokenfs@sid: run-time closure cannot be satisfied in sid: brokenfs 2 needs libgone1 (>= 2) | libgone2: sid has libgone1 1 only; no package libgone2 in sid\n"},
		{"unknown version", []string{"-daemon", "debian:brokenfs=3@sid"}, "fusematrix matrix: -daemon debian:brokenfs=3@sid: sid has brokenfs 2, not 3\n"},
		{"unpublished suite", []string{"-daemon", "debian:brokenfs@forky"}, "the configured Debian mirror does not publish the suite forky"},
		{"not a package name", []string{"-daemon", "debian:Broken_FS"}, `package "Broken_FS": not a Debian package name`},
		{"program without a package", []string{"-daemon", "/bin/true", "-daemon-bin", "/usr/bin/true"}, "-daemon /bin/true is no debian:PACKAGE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"matrix", "-q", "-list", "-mirror", mirror}, tc.args...)
			code, out := fusematrix(t, args...)
			assert.Check(t, is.Equal(code, 2), out)
			assert.Check(t, is.Contains(out, tc.want))
			assert.Check(t, !strings.Contains(out, "pt/integrity"), "listed checks: %s", out)
		})
	}
}
