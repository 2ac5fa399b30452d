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
	"github.com/fusematrix/fusematrix/kernels/debian"
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

// The JSON list is read by programs (the nightly workflow's job matrix):
// its field names and types are its interface. A Debian kernel's entry
// carries what its resolution says, and its cache key is the
// resolution's.
func TestKernelListShape(t *testing.T) {
	part := func(name, version string) debian.Package {
		return debian.Package{Name: name, Version: version, Suite: "trixie-backports", Size: 1000}
	}
	image := part("linux-image-7.0.13+deb13-cloud-amd64", "7.0.13-1~bpo13+1")
	res := &kernels.Resolution{
		Name:    "debian:7.0/cloud",
		Image:   image,
		Parts:   []debian.Package{image, part("linux-binary-7.0.13+deb13-cloud-amd64", "7.0.13-1~bpo13+1")},
		Missing: []string{"linux-modules-7.0.13+deb13-cloud-amd64 (= 7.0.13-1~bpo13+1)"},
		Entry:   filepath.Join(t.TempDir(), "not-cached"),
	}
	doc := kernelList{Format: kernelListFormat, Source: "matrix wide from built-in kernels/catalog.conf", Kernels: []listedKernel{
		debianListed(listedKernel{Kernel: "debian:7.0/cloud", Selector: "debian:7.0/cloud"}, res),
		{Kernel: "mine", Selector: "./bzImage", Kind: "file", Image: "/src/bzImage", Cached: true, DiskBytes: 5, CacheKey: "file-0123456789abcdef"},
	}}
	var out bytes.Buffer
	assert.NilError(t, writeKernelList(&out, doc))
	want := `{
  "format": 1,
  "source": "matrix wide from built-in kernels/catalog.conf",
  "kernels": [
    {
      "kernel": "debian:7.0/cloud",
      "selector": "debian:7.0/cloud",
      "slug": "debian-7.0-cloud",
      "kind": "debian",
      "package": "linux-image-7.0.13+deb13-cloud-amd64",
      "version": "7.0.13-1~bpo13+1",
      "suite": "trixie-backports",
      "parts": [
        {"package": "linux-image-7.0.13+deb13-cloud-amd64", "version": "7.0.13-1~bpo13+1"},
        {"package": "linux-binary-7.0.13+deb13-cloud-amd64", "version": "7.0.13-1~bpo13+1"}
      ],
      "missing": ["linux-modules-7.0.13+deb13-cloud-amd64 (= 7.0.13-1~bpo13+1)"],
      "cached": false,
      "disk_bytes": 0,
      "download_bytes": 2000,
      "cache_key": "` + res.CacheKey() + `"
    },
    {
      "kernel": "mine",
      "selector": "./bzImage",
      "slug": "mine",
      "kind": "file",
      "package": "",
      "version": "",
      "suite": "",
      "image": "/src/bzImage",
      "cached": true,
      "disk_bytes": 5,
      "download_bytes": 0,
      "cache_key": "file-0123456789abcdef"
    }
  ]
}`
	var got, expected any
	assert.NilError(t, json.Unmarshal(out.Bytes(), &got))
	assert.NilError(t, json.Unmarshal([]byte(want), &expected))
	assert.DeepEqual(t, got, expected)
	assert.Check(t, is.Regexp(`^linux-image-7\.0\.13-deb13-cloud-amd64_7\.0\.13-1-bpo13-1_[0-9a-f]{16}$`, res.CacheKey()))

	// Slugs are unique; names must be.
	doc = kernelList{Kernels: []listedKernel{{Kernel: "debian:6.1/cloud"}, {Kernel: "debian:6.1-cloud"}, {Kernel: "debian:6.1+cloud"}}}
	out.Reset()
	assert.NilError(t, writeKernelList(&out, doc))
	var slugs kernelList
	assert.NilError(t, json.Unmarshal(out.Bytes(), &slugs))
	var got3 []string
	for _, k := range slugs.Kernels {
		got3 = append(got3, k.Slug)
	}
	assert.DeepEqual(t, got3, []string{"debian-6.1-cloud", "debian-6.1-cloud-2", "debian-6.1-cloud-3"})

	out.Reset()
	err := writeKernelList(&out, kernelList{Kernels: []listedKernel{{Kernel: "debian:6.1"}, {Kernel: "debian:6.1"}}})
	assert.ErrorContains(t, err, `kernel "debian:6.1" listed twice`)
	assert.Equal(t, out.Len(), 0)
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

	list := func(t *testing.T) kernelList {
		t.Helper()
		code, stdout, stderr := fusematrixStreams(t, "kernels", "list", "-q", "-format", "json", "-catalog", catalog, "-matrix", "local")
		assert.Equal(t, code, 0, stderr)
		assert.Equal(t, stderr, "")
		var doc kernelList
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
	assert.DeepEqual(t, file, listedKernel{
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
