package kernels

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/fusematrix/fusematrix/kernels/debian"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
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
	assert.NilError(t, doc.WriteJSON(&out))
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
	assert.NilError(t, doc.WriteJSON(&out))
	var slugs List
	assert.NilError(t, json.Unmarshal(out.Bytes(), &slugs))
	var got3 []string
	for _, k := range slugs.Kernels {
		got3 = append(got3, k.Slug)
	}
	assert.DeepEqual(t, got3, []string{"debian-6.1-cloud", "debian-6.1-cloud-2", "debian-6.1-cloud-3"})

	out.Reset()
	err := (&List{Kernels: []ListItem{{Kernel: "debian:6.1"}, {Kernel: "debian:6.1"}}}).WriteJSON(&out)
	assert.ErrorContains(t, err, `kernel "debian:6.1" listed twice`)
	assert.Equal(t, out.Len(), 0)
}
