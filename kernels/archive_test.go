package kernels

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fusematrix/fusematrix/kernels/debian"
	"github.com/fusematrix/fusematrix/kernels/internal/fakearchive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestSignature(t *testing.T) {
	ctx := context.Background()
	t.Run("good", func(t *testing.T) {
		srv := testArchive(t)
		opts, _ := testOptions(t, srv)
		_, err := Lookup(ctx, "debian:6.1", opts)
		assert.NilError(t, err)
	})
	t.Run("another key", func(t *testing.T) {
		srv := testArchive(t)
		opts, _ := testOptions(t, srv)
		opts.Keyring = fakearchive.Keyring(t, fakearchive.NewKey("stranger"))
		_, err := Lookup(ctx, "debian:6.1", opts)
		assert.Assert(t, errors.Is(err, debian.ErrBadSignature), "%v", err)
		assert.ErrorContains(t, err, "InRelease signature: bookworm")
	})
	t.Run("tampered", func(t *testing.T) {
		srv := testArchive(t)
		opts, _ := testOptions(t, srv)
		path := "/debian/dists/bookworm/InRelease"
		body := readURL(t, srv.URL+path)
		srv.Replace(path, []byte(strings.Replace(string(body), "Origin: Debian", "Origin: Debiam", 1)))
		_, err := Lookup(ctx, "debian:6.1@bookworm", opts)
		assert.Assert(t, errors.Is(err, debian.ErrBadSignature), "%v", err)
	})
	t.Run("unsigned", func(t *testing.T) {
		srv := testArchive(t)
		opts, _ := testOptions(t, srv)
		path := "/debian/dists/bookworm/InRelease"
		body := string(readURL(t, srv.URL+path))
		start := strings.Index(body, "\n\n") + 2
		end := strings.Index(body, "-----BEGIN PGP SIGNATURE-----")
		srv.Replace(path, []byte(body[start:end]))
		_, err := Lookup(ctx, "debian:6.1@bookworm", opts)
		assert.Assert(t, errors.Is(err, debian.ErrBadSignature), "%v", err)
	})
	t.Run("named keyring missing", func(t *testing.T) {
		srv := testArchive(t)
		opts, _ := testOptions(t, srv)
		opts.Keyring = filepath.Join(t.TempDir(), "missing.gpg")
		opts.InsecureUnsigned = true // no way around a keyring named on purpose
		_, err := Lookup(ctx, "debian:6.1", opts)
		assert.Assert(t, errors.Is(err, ErrNoKeyring), "%v", err)
		assert.ErrorContains(t, err, "the keyring option names "+opts.Keyring)

		opts.Keyring = ""
		t.Setenv("FUSEMATRIX_KEYRING", filepath.Join(t.TempDir(), "missing.gpg"))
		_, err = Resolve(ctx, "debian:6.1", opts)
		assert.Assert(t, errors.Is(err, ErrNoKeyring), "%v", err)
		assert.ErrorContains(t, err, "FUSEMATRIX_KEYRING names "+os.Getenv("FUSEMATRIX_KEYRING"))
		assert.Equal(t, len(srv.Requests()), 0)
	})
	t.Run("no keyring", func(t *testing.T) {
		srv := testArchive(t)
		opts, logs := testOptions(t, srv)
		opts.Keyring = ""
		t.Setenv("FUSEMATRIX_KEYRING", "")
		old := defaultKeyring
		defaultKeyring = filepath.Join(t.TempDir(), "missing.gpg")
		t.Cleanup(func() { defaultKeyring = old })
		noKeyringWarned = sync.Once{}

		// Fail closed.
		_, err := Resolve(ctx, "debian:6.1", opts)
		assert.Assert(t, errors.Is(err, ErrNoKeyring), "%v", err)
		assert.ErrorContains(t, err, "no archive keyring at "+defaultKeyring+" to check InRelease signatures with: install debian-archive-keyring, set FUSEMATRIX_KEYRING, or pass -insecure-unsigned")
		assert.Equal(t, len(srv.Requests()), 0)

		// Accepted on request, and said.
		insecure := opts
		insecure.InsecureUnsigned = true
		k, err := Resolve(ctx, "debian:6.1", insecure)
		assert.NilError(t, err)
		want := "InRelease of bookworm-security not signature-checked: no archive keyring at " + defaultKeyring + " (-insecure-unsigned)"
		assert.Equal(t, k.Unverified, want)
		res, err := Lookup(ctx, "debian:6.1", insecure)
		assert.NilError(t, err)
		assert.Equal(t, res.Unverified, want)
		_, err = Lookup(ctx, "debian:7.3", Options{CacheDir: t.TempDir(), Mirror: opts.Mirror, AptSources: opts.AptSources, InsecureUnsigned: true, Logf: opts.Logf})
		assert.NilError(t, err)
		var warnings []string
		for _, l := range *logs {
			if strings.HasPrefix(l, "warning: no archive keyring at "+defaultKeyring) {
				warnings = append(warnings, l)
			}
		}
		assert.Check(t, is.Len(warnings, 1), *logs)

		// Neither the unsigned index nor the entry installed from it is
		// used once there is a keyring: both are fetched again.
		signed := opts
		signed.Keyring = fakearchive.Keyring(t, fakearchive.Key())
		before := len(srv.Requests())
		k, err = Resolve(ctx, "debian:6.1", signed)
		assert.NilError(t, err)
		assert.Equal(t, k.Unverified, "")
		fetched := srv.Requests()[before:]
		assert.Check(t, slices.Contains(fetched, "/debian-security/dists/bookworm-security/InRelease"), fetched)
		assert.Check(t, slices.ContainsFunc(fetched, func(p string) bool { return strings.HasSuffix(p, ".deb") }), fetched)
		// A keyring wins over -insecure-unsigned, and the entry is now
		// verified.
		k, err = Resolve(ctx, "debian:6.1", Options{CacheDir: opts.CacheDir, Mirror: opts.Mirror, AptSources: opts.AptSources, Keyring: signed.Keyring, InsecureUnsigned: true})
		assert.NilError(t, err)
		assert.Equal(t, k.Unverified, "")
	})
}

func readURL(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	assert.NilError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	assert.NilError(t, err)
	return b
}

// An expired InRelease fails a lookup, unless the mirror comes from apt's
// sources and apt's configuration turns Valid-Until off (as on machines
// behind a mirror of frozen snapshots): then fusematrix follows apt, and
// says so.
func TestValidUntilFollowsApt(t *testing.T) {
	ctx := context.Background()
	withSuites(t, "bookworm")
	srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", ValidUntil: time.Now().Add(-time.Hour), Packages: []fakearchive.Package{
		{Name: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2", Deb: olderLayoutDeb("6.1.0-56-cloud-amd64", guestModuleTree)},
	}})
	opts, logs := testOptions(t, srv)
	_, err := Lookup(ctx, "debian:6.1", opts)
	assert.ErrorContains(t, err, "InRelease of bookworm has expired: Valid-Until ")

	apt := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(apt, "sources.list.d"), 0o755))
	assert.NilError(t, os.MkdirAll(filepath.Join(apt, "apt.conf.d"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(apt, "sources.list.d", "debian.list"), []byte("deb "+srv.Mirror()+" bookworm main\n"), 0o644))
	fromApt := opts
	fromApt.Mirror, fromApt.AptSources = "", apt
	t.Setenv("FUSEMATRIX_MIRROR", "")
	_, err = Lookup(ctx, "debian:6.1", fromApt)
	assert.ErrorContains(t, err, "InRelease of bookworm has expired: Valid-Until ")

	conf := filepath.Join(apt, "apt.conf.d", "99snapshot")
	assert.NilError(t, os.WriteFile(conf, []byte("Acquire::Check-Valid-Until \"false\";\n"), 0o644))
	noValidUntilWarned = sync.Once{}
	res, err := Lookup(ctx, "debian:6.1", fromApt)
	assert.NilError(t, err)
	assert.Equal(t, res.Image.Version, "6.1.192-2")
	assert.Check(t, slices.Contains(*logs, "warning: "+conf+" turns off apt's Valid-Until check (Acquire::Check-Valid-Until), so fusematrix does not check it either on the apt mirrors"), *logs)

	// A mirror named on purpose gets no such leeway.
	_, err = Lookup(ctx, "debian:6.1", Options{CacheDir: t.TempDir(), Mirror: srv.Mirror(), AptSources: apt, Keyring: opts.Keyring})
	assert.ErrorContains(t, err, "has expired")
}
