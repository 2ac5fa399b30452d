package elfdeps

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// loaderKind is the C library a standard loader belongs to: it decides
// the search order (glibc's or musl's).
type loaderKind int

const (
	glibc loaderKind = iota + 1
	musl
)

// standardLoaders are the only PT_INTERP paths accepted, and what each
// is. The loader is copied into the guest, never run on the host: a
// binary's PT_INTERP is chosen by whoever linked it
// (-Wl,--dynamic-linker=/var/tmp/x/evil), so running it to list the
// libraries (as ldd does) would run the daemon author's code on the host,
// as root. These are the paths glibc's and musl's x86-64 ports give their
// loaders; usr-merged hosts reach the same file through either.
var standardLoaders = map[string]loaderKind{
	"/lib64/ld-linux-x86-64.so.2":                    glibc,
	"/usr/lib64/ld-linux-x86-64.so.2":                glibc,
	"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2":     glibc,
	"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": glibc,
	"/lib/ld-musl-x86_64.so.1":                       musl,
}

// defaultDirs are the directories a loader searches last when its own
// list cannot be read from it: Debian's multiarch directories, then the
// classic 64-bit ones, then /lib and /usr/lib.
var defaultDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// muslDefaultPath is musl's built-in system path, used without
// /etc/ld-musl-x86_64.path (ldso/dynlink.c, sys_path).
var muslDefaultPath = []string{"/lib", "/usr/local/lib", "/usr/lib"}

// loader is a standard dynamic loader on the host, read (never run) once.
type loader struct {
	path   string // PT_INTERP
	kind   loaderKind
	soname string // its DT_SONAME: a DT_NEEDED of that name is the loader itself
	id     fileID
	// sysDirs are glibc's own search directories (system_dirs in
	// elf/dl-load.c, as ld.so --help lists them), in order, read from the
	// loader's bytes; nil when not found there. The guest's copy of the
	// loader looks there without a cache, so a library found in one keeps
	// its path in the guest.
	sysDirs []string
}

// loader checks the loader at interp (the PT_INTERP of the executable at
// path): a standard path, an existing regular file, x86-64 ELF.
func (r *resolver) loader(path, interp string) (*loader, error) {
	if l, ok := r.loaders[interp]; ok {
		return l, nil
	}
	fail := func(err error, format string, args ...any) (*loader, error) {
		return nil, &Error{Path: path, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	kind, ok := r.standard[interp]
	if !ok {
		std := make([]string, 0, len(r.standard))
		for p := range r.standard {
			std = append(std, p)
		}
		slices.Sort(std)
		return fail(nil, "its dynamic loader %s (PT_INTERP) is none of the standard x86-64 loaders (%s), "+
			"the only ones fusematrix copies into a guest (it never runs a binary's loader): link it against the host's C library, or statically",
			interp, strings.Join(std, ", "))
	}
	fi, err := os.Stat(interp)
	if errors.Is(err, os.ErrNotExist) {
		return fail(err, "needs the dynamic loader %s (PT_INTERP), which does not exist on the host", interp)
	}
	if err != nil {
		return fail(err, "its dynamic loader %s (PT_INTERP): %v", interp, err)
	}
	if !fi.Mode().IsRegular() {
		return fail(nil, "its dynamic loader %s (PT_INTERP) is not a regular file", interp)
	}
	data, err := os.ReadFile(interp)
	if err != nil {
		return fail(err, "its dynamic loader %s (PT_INTERP): %v", interp, err)
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fail(err, "its dynamic loader %s (PT_INTERP) is not an ELF file: %v", interp, err)
	}
	bad := wrongTarget(ef)
	var soname string
	if names, _ := ef.DynString(elf.DT_SONAME); len(names) > 0 {
		soname = names[len(names)-1]
	}
	ef.Close()
	if bad != "" {
		return fail(nil, "its dynamic loader %s (PT_INTERP) is not an x86-64 Linux ELF file: %s", interp, bad)
	}
	l := &loader{path: interp, kind: kind, soname: soname, id: idOf(fi)}
	if kind == glibc {
		l.sysDirs = glibcSystemDirs(data)
	}
	r.loaders[interp] = l
	return l, nil
}

// glibcSystemDirs finds glibc's system_dirs in the loader's bytes: its
// default directories as consecutive NUL-terminated strings, each ending
// in "/" ("/lib/x86_64-linux-gnu/\0/usr/lib/x86_64-linux-gnu/\0/lib/\0
// /usr/lib/\0" on Debian 12). It looks for one of defaultDirs so written
// and takes the whole run of such strings around it; nil when there is
// none.
func glibcSystemDirs(data []byte) []string {
	isDir := func(s []byte) bool {
		if len(s) < 2 || len(s) > 256 || s[0] != '/' || s[len(s)-1] != '/' {
			return false
		}
		for _, c := range s {
			if !isPathByte(c) {
				return false
			}
		}
		return true
	}
	for _, d := range defaultDirs {
		i := bytes.Index(data, []byte("\x00"+d+"/\x00"))
		if i < 0 {
			continue
		}
		start := i + 1
		for start > 1 { // back over the entries before it
			j := bytes.LastIndexByte(data[:start-1], 0) + 1
			if !isDir(data[j : start-1]) {
				break
			}
			start = j
		}
		var dirs []string
		for p := start; p < len(data); {
			n := bytes.IndexByte(data[p:], 0)
			if n < 0 || !isDir(data[p:p+n]) {
				break
			}
			dirs = append(dirs, strings.TrimSuffix(string(data[p:p+n]), "/"))
			p += n + 1
		}
		return dirs
	}
	return nil
}
