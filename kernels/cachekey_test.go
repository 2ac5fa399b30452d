package kernels

import (
	"context"
	"strings"
	"testing"

	"github.com/fusematrix/fusematrix/kernels/debian"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A CI cache keyed by CacheKey must be restored exactly when it holds the
// packages a kernel resolves to: the same key for the same packages, on
// any machine and in any order found, another key as soon as one part
// changes.
func TestCacheKey(t *testing.T) {
	srv := releasesArchive(t)
	ctx := context.Background()
	keys := map[string]string{}
	for _, name := range []string{"debian:6.1/cloud@bookworm", "debian:6.12/cloud@bookworm", "debian:6.12/cloud@trixie", "debian:7.3/cloud"} {
		// Two lookups with separate caches stand for two machines.
		var got [2]string
		for i := range got {
			opts, _ := testOptions(t, srv)
			res, err := Lookup(ctx, name, opts)
			assert.NilError(t, err)
			got[i] = res.CacheKey()
		}
		assert.Equal(t, got[0], got[1], name)
		assert.Check(t, is.Regexp(`^[A-Za-z0-9._-]+_[0-9a-f]{16}$`, got[0]), name)
		for other, key := range keys {
			assert.Check(t, key != got[0], "%s and %s share key %s", name, other, key)
		}
		keys[name] = got[0]
	}
	assert.Check(t, is.Regexp(`^linux-image-6\.12\.117-deb12-cloud-amd64_6\.12\.117-1-deb12u1_[0-9a-f]{16}$`, keys["debian:6.12/cloud@bookworm"]))

	part := func(name, version string) debian.Package { return debian.Package{Name: name, Version: version} }
	image := part("linux-image-7.3.4+deb13-cloud-amd64", "7.3.4-1~bpo13+1")
	base := Resolution{Image: image, Parts: []debian.Package{image, part("linux-binary-7.3.4+deb13-cloud-amd64", "7.3.4-1~bpo13+1")}}
	for _, tc := range []struct {
		name  string
		parts []debian.Package
		same  bool
	}{
		{"parts in another order", []debian.Package{base.Parts[1], base.Parts[0]}, true},
		{"a part's version changed", []debian.Package{image, part("linux-binary-7.3.4+deb13-cloud-amd64", "7.3.4-1~bpo13+2")}, false},
		{"a part added", append(base.Parts[:2:2], part("linux-modules-7.3.4+deb13-cloud-amd64", "7.3.4-1~bpo13+1")), false},
		// "+" and "~" both map to "-" in the readable part; the hash
		// keeps them apart.
		{"differs only in a mapped character", []debian.Package{image, part("linux-binary-7.3.4+deb13-cloud-amd64", "7.3.4-1+bpo13+1")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Resolution{Image: image, Parts: tc.parts}
			assert.Equal(t, r.CacheKey() == base.CacheKey(), tc.same, "%s vs %s", r.CacheKey(), base.CacheKey())
		})
	}

	// An epoch's colon, and a name long enough to be cut, still give a
	// short key of safe characters.
	long := part("linux-image-"+strings.Repeat("x", 600), "1:2.3")
	key := (&Resolution{Image: long, Parts: []debian.Package{long}}).CacheKey()
	assert.Check(t, is.Regexp(`^[A-Za-z0-9._-]+$`, key))
	assert.Check(t, len(key) <= maxReadableKey+17, "%d characters", len(key))
}
