package kernels

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/fusematrix/fusematrix/kernels/debian"
	"github.com/fusematrix/fusematrix/kernels/flock"
)

// CacheRoot is the folder fusematrix caches kernels and what goes with
// them in: Options.CacheDir, $FUSEMATRIX_CACHE, else the user's cache.
func CacheRoot(opts Options) (string, error) { return cacheRoot(opts) }

// cacheRoot is the directory opts.CacheDir names, with its defaults.
func cacheRoot(opts Options) (string, error) {
	cacheDir := opts.CacheDir
	if cacheDir == "" {
		cacheDir = os.Getenv("FUSEMATRIX_CACHE")
	}
	if cacheDir == "" {
		user, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("kernels: no cache directory: %w (set FUSEMATRIX_CACHE)", err)
		}
		cacheDir = filepath.Join(user, "fusematrix")
	}
	return cacheDir, nil
}

// manifestName is written last into an unpacked kernel's directory; the
// directory is renamed into place after it, so an entry that exists is
// complete.
const manifestName = "kernel.json"

// manifest records where an unpacked kernel's parts are, relative to its
// cache entry, and the size and SHA256 of every file in it.
type manifest struct {
	Packages   []string            `json:"packages"`
	Release    string              `json:"release"`
	Image      string              `json:"image"`
	Config     string              `json:"config,omitempty"`
	ModulesDir string              `json:"modules_dir,omitempty"`
	Files      map[string]fileHash `json:"files"`
	// Unverified is Kernel.Unverified of the kernel as installed.
	Unverified string `json:"unverified,omitempty"`
}

// fileHash is what a cache entry's manifest says about one file.
type fileHash struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// A cache entry is checked every time it is used, as cheaply as a damaged
// entry can be caught: every file must exist with its recorded size, and
// the image and config, which every boot reads whole, must match their
// SHA256. Hashing every module as well (100 MB for Debian 6.1) takes about
// a second per kernel; Verify does that, and `fusematrix kernels fetch`
// calls it.
type checkLevel int

const (
	checkQuick checkLevel = iota
	checkAll
)

// entryName is the cache directory name of a package version. Epochs'
// colons are escaped the way Debian escapes them in URLs.
func entryName(p debian.Package) string {
	return p.Name + "_" + strings.ReplaceAll(p.Version, ":", "%3a")
}

// entryPath is where the cache keeps the kernel of an image package.
func (r *resolver) entryPath(image debian.Package) string {
	return filepath.Join(r.cacheDir, "kernels", entryName(image))
}

// downloadPrefix starts the name of the directory beside an entry that
// holds its .deb files until the entry is installed: a download
// interrupted there, by a broken connection or a killed process, is
// resumed by the next run. The entry's lock covers it.
const downloadPrefix = ".dl-"

func (r *resolver) downloadDir(image debian.Package) string {
	return filepath.Join(r.cacheDir, "kernels", downloadPrefix+entryName(image))
}

// packageList is how a manifest records the packages an entry is
// unpacked from.
func packageList(parts []debian.Package) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p.Name+" "+p.Version)
	}
	return out
}

// unpackedFrom says why an entry is not the kernel unpacked from parts,
// nil when it is: the same packages at the same versions, in any order.
// The image package names the entry, so this tells apart an image
// unpacked with its modules and base from the same image unpacked without
// them.
func (m *manifest) unpackedFrom(parts []debian.Package) error {
	want := packageList(parts)
	if !slices.Equal(slices.Sorted(slices.Values(m.Packages)), slices.Sorted(slices.Values(want))) {
		return &otherPackagesError{had: m.Packages, want: want}
	}
	return nil
}

// otherPackagesError is an entry, sound in itself, unpacked from other
// packages than those it is wanted for.
type otherPackagesError struct{ had, want []string }

func (e *otherPackagesError) Error() string {
	return fmt.Sprintf("unpacked from %s; the archive now has %s", strings.Join(e.had, ", "), strings.Join(e.want, ", "))
}

// claimEntry returns the kernel cached at entry when it loads. Otherwise
// it takes the entry's lock, loads it again (another process may have
// made it while this one waited), clears an entry that exists but does not
// load (damaged afterwards, a file deleted by hand say, since entries
// appear complete) and returns the lock's release: the caller makes the
// entry, then unlocks. waiting is called if the lock is held elsewhere.
// An entry whose manifest accept (when not nil) refuses is cleared like a
// damaged one.
func claimEntry(ctx context.Context, entry, source string, level checkLevel, accept func(*manifest) error, waiting func(), logf func(string, ...any)) (*Kernel, func(), error) {
	load := func() (*Kernel, error) { return loadAccepted(entry, source, level, accept) }
	if k, err := load(); err == nil {
		return k, nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(entry), 0o755); err != nil {
		return nil, nil, err
	}
	unlock, err := flock.Lock(ctx, entry+".lock", waiting)
	if err != nil {
		return nil, nil, err
	}
	k, err := load()
	if err == nil {
		unlock()
		return k, nil, nil
	}
	if _, serr := os.Stat(entry); serr == nil {
		if other := (*otherPackagesError)(nil); errors.As(err, &other) {
			logf("replacing cache entry %s: %v", entry, err)
		} else {
			logf("warning: replacing damaged cache entry %s: %v", entry, err)
		}
		if err := os.RemoveAll(entry); err != nil {
			unlock()
			return nil, nil, err
		}
	}
	return nil, unlock, nil
}

// loadEntry returns the kernel of a complete cache entry, checked as level
// says.
func loadEntry(entry, source string, level checkLevel) (*Kernel, error) {
	return loadAccepted(entry, source, level, nil)
}

// loadAccepted is loadEntry for an entry whose manifest accept, when not
// nil, also takes; it is asked before any file is checked.
func loadAccepted(entry, source string, level checkLevel, accept func(*manifest) error) (*Kernel, error) {
	m, err := readManifest(entry)
	if err != nil {
		return nil, err
	}
	if accept != nil {
		if err := accept(m); err != nil {
			return nil, err
		}
	}
	abs := func(rel string) string {
		if rel == "" {
			return ""
		}
		return filepath.Join(entry, filepath.FromSlash(path.Clean(rel)))
	}
	if err := m.check(entry, level); err != nil {
		return nil, err
	}
	return &Kernel{Source: source, Release: m.Release, Image: abs(m.Image), Config: abs(m.Config), ModulesDir: abs(m.ModulesDir), Unverified: m.Unverified}, nil
}

func readManifest(entry string) (*manifest, error) {
	data, err := os.ReadFile(filepath.Join(entry, manifestName))
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", entry, err)
	}
	if m.Files == nil {
		// Written before manifests recorded hashes: nothing to check it
		// against, so it is fetched again once.
		return nil, fmt.Errorf("%s: manifest records no file hashes", entry)
	}
	if _, ok := m.Files[m.Image]; !ok {
		return nil, fmt.Errorf("%s: manifest does not list the image %s", entry, m.Image)
	}
	return &m, nil
}

// check compares the entry's files with the manifest.
func (m *manifest) check(entry string, level checkLevel) error {
	for _, name := range slices.Sorted(maps.Keys(m.Files)) {
		want := m.Files[name]
		file := filepath.Join(entry, filepath.FromSlash(name))
		st, err := os.Lstat(file)
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() || st.Size() != want.Size {
			return fmt.Errorf("%s: %d bytes, manifest says %d", file, st.Size(), want.Size)
		}
		if level == checkQuick && name != m.Image && name != m.Config {
			continue
		}
		got, err := hashFile(file)
		if err != nil {
			return err
		}
		if got != want.SHA256 {
			return fmt.Errorf("%s: SHA256 %s, manifest says %s", file, got, want.SHA256)
		}
	}
	return nil
}

// hashTree returns the size and SHA256 of every regular file below dir,
// by slash-separated relative name.
func hashTree(dir string) (map[string]fileHash, error) {
	files := map[string]fileHash{}
	err := filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, name)
		if err != nil {
			return err
		}
		sum, err := hashFile(name)
		if err != nil {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = fileHash{Size: st.Size(), SHA256: sum}
		return nil
	})
	return files, err
}

func hashFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// diskUsage is the space the files below dir take on disk.
func diskUsage(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			} else {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// freshTemp makes the temporary directory an entry is assembled in before
// its rename into place, after removing the entry's temporary files that
// exist now: the caller holds the entry's lock, so they belong to runs
// that died. "_" appears in no package name or version, so the pattern
// matches no other entry's.
func freshTemp(root, entry string) (string, error) {
	prefix := ".tmp-" + entry + "_"
	stale, _ := filepath.Glob(filepath.Join(root, prefix+"*"))
	for _, name := range stale {
		os.RemoveAll(name)
	}
	return os.MkdirTemp(root, prefix)
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
