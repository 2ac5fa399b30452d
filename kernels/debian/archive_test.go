package debian

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fusematrix/fusematrix/kernels/internal/fakearchive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

var testPackages = []fakearchive.Package{
	{Name: "linux-image-6.1.0-50-cloud-amd64", Version: "6.1.176-1", Deb: []byte("deb one")},
	{Name: "vim", Version: "2:9.0-1", Deb: []byte("deb two")},
	{Name: "linux-image-cloud-amd64", Version: "6.1.176-1", Depends: "linux-image-6.1.0-50-cloud-amd64 (= 6.1.176-1)", Deb: []byte("deb three")},
}

func testArchive(t *testing.T, srv *fakearchive.Server, logs *[]string) *Archive {
	m, err := OverrideMirrors(srv.Mirror(), "")
	assert.NilError(t, err)
	return &Archive{
		Mirrors:  m,
		CacheDir: t.TempDir(),
		Keep:     func(name string) bool { return strings.HasPrefix(name, "linux-") },
		Logf: func(format string, args ...any) {
			if logs != nil {
				*logs = append(*logs, fmt.Sprintf(format, args...))
			}
		},
	}
}

func names(idx *Index) []string {
	var out []string
	for _, p := range idx.Packages {
		out = append(out, p.Name+" "+p.Version+" "+p.Suite)
	}
	return out
}

func TestIndexFetchAndCache(t *testing.T) {
	ctx := context.Background()
	srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", Packages: testPackages})
	var logs []string
	a := testArchive(t, srv, &logs)
	want := []string{"linux-image-6.1.0-50-cloud-amd64 6.1.176-1 bookworm", "linux-image-cloud-amd64 6.1.176-1 bookworm"}

	idx, err := a.Index(ctx, "bookworm")
	assert.NilError(t, err)
	assert.DeepEqual(t, names(idx), want)
	assert.Equal(t, idx.Packages[0].URI, srv.Mirror())
	assert.Equal(t, idx.Packages[0].Filename, "pool/main/linux-image-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb")
	assert.DeepEqual(t, srv.Requests(), []string{"/debian/dists/bookworm/InRelease", "/debian/dists/bookworm/main/binary-amd64/Packages.xz"})

	t.Run("fresh cache needs no request", func(t *testing.T) {
		before := len(srv.Requests())
		idx, err := a.Index(ctx, "bookworm")
		assert.NilError(t, err)
		assert.DeepEqual(t, names(idx), want)
		assert.Equal(t, idx.Packages[0].URI, srv.Mirror())
		assert.Equal(t, len(srv.Requests()), before)
	})

	cache := filepath.Join(a.CacheDir, "bookworm.json")
	age := func() {
		old := time.Now().Add(-IndexMaxAge - time.Minute)
		assert.NilError(t, os.Chtimes(cache, old, old))
	}
	t.Run("old cache is refreshed", func(t *testing.T) {
		age()
		before := len(srv.Requests())
		_, err := a.Index(ctx, "bookworm")
		assert.NilError(t, err)
		assert.Equal(t, len(srv.Requests()), before+2)
		st, err := os.Stat(cache)
		assert.NilError(t, err)
		assert.Check(t, time.Since(st.ModTime()) < time.Hour)
	})

	t.Run("old cache is used when the refresh fails", func(t *testing.T) {
		age()
		srv.Close()
		logs = nil
		idx, err := a.Index(ctx, "bookworm")
		assert.NilError(t, err)
		assert.DeepEqual(t, names(idx), want)
		assert.Assert(t, is.Len(logs, 1))
		assert.Check(t, is.Contains(logs[0], "warning: using the bookworm index cached"))
	})

	t.Run("no cache and no archive", func(t *testing.T) {
		a.CacheDir = t.TempDir()
		_, err := a.Index(ctx, "bookworm")
		assert.ErrorContains(t, err, "fetch bookworm index from "+srv.Mirror()+":")
		assert.Check(t, IsNetworkError(err), err)
	})
}

func TestIndexCacheBelongsToItsMirror(t *testing.T) {
	ctx := context.Background()
	one := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", Packages: testPackages[:1]})
	two := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", Packages: testPackages[2:]})
	a := testArchive(t, one, nil)
	_, err := a.Index(ctx, "bookworm")
	assert.NilError(t, err)
	a.Mirrors.Default = two.Mirror()
	idx, err := a.Index(ctx, "bookworm")
	assert.NilError(t, err)
	assert.DeepEqual(t, names(idx), []string{"linux-image-cloud-amd64 6.1.176-1 bookworm"})
	assert.Equal(t, len(two.Requests()), 2)
}

func TestIndexAbsentSuite(t *testing.T) {
	ctx := context.Background()
	srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", Packages: testPackages})
	a := testArchive(t, srv, nil)
	idx, err := a.Index(ctx, "bookworm-backports")
	assert.NilError(t, err)
	assert.Check(t, idx.Absent)
	assert.Equal(t, len(srv.Requests()), 1)
	// Absence is cached too, so warm runs stay off the network.
	idx, err = a.Index(ctx, "bookworm-backports")
	assert.NilError(t, err)
	assert.Check(t, idx.Absent)
	assert.Equal(t, len(srv.Requests()), 1)

	// Another release is looked for where bookworm is, and may be absent.
	a.Mirrors = Mirrors{Suites: map[string]string{"bookworm": srv.Mirror()}}
	idx, err = a.Index(ctx, "trixie")
	assert.NilError(t, err)
	assert.Check(t, idx.Absent)
	assert.DeepEqual(t, srv.Requests()[1:], []string{"/debian/dists/trixie/InRelease"})
}

func TestIndexRequiredSuiteMissing(t *testing.T) {
	srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", Packages: testPackages})
	a := testArchive(t, srv, nil)
	a.Mirrors = Mirrors{Suites: map[string]string{"bookworm": srv.Mirror(), "bookworm-updates": srv.Mirror()}}
	_, err := a.Index(context.Background(), "bookworm-updates")
	assert.ErrorContains(t, err, "fetch bookworm-updates index from "+srv.Mirror()+": GET "+srv.Mirror()+"/dists/bookworm-updates/InRelease: 404 Not Found")
	assert.Check(t, IsNetworkError(err))
}

func TestIndexGzipFallback(t *testing.T) {
	srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", Packages: testPackages, Compression: ".gz"})
	a := testArchive(t, srv, nil)
	idx, err := a.Index(context.Background(), "bookworm")
	assert.NilError(t, err)
	assert.Equal(t, len(idx.Packages), 2)
	assert.Equal(t, srv.Requests()[1], "/debian/dists/bookworm/main/binary-amd64/Packages.gz")
}

func TestIndexChecksumMismatch(t *testing.T) {
	srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", Packages: testPackages})
	other := fakearchive.Compress([]byte("Package: linux-image-evil\nVersion: 1\n"), ".xz")
	srv.Replace("/debian/dists/bookworm/main/binary-amd64/Packages.xz", other)
	a := testArchive(t, srv, nil)
	_, err := a.Index(context.Background(), "bookworm")
	var ce *ChecksumError
	assert.Assert(t, errors.As(err, &ce), "%v", err)
	assert.ErrorContains(t, err, "Packages.xz of bookworm")
	assert.Check(t, !IsNetworkError(err))
	_, err = os.Stat(filepath.Join(a.CacheDir, "bookworm.json"))
	assert.Check(t, errors.Is(err, os.ErrNotExist), "a bad index was cached")
}

func TestDownload(t *testing.T) {
	ctx := context.Background()
	srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm-security", Packages: testPackages})
	a := testArchive(t, srv, nil)
	idx, err := a.Index(ctx, "bookworm-security")
	assert.NilError(t, err)
	p := idx.Packages[0]
	assert.Equal(t, p.URI, srv.URL+"/debian-security")

	var buf bytes.Buffer
	assert.NilError(t, a.Download(ctx, p, &buf))
	assert.Equal(t, buf.String(), "deb one")

	path := fakearchive.PoolPath("bookworm-security", testPackages[0])
	for _, tc := range []struct{ name, body, err string }{
		{"same size, other bytes", "deb One", "SHA256 mismatch: expected " + p.SHA256 + ", got "},
		{"longer", "deb one and more", "size mismatch: expected 7 bytes, got 8"},
		{"shorter", "deb", "size mismatch: expected 7 bytes, got 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Replace(path, []byte(tc.body))
			err := a.Download(ctx, p, &bytes.Buffer{})
			assert.ErrorContains(t, err, tc.err)
			assert.ErrorContains(t, err, "linux-image-6.1.0-50-cloud-amd64 6.1.176-1")
		})
	}
	t.Run("cut short", func(t *testing.T) {
		cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "7")
			w.Write([]byte("deb"))
		}))
		defer cut.Close()
		q := p
		q.URI = cut.URL
		err := a.Download(ctx, q, &bytes.Buffer{})
		assert.ErrorContains(t, err, "unexpected EOF")
		assert.Check(t, IsNetworkError(err), err)
	})
	t.Run("missing", func(t *testing.T) {
		q := p
		q.Filename = "pool/main/nothing.deb"
		err := a.Download(ctx, q, &bytes.Buffer{})
		assert.ErrorContains(t, err, "404")
		assert.Check(t, IsNetworkError(err))
	})
}

// bomb is a Packages.xz of about 20 KB holding a 128 MiB line, made once
// per test binary (it takes about 2 s).
var bomb = sync.OnceValue(func() []byte {
	return fakearchive.Bomb("Package: linux-image-bomb\nDescription: ", 'A', 128<<20, "\n")
})

// allocated returns the bytes f allocated on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// An xz bomb that does not match InRelease is refused before it is
// decompressed; one that matches (a signed index cannot be forged, but
// a mirror can break) stops at MaxLine. Either way the heap stays far
// below what the line would take: it took 662 MiB when the index was
// parsed as it streamed in, before its hash was checked.
func TestIndexBomb(t *testing.T) {
	const bound = 64 << 20
	t.Run("wrong hash", func(t *testing.T) {
		// InRelease lists the bomb; the archive serves it with its last
		// byte (in the xz footer) changed: same size, another hash, and
		// nothing wrong until the end of the stream.
		srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", PackagesFile: bomb()})
		bad := bytes.Clone(bomb())
		bad[len(bad)-1] ^= 0xff
		srv.Replace("/debian/dists/bookworm/main/binary-amd64/Packages.xz", bad)
		a := testArchive(t, srv, nil)
		var err error
		n := allocated(func() { _, err = a.Index(context.Background(), "bookworm") })
		var ce *ChecksumError
		assert.Assert(t, errors.As(err, &ce), "%v", err)
		assert.ErrorContains(t, err, "Packages.xz of bookworm: SHA256 mismatch")
		assert.Check(t, n < bound, "allocated %d MiB", n>>20)
	})
	t.Run("right hash", func(t *testing.T) {
		srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", PackagesFile: bomb()})
		a := testArchive(t, srv, nil)
		var err error
		n := allocated(func() { _, err = a.Index(context.Background(), "bookworm") })
		assert.Assert(t, errors.Is(err, ErrLineTooLong), "%v", err)
		assert.ErrorContains(t, err, "parse Packages.xz of bookworm: line 2: line longer than")
		assert.Check(t, n < bound, "allocated %d MiB", n>>20)
	})
	t.Run("decompressed size", func(t *testing.T) {
		old := MaxPackagesData
		MaxPackagesData = 16 << 20
		t.Cleanup(func() { MaxPackagesData = old })
		srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", PackagesFile: fakearchive.Bomb("", '\n', 32<<20, "")})
		a := testArchive(t, srv, nil)
		_, err := a.Index(context.Background(), "bookworm")
		var le *LimitError
		assert.Assert(t, errors.As(err, &le), "%v", err)
		assert.ErrorContains(t, err, "Packages.xz of bookworm decompressed: 16777217 bytes or more, over the limit of 16777216 bytes")
	})
}

// Every read from the archive is bounded: InRelease by MaxInRelease
// (it had no limit), the compressed index by MaxPackagesIndex before it
// is requested, a .deb by MaxPackageFile.
func TestReadLimits(t *testing.T) {
	ctx := context.Background()
	t.Run("InRelease", func(t *testing.T) {
		srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", Packages: testPackages})
		srv.Replace("/debian/dists/bookworm/InRelease", bytes.Repeat([]byte("Origin: Debian\n"), 2<<20))
		a := testArchive(t, srv, nil)
		_, err := a.Index(ctx, "bookworm")
		var le *LimitError
		assert.Assert(t, errors.As(err, &le), "%v", err)
		assert.ErrorContains(t, err, "InRelease of bookworm: 16777217 bytes or more, over the limit of 16777216 bytes")
	})
	t.Run("Packages", func(t *testing.T) {
		old := MaxPackagesIndex
		MaxPackagesIndex = 100
		t.Cleanup(func() { MaxPackagesIndex = old })
		srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", Packages: testPackages})
		a := testArchive(t, srv, nil)
		_, err := a.Index(ctx, "bookworm")
		var le *LimitError
		assert.Assert(t, errors.As(err, &le), "%v", err)
		assert.ErrorContains(t, err, "Packages.xz of bookworm (size listed in InRelease)")
		assert.Check(t, !slices.Contains(srv.Requests(), "/debian/dists/bookworm/main/binary-amd64/Packages.xz"), srv.Requests())
	})
	t.Run("deb", func(t *testing.T) {
		srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", Packages: testPackages})
		a := testArchive(t, srv, nil)
		idx, err := a.Index(ctx, "bookworm")
		assert.NilError(t, err)
		p := idx.Packages[0]
		p.Size = MaxPackageFile + 1
		err = a.DownloadFile(ctx, p, filepath.Join(t.TempDir(), "p.deb"))
		var le *LimitError
		assert.Assert(t, errors.As(err, &le), "%v", err)
		err = a.Download(ctx, p, io.Discard)
		assert.Assert(t, errors.As(err, &le), "%v", err)
		assert.Equal(t, len(srv.Requests()), 2) // InRelease and Packages.xz only
	})
}

// An old signed InRelease replayed by a mirror, or one suite's answered
// for another, is refused: Valid-Until is enforced, on the fetched file
// and on the cached index, and Suite or Codename must name the suite.
func TestReplay(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	t.Run("expired", func(t *testing.T) {
		until := now.Add(-time.Hour)
		srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm-security", Codename: "bookworm-security", ReleaseSuite: "oldstable-security", ValidUntil: until, Packages: testPackages})
		a := testArchive(t, srv, nil)
		a.Mirrors.Security = srv.Mirror() + "-security"
		_, err := a.Index(ctx, "bookworm-security")
		assert.ErrorContains(t, err, "InRelease of bookworm-security has expired: Valid-Until "+until.UTC().Format(time.RFC1123)+", now ")
		assert.Check(t, !IsNetworkError(err))
	})
	t.Run("expires while cached", func(t *testing.T) {
		until := now.Add(time.Hour)
		srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", ValidUntil: until, Packages: testPackages})
		a := testArchive(t, srv, nil)
		a.MaxAge = 100 * time.Hour
		_, err := a.Index(ctx, "bookworm")
		assert.NilError(t, err)
		_, err = a.Index(ctx, "bookworm")
		assert.NilError(t, err)
		assert.Equal(t, len(srv.Requests()), 2, "the cached index was not used")
		a.now = func() time.Time { return until.Add(time.Minute) }
		_, err = a.Index(ctx, "bookworm")
		assert.ErrorContains(t, err, "has expired: Valid-Until "+until.UTC().Format(time.RFC1123))
		assert.Equal(t, len(srv.Requests()), 3, "the expired cached index was used")
	})
	t.Run("another suite", func(t *testing.T) {
		srv := fakearchive.Serve(t, fakearchive.Suite{Name: "trixie", ReleaseSuite: "oldstable", Codename: "bookworm", Packages: testPackages})
		a := testArchive(t, srv, nil)
		_, err := a.Index(ctx, "trixie")
		assert.ErrorContains(t, err, `InRelease is for suite "oldstable" (codename "bookworm"), not "trixie" as asked`)
	})
	t.Run("codename", func(t *testing.T) {
		srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", ReleaseSuite: "oldstable", Codename: "bookworm", ValidUntil: now.Add(time.Hour), Packages: testPackages})
		a := testArchive(t, srv, nil)
		idx, err := a.Index(ctx, "bookworm")
		assert.NilError(t, err)
		assert.Equal(t, len(idx.Packages), 2)
	})
}

func TestParseInRelease(t *testing.T) {
	r, err := ParseInRelease([]byte("Suite: oldstable-security\nCodename: bookworm-security\nDate: Wed, 02 Dec 2026 23:13:43 UTC\nValid-Until: Wed, 09 Dec 2026 23:13:43 UTC\nSHA256:\n 00 1 x\n"))
	assert.NilError(t, err)
	assert.Equal(t, r.Suite, "oldstable-security")
	assert.Equal(t, r.Codename, "bookworm-security")
	assert.Check(t, r.ValidUntil.Equal(time.Date(2026, 12, 9, 23, 13, 43, 0, time.UTC)), r.ValidUntil)
	assert.NilError(t, r.Check("bookworm-security", time.Date(2026, 12, 9, 23, 0, 0, 0, time.UTC)))
	assert.ErrorContains(t, r.Check("bookworm-security", time.Date(2026, 12, 10, 0, 0, 0, 0, time.UTC)),
		"Valid-Until Wed, 09 Dec 2026 23:13:43 UTC, now Thu, 10 Dec 2026 00:00:00 UTC")
	assert.ErrorContains(t, r.Check("bookworm", time.Time{}), `not "bookworm" as asked`)
	_, err = ParseInRelease([]byte("Suite: a\nValid-Until: tomorrow\nSHA256:\n 00 1 x\n"))
	assert.ErrorContains(t, err, "Valid-Until")
}

// apt's Acquire::Check-Valid-Until "false" turns the Valid-Until check off
// (IgnoreValidUntil), not the suite check.
func TestIgnoreValidUntil(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "apt.conf.d", "99mirror")
	assert.NilError(t, os.MkdirAll(filepath.Dir(conf), 0o755))
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"Acquire::Check-Valid-Until \"false\";\nAcquire::Check-Date \"false\";\n", true},
		{"  acquire::check-valid-until no;\n", true},
		{"Acquire::Check-Valid-Until \"true\";\n", false},
		{"// Acquire::Check-Valid-Until \"false\";\n", false},
	} {
		assert.NilError(t, os.WriteFile(conf, []byte(tc.text), 0o644))
		got, file := AptIgnoresValidUntil(dir)
		assert.Check(t, got == tc.want, "%q", tc.text)
		if tc.want {
			assert.Check(t, file == conf, file)
		}
	}

	srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", ValidUntil: time.Now().Add(-time.Hour), Packages: testPackages},
		fakearchive.Suite{Name: "trixie", ReleaseSuite: "bookworm", Packages: testPackages})
	a := testArchive(t, srv, nil)
	a.IgnoreValidUntil = true
	_, err := a.Index(context.Background(), "bookworm")
	assert.NilError(t, err)
	_, err = a.Index(context.Background(), "trixie")
	assert.ErrorContains(t, err, `not "trixie" as asked`)
}
