package kernels

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/kernels/debian"
	"github.com/fusematrix/fusematrix/kernels/flock"
)

// SourceDir is the directory of the cache that holds unpacked kernel
// source trees, below Options.CacheDir.
const SourceDir = "src"

// DebianSource returns a kernel source tree unpacked from Debian's
// linux-source-<series> package (the newest version in Suites), fetching
// and unpacking it into the cache the first time. The .deb carries
// usr/src/linux-source-<series>.tar.xz, unpacked with the system's tar,
// which unpacks a tree of this size much faster than a pure-Go xz
// (docs/measurements.md).
func DebianSource(ctx context.Context, series string, opts Options) (string, error) {
	r, err := newResolver(opts)
	if err != nil {
		return "", err
	}
	pkgName := "linux-source-" + series
	// The kernel resolver's indexes keep kernel images only; this one
	// keeps source packages, in a directory of its own (see
	// debian.Archive.CacheDir).
	r.archive.Keep = func(name string) bool { return strings.HasPrefix(name, "linux-source-") }
	r.archive.CacheDir = filepath.Join(r.cacheDir, "index-source")
	idxs, err := r.indexes(ctx, Suites)
	if err != nil {
		return "", err
	}
	var pkg debian.Package
	for _, idx := range idxs {
		for _, p := range idx.Packages {
			if p.Name == pkgName && (pkg.Name == "" || debian.CompareVersions(p.Version, pkg.Version) > 0) {
				pkg = p
			}
		}
	}
	if pkg.Name == "" {
		return "", fmt.Errorf("kernel source: no package %s in %s", pkgName, strings.Join(Suites, ", "))
	}
	root := filepath.Join(r.cacheDir, SourceDir)
	entry := filepath.Join(root, entryName(pkg))
	tree := filepath.Join(entry, pkgName)
	if _, err := os.Stat(tree); err == nil {
		return tree, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	unlock, err := flock.Lock(ctx, entry+".lock", func() {
		r.logf("waiting for another process unpacking %s", filepath.Base(entry))
	})
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(tree); err == nil {
		return tree, nil
	}
	tmp, err := freshTemp(root, entryName(pkg))
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	tarball := "usr/src/" + pkgName + ".tar.xz"
	// The package is some 150 MB: it downloads beside the entry, where an
	// interrupted download is resumed by the next call (the entry's lock
	// covers it), and goes once the tree is in place.
	downloads := filepath.Join(root, downloadPrefix+entryName(pkg))
	for _, d := range []string{downloads, filepath.Join(tmp, "deb")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	names, err := r.fetchPart(ctx, pkg, downloads, filepath.Join(tmp, "deb"), func(name string) bool { return name == tarball })
	if err != nil {
		return "", err
	}
	if len(names) == 0 {
		return "", fmt.Errorf("unpack %s %s: no %s in it", pkg.Name, pkg.Version, tarball)
	}
	start := time.Now()
	r.logf("unpacking %s", tarball)
	cmd := exec.CommandContext(ctx, "tar", "-xJf", filepath.Join(tmp, "deb", tarball), "-C", tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("unpack %s: %w: %s", tarball, err, strings.TrimSpace(string(out)))
	}
	if err := os.RemoveAll(filepath.Join(tmp, "deb")); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(tmp, pkgName, "Makefile")); err != nil {
		return "", fmt.Errorf("unpack %s: no %s/Makefile in it", tarball, pkgName)
	}
	r.logf("unpacked %s in %v", pkgName, time.Since(start).Round(time.Second))
	if err := os.Rename(tmp, entry); err != nil {
		return "", fmt.Errorf("install %s: %w", entry, err)
	}
	os.RemoveAll(downloads)
	return tree, nil
}
