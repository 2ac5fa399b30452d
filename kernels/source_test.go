package kernels

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/kernels/internal/fakearchive"
)

// sourceTarball is a linux-source tarball holding a tree with a Makefile
// and some bulk, so that a download can be cut half way.
func sourceTarball(t *testing.T, top string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range map[string][]byte{
		top + "/Makefile":     []byte("VERSION = 6\nPATCHLEVEL = 12\n"),
		top + "/fs/fuse/bulk": bytes.Repeat([]byte("fuse passthrough "), 4096),
	} {
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(body)
		assert.NilError(t, err)
	}
	assert.NilError(t, tw.Close())
	return fakearchive.Compress(buf.Bytes(), ".xz")
}

// TestDebianSource fetches a source package whose download breaks half
// way: it is resumed, unpacked into the cache once, and the download is
// gone afterwards.
func TestDebianSource(t *testing.T) {
	withSuites(t, "trixie")
	pkg := fakearchive.Package{Name: "linux-source-6.12", Version: "6.12.117-1",
		Deb: fakearchive.Deb("", fakearchive.Entry{Name: "usr/src/linux-source-6.12.tar.xz", Body: sourceTarball(t, "linux-source-6.12")})}
	srv := fakearchive.Serve(t, fakearchive.Suite{Name: "trixie", Packages: []fakearchive.Package{pkg}})
	opts, logs := testOptions(t, srv)
	path := fakearchive.PoolPath("trixie", pkg)
	srv.Cut(path, int64(len(pkg.Deb)/2))

	tree, err := DebianSource(context.Background(), "6.12", opts)
	assert.NilError(t, err, "%v", *logs)
	data, err := os.ReadFile(filepath.Join(tree, "Makefile"))
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(data), "PATCHLEVEL = 12"))

	var served []fakearchive.Served
	for _, s := range srv.Served() {
		if s.Path == path {
			served = append(served, s)
		}
	}
	assert.Assert(t, is.Len(served, 2), "%+v", served)
	assert.Check(t, is.Equal(served[1].Range, "bytes="+strconv.Itoa(len(pkg.Deb)/2)+"-"), "the second request resumes")
	assert.Check(t, is.Equal(served[0].Bytes+served[1].Bytes, int64(len(pkg.Deb))), "bytes sent over both requests")
	leftovers, _ := filepath.Glob(filepath.Join(opts.CacheDir, SourceDir, downloadPrefix+"*"))
	assert.Check(t, is.Len(leftovers, 0), "the download stays after the tree is in place")

	again, err := DebianSource(context.Background(), "6.12", opts)
	assert.NilError(t, err)
	assert.Equal(t, again, tree)
	n := 0
	for _, s := range srv.Served() {
		if strings.HasSuffix(s.Path, ".deb") {
			n++
		}
	}
	assert.Check(t, is.Equal(n, 2), "a cached tree was downloaded again")
}
