// Package elfdeps finds, on the host, every file a user's executable needs
// to run in a fusematrix guest: the executable itself, its dynamic loader
// (PT_INTERP), the shared libraries the loader loads for it (DT_NEEDED,
// transitively) and fusermount3 with its own libraries when the executable
// or one of its libraries names it. It says where each file goes in the
// guest and which environment the guest must give the program, and it
// refuses, before any boot, a file that cannot run in an x86-64 guest: a
// missing path, a script, a file that is not ELF, another architecture, an
// object that is not an executable, a missing loader or library.
//
// The guest root is a u-root initramfs: nothing under /lib, /lib64 or
// /usr/lib/x86_64-linux-gnu exists unless the caller puts it there, there is
// no /etc/ld.so.cache, and u-root's init mounts a tmpfs over /tmp. So the
// loader goes to its PT_INTERP path; a library found in one of glibc's own
// system directories (system_dirs, which ld.so --help lists as "system
// search path": /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib and
// /usr/lib on Debian) goes to the same path, where the guest's loader looks
// without a cache; every other library (found through RUNPATH, $ORIGIN,
// LD_LIBRARY_PATH or a directory of /etc/ld.so.conf, for example under /tmp
// or /usr/local/lib) goes to GuestLibDir, which Binary.Env then puts on
// LD_LIBRARY_PATH.
//
// Nothing named by the binary ever runs on the host: its PT_INTERP must be
// one of the standard glibc or musl loader paths (standardLoaders), which
// is read and copied, and the libraries are found in Go from the ELF files'
// dynamic sections (DT_NEEDED, DT_RPATH, DT_RUNPATH, $ORIGIN) with the
// loader's own search order (see resolver.search). Running the loader in
// trace mode, as ldd does, would run whatever file the binary names as its
// loader; the package does not import os/exec at all (TestImports).
//
// Host side only: this package may import only the standard library,
// golang.org/x/sys and u-root packages, and the guest never imports it.
package elfdeps

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// GuestLibDir is the guest directory for the libraries the guest's loader
// would not find in its system directories; Binary.Env names it in
// LD_LIBRARY_PATH when it is used.
const GuestLibDir = "/usr/lib/fusematrix-daemon"

// File is one file the guest needs.
type File struct {
	// Guest is the absolute path in the guest.
	Guest string
	// Host is the absolute host path of the content, every symlink resolved.
	Host string
	// Mode holds the permission bits of the guest copy (never setuid or
	// setgid: the guest runs everything as root).
	Mode fs.FileMode
}

// Lib is one shared library the loader loads.
type Lib struct {
	// Name is the name the loader searched for (a DT_NEEDED entry), e.g.
	// "libc.so.6", or an absolute path when the DT_NEEDED entry is one.
	Name string
	// Loaded is the host path where the loader's search finds it, as the
	// loader names it (absolute and clean, symlinks kept), e.g.
	// /lib/x86_64-linux-gnu/libc.so.6.
	Loaded string
	// File is where it goes in the guest: Loaded when it is Name in one of
	// the loader's system directories (where the guest's loader looks by
	// itself), else GuestLibDir/Name (the name it searches for; found through
	// Binary.Env), or Loaded for a DT_NEEDED path. Host is Loaded with every
	// symlink resolved; the guest gets a copy, not a symlink.
	File
}

// Binary is an executable and every file the guest needs to run it.
type Binary struct {
	// Path is the absolute host path of the executable, as given (cleaned).
	Path string
	// Real is Path with every symlink resolved: the content to copy.
	Real string
	// Static is true when the executable has no PT_INTERP (static, or
	// static-pie): it needs no loader and no libraries.
	Static bool
	// Interp is the PT_INTERP path, "" when Static. The loader goes to this
	// exact guest path: the kernel opens it.
	Interp string
	// Libs are the shared libraries the loader loads, transitively, in load
	// order; the loader itself is not among them.
	Libs []Lib
	// Fusermount is fusermount3 (or libfuse 2's fusermount) when the
	// executable or one of its libraries names it and the host has it, with
	// its own loader and libraries; nil otherwise (then Notes says why when
	// it was named). Its Path is also its guest path.
	Fusermount *Binary
	// Env holds the NAME=value pairs the guest must set for the program
	// (LD_LIBRARY_PATH=GuestLibDir when a library goes there); nil when it
	// needs none. fusermount3 inherits it, and it is counted in.
	Env []string
	// Notes are warnings for the user: facts about the guest copy that are
	// not errors.
	Notes []string

	deps []File // interp, libs, fusermount's files: what Files adds
}

// Error is why an executable cannot run in the guest.
type Error struct {
	Path   string // the path as given
	Reason string // what is wrong, a sentence without the path
	Err    error  // the underlying error, if any
}

func (e *Error) Error() string { return e.Path + ": " + e.Reason }
func (e *Error) Unwrap() error { return e.Err }

// hiddenInGuest are guest directories that something is mounted over after
// the initramfs is unpacked (u-root's init, pkg/libinit: tmpfs on /tmp,
// devtmpfs on /dev, proc, sysfs), hiding any file put there.
var hiddenInGuest = []string{"/tmp", "/dev", "/proc", "/sys"}

// hidden reports the mount that hides guest path p, or "".
func hidden(p string) string {
	for _, d := range hiddenInGuest {
		if p == d || strings.HasPrefix(p, d+"/") {
			return d
		}
	}
	return ""
}

// Resolve checks that the executable at path can run in an x86-64 guest and
// finds every file it needs there. It runs nothing: neither the executable
// nor its loader (PT_INTERP), which must be a standard one. The host's
// LD_LIBRARY_PATH takes part in the search, as it would for the host's
// loader (a note says so). An error is an *Error naming the cause.
func Resolve(path string) (*Binary, error) {
	r, err := newResolver()
	if err != nil {
		return nil, &Error{Path: path, Reason: err.Error(), Err: err}
	}
	b, err := r.binary(path, true)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Files returns every file the guest needs to run b: the executable at
// guestExe (its host path when guestExe is ""; any path works, since no
// library is looked up relative to it in the guest) followed by the
// loader, the libraries and fusermount3 with its own, each once.
func (b *Binary) Files(guestExe string) ([]File, error) {
	if guestExe == "" {
		guestExe = b.Path
	}
	if !filepath.IsAbs(guestExe) || filepath.Clean(guestExe) != guestExe {
		return nil, fmt.Errorf("guest path %q of %s is not absolute and clean", guestExe, b.Path)
	}
	if d := hidden(guestExe); d != "" {
		return nil, fmt.Errorf("guest path %s of %s is under %s, which the guest mounts over", guestExe, b.Path, d)
	}
	files := []File{{Guest: guestExe, Host: b.Real, Mode: 0o755}}
	for _, f := range b.deps {
		if f.Guest == guestExe {
			return nil, fmt.Errorf("guest path %s of %s is also where %s goes", guestExe, b.Path, f.Host)
		}
		files = append(files, f)
	}
	return files, nil
}

// newResolver returns a resolver of the host's configuration.
func newResolver() (*resolver, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	return &resolver{
		loaders:      map[string]*loader{},
		standard:     standardLoaders,
		llp:          os.Getenv("LD_LIBRARY_PATH"),
		wd:           wd,
		ldsoConfFile: "/etc/ld.so.conf",
		muslPathFile: "/etc/ld-musl-x86_64.path",
	}, nil
}

type resolver struct {
	loaders  map[string]*loader    // by PT_INTERP path
	standard map[string]loaderKind // standardLoaders; tests add their own
	llp      string                // the host's LD_LIBRARY_PATH
	wd       string                // what relative paths are taken from

	ldsoConfFile string // glibc's /etc/ld.so.conf
	muslPathFile string // musl's /etc/ld-musl-x86_64.path
	conf         []string
	confErr      error
	confRead     bool
}

// ldsoConf returns the directories of r.ldsoConfFile, read once.
func (r *resolver) ldsoConf() ([]string, error) {
	if !r.confRead {
		r.conf, r.confErr = ldsoConf(r.ldsoConfFile)
		r.confRead = true
	}
	return r.conf, r.confErr
}

// binary resolves one executable; fuse says whether to look for
// fusermount3 (not for fusermount3 itself).
func (r *resolver) binary(path string, fuse bool) (*Binary, error) {
	fail := func(err error, format string, args ...any) (*Binary, error) {
		return nil, &Error{Path: path, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	if path == "" {
		return fail(nil, "no path given")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fail(err, "%v", err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if li, lerr := os.Lstat(abs); lerr == nil && li.Mode()&fs.ModeSymlink != 0 {
			t, _ := os.Readlink(abs)
			return fail(err, "a symlink to %s, which does not exist", t)
		}
		return fail(err, "no such file")
	case err != nil:
		return fail(err, "%v", err)
	case fi.IsDir():
		return fail(nil, "a directory, not an executable")
	case !fi.Mode().IsRegular():
		return fail(nil, "not a regular file (%v)", fi.Mode().Type())
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fail(err, "%v", err)
	}
	b := &Binary{Path: abs, Real: real}

	f, err := os.Open(real)
	if err != nil {
		return fail(err, "%v", err)
	}
	defer f.Close()
	if reason := notELF(f); reason != "" {
		return fail(nil, "%s", reason)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return fail(err, "a damaged ELF file: %v", err)
	}
	defer ef.Close()
	if reason := wrongTarget(ef); reason != "" {
		return fail(nil, "%s", reason)
	}
	interp, err := interpOf(ef)
	if err != nil {
		return fail(err, "%v", err)
	}
	if reason := notExecutable(ef, interp); reason != "" {
		return fail(nil, "%s", reason)
	}

	if interp == "" {
		b.Static = true
	} else {
		b.Interp = interp
		l, err := r.loader(path, interp)
		if err != nil {
			return nil, err
		}
		if err := r.search(b, path, l); err != nil {
			return nil, err
		}
	}
	if fuse {
		r.fusermount(b)
	}
	return b, b.layout(path)
}

// notELF says why f (at offset 0) is not an ELF file, or "".
func notELF(f io.ReaderAt) string {
	head := make([]byte, 256)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return fmt.Sprintf("cannot read: %v", err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte(elf.ELFMAG)):
		return ""
	case bytes.HasPrefix(head, []byte("#!")):
		line, _, _ := bytes.Cut(head, []byte("\n"))
		s := strings.TrimSpace(string(line))
		if len(s) > 80 {
			s = s[:80] + "…"
		}
		return fmt.Sprintf("a script (%s): give the binary it runs", s)
	case n == 0:
		return "an empty file, not an ELF executable"
	}
	return "not an ELF executable"
}

// machines names the architectures users are likely to hand over by mistake.
var machines = map[elf.Machine]string{
	elf.EM_AARCH64:   "arm64",
	elf.EM_ARM:       "32-bit arm",
	elf.EM_386:       "32-bit x86",
	elf.EM_RISCV:     "riscv",
	elf.EM_PPC64:     "ppc64",
	elf.EM_PPC:       "32-bit powerpc",
	elf.EM_S390:      "s390x",
	elf.EM_MIPS:      "mips",
	elf.EM_LOONGARCH: "loong64",
	elf.EM_SPARCV9:   "sparc64",
}

// wrongTarget says why ef cannot run on an x86-64 Linux guest, or "".
func wrongTarget(ef *elf.File) string {
	if ef.Machine != elf.EM_X86_64 {
		name := machines[ef.Machine]
		if name == "" {
			name = "another architecture's"
		}
		return fmt.Sprintf("%s (%v) binary: the guests are x86-64", name, ef.Machine)
	}
	if ef.Class != elf.ELFCLASS64 {
		return fmt.Sprintf("x32 (%v, %v) binary: the guests run 64-bit x86-64 programs", ef.Class, ef.Machine)
	}
	switch ef.OSABI {
	case elf.ELFOSABI_NONE, elf.ELFOSABI_LINUX:
	default:
		return fmt.Sprintf("a binary for another OS (%v): the guests run Linux", ef.OSABI)
	}
	return ""
}

// interpOf returns ef's PT_INTERP path, "" when it has none.
func interpOf(ef *elf.File) (string, error) {
	for _, p := range ef.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
		if err != nil {
			return "", fmt.Errorf("cannot read its PT_INTERP: %v", err)
		}
		s := strings.TrimRight(string(data), "\x00")
		if s == "" || !filepath.IsAbs(s) || filepath.Clean(s) != s {
			return "", fmt.Errorf("its PT_INTERP %q is not an absolute, clean path", s)
		}
		return s, nil
	}
	return "", nil
}

// notExecutable says why ef is no executable, or "": ET_EXEC, and ET_DYN
// with PT_INTERP (PIE) or without any DT_NEEDED (static-pie, or a loader
// itself) are fine.
func notExecutable(ef *elf.File, interp string) string {
	switch ef.Type {
	case elf.ET_EXEC:
		return ""
	case elf.ET_DYN:
		if interp != "" {
			return ""
		}
		needed, _ := ef.DynString(elf.DT_NEEDED)
		if len(needed) > 0 || ef.Entry == 0 {
			return "a shared library (ET_DYN without PT_INTERP), not an executable"
		}
		return ""
	case elf.ET_REL:
		return "an object file (ET_REL), not an executable: link it first"
	case elf.ET_CORE:
		return "a core dump (ET_CORE), not an executable"
	}
	return fmt.Sprintf("not an executable (ELF type %v)", ef.Type)
}

// layout fills b.deps and b.Env from b's loader, libraries and fusermount3,
// and refuses two different files at one guest path.
func (b *Binary) layout(path string) error {
	seen := map[string]string{} // guest path → host path
	var deps []File
	add := func(f File) error {
		if h, ok := seen[f.Guest]; ok {
			if h != f.Host {
				return &Error{Path: path, Reason: fmt.Sprintf("needs both %s and %s at %s in the guest", h, f.Host, f.Guest)}
			}
			return nil
		}
		seen[f.Guest] = f.Host
		deps = append(deps, f)
		return nil
	}
	one := func(x *Binary) error {
		if x.Interp != "" {
			host, err := filepath.EvalSymlinks(x.Interp)
			if err != nil {
				return &Error{Path: path, Reason: err.Error(), Err: err}
			}
			if err := add(File{Guest: x.Interp, Host: host, Mode: 0o755}); err != nil {
				return err
			}
		}
		for _, l := range x.Libs {
			if err := add(l.File); err != nil {
				return err
			}
		}
		return nil
	}
	if err := one(b); err != nil {
		return err
	}
	if fm := b.Fusermount; fm != nil {
		if err := add(File{Guest: fm.Path, Host: fm.Real, Mode: 0o755}); err != nil {
			return err
		}
		if err := one(fm); err != nil {
			return err
		}
	}
	b.deps = deps
	b.Env = nil
	for _, f := range deps {
		if filepath.Dir(f.Guest) == GuestLibDir {
			b.Env = []string{"LD_LIBRARY_PATH=" + GuestLibDir}
			break
		}
	}
	return nil
}
