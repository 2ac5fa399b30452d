package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/fusematrix/fusematrix/kernels"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// fusematrixStreams runs the command and returns its exit code, stdout
// and stderr apart: what a program reads must be on stdout alone.
func fusematrixStreams(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	exe, err := os.Executable()
	assert.NilError(t, err)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "FUSEMATRIX_TEST_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	assert.NilError(t, err)
	return 0, stdout.String(), stderr.String()
}

// kernels list -format json through the command, on kernels that need no
// mirror (an image file, a source tree): JSON alone on stdout, and a
// kernel that does not resolve fails the whole list with nothing on
// stdout, since a job matrix built from a list with a hole would pass
// without the missing kernel.
func TestKernelsListJSON(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	image := write("bzImage", "not really a kernel")
	tree := filepath.Join(dir, "linux")
	write("linux/Makefile", "VERSION = 6\nPATCHLEVEL = 13\nSUBLEVEL = 2\nEXTRAVERSION = -rc1\n")
	write("linux/Kconfig", "")
	for _, d := range []string{"scripts/kconfig", "arch/x86"} {
		assert.NilError(t, os.MkdirAll(filepath.Join(tree, d), 0o755))
	}
	catalog := write("local.conf", "img = "+image+"\n[local]\nimg\nsrc:"+tree+",base=tinyconfig\n")
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "empty"))
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	t.Setenv("FUSEMATRIX_CATALOG", "")

	list := func(t *testing.T) kernels.List {
		t.Helper()
		code, stdout, stderr := fusematrixStreams(t, "kernels", "list", "-q", "-format", "json", "-catalog", catalog, "-matrix", "local")
		assert.Equal(t, code, 0, stderr)
		assert.Equal(t, stderr, "")
		var doc kernels.List
		dec := json.NewDecoder(bytes.NewReader([]byte(stdout)))
		dec.DisallowUnknownFields()
		assert.NilError(t, dec.Decode(&doc), stdout)
		return doc
	}
	doc := list(t)
	assert.Equal(t, doc.Format, 1)
	assert.Equal(t, doc.Source, "matrix local from "+catalog)
	assert.Assert(t, is.Len(doc.Kernels, 2))
	file, src := doc.Kernels[0], doc.Kernels[1]
	assert.DeepEqual(t, file, kernels.ListItem{
		Kernel: "img", Selector: image, Slug: "img", Kind: "file", Image: image,
		Cached: true, DiskBytes: int64(len("not really a kernel")), CacheKey: file.CacheKey,
	})
	assert.Check(t, is.Regexp(`^file-[0-9a-f]{16}$`, file.CacheKey))
	assert.Check(t, is.Equal(src.Kind, "source"))
	assert.Check(t, is.Equal(src.Version, "6.13.2-rc1"))
	assert.Check(t, is.Equal(src.Src, tree))
	assert.Check(t, is.Equal(src.Base, "tinyconfig"))
	assert.Check(t, !src.Cached)
	assert.Check(t, is.Regexp(`^src-[A-Za-z0-9._-]+$`, src.CacheKey))
	assert.Check(t, is.Regexp(`^src-[A-Za-z0-9._-]+-base-tinyconfig$`, src.Slug))

	// The keys are stable, and a file's changes with the file.
	again := list(t)
	assert.Check(t, is.Equal(again.Kernels[0].CacheKey, file.CacheKey))
	assert.Check(t, is.Equal(again.Kernels[1].CacheKey, src.CacheKey))
	write("bzImage", "another kernel")
	assert.NilError(t, os.Chtimes(image, time.Time{}, time.Now().Add(time.Hour)))
	assert.Check(t, list(t).Kernels[0].CacheKey != file.CacheKey)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // on stderr
	}{
		{"a kernel does not resolve", []string{"-format", "json", image, filepath.Join(dir, "missing", "bzImage")}, 1, "fusematrix kernels list: "},
		{"unknown format", []string{"-format", "yaml", image}, 2, `-format "yaml": want table or json`},
		{"history is a table", []string{"-history", "-format", "json", "debian:6.1/cloud"}, 2, "-history prints a table only"},
		{"the same kernel twice", []string{"-format", "json", image, image}, 1, "listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := fusematrixStreams(t, append([]string{"kernels", "list", "-q"}, tc.args...)...)
			assert.Equal(t, code, tc.code, stderr)
			assert.Equal(t, stdout, "", "nothing half on stdout")
			assert.Check(t, is.Contains(stderr, tc.want))
		})
	}
}
