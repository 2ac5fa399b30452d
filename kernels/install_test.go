package kernels

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fusematrix/fusematrix/kernels/debian"
	"github.com/fusematrix/fusematrix/kernels/internal/fakearchive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// shortBodies ends every .deb body it receives after n bytes, as a
// connection dropping again and again does.
type shortBodies struct{ n int64 }

func (c *shortBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, ".deb") {
		return resp, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(resp.Body, c.n), errReader{io.ErrUnexpectedEOF}), resp.Body}
	return resp, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// debServed returns the server's answers for .deb files.
func debServed(srv *fakearchive.Server) []fakearchive.Served {
	var out []fakearchive.Served
	for _, s := range srv.Served() {
		if strings.HasSuffix(s.Path, ".deb") {
			out = append(out, s)
		}
	}
	return out
}

func TestInterruptedDownload(t *testing.T) {
	pkg := fakearchive.Package{Name: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2"}
	path := fakearchive.PoolPath("bookworm-security", pkg)
	size := int64(len(olderLayoutDeb("6.1.0-56-cloud-amd64", guestModuleTree)))
	downloads := func(opts Options) string {
		return filepath.Join(opts.CacheDir, "kernels", ".dl-linux-image-6.1.0-56-cloud-amd64_6.1.192-2")
	}
	partial := func(opts Options) string {
		return filepath.Join(downloads(opts), "linux-image-6.1.0-56-cloud-amd64_6.1.192-2.deb.partial")
	}

	t.Run("resumed in the same run", func(t *testing.T) {
		srv := testArchive(t)
		opts, logs := testOptions(t, srv)
		srv.Cut(path, size/2)
		k, err := Resolve(context.Background(), "debian:6.1", opts)
		assert.NilError(t, err)
		assert.Equal(t, readFile(t, k.Image), "image 6.1.0-56-cloud-amd64")
		served := debServed(srv)
		assert.Assert(t, is.Len(served, 2))
		assert.Check(t, is.Equal(served[1].Range, fmt.Sprintf("bytes=%d-", size/2)))
		assert.Check(t, is.Equal(served[1].Status, http.StatusPartialContent))
		assert.Check(t, is.Equal(served[0].Bytes+served[1].Bytes, size), "bytes sent over both answers")
		assert.Check(t, slices.ContainsFunc(*logs, func(l string) bool {
			return strings.HasPrefix(l, "resuming linux-image-6.1.0-56-cloud-amd64 6.1.192-2 at ")
		}), *logs)
		assertNoEntries(t, opts.CacheDir, k)
	})

	t.Run("resumed by the next run", func(t *testing.T) {
		srv := testArchive(t)
		opts, _ := testOptions(t, srv)
		broken := opts
		broken.HTTPClient = &http.Client{Transport: &shortBodies{n: size / 8}}
		_, err := Resolve(context.Background(), "debian:6.1", broken)
		assert.Assert(t, debian.IsNetworkError(err), "%v", err)
		assert.ErrorContains(t, err, "unexpected EOF")
		st, err := os.Stat(partial(opts))
		assert.NilError(t, err)
		left := st.Size()
		assert.Equal(t, left, debian.DefaultDownloadAttempts*(size/8))

		before := len(debServed(srv))
		k, err := Resolve(context.Background(), "debian:6.1", opts)
		assert.NilError(t, err)
		assert.Equal(t, readFile(t, k.Image), "image 6.1.0-56-cloud-amd64")
		served := debServed(srv)[before:]
		assert.Assert(t, is.Len(served, 1))
		assert.Check(t, is.Equal(served[0].Range, fmt.Sprintf("bytes=%d-", left)))
		assert.Check(t, is.Equal(served[0].Bytes, size-left))
		assertNoEntries(t, opts.CacheDir, k)
	})

	t.Run("a bad partial is dropped", func(t *testing.T) {
		srv := testArchive(t)
		opts, _ := testOptions(t, srv)
		assert.NilError(t, os.MkdirAll(downloads(opts), 0o755))
		assert.NilError(t, os.WriteFile(partial(opts), []byte("not the start of the package"), 0o644))
		_, err := Resolve(context.Background(), "debian:6.1", opts)
		assert.ErrorContains(t, err, "linux-image-6.1.0-56-cloud-amd64 6.1.192-2: SHA256 mismatch")
		assertNoEntries(t, opts.CacheDir)
		k, err := Resolve(context.Background(), "debian:6.1", opts)
		assert.NilError(t, err)
		assert.Equal(t, readFile(t, k.Image), "image 6.1.0-56-cloud-amd64")
		served := debServed(srv)
		assert.Check(t, is.Equal(served[len(served)-1].Range, ""))
	})
}
