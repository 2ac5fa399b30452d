package kernels

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fusematrix/fusematrix/kernels/flock"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

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
