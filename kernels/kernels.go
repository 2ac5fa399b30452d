// Package kernels finds the Linux kernels fusematrix boots: it resolves a
// name such as "debian:6.12/cloud" to the newest matching kernel package in
// Debian's archive, downloads and verifies it without apt or dpkg, unpacks
// the parts a guest needs (image, config, modules) into a cache, and works
// out which modules a guest must load, dependencies first.
//
// Archive access lives in kernels/debian, .deb unpacking in kernels/deb and
// module metadata in kernels/modinfo; this package ties them together.
package kernels

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fusematrix/fusematrix/kernels/debian"
)

// DefaultMatrix is what `make matrix` runs when no kernel is named.
var DefaultMatrix = []string{"debian:6.1/cloud", "debian:6.12/cloud"}

// GuestModules are the modules the guest agent needs (patterns allowed).
var GuestModules = []string{"fuse", "virtio_pci", "virtio_console", "pvpanic*"}

// Suites are the Debian suites searched for kernel packages, in order of
// preference when two carry the same package version. A suite the archive
// does not publish is skipped.
var Suites = []string{"bookworm-security", "bookworm", "bookworm-backports"}

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
	// HTTPClient makes the requests; nil is a client with connection
	// timeouts (see debian.NewClient).
	HTTPClient *http.Client
	// Logf receives progress lines (downloads with size and percentage)
	// and warnings; nil discards them.
	Logf func(format string, args ...any)
}

// Kernel is a resolved kernel, unpacked on the host.
type Kernel struct {
	Name       string // as asked, e.g. "debian:6.12/cloud"
	Source     string // exact artefact, e.g. "linux-image-6.12.117+deb12-cloud-amd64 6.12.117-1~deb12u1 (bookworm-security)"
	Release    string // uname -r / modules dir name, e.g. "6.12.117+deb12-cloud-amd64"
	Image      string // host path of the bootable image (vmlinuz)
	Config     string // host path of the kernel config, "" if none
	ModulesDir string // host path of lib/modules/<release>, "" if none
}

// Resolve finds the kernel called name, fetching and unpacking it unless
// the cache already holds it. Names are:
//
//   - "debian:<series>[/<flavour>]", e.g. "debian:6.12/cloud": the newest
//     kernel image package of that series and flavour (cloud, amd64, rt;
//     cloud when omitted) in Suites;
//   - "debian:<package>", e.g. "debian:linux-image-6.1.0-50-cloud-amd64":
//     the newest version of that package in Suites;
//   - a path to an existing file starting with "/", "./" or "../": that
//     image, without modules.
//
// With everything cached and the indexes younger than debian.IndexMaxAge,
// Resolve does not use the network.
func Resolve(ctx context.Context, name string, opts Options) (*Kernel, error) {
	if isPath(name) {
		return localKernel(name)
	}
	q, err := parseName(name)
	if err != nil {
		return nil, err
	}
	r, err := newResolver(opts)
	if err != nil {
		return nil, err
	}
	idxs, err := r.indexes(ctx)
	if err != nil {
		return nil, err
	}
	image, err := q.choose(idxs)
	if err != nil {
		return nil, err
	}
	image, parts, err := packageParts(image, idxs)
	if err != nil {
		return nil, fmt.Errorf("kernel %q: %w", name, err)
	}
	k, err := r.install(ctx, image, parts)
	if err != nil {
		return nil, fmt.Errorf("kernel %q: %w", name, withHint(err))
	}
	k.Name = name
	return k, nil
}

func isPath(name string) bool {
	return strings.HasPrefix(name, "/") || strings.HasPrefix(name, "./") || strings.HasPrefix(name, "../")
}

func localKernel(name string) (*Kernel, error) {
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, fmt.Errorf("kernel %q: %w", name, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("kernel %q: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("kernel %q: not a regular file", name)
	}
	return &Kernel{Name: name, Source: "file " + abs, Image: abs}, nil
}

// resolver is one Resolve call's view of the archive and the cache.
type resolver struct {
	cacheDir string
	archive  *debian.Archive
	log      func(string, ...any)
}

func newResolver(opts Options) (*resolver, error) {
	cacheDir := opts.CacheDir
	if cacheDir == "" {
		cacheDir = os.Getenv("FUSEMATRIX_CACHE")
	}
	if cacheDir == "" {
		user, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("kernels: no cache directory: %w (set FUSEMATRIX_CACHE)", err)
		}
		cacheDir = filepath.Join(user, "fusematrix")
	}
	mirrors, err := mirrors(opts)
	if err != nil {
		return nil, err
	}
	client := opts.HTTPClient
	if client == nil {
		client = debian.NewClient()
	}
	return &resolver{
		cacheDir: cacheDir,
		log:      opts.Logf,
		archive: &debian.Archive{
			Mirrors:  mirrors,
			Arch:     Arch,
			Client:   client,
			CacheDir: filepath.Join(cacheDir, "index"),
			Keep:     isKernelPackage,
			Logf:     opts.Logf,
		},
	}, nil
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
	dir := opts.AptSources
	if dir == "" {
		dir = "/etc/apt"
	}
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

// indexes returns the index of every suite the archive publishes, fetched
// in parallel.
func (r *resolver) indexes(ctx context.Context) ([]*debian.Index, error) {
	idxs := make([]*debian.Index, len(Suites))
	errs := make([]error, len(Suites))
	var wg sync.WaitGroup
	for i, s := range Suites {
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
		return nil, fmt.Errorf("kernels: the configured mirrors publish none of %s (set FUSEMATRIX_MIRROR to use another)", strings.Join(Suites, ", "))
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
