package kernels

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/fusematrix/fusematrix/kernels/debian"
)

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
