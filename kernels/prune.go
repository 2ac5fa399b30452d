package kernels

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/fusematrix/fusematrix/kernels/debian"
	"github.com/fusematrix/fusematrix/kernels/flock"
)

// Fetch is Resolve for a kernel about to be relied on: a cached kernel is
// also checked file by file against the SHA256 recorded when it was
// unpacked, and fetched again when one differs.
func Fetch(ctx context.Context, name string, opts Options) (*Kernel, error) {
	return resolve(ctx, name, opts, checkAll)
}

// ResolveHeld is Resolve for a kernel about to be used for a while (a
// guest booted from it): while it is held, the kernel's cache entry stays
// as it is: Prune leaves it alone (saying so), and a process that would
// replace it waits. release ends the hold; the process ending does too. A
// kernel that is no cache entry (a file) is not held, and release does
// nothing.
//
// The hold is a shared lock on the entry's lock file, taken after the
// entry is installed and checked again under it: a prune may have removed
// the entry in between, and then it is installed again.
func ResolveHeld(ctx context.Context, name string, opts Options) (k *Kernel, release func(), err error) {
	for attempt := 1; ; attempt++ {
		k, err := Resolve(ctx, name, opts)
		if err != nil {
			return nil, nil, err
		}
		entry, ok := k.cacheEntry(opts)
		if !ok {
			return k, func() {}, nil
		}
		unlock, err := flock.Shared(ctx, entry+".lock", func() {
			if opts.Logf != nil {
				opts.Logf("%s: waiting for another process using %s", name, filepath.Base(entry))
			}
		})
		if err != nil {
			return nil, nil, fmt.Errorf("kernel %q: hold %s: %w", name, entry, err)
		}
		if _, err := os.Stat(filepath.Join(entry, manifestName)); err == nil {
			return k, unlock, nil
		} else if attempt == 3 {
			unlock()
			return nil, nil, fmt.Errorf("kernel %q: cache entry %s keeps disappearing: %w", name, entry, err)
		}
		unlock()
	}
}

// cacheEntry returns the directory of the cache entry (a Debian kernel or
// a built one) of opts' cache that k's image is in, if it is in one.
func (k *Kernel) cacheEntry(opts Options) (string, bool) {
	root, err := cacheRoot(opts)
	if err != nil {
		return "", false
	}
	for _, dir := range []string{"kernels", BuiltDir} {
		rel, err := filepath.Rel(filepath.Join(root, dir), k.Image)
		if err != nil || !filepath.IsLocal(rel) {
			continue
		}
		first, _, ok := strings.Cut(rel, string(filepath.Separator))
		if ok {
			return filepath.Join(root, dir, first), true
		}
	}
	return "", false
}

// Cached reports whether the cache holds the kernel complete and
// undamaged (by the quick check every Resolve makes), unpacked from the
// packages of Parts, and the space its entry takes on disk.
func (r *Resolution) Cached() (diskBytes int64, ok bool) {
	if _, err := loadAccepted(r.Entry, r.Source(), checkQuick, func(m *manifest) error { return m.unpackedFrom(r.Parts) }); err != nil {
		return 0, false
	}
	return diskUsage(r.Entry), true
}

// Pruned is one thing Prune removed from the cache.
type Pruned struct {
	Path  string
	Bytes int64  // space it took on disk
	Why   string // "unreferenced", "stale temporary" or "all"
}

// tmpName matches what install leaves behind when it dies: .tmp-<entry>_<n>
// directories and .tmp-<entry>_<n>.deb downloads.
var tmpName = regexp.MustCompile(`^\.tmp-(.+)_[0-9]+(\.deb)?$`)

// Prune removes from the cache the kernels that none of keep (kernel
// names) resolves to, or every kernel when all is set, and the temporary
// files of runs that died, and the interrupted downloads of the kernels
// it removes. Entries another process holds locked are left
// alone. keep is resolved against the archive first; if the archive
// cannot be reached, nothing is removed: a kernel in use must not go
// because the mirror was down. A name that resolves to nothing keeps
// nothing.
func Prune(ctx context.Context, keep []string, all bool, opts Options) ([]Pruned, error) {
	r, err := newResolver(opts)
	if err != nil {
		return nil, err
	}
	wanted := map[string]bool{}
	if !all {
		for _, name := range keep {
			name = opts.Catalog.expand(name)
			if isPath(name) {
				continue
			}
			res, err := r.lookup(ctx, name)
			if debian.IsNetworkError(err) || ctx.Err() != nil {
				return nil, fmt.Errorf("prune: nothing removed: %w", withHint(err))
			}
			if err != nil {
				// It names no package, so it keeps no entry.
				r.logf("prune: %v", err)
				continue
			}
			wanted[filepath.Base(res.Entry)] = true
		}
	}
	var pruned []Pruned
	if all {
		for _, dir := range []string{BuiltDir, SourceDir} {
			more, err := pruneTree(filepath.Join(r.cacheDir, dir), r.logf)
			pruned = append(pruned, more...)
			if err != nil {
				return pruned, err
			}
		}
	}
	root := filepath.Join(r.cacheDir, "kernels")
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return pruned, nil
	}
	if err != nil {
		return pruned, fmt.Errorf("prune: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		var (
			entry string
			why   string
		)
		switch m := tmpName.FindStringSubmatch(name); {
		case strings.HasSuffix(name, ".lock"):
			// Removing a lock another process may be about to take would
			// let two processes hold "the" lock; it is an empty file.
			continue
		case m != nil:
			entry, why = m[1], "stale temporary"
		case strings.HasPrefix(name, downloadPrefix):
			// Downloads to resume are worth keeping while a kernel the
			// catalog uses needs them.
			entry, why = strings.TrimPrefix(name, downloadPrefix), "partial download"
			if !all && wanted[entry] {
				continue
			}
		case !e.IsDir():
			continue
		case all:
			entry, why = name, "all"
		case !wanted[name]:
			entry, why = name, "unreferenced"
		default:
			continue
		}
		p, err := removeLocked(filepath.Join(root, name), filepath.Join(root, entry+".lock"), why, r.logf)
		if err != nil {
			return pruned, err
		}
		if p != nil {
			pruned = append(pruned, *p)
		}
	}
	slices.SortFunc(pruned, func(a, b Pruned) int { return strings.Compare(a.Path, b.Path) })
	return pruned, nil
}

// pruneTree removes every entry of a directory of built kernels, build
// directories or unpacked sources, each under the "<entry>.lock" its
// writer holds. No selector names these (a source tree's commit does), so
// only an explicit prune of everything removes them.
func pruneTree(root string, logf func(string, ...any)) ([]Pruned, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	var pruned []Pruned
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".lock") {
			continue
		}
		path := filepath.Join(root, name)
		// A download is written under the lock of the entry it is for.
		lock := filepath.Join(root, strings.TrimPrefix(name, downloadPrefix)+".lock")
		p, err := removeLocked(path, lock, "all", logf)
		if err != nil {
			return pruned, err
		}
		if p != nil {
			pruned = append(pruned, *p)
		}
	}
	return pruned, nil
}

// removeLocked removes path under the lock its writers take, or leaves it
// (nil, nil) when another process holds that lock.
func removeLocked(path, lock, why string, logf func(string, ...any)) (*Pruned, error) {
	unlock, ok, err := flock.TryLock(lock)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	if !ok {
		logf("prune: %s is in use, left alone", path)
		return nil, nil
	}
	defer unlock()
	size := diskUsage(path)
	if err := os.RemoveAll(path); err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	return &Pruned{Path: path, Bytes: size, Why: why}, nil
}
