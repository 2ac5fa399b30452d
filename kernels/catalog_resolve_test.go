package kernels

import (
	"context"
	"errors"
	"fmt"
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

	"github.com/fusematrix/fusematrix/kernels/flock"
)

// releasesArchive serves bookworm and trixie builds of the same 6.12
// release, as Debian does: trixie's compares newer.
func releasesArchive(t *testing.T) *fakearchive.Server {
	deb12 := "6.12.117+deb12-cloud-amd64"
	deb13 := "6.12.117+deb13-cloud-amd64"
	return fakearchive.Serve(t,
		fakearchive.Suite{Name: "bookworm-security", Packages: []fakearchive.Package{
			{Name: "linux-image-" + deb12, Version: "6.12.117-1~deb12u1", Deb: olderLayoutDeb(deb12, nil, builtin612...)},
			{Name: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2", Deb: olderLayoutDeb("6.1.0-56-cloud-amd64", guestModuleTree)},
		}},
		fakearchive.Suite{Name: "trixie-security", Packages: []fakearchive.Package{
			{Name: "linux-image-" + deb13, Version: "6.12.117-1", Deb: olderLayoutDeb(deb13, nil, builtin612...)},
		}},
		fakearchive.Suite{Name: "trixie-backports", Packages: append(newerLayout("7.3.4+deb13", "7.3.4-1~bpo13+1"),
			// A newer image whose parts the archive dropped: uninstallable.
			fakearchive.Package{
				Name: "linux-image-7.3.9+deb13-cloud-amd64", Version: "7.3.9-1~bpo13+1",
				Depends: "linux-base-7.3.9+deb13-cloud-amd64 (= 7.3.9-1~bpo13+1), linux-binary-7.3.9+deb13-cloud-amd64 (= 7.3.9-1~bpo13+1)",
				Deb:     []byte("never fetched"),
			})},
	)
}

func TestSuitePreference(t *testing.T) {
	srv := releasesArchive(t)
	opts, logs := testOptions(t, srv)
	ctx := context.Background()
	for _, tc := range []struct{ name, source string }{
		{"debian:6.12/cloud@bookworm", "linux-image-6.12.117+deb12-cloud-amd64 6.12.117-1~deb12u1 (bookworm-security)"},
		{"debian:6.12/cloud@bookworm-security", "linux-image-6.12.117+deb12-cloud-amd64 6.12.117-1~deb12u1 (bookworm-security)"},
		{"debian:6.12/cloud", "linux-image-6.12.117+deb13-cloud-amd64 6.12.117-1 (trixie-security)"},
		{"debian:6.12/cloud@trixie", "linux-image-6.12.117+deb13-cloud-amd64 6.12.117-1 (trixie-security)"},
		// 7.3.9 lacks its binary, which holds the image (its missing
		// base alone would not stop it).
		{"debian:7.3/cloud", "linux-image-7.3.4+deb13-cloud-amd64 7.3.4-1~bpo13+1 (trixie-backports)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Lookup(ctx, tc.name, opts)
			assert.NilError(t, err)
			assert.Equal(t, res.Source(), tc.source)
		})
	}
	assert.Check(t, slices.ContainsFunc(*logs, func(l string) bool {
		return strings.HasPrefix(l, "warning: kernel debian:7.3/cloud: linux-binary-7.3.9+deb13-cloud-amd64 (= 7.3.9-1~bpo13+1), needed by") &&
			strings.HasSuffix(l, "; using linux-image-7.3.4+deb13-cloud-amd64 7.3.4-1~bpo13+1 instead")
	}), *logs)

	// The default matrix reads bookworm's indexes only.
	fresh, _ := testOptions(t, srv)
	before := len(srv.Requests())
	for _, name := range DefaultMatrix {
		_, err := Lookup(ctx, name, fresh)
		assert.NilError(t, err)
	}
	for _, r := range srv.Requests()[before:] {
		assert.Check(t, strings.Contains(r, "/dists/bookworm"), "default matrix fetched %s", r)
	}
}

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

func TestPrune(t *testing.T) {
	ctx := context.Background()
	srv := testArchive(t)
	opts, _ := testOptions(t, srv)
	root := filepath.Join(opts.CacheDir, "kernels")
	old, err := Resolve(ctx, "debian:6.1", opts)
	assert.NilError(t, err)
	cur, err := Resolve(ctx, "debian:6.12", opts)
	assert.NilError(t, err)
	entryOf := func(k *Kernel) string {
		rel, err := filepath.Rel(root, k.Image)
		assert.NilError(t, err)
		return filepath.Join(root, strings.Split(rel, string(filepath.Separator))[0])
	}
	staleDir := filepath.Join(root, ".tmp-linux-image-6.12.117+deb12-cloud-amd64_6.12.117-1~deb12u1_42")
	staleDeb := filepath.Join(root, ".tmp-linux-image-9.9_1_7.deb")
	assert.NilError(t, os.MkdirAll(staleDir, 0o755))
	assert.NilError(t, os.WriteFile(staleDeb, make([]byte, 5000), 0o644))
	// Interrupted downloads: of a kernel no matrix uses, and of the one
	// kept, which the next run resumes.
	staleDownload := filepath.Join(root, ".dl-linux-image-9.9_1")
	keptDownload := filepath.Join(root, ".dl-"+filepath.Base(entryOf(cur)))
	for _, dir := range []string{staleDownload, keptDownload} {
		assert.NilError(t, os.MkdirAll(dir, 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "x.deb.partial"), make([]byte, 5000), 0o644))
	}

	res, err := Lookup(ctx, "debian:6.12", opts)
	assert.NilError(t, err)
	size, ok := res.Cached()
	assert.Assert(t, ok)
	assert.Check(t, size > 0)
	assert.Equal(t, res.Entry, entryOf(cur))

	pruned, err := Prune(ctx, []string{"debian:6.12", "debian:6.99", "./bzImage"}, false, opts)
	assert.NilError(t, err)
	var got []string
	for _, p := range pruned {
		got = append(got, filepath.Base(p.Path)+" "+p.Why)
		assert.Check(t, p.Bytes > 0, p.Path)
	}
	assert.DeepEqual(t, got, []string{
		".dl-linux-image-9.9_1 partial download",
		".tmp-linux-image-6.12.117+deb12-cloud-amd64_6.12.117-1~deb12u1_42 stale temporary",
		".tmp-linux-image-9.9_1_7.deb stale temporary",
		"linux-image-6.1.0-56-cloud-amd64_6.1.192-2 unreferenced",
	})
	_, err = os.Stat(entryOf(old))
	assert.Check(t, errors.Is(err, os.ErrNotExist))
	_, ok = res.Cached()
	assert.Check(t, ok, "the kept kernel was removed")
	_, err = os.Stat(keptDownload)
	assert.Check(t, err, "the kept kernel's download was removed")

	// A kernel another process is using stays.
	unlock, ok, err := flock.TryLock(res.Entry + ".lock")
	assert.NilError(t, err)
	assert.Assert(t, ok)
	pruned, err = Prune(ctx, nil, true, opts)
	assert.NilError(t, err)
	assert.Check(t, is.Len(pruned, 0))
	unlock()
	pruned, err = Prune(ctx, nil, true, opts)
	assert.NilError(t, err)
	assert.Check(t, is.Len(pruned, 2), "the entry and its download")
	_, ok = res.Cached()
	assert.Check(t, !ok)

	// Without the archive it cannot tell what is referenced: nothing goes.
	_, err = Resolve(ctx, "debian:6.1", opts)
	assert.NilError(t, err)
	fresh := opts
	fresh.CacheDir = t.TempDir()
	assert.NilError(t, os.Rename(root, filepath.Join(fresh.CacheDir, "kernels")))
	srv.Close()
	_, err = Prune(ctx, []string{"debian:6.12"}, false, fresh)
	assert.ErrorContains(t, err, "prune: nothing removed: ")
	entries, err := os.ReadDir(filepath.Join(fresh.CacheDir, "kernels"))
	assert.NilError(t, err)
	assert.Check(t, len(entries) > 0)
}

func TestLocalKernelOptions(t *testing.T) {
	dir := t.TempDir()
	image := filepath.Join(dir, "bzImage")
	assert.NilError(t, os.WriteFile(image, []byte("image"), 0o644))
	writeConfig := func(name, text string) string {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	builtIn := writeConfig("config-y", "CONFIG_FUSE_FS=y\n")
	module := writeConfig("config-m", "CONFIG_FUSE_FS=m\n")
	none := writeConfig("config-n", "# CONFIG_FUSE_FS is not set\n")
	modules := filepath.Join(dir, "lib/modules/6.20.0")
	assert.NilError(t, os.MkdirAll(filepath.Join(modules, "kernel/fs/fuse"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(modules, "modules.builtin"), nil, 0o644))
	empty := filepath.Join(dir, "empty/6.20.0")
	assert.NilError(t, os.MkdirAll(empty, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(empty, "modules.builtin"), nil, 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(modules, "kernel/fs/fuse/fuse.ko"), moduleBytes(testModule{"kernel/fs/fuse/fuse.ko", ""}), 0o644))

	for _, tc := range []struct {
		name, warning, err string
		want               *Kernel
	}{
		{name: image, warning: "cannot tell whether FUSE is built in"},
		{name: image + ",config=" + builtIn, want: &Kernel{Config: builtIn}},
		{name: image + ",config=" + module, warning: "FUSE is a module (CONFIG_FUSE_FS=m) but no fuse module"},
		{name: image + ",config=" + module + ",modules=" + modules, want: &Kernel{Config: module, ModulesDir: modules, Release: "6.20.0"}},
		{name: image + ",config=" + none, warning: "FUSE is neither built in"},
		{name: image + ",modules=" + empty, warning: "FUSE is not among the modules given"},
		{name: image + ",modules=" + image, err: "not a directory"},
		{name: image + ",initrd=x", err: `option "initrd=x": want modules=DIR or config=FILE`},
	} {
		t.Run(strings.ReplaceAll(strings.TrimPrefix(tc.name, dir), "/", "_"), func(t *testing.T) {
			var logs []string
			k, err := Resolve(context.Background(), tc.name, Options{Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, k.Image, image)
			if tc.want != nil {
				assert.Equal(t, k.Config, tc.want.Config)
				assert.Equal(t, k.ModulesDir, tc.want.ModulesDir)
				assert.Equal(t, k.Release, tc.want.Release)
			}
			if tc.warning == "" {
				assert.Check(t, is.Len(logs, 0))
			} else {
				assert.Assert(t, is.Len(logs, 1))
				assert.Check(t, is.Contains(logs[0], tc.warning))
			}
		})
	}
}

// TestPruneBuiltAndSources shows that built kernels, build directories and
// unpacked sources stay unless everything is pruned, and that one in use
// stays even then.
func TestPruneBuiltAndSources(t *testing.T) {
	ctx := context.Background()
	opts, _ := testOptions(t, testArchive(t))
	var paths []string
	for _, p := range []string{
		filepath.Join(BuiltDir, "linux-0123456789abcdef"),
		filepath.Join(BuiltDir, ".work-linux-tinyconfig"),
		filepath.Join(SourceDir, "linux-source-6.12"),
	} {
		path := filepath.Join(opts.CacheDir, p)
		assert.NilError(t, os.MkdirAll(path, 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(path, "f"), make([]byte, 5000), 0o644))
		paths = append(paths, path)
	}

	pruned, err := Prune(ctx, []string{"debian:6.12"}, false, opts)
	assert.NilError(t, err)
	assert.Check(t, is.Len(pruned, 0), "a selective prune removed built kernels or sources")

	unlock, ok, err := flock.TryLock(paths[2] + ".lock")
	assert.NilError(t, err)
	assert.Assert(t, ok)
	defer unlock()
	pruned, err = Prune(ctx, nil, true, opts)
	assert.NilError(t, err)
	var got []string
	for _, p := range pruned {
		got = append(got, p.Path)
		assert.Check(t, p.Bytes > 0, p.Path)
	}
	assert.DeepEqual(t, got, []string{paths[1], paths[0]}) // sorted by path
	for i, p := range paths {
		_, err := os.Stat(p)
		assert.Check(t, is.Equal(err == nil, i == 2), "%s", p)
	}
}

// A kernel a run has resolved but not yet booted stays in the cache
// through a prune of everything: ResolveHeld holds its entry shared from
// resolve until release, prune says it left it alone, and removes it once
// released. The two holders are two open files, as in two processes.
func TestPruneSparesHeldKernel(t *testing.T) {
	ctx := context.Background()
	srv := testArchive(t)
	opts, logs := testOptions(t, srv)
	k, release, err := ResolveHeld(ctx, "debian:6.1", opts)
	assert.NilError(t, err)
	entry, ok := k.cacheEntry(opts)
	assert.Assert(t, ok)

	pruned, err := Prune(ctx, nil, true, opts)
	assert.NilError(t, err)
	assert.Check(t, is.Len(pruned, 0))
	_, err = os.Stat(k.Image)
	assert.NilError(t, err, "a held kernel was pruned")
	assert.Check(t, slices.Contains(*logs, "prune: "+entry+" is in use, left alone"), *logs)

	// A second holder (another matrix) does not exclude the first.
	_, release2, err := ResolveHeld(ctx, "debian:6.1", opts)
	assert.NilError(t, err)
	release()
	pruned, err = Prune(ctx, nil, true, opts)
	assert.NilError(t, err)
	assert.Check(t, is.Len(pruned, 0))
	release2()

	pruned, err = Prune(ctx, nil, true, opts)
	assert.NilError(t, err)
	assert.Check(t, is.Len(pruned, 1))
	_, err = os.Stat(k.Image)
	assert.Check(t, errors.Is(err, os.ErrNotExist))

	// Resolved again after the prune: installed again, and held.
	k, release, err = ResolveHeld(ctx, "debian:6.1", opts)
	assert.NilError(t, err)
	defer release()
	_, err = os.Stat(k.Image)
	assert.NilError(t, err)

	// A file is not a cache entry: nothing to hold.
	image := filepath.Join(t.TempDir(), "bzImage")
	assert.NilError(t, os.WriteFile(image, []byte("image"), 0o644))
	k, release3, err := ResolveHeld(ctx, image, opts)
	assert.NilError(t, err)
	_, ok = k.cacheEntry(opts)
	assert.Check(t, !ok)
	release3()
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
