package kernels

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fusematrix/fusematrix/kernels/debian"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"
)

// The JSON list is read by programs (the nightly workflow's job matrix):
// its field names and types are its interface. A Debian kernel's entry
// carries what its resolution says, and its cache key is the
// resolution's.
func TestKernelListShape(t *testing.T) {
	part := func(name, version string) debian.Package {
		return debian.Package{Name: name, Version: version, Suite: "trixie-backports", Size: 1000}
	}
	image := part("linux-image-7.0.13+deb13-cloud-amd64", "7.0.13-1~bpo13+1")
	res := &Resolution{
		Name:    "debian:7.0/cloud",
		Image:   image,
		Parts:   []debian.Package{image, part("linux-binary-7.0.13+deb13-cloud-amd64", "7.0.13-1~bpo13+1")},
		Missing: []string{"linux-modules-7.0.13+deb13-cloud-amd64 (= 7.0.13-1~bpo13+1)"},
		Entry:   filepath.Join(t.TempDir(), "not-cached"),
	}
	doc := List{Format: ListFormat, Source: "matrix wide from built-in kernels/catalog.conf", Kernels: []ListItem{
		debianItem(ListItem{Kernel: "debian:7.0/cloud", Selector: "debian:7.0/cloud"}, res),
		{Kernel: "mine", Selector: "./bzImage", Kind: "file", Image: "/src/bzImage", Cached: true, DiskBytes: 5, CacheKey: "file-0123456789abcdef"},
	}}
	var out bytes.Buffer
	assert.NilError(t, doc.WriteJSON(&out, nil))
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
	doc = List{Kernels: []ListItem{{Kernel: "debian:6.1/cloud"}, {Kernel: "debian:6.1-cloud"}, {Kernel: "debian:6.1+cloud"}}}
	out.Reset()
	assert.NilError(t, doc.WriteJSON(&out, nil))
	var slugs List
	assert.NilError(t, json.Unmarshal(out.Bytes(), &slugs))
	var got3 []string
	for _, k := range slugs.Kernels {
		got3 = append(got3, k.Slug)
	}
	assert.DeepEqual(t, got3, []string{"debian-6.1-cloud", "debian-6.1-cloud-2", "debian-6.1-cloud-3"})

	out.Reset()
	err := (&List{Kernels: []ListItem{{Kernel: "debian:6.1"}, {Kernel: "debian:6.1"}}}).WriteJSON(&out, nil)
	assert.ErrorContains(t, err, `kernel "debian:6.1" listed twice`)
	assert.Equal(t, out.Len(), 0)

	// A kernel that did not resolve: nothing written, every error returned.
	out.Reset()
	err = (&List{Kernels: []ListItem{{Kernel: "a"}, {Kernel: "b"}, {Kernel: "c"}}}).WriteJSON(&out, []error{errors.New("no a"), nil, errors.New("no c")})
	assert.Error(t, err, "no a\nno c")
	assert.Equal(t, out.Len(), 0)
}

// The table gives each kind of kernel its row and a kernel that did not
// resolve a numbered row whose error follows the table, so that long
// errors do not stretch its columns.
func TestListTable(t *testing.T) {
	l := NewList("matrix local")
	l.Kernels = []ListItem{
		{Kernel: "debian:6.12/cloud", Kind: "debian", Package: "linux-image-6.12.57+deb13-cloud-amd64", Version: "6.12.57-1", Suite: "trixie",
			Parts: []ListPart{{}, {}}, DownloadBytes: 21_500_000},
		{Kernel: "cached", Kind: "debian", Package: "linux-image-6.1.0-40-cloud-amd64", Version: "6.1.153-1", Suite: "bookworm", Cached: true, DiskBytes: 90_000_000},
		{Kernel: "img", Kind: "file", Image: "/k/bzImage", DiskBytes: 12_300_000},
		{Kernel: "src:/linux", Kind: "source", Src: "/linux", Version: "6.13.0", Base: "tinyconfig"},
		{Kernel: "debian:6.99/cloud"},
	}
	errs := []error{nil, nil, nil, nil, errors.New(`kernel "debian:6.99/cloud" not found`)}
	var b bytes.Buffer
	assert.NilError(t, l.WriteTable(&b, errs))
	golden.Assert(t, b.String(), "list-table.golden")
}

// ListAll keeps every name's place: a kernel that does not resolve is an
// item of its name and an error at its index.
func TestListAll(t *testing.T) {
	image := filepath.Join(t.TempDir(), "bzImage")
	assert.NilError(t, os.WriteFile(image, []byte("kernel"), 0o644))
	missing := filepath.Join(t.TempDir(), "bzImage")
	l, errs := ListAll(context.Background(), "", []string{missing, image}, Options{})
	assert.Assert(t, is.Len(l.Kernels, 2))
	assert.Assert(t, is.Len(errs, 2))
	assert.Check(t, errs[0] != nil)
	assert.Check(t, is.Nil(errs[1]))
	assert.Check(t, is.DeepEqual(l.Kernels[0], ListItem{Kernel: missing}))
	assert.Check(t, is.Equal(l.Kernels[1].Kind, "file"))

	l, errs = ListAll(context.Background(), "", []string{image}, Options{})
	assert.Check(t, is.Nil(errs), "nil when every kernel resolved")
	assert.Check(t, is.Len(l.Kernels, 1))
}
