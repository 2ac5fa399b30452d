package kernels

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/kernels/deb"
	"github.com/fusematrix/fusematrix/kernels/debian"
	"github.com/fusematrix/fusematrix/kernels/flock"
)

// A sysroot is a Debian package and every package it needs at run time,
// unpacked into one directory tree that a program runs in as its root
// (chroot): the daemons fusematrix tests can come from Debian's archive
// this way, with their own loader and libraries, whatever the host runs.
// It shares the kernels' archive access: the same mirrors, InRelease
// signature check, index checksums and .deb checksums, and the same cache.

// DefaultPackageSuite is the suite a package reference without "@SUITE"
// is taken from: Debian's stable release, whichever the archive says that
// is (its InRelease names the codename), so a run says which release it
// used without fusematrix naming one.
const DefaultPackageSuite = "stable"

// PackageRef names a Debian package: "PACKAGE[=VERSION][@SUITE]".
type PackageRef struct {
	Name string
	// Version is the exact version wanted; "" is the suite's newest.
	Version string
	// Suite is the suite whose index the package and everything it
	// needs come from; "" is DefaultPackageSuite.
	Suite string
	// With are more packages of the same suite, at their newest version,
	// unpacked into the same root with their own closures: the tools a
	// daemon's setup needs that its package does not depend on (mke2fs
	// for fuse2fs, fusermount3 for rclone). Not part of the grammar.
	With []string
}

// The grammar of Debian's package names, versions and suite names
// (Debian policy 5.6.1 and 5.6.12; suites are codenames, aliases and
// their -backports, -updates, -security forms).
var (
	packageName    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	packageVersion = regexp.MustCompile(`^([0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$`)
	suiteName      = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
)

// ParsePackageRef parses "PACKAGE[=VERSION][@SUITE]", such as
// "bindfs@sid" or "sshfs=3.7.3-1.2@sid".
func ParsePackageRef(s string) (PackageRef, error) {
	rest, suite, hasSuite := strings.Cut(s, "@")
	name, version, hasVersion := strings.Cut(rest, "=")
	ref := PackageRef{Name: name, Version: version, Suite: suite}
	switch {
	case !packageName.MatchString(name):
		return ref, fmt.Errorf("package %q: not a Debian package name (lower-case letters, digits, '+', '-', '.')", name)
	case hasVersion && !packageVersion.MatchString(version):
		return ref, fmt.Errorf("version %q of %s: not a Debian version", version, name)
	case hasSuite && !suiteName.MatchString(suite):
		return ref, fmt.Errorf("suite %q: not a suite name (sid, trixie, bookworm-backports…)", suite)
	}
	return ref, nil
}

func (r PackageRef) suite() string {
	if r.Suite == "" {
		return DefaultPackageSuite
	}
	return r.Suite
}

// String writes the reference back, suite included.
func (r PackageRef) String() string {
	s := r.Name
	if r.Version != "" {
		s += "=" + r.Version
	}
	return s + "@" + r.suite()
}

// SysrootPlan is what a package reference stands for in the archive,
// before anything is downloaded.
type SysrootPlan struct {
	Ref PackageRef
	// Package is the package asked for; Packages its run-time closure
	// (debian.Universe.Closure), Package included, sorted by name.
	Package  debian.Package
	Packages []debian.Package
	// Key identifies the closure: the SHA256 of every package's name,
	// version and .deb checksum, and of the way fusematrix lays a sysroot
	// out. The same closure always has the same key.
	Key string
	// Entry is the sysroot's directory in the cache, whether or not it
	// exists.
	Entry string
	// Unverified says why the index was not checked against the archive
	// keyring; "" when it was.
	Unverified string
}

// DownloadSize is the size of the .deb files to fetch when not cached.
func (p *SysrootPlan) DownloadSize() int64 {
	var n int64
	for _, q := range p.Packages {
		n += q.Size
	}
	return n
}

// Sysroot is a package's run-time closure unpacked on the host.
type Sysroot struct {
	SysrootPlan
	// Root is the host directory to use as the program's root.
	Root string
	// Own are the package's own files (regular files and links),
	// relative to Root, as the package names them (usr/bin/bindfs).
	Own []string
}

// sysrootLayout names the way a sysroot is laid out (see makeSysroot);
// changing it gives every closure a new key, so that no entry laid out
// another way is used.
const sysrootLayout = "fusematrix sysroot 1: merged /usr, no docs, passwd, mtab"

// sysrootsDir holds the sysroots below the cache root.
const sysrootsDir = "sysroots"

// sysrootManifest is written last into an entry, which is renamed into
// place after it: an entry that has one is complete.
const sysrootManifest = "sysroot.json"

type sysrootRecord struct {
	Key      string   `json:"key"`
	Ref      string   `json:"ref"`
	Packages []string `json:"packages"`
	Own      []string `json:"own"`
	// Files are the root's regular files, by slash-separated path
	// relative to the root.
	Files      map[string]fileHash `json:"files"`
	Unverified string              `json:"unverified,omitempty"`
}

// LookupSysroot resolves ref to its run-time closure in the suite's index
// without downloading any package. An unknown package or version is a
// *debian.NotFoundError, a closure that cannot be satisfied a
// *debian.ClosureError, and a suite the archive does not publish a
// *SuiteError.
func LookupSysroot(ctx context.Context, ref PackageRef, opts Options) (*SysrootPlan, error) {
	r, err := newResolver(opts)
	if err != nil {
		return nil, err
	}
	return r.lookupSysroot(ctx, ref)
}

// SuiteError is a suite the configured archive does not publish.
type SuiteError struct{ Suite string }

func (e *SuiteError) Error() string {
	return fmt.Sprintf("the configured Debian mirror does not publish the suite %s", e.Suite)
}

// fullArchive is r's archive reading whole indexes: a closure may need
// any package of the suite. They are cached apart from the kernels' cut
// ones (Archive.CacheDir holds what Keep kept).
func (r *resolver) fullArchive() *debian.Archive {
	a := *r.archive
	a.Keep = nil
	a.CacheDir = filepath.Join(r.cacheDir, "index-all")
	return &a
}

func (r *resolver) lookupSysroot(ctx context.Context, ref PackageRef) (*SysrootPlan, error) {
	suite := ref.suite()
	start := time.Now()
	idx, err := r.fullArchive().Index(ctx, suite)
	if err != nil {
		return nil, withHint(err)
	}
	if idx.Absent {
		return nil, &SuiteError{Suite: suite}
	}
	r.logf("%s: index of %s read in %v (%d packages)", ref, suite, time.Since(start).Round(10*time.Millisecond), len(idx.Packages))
	u := debian.NewUniverse(suite, idx.Packages)
	p, err := u.Find(ref.Name, ref.Version)
	if err != nil {
		return nil, err
	}
	closure, err := u.Closure(p)
	if err != nil {
		return nil, err
	}
	for _, name := range ref.With {
		if !packageName.MatchString(name) {
			return nil, &debian.NotFoundError{Suite: suite, Name: name}
		}
		q, err := u.Find(name, "")
		if err != nil {
			return nil, err
		}
		more, err := u.Closure(q)
		if err != nil {
			return nil, err
		}
		closure = unionPackages(closure, more)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", sysrootLayout)
	for _, q := range closure {
		fmt.Fprintf(h, "%s %s %s\n", q.Name, q.Version, q.SHA256)
	}
	key := hex.EncodeToString(h.Sum(nil))
	return &SysrootPlan{
		Ref: ref, Package: p, Packages: closure, Key: key,
		Entry:      filepath.Join(r.cacheDir, sysrootsDir, p.Name+"_"+key[:16]),
		Unverified: r.unverified(closure),
	}, nil
}

// unionPackages is a and b, each package once (a's when both hold it: one
// suite's closures agree on a name unless it has several versions), sorted
// by name as Closure sorts.
func unionPackages(a, b []debian.Package) []debian.Package {
	out := slices.Clone(a)
	for _, q := range b {
		if !slices.ContainsFunc(out, func(p debian.Package) bool { return p.Name == q.Name }) {
			out = append(out, q)
		}
	}
	slices.SortFunc(out, func(x, y debian.Package) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// FetchSysroot returns the sysroot of ref: its run-time closure (see
// LookupSysroot for the errors), downloaded, verified and unpacked into
// the cache unless the cache holds it already. A cached sysroot is used
// without any download; a damaged one (a file missing or of another
// size) is made again, and so is one made from unsigned indexes when
// signatures are checked now.
func FetchSysroot(ctx context.Context, ref PackageRef, opts Options) (*Sysroot, error) {
	r, err := newResolver(opts)
	if err != nil {
		return nil, err
	}
	plan, err := r.lookupSysroot(ctx, ref)
	if err != nil {
		return nil, err
	}
	s, err := r.installSysroot(ctx, plan)
	if err != nil {
		return nil, fmt.Errorf("sysroot of %s: %w", ref, withHint(err))
	}
	return s, nil
}

// loadSysroot returns the sysroot cached at plan.Entry, checked quickly:
// its manifest names the same closure and every file it lists has its
// size.
func (r *resolver) loadSysroot(plan *SysrootPlan) (*Sysroot, error) {
	data, err := os.ReadFile(filepath.Join(plan.Entry, sysrootManifest))
	if err != nil {
		return nil, err
	}
	var rec sysrootRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", plan.Entry, err)
	}
	if rec.Key != plan.Key {
		return nil, fmt.Errorf("%s: made for closure %s, not %s", plan.Entry, rec.Key, plan.Key)
	}
	if r.unsigned == "" && rec.Unverified != "" {
		return nil, fmt.Errorf("%s: made unverified (%s)", plan.Entry, rec.Unverified)
	}
	root := filepath.Join(plan.Entry, "root")
	m := manifest{Files: rec.Files}
	if err := m.check(root, checkQuick); err != nil {
		return nil, err
	}
	return &Sysroot{SysrootPlan: *plan, Root: root, Own: rec.Own}, nil
}

// installSysroot makes plan's sysroot in the cache unless it is there.
func (r *resolver) installSysroot(ctx context.Context, plan *SysrootPlan) (*Sysroot, error) {
	if s, err := r.loadSysroot(plan); err == nil {
		return s, nil
	}
	dir := filepath.Dir(plan.Entry)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := flock.Lock(ctx, plan.Entry+".lock", func() {
		r.logf("waiting for another process making %s", filepath.Base(plan.Entry))
	})
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have made it while this one waited.
	s, err := r.loadSysroot(plan)
	if err == nil {
		return s, nil
	}
	if _, serr := os.Stat(plan.Entry); serr == nil {
		r.logf("warning: replacing cache entry %s: %v", plan.Entry, err)
		if err := os.RemoveAll(plan.Entry); err != nil {
			return nil, err
		}
	}
	tmp, err := freshTemp(dir, filepath.Base(plan.Entry))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	// MkdirTemp makes the directory private; whoever reads the tree
	// into a guest may be another user.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	root := filepath.Join(tmp, "root")
	own, err := r.makeSysroot(ctx, plan, root)
	if err != nil {
		return nil, err
	}
	rec := sysrootRecord{Key: plan.Key, Ref: plan.Ref.String(), Own: own, Unverified: plan.Unverified}
	for _, p := range plan.Packages {
		rec.Packages = append(rec.Packages, p.Name+" "+p.Version)
	}
	if rec.Files, err = hashTree(root); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, sysrootManifest), data, 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, plan.Entry); err != nil {
		return nil, fmt.Errorf("install %s: %w", plan.Entry, err)
	}
	return r.loadSysroot(plan)
}

// mergedUsr are the links of a merged-/usr system, which Debian has been
// since bookworm. base-files makes them there, and base-files is
// Essential, so no closure has it: they are made here, before any package
// is unpacked, and packages that name /lib or /bin (bookworm's) unpack
// through them, as dpkg unpacks them on such a system.
var mergedUsr = [][2]string{{"bin", "usr/bin"}, {"sbin", "usr/sbin"}, {"lib", "usr/lib"}, {"lib64", "usr/lib64"}}

// skipInSysroot are the parts of packages no program reads at run time:
// documentation, manual pages and message translations (a daemon in the
// guest runs in the C locale).
var skipInSysroot = []string{"usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/", "usr/share/lintian/", "usr/share/bug/"}

// baseFiles are what a program may expect of any Debian system that
// Essential packages provide, made here because those are left out: a
// user and group for root (ssh refuses to run for a uid without one).
// makeSysroot also makes root's home and /etc/mtab, a link to the
// kernel's mount table (libfuse updates /etc/mtab by running mount unless
// it is a link).
var baseFiles = map[string]string{
	"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
	"etc/group":  "root:x:0:\n",
}

// makeSysroot downloads plan's packages and unpacks them into root, and
// returns the files of the package asked for.
func (r *resolver) makeSysroot(ctx context.Context, plan *SysrootPlan, root string) ([]string, error) {
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	for _, l := range mergedUsr {
		if err := os.Symlink(l[1], filepath.Join(root, l[0])); err != nil {
			return nil, err
		}
	}
	downloads := filepath.Join(filepath.Dir(plan.Entry), downloadPrefix+filepath.Base(plan.Entry))
	if err := os.MkdirAll(downloads, 0o755); err != nil {
		return nil, err
	}
	archive := r.fullArchive()
	keep := func(name string) bool {
		return !slices.ContainsFunc(skipInSysroot, func(p string) bool {
			return strings.HasPrefix(name, p) || name == strings.TrimSuffix(p, "/")
		})
	}
	var own []string
	start := time.Now()
	for _, p := range plan.Packages {
		base := entryName(p) + ".deb"
		// Names come from the index; one must not lead out of the directory.
		if strings.ContainsAny(base, `/\`) || strings.HasPrefix(base, ".") {
			return nil, fmt.Errorf("package %q %q: not a usable file name", p.Name, p.Version)
		}
		file := filepath.Join(downloads, base)
		if err := archive.DownloadFile(ctx, p, file); err != nil {
			// Only a transfer cut short is worth resuming.
			if !debian.IsNetworkError(err) && ctx.Err() == nil {
				os.RemoveAll(downloads)
			}
			return nil, err
		}
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		names, err := deb.ExtractWith(f, root, deb.Options{Keep: keep, Sysroot: true})
		f.Close()
		if err != nil {
			os.RemoveAll(downloads)
			return nil, fmt.Errorf("unpack %s %s: %w", p.Name, p.Version, err)
		}
		if p.Name == plan.Package.Name {
			own = names
		}
	}
	for name, content := range baseFiles {
		if _, err := os.Lstat(filepath.Join(root, name)); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
				return nil, err
			}
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/mtab")); errors.Is(err, os.ErrNotExist) {
		if err := os.Symlink("../proc/self/mounts", filepath.Join(root, "etc/mtab")); err != nil {
			return nil, err
		}
	}
	r.logf("%s: %d packages unpacked in %v", plan.Ref, len(plan.Packages), time.Since(start).Round(100*time.Millisecond))
	if err := os.RemoveAll(downloads); err != nil {
		r.logf("warning: %v", err)
	}
	slices.Sort(own)
	return own, nil
}

// ResolveIn returns the path, relative to root, that name (relative to
// root) leads to when root is "/": every symbolic link on the way is
// followed as the kernel would follow it under chroot, an absolute target
// from root. It reads links only, never a file, and fails on a loop, on a
// missing component, and on a ".." that would climb above root (it stays
// at root, as under chroot).
func ResolveIn(root, name string) (string, error) {
	var done []string // resolved components
	todo := strings.Split(path.Clean("/" + name)[1:], "/")
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cur := path.Join(append(slices.Clone(done), c)...)
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(cur)))
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", name)
		}
		target, err := os.Readlink(filepath.Join(root, filepath.FromSlash(cur)))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			done = nil
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return path.Join(done...), nil
}
