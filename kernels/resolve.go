package kernels

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/fusematrix/fusematrix/kernels/debian"
)

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

func (r *resolver) logf(format string, args ...any) {
	if r.log != nil {
		r.log(format, args...)
	}
}
