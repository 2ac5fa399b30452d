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
		for _, dir := range []string{BuiltDir, SourceDir, sysrootsDir} {
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
