package kernels

import (
	"slices"
	"strings"
	"testing"

	"github.com/fusematrix/fusematrix/kernels/debian"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A history is every build of one flavour between two versions, in
// Debian's version order, one selector per build that names exactly it.
func TestHistory(t *testing.T) {
	pkg := func(suite, name, version string) debian.Package {
		return debian.Package{Name: name, Version: version, Suite: suite}
	}
	security := &debian.Index{Suite: "bookworm-security", Packages: []debian.Package{
		pkg("bookworm-security", "linux-image-6.1.0-10-cloud-amd64", "6.1.38-1"),
		pkg("bookworm-security", "linux-image-6.1.0-10-cloud-amd64-unsigned", "6.1.38-1"),
		pkg("bookworm-security", "linux-image-6.12.117+deb12-cloud-amd64-unsigned", "6.12.117-1~deb12u1"),
		pkg("bookworm-security", "linux-image-6.12.117+deb12-cloud-amd64", "6.12.117-1~deb12u1"),
		pkg("bookworm-security", "linux-image-6.12-cloud-amd64", "6.12.117-1~deb12u1"),
		pkg("bookworm-security", "linux-image-6.1.0-10-amd64", "6.1.38-1"),
	}}
	main := &debian.Index{Suite: "bookworm", Packages: []debian.Package{
		pkg("bookworm", "linux-image-6.1.0-9-cloud-amd64", "6.1.27-1"),
		pkg("bookworm", "linux-image-6.1.0-10-cloud-amd64", "6.1.38-1"),
		pkg("bookworm", "linux-image-6.1.0-11-cloud-amd64-unsigned", "6.1.38-2"),
		pkg("bookworm", "linux-image-cloud-amd64", "6.1.38-2"),
	}}
	backports := &debian.Index{Suite: "bookworm-backports", Packages: []debian.Package{
		pkg("bookworm-backports", "linux-image-6.9.7+bpo-cloud-amd64", "6.9.7-1~bpo12+1"),
		pkg("bookworm-backports", "linux-image-6.16.3+deb12-cloud-amd64", "6.16.3-1~bpo12+1"),
	}}
	idxs := []*debian.Index{security, main, backports}
	between := func(from, to string) func(string, string) bool {
		return func(_, v string) bool {
			return debian.CompareVersions(v, from) >= 0 && debian.CompareVersions(v, to) <= 0
		}
	}
	got := history(idxs, "cloud-amd64", between("6.1.27-1", "6.12.117-1~deb12u1"))
	var sels []string
	for _, b := range got {
		sels = append(sels, b.Selector)
	}
	assert.DeepEqual(t, sels, []string{
		"debian:linux-image-6.1.0-9-cloud-amd64=6.1.27-1@bookworm",
		"debian:linux-image-6.1.0-10-cloud-amd64=6.1.38-1@bookworm-security",
		"debian:linux-image-6.1.0-11-cloud-amd64-unsigned=6.1.38-2@bookworm",
		"debian:linux-image-6.9.7+bpo-cloud-amd64=6.9.7-1~bpo12+1@bookworm-backports",
		"debian:linux-image-6.12.117+deb12-cloud-amd64=6.12.117-1~deb12u1@bookworm-security",
	})
	// Each selector resolves to its own build and nothing else.
	for _, b := range got {
		q, err := parseName(b.Selector)
		assert.NilError(t, err)
		c, err := q.choose(q.suitesOf(idxs))
		assert.NilError(t, err, b.Selector)
		assert.Check(t, is.Equal(c.Name+"="+c.Version, b.Package+"="+b.Version))
	}
	assert.Check(t, is.Len(history(idxs, "cloud-amd64", between("6.1.38-2", "6.1.38-2")), 1))
	assert.Check(t, is.Len(history(idxs, "rt-amd64", between("1", "9")), 0))
	assert.Check(t, is.Len(history(idxs, "cloud-amd64", func(image, _ string) bool { return inSeries(image, "6.1") }), 3))
}

// suitesOf keeps the indexes of idxs that q searches.
func (q query) suitesOf(idxs []*debian.Index) []*debian.Index {
	want := q.suites(nil)
	if q.suite == "" {
		return idxs
	}
	var out []*debian.Index
	for _, idx := range idxs {
		if slices.Contains(want, idx.Suite) || strings.HasPrefix(idx.Suite, q.suite+"-") {
			out = append(out, idx)
		}
	}
	return out
}
