package kernels

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fusematrix/fusematrix/kernels/deb"
	"github.com/fusematrix/fusematrix/kernels/debian"
	"github.com/fusematrix/fusematrix/kernels/modinfo"
)

// manifestName is written last into an unpacked kernel's directory; the
// directory is renamed into place after it, so an entry that exists is
// complete.
const manifestName = "kernel.json"

// manifest records where an unpacked kernel's parts are, relative to its
// cache entry.
type manifest struct {
	Packages   []string `json:"packages"`
	Release    string   `json:"release"`
	Image      string   `json:"image"`
	Config     string   `json:"config,omitempty"`
	ModulesDir string   `json:"modules_dir,omitempty"`
}

func (r *resolver) logf(format string, args ...any) {
	if r.log != nil {
		r.log(format, args...)
	}
}

// entryName is the cache directory name of a package version. Epochs'
// colons are escaped the way Debian escapes them in URLs.
func entryName(p debian.Package) string {
	return p.Name + "_" + strings.ReplaceAll(p.Version, ":", "%3a")
}

// install returns the kernel unpacked from parts (image first), fetching
// and unpacking them into the cache unless it already holds them.
func (r *resolver) install(ctx context.Context, image debian.Package, parts []debian.Package) (*Kernel, error) {
	root := filepath.Join(r.cacheDir, "kernels")
	entry := filepath.Join(root, entryName(image))
	source := fmt.Sprintf("%s %s (%s)", image.Name, image.Version, image.Suite)
	if k, err := loadEntry(entry, source); err == nil {
		return k, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(ctx, entry+".lock", func() {
		r.logf("waiting for another process unpacking %s", filepath.Base(entry))
	})
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have finished while this one waited.
	k, err := loadEntry(entry, source)
	if err == nil {
		return k, nil
	}
	// Entries appear complete, so one that does not load was damaged
	// afterwards (a file deleted by hand, say): unpack it again.
	if _, serr := os.Stat(entry); serr == nil {
		r.logf("warning: replacing damaged cache entry %s: %v", entry, err)
		if err := os.RemoveAll(entry); err != nil {
			return nil, err
		}
	}
	// Temporary files of this entry that exist now belong to runs that
	// died: the lock says no live run is using them. "_" appears in no
	// package name or version, so the pattern matches no other entry's.
	tmpPrefix := ".tmp-" + entryName(image) + "_"
	stale, _ := filepath.Glob(filepath.Join(root, tmpPrefix+"*"))
	for _, name := range stale {
		os.RemoveAll(name)
	}
	tmp, err := os.MkdirTemp(root, tmpPrefix)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	// MkdirTemp makes the directory private, but whoever runs QEMU may be
	// another user.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	var names []string
	for _, p := range parts {
		got, err := r.fetchPart(ctx, p, filepath.Join(root, tmpPrefix+"*.deb"), tmp)
		if err != nil {
			return nil, err
		}
		names = append(names, got...)
	}
	m, err := describe(names)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", image.Name, image.Version, err)
	}
	for _, p := range parts {
		m.Packages = append(m.Packages, p.Name+" "+p.Version)
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
	return loadEntry(entry, source)
}

// fetchPart downloads p into a temporary file named after pattern (see
// os.CreateTemp), verifies it and unpacks what a kernel needs into dir. The
// .deb is removed afterwards.
func (r *resolver) fetchPart(ctx context.Context, p debian.Package, pattern, dir string) ([]string, error) {
	f, err := os.CreateTemp(filepath.Dir(pattern), filepath.Base(pattern))
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := r.archive.Download(ctx, p, f); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, 0); err != nil {
		return nil, err
	}
	start := time.Now()
	names, err := deb.Extract(f, dir, keepKernelFile)
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

// loadEntry returns the kernel of a complete cache entry.
func loadEntry(entry, source string) (*Kernel, error) {
	data, err := os.ReadFile(filepath.Join(entry, manifestName))
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", entry, err)
	}
	abs := func(rel string) string {
		if rel == "" {
			return ""
		}
		return filepath.Join(entry, filepath.FromSlash(path.Clean(rel)))
	}
	k := &Kernel{Source: source, Release: m.Release, Image: abs(m.Image), Config: abs(m.Config), ModulesDir: abs(m.ModulesDir)}
	if _, err := os.Stat(k.Image); err != nil {
		return nil, err
	}
	return k, nil
}

// lockFile takes an exclusive flock on name, waiting (and calling waiting
// once) while another process holds it, until ctx ends. The lock goes away
// with the process, so a killed run never leaves it taken.
func lockFile(ctx context.Context, name string, waiting func()) (unlock func(), err error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for i := 0; ; i++ {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, &fs.PathError{Op: "flock", Path: name, Err: err}
		}
		if i == 0 && waiting != nil {
			waiting()
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
