package kernels

import (
	"context"
	"os"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

func TestCorruptedEntry(t *testing.T) {
	ctx := context.Background()
	srv := testArchive(t)
	opts, logs := testOptions(t, srv)
	k, err := Resolve(ctx, "debian:6.1", opts)
	assert.NilError(t, err)
	flip := func(name string) {
		b, err := os.ReadFile(name)
		assert.NilError(t, err)
		b[len(b)/2] ^= 1
		assert.NilError(t, os.WriteFile(name, b, 0o644))
	}
	replaced := func() int {
		n := 0
		for _, l := range *logs {
			if strings.HasPrefix(l, "warning: replacing damaged cache entry") {
				n++
			}
		}
		return n
	}

	// Same size, other bytes: the image is hashed on every use.
	flip(k.Image)
	k, err = Resolve(ctx, "debian:6.1", opts)
	assert.NilError(t, err)
	assert.Equal(t, readFile(t, k.Image), "image 6.1.0-56-cloud-amd64")
	assert.Equal(t, len(debRequests(srv)), 2)
	assert.Equal(t, replaced(), 1)

	// A module is hashed by Fetch only.
	load, _, err := k.Modules("fuse")
	assert.NilError(t, err)
	flip(load[0].Path)
	_, err = Resolve(ctx, "debian:6.1", opts)
	assert.NilError(t, err)
	assert.Equal(t, len(debRequests(srv)), 2, "Resolve hashes modules after all")
	_, err = Fetch(ctx, "debian:6.1", opts)
	assert.NilError(t, err)
	assert.Equal(t, len(debRequests(srv)), 3)
	assert.Equal(t, replaced(), 2)
	assert.DeepEqual(t, readFile(t, load[0].Path), string(moduleBytes(guestModuleTree[0])))
}
