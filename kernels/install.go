package kernels

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/kernels/deb"
	"github.com/fusematrix/fusematrix/kernels/debian"
	"github.com/fusematrix/fusematrix/kernels/modinfo"
)

// install returns the kernel unpacked from parts (image first), fetching
// and unpacking them into the cache unless it already holds them;
// unverified (Resolution.Unverified) is recorded with the entry. An entry
// installed unverified is installed again by a resolver that checks
// signatures, and an entry unpacked from other packages than parts (an
// image unpacked without its modules, which the archive carries now, or
// the other way round) is unpacked again.
func (r *resolver) install(ctx context.Context, image debian.Package, parts []debian.Package, unverified string) (*Kernel, error) {
	root := filepath.Join(r.cacheDir, "kernels")
	entry := r.entryPath(image)
	source := fmt.Sprintf("%s %s (%s)", image.Name, image.Version, image.Suite)
	accept := func(m *manifest) error {
		if r.unsigned == "" && m.Unverified != "" {
			return fmt.Errorf("installed unverified (%s)", m.Unverified)
		}
		return m.unpackedFrom(parts)
	}
	k, unlock, err := claimEntry(ctx, entry, source, r.check, accept, func() {
		r.logf("waiting for another process unpacking %s", filepath.Base(entry))
	}, r.logf)
	if k != nil || err != nil {
		return k, err
	}
	defer unlock()
	tmp, err := freshTemp(root, entryName(image))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	// MkdirTemp makes the directory private, but whoever runs QEMU may be
	// another user.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	downloads := r.downloadDir(image)
	if err := os.MkdirAll(downloads, 0o755); err != nil {
		return nil, err
	}
	var names []string
	for _, p := range parts {
		got, err := r.fetchPart(ctx, p, downloads, tmp, keepKernelFile)
		if err != nil {
			// Only a transfer cut short is worth resuming; anything else
			// (a bad file, a package that does not unpack) would fail the
			// same way again.
			if !debian.IsNetworkError(err) && ctx.Err() == nil {
				os.RemoveAll(downloads)
			}
			return nil, err
		}
		names = append(names, got...)
	}
	m, err := describe(names)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", image.Name, image.Version, err)
	}
	m.Packages = packageList(parts)
	m.Unverified = unverified
	if m.Files, err = hashTree(tmp); err != nil {
		return nil, fmt.Errorf("%s %s: %w", image.Name, image.Version, err)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, manifestName), data, 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, entry); err != nil {
		return nil, fmt.Errorf("install %s: %w", entry, err)
	}
	if err := os.RemoveAll(downloads); err != nil {
		r.logf("warning: %v", err)
	}
	return loadEntry(entry, source, checkQuick)
}

// fetchPart downloads p into the directory downloads, resuming what an
// earlier run left there, and unpacks what a kernel needs into dir.
func (r *resolver) fetchPart(ctx context.Context, p debian.Package, downloads, dir string, keep func(string) bool) ([]string, error) {
	base := entryName(p) + ".deb"
	// Names come from the index; one must not lead out of the directory.
	if strings.ContainsAny(base, `/\`) || strings.HasPrefix(base, ".") {
		return nil, fmt.Errorf("package %q %q: not a usable file name", p.Name, p.Version)
	}
	file := filepath.Join(downloads, base)
	if err := r.archive.DownloadFile(ctx, p, file); err != nil {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	start := time.Now()
	names, err := deb.Extract(f, dir, keep)
	if err != nil {
		return nil, fmt.Errorf("unpack %s %s: %w", p.Name, p.Version, err)
	}
	if len(names) > 0 {
		r.logf("unpacked %s: %d files in %v", p.Name, len(names), time.Since(start).Round(100*time.Millisecond))
	}
	return names, nil
}

// modulesPrefix returns the release and the rest of a name below
// lib/modules/<release>/ or usr/lib/modules/<release>/.
func modulesPrefix(name string) (dir, release, rest string, ok bool) {
	for _, prefix := range []string{"lib/modules/", "usr/lib/modules/"} {
		if after, found := strings.CutPrefix(name, prefix); found {
			release, rest, ok = strings.Cut(after, "/")
			return prefix + release, release, rest, ok && release != "" && rest != ""
		}
	}
	return "", "", "", false
}

// keepKernelFile selects what a guest needs from a kernel package: the
// image, the config, module files and the module lists depmod would read.
func keepKernelFile(name string) bool {
	if strings.HasPrefix(name, "boot/vmlinuz-") || strings.HasPrefix(name, "boot/config-") {
		return true
	}
	_, _, rest, ok := modulesPrefix(name)
	if !ok {
		return false
	}
	switch rest {
	case "vmlinuz", "config", "modules.builtin", "modules.order", "modules.builtin.modinfo":
		return true
	}
	_, isModule := modinfo.ModuleName(rest)
	return isModule
}

// describe finds the image, config and modules directory among the
// unpacked names.
func describe(names []string) (*manifest, error) {
	m := &manifest{}
	setRelease := func(rel string) error {
		if m.Release != "" && m.Release != rel {
			return fmt.Errorf("package holds two kernel releases, %s and %s", m.Release, rel)
		}
		m.Release = rel
		return nil
	}
	for _, name := range names {
		var err error
		switch {
		case strings.HasPrefix(name, "boot/vmlinuz-"):
			m.Image = name
			err = setRelease(strings.TrimPrefix(name, "boot/vmlinuz-"))
		case strings.HasPrefix(name, "boot/config-"):
			m.Config = name
		default:
			dir, rel, rest, ok := modulesPrefix(name)
			if !ok {
				continue
			}
			err = setRelease(rel)
			switch rest {
			case "vmlinuz":
				m.Image = name
			case "config":
				m.Config = name
			default:
				m.ModulesDir = dir
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if m.Image == "" {
		return nil, errors.New("no kernel image (boot/vmlinuz-* or usr/lib/modules/*/vmlinuz) in the package")
	}
	return m, nil
}
