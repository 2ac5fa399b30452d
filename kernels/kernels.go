// Package kernels finds the Linux kernels fusematrix boots: it resolves a
// name such as "debian:6.12/cloud" to the newest matching kernel package in
// Debian's archive, downloads and verifies it without apt or dpkg, unpacks
// the parts a guest needs (image, config, modules) into a cache, and works
// out which modules a guest must load, dependencies first. It also builds
// kernels from a source tree with the project's config fragment (Build,
// and "src:DIR" names).
//
// Archive access lives in kernels/debian, .deb unpacking in kernels/deb and
// module metadata in kernels/modinfo; this package ties them together.
package kernels

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/fusematrix/fusematrix/kernels/debian"
)

// DefaultMatrix is what `make matrix` runs when no kernel is named: the
// catalog's "default" matrix.
var DefaultMatrix = mustMatrix("default")

// GuestModules are the modules the guest agent needs (patterns allowed).
var GuestModules = []string{"fuse", "virtio_pci", "virtio_console", "pvpanic*"}

// Suites are the Debian suites searched for kernel packages, in order of
// preference when two carry the same package version. A suite the archive
// does not publish is skipped. A selector restricted to a release
// ("debian:6.12/cloud@bookworm") only reads that release's suites, so the
// default matrix never waits for the others' indexes.
var Suites = []string{
	"bookworm-security", "bookworm", "bookworm-backports",
	"trixie-security", "trixie", "trixie-backports",
	"sid", "experimental",
}

// Arch is the Debian architecture of the kernels fetched.
const Arch = "amd64"

// Options says where kernels come from and where they are kept. The zero
// value uses the machine's apt configuration and the user's cache.
type Options struct {
	// CacheDir holds indexes and unpacked kernels; "" is $FUSEMATRIX_CACHE,
	// else os.UserCacheDir()/fusematrix.
	CacheDir string
	// Mirror is the base URI of a Debian archive serving every suite
	// except "*-security"; "" is $FUSEMATRIX_MIRROR, else the machine's apt
	// sources decide.
	Mirror string
	// SecurityMirror serves the "*-security" suites when Mirror is set;
	// "" is $FUSEMATRIX_SECURITY_MIRROR, else Mirror with "-security"
	// appended to its last path element.
	SecurityMirror string
	// AptSources is the apt configuration directory read when no mirror is
	// set; "" is /etc/apt.
	AptSources string
	// Keyring holds the archive keys InRelease files must be signed with;
	// "" is $FUSEMATRIX_KEYRING, else debian.DebianKeyring. A keyring
	// named here or in $FUSEMATRIX_KEYRING that does not exist is an
	// error; so is a missing debian.DebianKeyring, unless
	// InsecureUnsigned is set.
	Keyring string
	// InsecureUnsigned accepts InRelease files unchecked when there is no
	// keyring at debian.DebianKeyring (and none is named): the indexes
	// and packages are still checked against their SHA256, but nothing
	// ties them to Debian's keys, and every kernel resolved so says so
	// in Kernel.Unverified. With a keyring, signatures are checked
	// whatever this says.
	InsecureUnsigned bool
	// HTTPClient makes the requests; nil is a client with connection
	// timeouts (see debian.NewClient).
	HTTPClient *http.Client
	// Logf receives progress lines (downloads with size and percentage)
	// and warnings; nil discards them.
	Logf func(format string, args ...any)
	// Catalog defines the named kernels a name may stand for; nil is
	// DefaultCatalog.
	Catalog *Catalog
}

// Kernel is a resolved kernel, unpacked on the host.
type Kernel struct {
	Name       string // as asked, e.g. "debian:6.12/cloud"
	Source     string // exact artefact, e.g. "linux-image-6.12.117+deb12-cloud-amd64 6.12.117-1~deb12u1 (bookworm-security)"
	Release    string // uname -r / modules dir name, e.g. "6.12.117+deb12-cloud-amd64"
	Image      string // host path of the bootable image (vmlinuz)
	Config     string // host path of the kernel config, "" if none
	ModulesDir string // host path of lib/modules/<release>, "" if none
	// Missing names the packages of the kernel the archive lacks (see
	// Resolution.Missing).
	Missing []string
	// Unverified says why the kernel's packages, or the index they were
	// chosen from, were not verified against a signed InRelease
	// (Options.InsecureUnsigned); "" when they were, or when the kernel
	// comes from a file or a source tree.
	Unverified string
}

// Resolve finds the kernel called name, fetching and unpacking it unless
// the cache already holds it. Names are:
//
//   - "debian:<series>[/<flavour>][@<suite>]", e.g. "debian:6.12/cloud":
//     the newest kernel image package of that series and flavour (cloud,
//     amd64, rt; cloud when omitted) in Suites, or only in the suites of
//     one release ("@bookworm": bookworm, bookworm-security, …) or in one
//     suite ("@trixie-backports");
//   - "debian:<package>[@<suite>]", e.g.
//     "debian:linux-image-6.1.0-50-cloud-amd64": the newest version of that
//     package;
//   - a path to an existing file starting with "/", "./" or "../", with
//     optional ",modules=DIR" (lib/modules/<release> of the build, as
//     `make modules_install` lays it out) and ",config=FILE" (its .config);
//   - "src:DIR[,base=defconfig|tinyconfig|FILE][,j=N]": the kernel Build
//     makes from the source tree DIR with FuseConfig applied (built unless
//     the cache holds it);
//   - the name of a named kernel of opts.Catalog (see ParseCatalog): what
//     its selector resolves to, under that name.
//
// With everything cached and the indexes younger than debian.IndexMaxAge,
// Resolve does not use the network.
func Resolve(ctx context.Context, name string, opts Options) (*Kernel, error) {
	return resolve(ctx, name, opts, checkQuick)
}

// resolve looks name up and installs it, checking a cached entry at level.
func resolve(ctx context.Context, name string, opts Options, level checkLevel) (*Kernel, error) {
	if sel := opts.Catalog.expand(name); sel != name {
		k, err := resolve(ctx, sel, opts, level)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		k.Name = name
		return k, nil
	}
	if isPath(name) {
		return localKernel(name, opts.Logf)
	}
	if strings.HasPrefix(name, "src:") {
		return srcSelector(ctx, name, opts)
	}
	r, err := newResolver(opts)
	if err != nil {
		return nil, err
	}
	r.check = level
	res, err := r.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	k, err := r.install(ctx, res.Image, res.Parts, res.Unverified)
	if err != nil {
		return nil, fmt.Errorf("kernel %q: %w", name, withHint(err))
	}
	k.Name = name
	k.Missing = res.Missing
	// The choice of package is only as good as the index it came from.
	k.Unverified = cmp.Or(res.Unverified, k.Unverified)
	return k, nil
}

// Resolution is what a Debian kernel name stands for in the archive, before
// anything is downloaded.
type Resolution struct {
	Name string
	// Image is the package holding the kernel, meta packages followed.
	Image debian.Package
	// Parts are the packages unpacked for it, Image first: one in the
	// older layout, image + base + binary + modules in the newer one.
	Parts []debian.Package
	// Entry is the kernel's directory in the cache, whether or not it
	// exists.
	Entry string
	// Missing names the parts the image depends on that the archive
	// does not carry (linux-modules-…, linux-base-…): booted without.
	Missing []string
	// Unverified says why the indexes Parts come from were not checked
	// against the archive keyring; "" when they were.
	Unverified string
}

// Source describes the package as Kernel.Source does.
func (r *Resolution) Source() string {
	return fmt.Sprintf("%s %s (%s)", r.Image.Name, r.Image.Version, r.Image.Suite)
}

// DownloadSize is the size of the .deb files to fetch when not cached.
func (r *Resolution) DownloadSize() int64 {
	var n int64
	for _, p := range r.Parts {
		n += p.Size
	}
	return n
}

// CacheKey names what the kernel's cache entry is made of, for caches
// kept outside fusematrix, such as a CI job's cache keyed per kernel: two
// resolutions get the same key exactly when they unpack the same package
// versions, so a selector that now resolves to a newer build misses the
// old entry instead of restoring a cache that lacks it. The key starts
// with the image package and version, to be readable in a list of
// caches, and ends with a hash of every part's name and version, since
// both the readable part's truncation and its character mapping lose
// information. Only [A-Za-z0-9._-] occur in it: keys travel through YAML,
// shells and file names.
func (r *Resolution) CacheKey() string {
	parts := make([]string, len(r.Parts))
	for i, p := range r.Parts {
		parts[i] = p.Name + "=" + p.Version
	}
	// The order parts are found in is not what makes them the same.
	slices.Sort(parts)
	sum := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	readable := KeySafe(r.Image.Name + "_" + r.Image.Version)
	if len(readable) > maxReadableKey {
		readable = readable[:maxReadableKey]
	}
	return readable + "_" + hex.EncodeToString(sum[:8])
}

// maxReadableKey bounds the readable part of a cache key; GitHub's cache
// keys, for one, may not exceed 512 characters.
const maxReadableKey = 120

// KeySafe replaces every character outside [A-Za-z0-9._-] with "-", for
// names that must be one plain word (cache keys, artifact names): Debian
// versions carry "+", "~" and ":", selectors "/" and "@".
func KeySafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, s)
}

// Lookup resolves a Debian kernel name (see Resolve) to packages without
// downloading them; it reads the indexes as Resolve does.
func Lookup(ctx context.Context, name string, opts Options) (*Resolution, error) {
	if sel := opts.Catalog.expand(name); sel != name {
		res, err := Lookup(ctx, sel, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		res.Name = name
		return res, nil
	}
	if isPath(name) {
		return nil, fmt.Errorf("kernel %q: a file, not a Debian package", name)
	}
	if strings.HasPrefix(name, "src:") {
		return nil, fmt.Errorf("kernel %q: built from source, not a Debian package", name)
	}
	r, err := newResolver(opts)
	if err != nil {
		return nil, err
	}
	return r.lookup(ctx, name)
}

func (r *resolver) lookup(ctx context.Context, name string) (*Resolution, error) {
	q, err := parseName(name)
	if err != nil {
		return nil, err
	}
	idxs, err := r.indexes(ctx, q.suites(Suites))
	if err != nil {
		return nil, err
	}
	candidates, err := q.candidates(idxs)
	if err != nil {
		return nil, err
	}
	// An archive may list an image whose parts it does not (yet) carry;
	// the newest build that is complete is the one to use.
	var first error
	for _, c := range candidates {
		image, parts, missing, err := packageParts(c, idxs)
		if err != nil {
			first = cmp.Or(first, err)
			continue
		}
		if first != nil {
			r.logf("warning: kernel %s: %v; using %s %s instead", name, first, image.Name, image.Version)
		}
		if len(missing) > 0 {
			r.logf("warning: kernel %s: %s not in the archive; booting %s without", name, strings.Join(missing, " and "), image.Name)
		}
		return &Resolution{Name: name, Image: image, Parts: parts, Missing: missing, Entry: r.entryPath(image), Unverified: r.unverified(parts)}, nil
	}
	return nil, fmt.Errorf("kernel %q: %w", name, first)
}

func isPath(name string) bool {
	return strings.HasPrefix(name, "/") || strings.HasPrefix(name, "./") || strings.HasPrefix(name, "../")
}

// localKernel is a kernel image file given by path, with the modules
// directory and config named after it. It warns through logf when neither
// the config nor the modules provide FUSE.
func localKernel(name string, logf func(string, ...any)) (*Kernel, error) {
	file, opts, _ := strings.Cut(name, ",")
	k := &Kernel{Name: name}
	var err error
	if k.Image, err = localFile(file, false); err != nil {
		return nil, fmt.Errorf("kernel %q: %w", name, err)
	}
	k.Source = "file " + k.Image
	if opts != "" {
		for opt := range strings.SplitSeq(opts, ",") {
			key, value, _ := strings.Cut(opt, "=")
			switch {
			case key == "modules" && value != "":
				k.ModulesDir, err = localFile(value, true)
				k.Release = filepath.Base(k.ModulesDir)
			case key == "config" && value != "":
				k.Config, err = localFile(value, false)
			default:
				return nil, fmt.Errorf("kernel %q: option %q: want modules=DIR or config=FILE", name, opt)
			}
			if err != nil {
				return nil, fmt.Errorf("kernel %q: %w", name, err)
			}
		}
	}
	if warning := k.fuseWarning(); warning != "" && logf != nil {
		logf("warning: kernel %s: %s", name, warning)
	}
	return k, nil
}

func localFile(name string, dir bool) (string, error) {
	abs, err := filepath.Abs(name)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	switch {
	case dir && !st.IsDir():
		return "", fmt.Errorf("%s: not a directory", name)
	case !dir && !st.Mode().IsRegular():
		return "", fmt.Errorf("%s: not a regular file", name)
	}
	return abs, nil
}

// fuseWarning says why FUSE may be missing from the kernel, or "" when
// the config builds it in or the modules hold it.
func (k *Kernel) fuseWarning() string {
	if k.ModulesDir != "" {
		// No error: a module file or built in, either way the guest has it.
		if _, _, err := k.Modules("fuse"); err == nil {
			return ""
		}
	}
	opts, err := k.ConfigOptions()
	if err != nil {
		return err.Error()
	}
	switch {
	case k.Config == "" && k.ModulesDir == "":
		return "no config and no modules given: cannot tell whether FUSE is built in (add ,config=FILE)"
	case opts["CONFIG_FUSE_FS"] == "y":
		return ""
	case opts["CONFIG_FUSE_FS"] == "m":
		return "FUSE is a module (CONFIG_FUSE_FS=m) but no fuse module is in the modules given (add ,modules=DIR)"
	case k.Config == "":
		return "FUSE is not among the modules given, and no config says it is built in"
	}
	return "FUSE is neither built in (CONFIG_FUSE_FS is not y in the config) nor among the modules"
}

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

// resolver is one Resolve call's view of the archive and the cache.
type resolver struct {
	check    checkLevel
	cacheDir string
	archive  *debian.Archive
	log      func(string, ...any)
	// unsigned says why InRelease signatures are not checked, "" when
	// they are.
	unsigned string
}

// unverified says why parts are not verified, or "" when every one comes
// from a signed index.
func (r *resolver) unverified(parts []debian.Package) string {
	var suites []string
	for _, p := range parts {
		if p.Unsigned && !slices.Contains(suites, p.Suite) {
			suites = append(suites, p.Suite)
		}
	}
	if len(suites) == 0 {
		return ""
	}
	return fmt.Sprintf("InRelease of %s not signature-checked: %s", strings.Join(suites, ", "), cmp.Or(r.unsigned, "no keyring"))
}

func newResolver(opts Options) (*resolver, error) {
	cacheDir, err := cacheRoot(opts)
	if err != nil {
		return nil, err
	}
	mirrors, err := mirrors(opts)
	if err != nil {
		return nil, err
	}
	check, unsigned, err := signatureCheck(opts)
	if err != nil {
		return nil, err
	}
	// Mirrors taken from apt's sources come with apt's policy on stale
	// indexes.
	ignoreValidUntil := false
	if !mirrorOverridden(opts) {
		var file string
		if ignoreValidUntil, file = debian.AptIgnoresValidUntil(aptDir(opts)); ignoreValidUntil {
			noValidUntilWarned.Do(func() {
				if opts.Logf != nil {
					opts.Logf("warning: %s turns off apt's Valid-Until check (Acquire::Check-Valid-Until), so fusematrix does not check it either on the apt mirrors", file)
				}
			})
		}
	}
	client := opts.HTTPClient
	if client == nil {
		client = debian.NewClient()
	}
	return &resolver{
		cacheDir: cacheDir,
		log:      opts.Logf,
		unsigned: unsigned,
		archive: &debian.Archive{
			Mirrors:          mirrors,
			Arch:             Arch,
			Client:           client,
			CacheDir:         filepath.Join(cacheDir, "index"),
			Keep:             isKernelPackage,
			CheckSignature:   check,
			IgnoreValidUntil: ignoreValidUntil,
			Logf:             opts.Logf,
		},
	}, nil
}

// noKeyringWarned keeps the warning about unchecked signatures to one per
// process, however many kernels a run resolves.
var noKeyringWarned sync.Once

// defaultKeyring is debian.DebianKeyring, replaced in tests.
var defaultKeyring = debian.DebianKeyring

// ErrNoKeyring is the cause of the error a resolver gives when there is no
// archive keyring to check InRelease signatures with.
var ErrNoKeyring = errors.New("no archive keyring")

// signatureCheck returns the check of InRelease files against the keyring
// opts names, or, when there is none at the default path and
// opts.InsecureUnsigned accepts that, nil and why. The keyring is read
// when the first InRelease is, so that resolving from cached indexes
// costs nothing.
func signatureCheck(opts Options) (check debian.SignatureCheck, unsigned string, err error) {
	path, from := opts.Keyring, "the keyring option"
	if path == "" {
		path, from = os.Getenv("FUSEMATRIX_KEYRING"), "FUSEMATRIX_KEYRING"
	}
	if path != "" {
		// Named on purpose: never silently replaced by no check.
		if _, err := os.Stat(path); err != nil {
			return nil, "", fmt.Errorf("kernels: %s names %s: %w: %w", from, path, ErrNoKeyring, err)
		}
	} else {
		path = defaultKeyring
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if !opts.InsecureUnsigned {
				return nil, "", fmt.Errorf("kernels: %w at %s to check InRelease signatures with: install debian-archive-keyring, "+
					"set FUSEMATRIX_KEYRING, or pass -insecure-unsigned to use unsigned indexes (results then say so)", ErrNoKeyring, path)
			}
			unsigned = fmt.Sprintf("no archive keyring at %s (-insecure-unsigned)", path)
			noKeyringWarned.Do(func() {
				if opts.Logf != nil {
					opts.Logf("warning: %s: InRelease signatures are not checked; kernels are marked unverified", unsigned)
				}
			})
			return nil, unsigned, nil
		}
	}
	var (
		once sync.Once
		keys debian.SignatureCheck
	)
	return func(suite string, inRelease []byte) error {
		once.Do(func() {
			var list openpgp.EntityList
			if list, err = debian.ReadKeyring(path); err == nil {
				keys = debian.KeyringCheck(list)
			}
		})
		if err != nil {
			return err
		}
		return keys(suite, inRelease)
	}, "", nil
}

// noValidUntilWarned keeps the warning about apt's Valid-Until setting to
// one per process.
var noValidUntilWarned sync.Once

// mirrorOverridden reports whether opts or the environment name a mirror,
// rather than leaving it to apt's sources.
func mirrorOverridden(opts Options) bool {
	return opts.Mirror != "" || os.Getenv("FUSEMATRIX_MIRROR") != ""
}

// aptDir is the apt configuration directory opts names.
func aptDir(opts Options) string {
	if opts.AptSources != "" {
		return opts.AptSources
	}
	return "/etc/apt"
}

func mirrors(opts Options) (debian.Mirrors, error) {
	mirror := opts.Mirror
	if mirror == "" {
		mirror = os.Getenv("FUSEMATRIX_MIRROR")
	}
	if mirror != "" {
		security := opts.SecurityMirror
		if security == "" {
			security = os.Getenv("FUSEMATRIX_SECURITY_MIRROR")
		}
		m, err := debian.OverrideMirrors(mirror, security)
		if err != nil {
			return m, fmt.Errorf("kernels: %w", err)
		}
		return m, nil
	}
	dir := aptDir(opts)
	m, err := debian.ReadAptSources(dir, Arch)
	if err != nil {
		return m, fmt.Errorf("kernels: %w (fix it, or set FUSEMATRIX_MIRROR)", err)
	}
	for _, s := range Suites {
		if _, ok := m.URI(s); ok {
			return m, nil
		}
	}
	return m, fmt.Errorf("kernels: no Debian mirror configured for %s: add one to %s or set FUSEMATRIX_MIRROR",
		strings.Join(Suites, ", "), filepath.Join(dir, "sources.list.d"))
}

// isKernelPackage selects the index entries kernels can need: images
// (including meta packages) and the parts the newer layout splits them
// into.
func isKernelPackage(name string) bool {
	for _, p := range []string{"linux-image-", "linux-binary-", "linux-modules-", "linux-base-"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// indexes returns the index of every one of suites that the archive
// publishes, fetched in parallel.
func (r *resolver) indexes(ctx context.Context, suites []string) ([]*debian.Index, error) {
	idxs := make([]*debian.Index, len(suites))
	errs := make([]error, len(suites))
	var wg sync.WaitGroup
	for i, s := range suites {
		wg.Go(func() { idxs[i], errs[i] = r.archive.Index(ctx, s) })
	}
	wg.Wait()
	// One line is clearer than one per suite, and suites failing together
	// usually fail for the same reason.
	for _, err := range errs {
		if err != nil {
			return nil, withHint(err)
		}
	}
	var present []*debian.Index
	for _, idx := range idxs {
		if !idx.Absent {
			present = append(present, idx)
		}
	}
	if len(present) == 0 {
		return nil, fmt.Errorf("kernels: the configured mirrors publish none of %s (set FUSEMATRIX_MIRROR to use another)", strings.Join(suites, ", "))
	}
	return present, nil
}

// withHint adds what to do to an error that means the mirror could not be
// reached.
func withHint(err error) error {
	if err != nil && debian.IsNetworkError(err) && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w (is the mirror reachable? set FUSEMATRIX_MIRROR to use another)", err)
	}
	return err
}
