package kernels

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/fusematrix/fusematrix/kernels/flock"
)

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
