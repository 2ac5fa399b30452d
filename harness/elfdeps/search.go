package elfdeps

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// glibcPlatform is what glibc's loader puts for $PLATFORM on x86-64: the
// kernel's AT_PLATFORM (ld.so --help on Debian 12 says "x86_64
// (AT_PLATFORM; supported, searched)", and $PLATFORM expanded so there).
const glibcPlatform = "x86_64"

// fileID identifies a file as the loaders do, to load it once whatever
// name or symlink leads to it.
type fileID struct{ dev, ino uint64 }

func idOf(fi fs.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{uint64(st.Dev), st.Ino}
	}
	return fileID{}
}

// object is the executable or a library the loader would load: a link
// map in glibc's words.
type object struct {
	name   string  // the DT_NEEDED it was loaded for; "" for the executable
	path   string  // where it was found, absolute and clean, symlinks kept (glibc's l_name)
	real   string  // path with every symlink resolved
	id     fileID  // the file, to load it once
	origin string  // $ORIGIN: the directory of path (of real for the executable)
	loader *object // the object whose DT_NEEDED first loaded it (l_loader, musl's needed_by)

	needed   []string
	soname   string
	runpath  string // DT_RUNPATH
	rpath    string // DT_RPATH, "" when there is a DT_RUNPATH (glibc ignores it then)
	nodeflib bool   // DF_1_NODEFLIB: no cache, no default directories
}

// readObject reads the dynamic section of the ELF file at path.
func readObject(path string) (*object, error) {
	ef, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	o := &object{path: path}
	last := func(tag elf.DynTag) (string, error) {
		v, err := ef.DynString(tag)
		if err != nil || len(v) == 0 {
			return "", err
		}
		return v[len(v)-1], nil // glibc keeps the last entry of a tag
	}
	if o.needed, err = ef.DynString(elf.DT_NEEDED); err != nil {
		return nil, err
	}
	if o.soname, err = last(elf.DT_SONAME); err != nil {
		return nil, err
	}
	if o.runpath, err = last(elf.DT_RUNPATH); err != nil {
		return nil, err
	}
	var hasRunpath bool
	if v, _ := ef.DynString(elf.DT_RUNPATH); len(v) > 0 {
		hasRunpath = true
	}
	if !hasRunpath {
		if o.rpath, err = last(elf.DT_RPATH); err != nil {
			return nil, err
		}
	}
	if v, err := ef.DynValue(elf.DT_FLAGS_1); err == nil && len(v) > 0 {
		o.nodeflib = v[len(v)-1]&uint64(elf.DF_1_NODEFLIB) != 0
	}
	return o, nil
}

// search resolves b's libraries in Go, as its loader would, and nothing
// runs.
//
// glibc (elf/dl-load.c, _dl_map_object; elf/dl-deps.c): breadth first
// from the executable, each DT_NEEDED once (a name matches an object
// loaded under that name, at that path, or with that DT_SONAME, the
// loader included); a name with a "/" is opened as it is; any other is
// looked for in the DT_RPATH of the object that needs it and of each
// object that loaded that one, up to the executable (only when the
// object needing it has no DT_RUNPATH; an object with one has no RPATH),
// then LD_LIBRARY_PATH, then that object's own DT_RUNPATH, then (unless
// it has DF_1_NODEFLIB) the directories of /etc/ld.so.conf, for the
// cache ldconfig makes of them, and the loader's system directories.
// $ORIGIN, $LIB and $PLATFORM (bare or in braces) are replaced in each
// path; an empty element is the working directory. A file of another
// class or machine is passed over; any other file that is not ELF stops
// the search with an error, as it does the loader. A file already loaded
// under another name is not loaded again. The glibc-hwcaps and legacy
// hwcap subdirectories are not searched: the baseline library runs on
// any guest CPU, the tuned one on the host's only.
//
// musl (ldso/dynlink.c, load_library): the same, but LD_LIBRARY_PATH
// first, then the DT_RUNPATH (else DT_RPATH) of the object that needs the
// library and of every object that loaded it, then
// /etc/ld-musl-x86_64.path or musl's default path; lib{c,pthread,rt,m,
// dl,util,xnet}.* are the loader itself, and only $ORIGIN is replaced (a
// path with any other "$" is not used).
func (r *resolver) search(b *Binary, path string, l *loader) error {
	fail := func(err error, format string, args ...any) error {
		return &Error{Path: path, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	main, err := readObject(b.Real)
	if err != nil {
		return fail(err, "cannot read its dynamic section: %v", err)
	}
	// The kernel runs the real file: glibc and musl take the executable's
	// $ORIGIN from /proc/self/exe, which has every symlink resolved.
	main.path, main.real, main.origin = b.Real, b.Real, filepath.Dir(b.Real)

	llp := r.llp
	if llp != "" {
		b.Notes = append(b.Notes, fmt.Sprintf("the host's LD_LIBRARY_PATH=%s took part in finding %s's libraries", llp, filepath.Base(b.Path)))
	}
	var defaults []string // the last directories searched
	switch l.kind {
	case glibc:
		conf, err := r.ldsoConf()
		if err != nil {
			return fail(err, "reading the loader's configuration: %v", err)
		}
		defaults = append(slices.Clone(conf), l.sysDirs...)
		if l.sysDirs == nil {
			defaults = append(defaults, defaultDirs...)
		}
	case musl:
		if defaults, err = muslPath(r.muslPathFile); err != nil {
			return fail(err, "reading the loader's configuration: %v", err)
		}
		if defaults == nil {
			defaults = muslDefaultPath
		}
	}

	// Names the loader answers by itself: its PT_INTERP path and soname.
	byName := map[string]*object{}
	self := &object{path: l.path}
	byName[l.path] = self
	if l.soname != "" {
		byName[l.soname] = self
	}
	if main.soname != "" {
		byName[main.soname] = main
	}
	fi, err := os.Stat(b.Real)
	if err != nil {
		return fail(err, "%v", err)
	}
	byID := map[fileID]*object{l.id: self, idOf(fi): main}
	missing := map[string][]string{} // name → the objects that need it
	var missingOrder []string
	shown := func(o *object) string {
		if o == main {
			return b.Path
		}
		return o.path
	}

	queue := []*object{main}
	for i := 0; i < len(queue); i++ {
		o := queue[i]
		for _, need := range o.needed {
			if l.kind == musl && muslReserved(need) {
				continue
			}
			name := need
			if l.kind == glibc && strings.Contains(name, "$") {
				var ok bool
				if name, ok = r.expand(name, o, l); !ok {
					name = need // glibc gives up on it: reported missing
				}
			}
			if _, ok := byName[name]; ok {
				continue
			}
			if by, ok := missing[name]; ok {
				if !slices.Contains(by, shown(o)) {
					missing[name] = append(by, shown(o))
				}
				continue
			}
			var found string
			var ferr error
			if strings.Contains(name, "/") {
				p := name
				if !filepath.IsAbs(p) {
					p = filepath.Join(r.wd, p) // as the loader would, from the working directory
				}
				found, ferr = candidate(p)
			} else {
				for _, dir := range r.dirs(o, l, llp, defaults) {
					if found, ferr = candidate(filepath.Join(dir, name)); found != "" || ferr != nil {
						break
					}
				}
			}
			if ferr != nil {
				var bad *badCandidate
				if errors.As(ferr, &bad) {
					return fail(ferr, "its library %s (needed by %s) %s", bad.path, shown(o), bad.why)
				}
				return fail(ferr, "looking for its library %s (needed by %s): %v", name, shown(o), ferr)
			}
			if found == "" {
				missing[name] = []string{shown(o)}
				missingOrder = append(missingOrder, name)
				continue
			}
			fi, err := os.Stat(found)
			if err != nil {
				return fail(err, "its library %s: %v", found, err)
			}
			if prev, ok := byID[idOf(fi)]; ok {
				// The same file under another name: loaded once.
				byName[name] = prev
				continue
			}
			lib, err := readObject(found)
			if err != nil {
				return fail(err, "its library %s (needed by %s) is a damaged ELF file: %v", found, shown(o), err)
			}
			if lib.real, err = filepath.EvalSymlinks(found); err != nil {
				return fail(err, "its library %s: %v", found, err)
			}
			lib.name, lib.id, lib.origin, lib.loader = name, idOf(fi), filepath.Dir(found), o
			byName[name], byName[found], byID[lib.id] = lib, lib, lib
			if lib.soname != "" {
				if _, ok := byName[lib.soname]; !ok {
					byName[lib.soname] = lib
				}
			}
			queue = append(queue, lib)
			if err := r.addLib(b, path, l, lib.name, found, lib.real, fi); err != nil {
				return err
			}
		}
	}
	if len(missingOrder) > 0 {
		return missingError(path, missingOrder, missing)
	}
	if l.kind == glibc {
		r.runtimeLibs(b, path, l, defaults)
	}
	return nil
}

// addLib appends the library name, found at loaded, to b.Libs with its
// guest path.
func (r *resolver) addLib(b *Binary, path string, l *loader, name, loaded, host string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return &Error{Path: path, Reason: fmt.Sprintf("its library %s is not a regular file", loaded)}
	}
	lib := Lib{Name: name, Loaded: loaded, File: File{Host: host, Mode: fi.Mode().Perm() | 0o444}}
	switch {
	case strings.Contains(name, "/"):
		// A DT_NEEDED path: the loader opens it as is, no search.
		lib.Guest = loaded
		if d := hidden(loaded); d != "" {
			return &Error{Path: path, Reason: fmt.Sprintf("needs %s by its path, which is under %s, which the guest mounts over", loaded, d)}
		}
	case slices.Contains(l.sysDirs, filepath.Dir(loaded)) && filepath.Base(loaded) == name:
		// Where the guest's loader looks without LD_LIBRARY_PATH or a cache.
		lib.Guest = loaded
	default:
		lib.Guest = GuestLibDir + "/" + name
	}
	b.Libs = append(b.Libs, lib)
	return nil
}

// dirs are the directories searched for a library that o needs, in order.
func (r *resolver) dirs(o *object, l *loader, llp string, defaults []string) []string {
	var dirs []string
	// add appends the elements of list, its tokens replaced for object
	// from (none when nil). glibc keeps an empty element (the working
	// directory), musl skips it.
	add := func(from *object, list string, sep string) {
		for _, d := range splitPath(list, sep, l.kind == glibc) {
			switch {
			case from == nil:
			case l.kind == musl:
				d = muslExpand(d, from)
			default:
				var ok bool
				if d, ok = r.expand(d, from, l); !ok {
					continue
				}
			}
			if d == "" {
				d = "."
			}
			if !filepath.IsAbs(d) {
				d = filepath.Join(r.wd, d)
			}
			dirs = append(dirs, filepath.Clean(d))
		}
	}
	if l.kind == musl {
		add(nil, llp, ":\n") // musl replaces no token in LD_LIBRARY_PATH
		for p := o; p != nil; p = p.loader {
			rp := p.runpath
			if rp == "" {
				rp = p.rpath
			}
			if !strings.Contains(muslStrip(rp), "$") {
				add(p, rp, ":")
			}
		}
		return append(dirs, defaults...)
	}
	if o.runpath == "" {
		for p := o; p != nil; p = p.loader {
			if p.rpath != "" {
				add(p, p.rpath, ":")
			}
		}
	}
	if llp != "" {
		add(r.main(o), llp, ":;") // glibc replaces tokens for the executable
	}
	if o.runpath != "" {
		add(o, o.runpath, ":")
	}
	if !o.nodeflib {
		dirs = append(dirs, defaults...)
	}
	return dirs
}

// splitPath splits a search path at any byte of sep, keeping empty
// elements when keepEmpty.
func splitPath(list, sep string, keepEmpty bool) []string {
	f := func(c rune) bool { return strings.ContainsRune(sep, c) }
	if !keepEmpty {
		return strings.FieldsFunc(list, f)
	}
	var out []string
	for {
		i := strings.IndexFunc(list, f)
		if i < 0 {
			return append(out, list)
		}
		out = append(out, list[:i])
		list = list[i+1:]
	}
}

// main is the executable: the end of o's loading chain.
func (r *resolver) main(o *object) *object {
	for o.loader != nil {
		o = o.loader
	}
	return o
}

// expand replaces glibc's dynamic string tokens in s for object o
// (elf/dl-load.c, _dl_dst_substitute): $ORIGIN, $PLATFORM and $LIB, bare
// (ended by a character that cannot be in a name) or in braces; any other
// "$" stays. ok is false when a known token has no value: glibc then
// drops the path.
func (r *resolver) expand(s string, o *object, l *loader) (out string, ok bool) {
	if !strings.Contains(s, "$") {
		return s, true
	}
	libDir := ""
	if len(l.sysDirs) > 0 {
		// glibc's $LIB is its library directory without the leading
		// slash: "lib/x86_64-linux-gnu" on Debian, "lib64" elsewhere.
		libDir = strings.TrimPrefix(l.sysDirs[0], "/")
	}
	var w strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			w.WriteByte(s[i])
			continue
		}
		name, n := dstName(s[i+1:])
		var v string
		switch name {
		case "ORIGIN":
			v = o.origin
		case "PLATFORM":
			v = glibcPlatform
		case "LIB":
			v = libDir
		default:
			w.WriteByte('$')
			continue
		}
		if v == "" {
			return "", false
		}
		w.WriteString(v)
		i += n
	}
	return w.String(), true
}

// dstName reads a token name after "$": NAME (ended by anything but a
// letter, digit or "_") or {NAME}; n is the bytes it takes, 0 for none.
func dstName(s string) (name string, n int) {
	if strings.HasPrefix(s, "{") {
		if end := strings.IndexByte(s, '}'); end > 0 {
			return s[1:end], end + 1
		}
		return "", 0
	}
	for n < len(s) && (s[n] == '_' || 'a' <= s[n] && s[n] <= 'z' || 'A' <= s[n] && s[n] <= 'Z' || '0' <= s[n] && s[n] <= '9') {
		n++
	}
	return s[:n], n
}

// muslStrip removes musl's $ORIGIN and ${ORIGIN} (a prefix match, as
// musl's fixup_rpath does), so that any "$" left means musl ignores the
// path.
func muslStrip(s string) string {
	s = strings.ReplaceAll(s, "${ORIGIN}", "")
	return strings.ReplaceAll(s, "$ORIGIN", "")
}

// muslExpand replaces musl's $ORIGIN and ${ORIGIN} for object o.
func muslExpand(s string, o *object) string {
	s = strings.ReplaceAll(s, "${ORIGIN}", o.origin)
	return strings.ReplaceAll(s, "$ORIGIN", o.origin)
}

// muslReserved says whether musl's loader takes name for itself
// (ldso/dynlink.c: "Catch and block attempts to reload the implementation
// itself").
func muslReserved(name string) bool {
	rest, ok := strings.CutPrefix(name, "lib")
	if !ok {
		return false
	}
	for _, r := range []string{"c.", "pthread.", "rt.", "m.", "dl.", "util.", "xnet."} {
		if strings.HasPrefix(rest, r) {
			return true
		}
	}
	return false
}

// candidate checks the file at p: p (cleaned) when it
// is a 64-bit x86-64 ELF file; "" and no error when there is no such file
// or it is one of another class or machine, which the loader passes over
// (elf/dl-load.c, open_verify); an error for any other file, which stops
// the loader.
func candidate(p string) (string, error) {
	p = filepath.Clean(p)
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() {
		return "", nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	defer f.Close()
	var h [20]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return "", &badCandidate{p, "is not an ELF file (too short)"}
		}
		return "", fmt.Errorf("%s: %w", p, err)
	}
	if string(h[:4]) != elf.ELFMAG {
		return "", &badCandidate{p, "is not an ELF file"}
	}
	if elf.Class(h[elf.EI_CLASS]) != elf.ELFCLASS64 || elf.Data(h[elf.EI_DATA]) != elf.ELFDATA2LSB ||
		elf.Machine(binary.LittleEndian.Uint16(h[18:20])) != elf.EM_X86_64 {
		return "", nil
	}
	return p, nil
}

// badCandidate is a file the loader would stop at.
type badCandidate struct{ path, why string }

func (e *badCandidate) Error() string { return e.path + " " + e.why }

// missingError names every library that could not be found and the
// objects that need each one.
func missingError(path string, names []string, neededBy map[string][]string) error {
	parts := make([]string, len(names))
	for i, m := range names {
		parts[i] = m + " (needed by " + strings.Join(neededBy[m], ", ") + ")"
	}
	var reason string
	if len(parts) == 1 {
		reason = fmt.Sprintf("needs %s, which the host's loader cannot find: install it, or point LD_LIBRARY_PATH at its directory", parts[0])
	} else {
		reason = fmt.Sprintf("needs %s and %s, which the host's loader cannot find: install them, or point LD_LIBRARY_PATH at their directories",
			strings.Join(parts[:len(parts)-1], ", "), parts[len(parts)-1])
	}
	return &Error{Path: path, Reason: reason}
}

// glibcDlopens are libraries glibc itself opens at run time, which no
// DT_NEEDED names: libgcc_s for pthread_cancel and stack unwinding (a
// libfuse daemon's threads are cancelled at unmount, and without it
// glibc aborts: "libgcc_s.so.1 must be installed for pthread_cancel to
// work").
var glibcDlopens = []string{"libgcc_s.so.1"}

// runtimeLibs adds glibcDlopens to a program linked against glibc's libc,
// found where libc's dlopen finds it on the host (the cache's and the
// loader's directories).
func (r *resolver) runtimeLibs(b *Binary, path string, l *loader, dirs []string) {
	if !slices.ContainsFunc(b.Libs, func(lib Lib) bool { return lib.Name == "libc.so.6" }) {
		return
	}
	for _, name := range glibcDlopens {
		if slices.ContainsFunc(b.Libs, func(lib Lib) bool { return lib.Name == name }) {
			continue
		}
		found := false
		for _, d := range dirs {
			loaded, err := candidate(filepath.Join(d, name))
			if err != nil || loaded == "" {
				continue
			}
			host, err := filepath.EvalSymlinks(loaded)
			if err != nil {
				continue
			}
			fi, err := os.Stat(host)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			if r.addLib(b, path, l, name, loaded, host, fi) == nil {
				found = true
				break
			}
		}
		if !found {
			b.Notes = append(b.Notes, fmt.Sprintf("glibc opens %s at run time (thread cancellation, unwinding), and the host has none in %s: the daemon may abort when its threads are cancelled",
				name, strings.Join(dirs, ", ")))
		}
	}
}
