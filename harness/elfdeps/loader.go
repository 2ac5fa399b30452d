package elfdeps

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// loaderTimeout bounds each run of a loader (--version, --help, a trace).
const loaderTimeout = 30 * time.Second

// loader is a dynamic loader on the host, checked and asked once.
type loader struct {
	path    string          // PT_INTERP
	glibc   bool            // honours LD_TRACE_LOADED_OBJECTS, prints "not found"
	sysDirs map[string]bool // its own search directories, used without a cache
}

// loader checks the loader at interp (the PT_INTERP of the executable at
// path) and asks it what it is.
func (r *resolver) loader(path, interp string) (*loader, error) {
	if l, ok := r.loaders[interp]; ok {
		return l, nil
	}
	fail := func(err error, format string, args ...any) (*loader, error) {
		return nil, &Error{Path: path, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	if d := hidden(interp); d != "" {
		return fail(nil, "its dynamic loader %s (PT_INTERP) is under %s, which the guest mounts over", interp, d)
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
	ef, err := elf.Open(interp)
	if err != nil {
		return fail(err, "its dynamic loader %s (PT_INTERP) is not an ELF file: %v", interp, err)
	}
	bad := wrongTarget(ef)
	ef.Close()
	if bad != "" {
		return fail(nil, "its dynamic loader %s (PT_INTERP) is not an x86-64 Linux ELF file: %s", interp, bad)
	}

	l := &loader{path: interp, sysDirs: map[string]bool{}}
	// glibc's ld.so prints "ld.so (Debian GLIBC 2.36-9+deb12u10) stable
	// release version 2.36." and, since 2.33, its search path in --help.
	if out, err := runLoader(nil, interp, "--version"); err == nil {
		l.glibc = bytes.Contains(out, []byte("GLIBC")) || bytes.Contains(out, []byte("GNU C Library"))
	}
	if l.glibc {
		if out, err := runLoader(nil, interp, "--help"); err == nil {
			for d := range systemDirs(string(out)) {
				l.sysDirs[d] = true
			}
		}
	}
	r.loaders[interp] = l
	return l, nil
}

// systemDirs returns the "(system search path)" directories of glibc's
// ld.so --help, e.g.
//
//	Shared library search path:
//	  (libraries located via /etc/ld.so.cache)
//	  /lib/x86_64-linux-gnu (system search path)
func systemDirs(help string) map[string]bool {
	dirs := map[string]bool{}
	for _, line := range strings.Split(help, "\n") {
		d, ok := strings.CutSuffix(strings.TrimSpace(line), " (system search path)")
		if ok && filepath.IsAbs(d) {
			dirs[filepath.Clean(d)] = true
		}
	}
	return dirs
}

// runLoader runs the loader with args in an environment of env alone and
// returns its standard output; an error carries its standard error.
func runLoader(env []string, interp string, args ...string) ([]byte, error) {
	out, _, err := runLoaderBoth(env, interp, args...)
	return out, err
}

func runLoaderBoth(env []string, interp string, args ...string) (stdout, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), loaderTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, interp, args...)
	// Never nil: nothing inherited. The working directory is ours, so a
	// relative LD_LIBRARY_PATH entry means the same to the loader and to
	// filepath.Abs.
	cmd.Env = append([]string{}, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s did not finish within %v", interp, loaderTimeout)
	}
	return o.Bytes(), e.Bytes(), err
}

// traceLine is one object of a loader's trace.
type traceLine struct {
	name    string // what was searched for
	path    string // where it was found, "" when not found
	missing bool
}

// parseTrace reads a loader's trace (glibc's LD_TRACE_LOADED_OBJECTS or
// --list, musl's --list) and its standard error:
//
//	linux-vdso.so.1 (0x00007ffd…)                                  skipped
//	libfuse3.so.3 => /lib/x86_64-linux-gnu/libfuse3.so.3 (0x…)
//	libfoo.so.1 => not found
//	/lib64/ld-linux-x86-64.so.2 (0x…)                              an absolute name
//	…: error while loading shared libraries: libfoo.so.1: cannot open shared object file…   (glibc --list)
//	Error loading shared library libfoo.so.1: No such file or directory (needed by …)       (musl)
func parseTrace(stdout, stderr string) []traceLine {
	var lines []traceLine
	seen := map[string]bool{}
	addLine := func(l traceLine) {
		if !seen[l.name] {
			seen[l.name] = true
			lines = append(lines, l)
		}
	}
	stripAddr := func(s string) string {
		if i := strings.LastIndex(s, " (0x"); i >= 0 && strings.HasSuffix(s, ")") {
			s = s[:i]
		}
		return strings.TrimSpace(s)
	}
	for _, line := range strings.Split(stdout, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if name, rest, ok := strings.Cut(line, " => "); ok {
			name = strings.TrimSpace(name)
			rest = stripAddr(rest)
			switch {
			case rest == "not found":
				addLine(traceLine{name: name, missing: true})
			case rest != "" && !strings.HasPrefix(rest, "("):
				addLine(traceLine{name: name, path: rest})
			}
			continue
		}
		if p := stripAddr(line); filepath.IsAbs(p) {
			addLine(traceLine{name: p, path: p})
		}
	}
	for _, line := range strings.Split(stderr, "\n") {
		var name string
		if _, rest, ok := strings.Cut(line, "error while loading shared libraries: "); ok {
			name, _, _ = strings.Cut(rest, ": ")
		} else if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Error loading shared library "); ok {
			name, _, _ = strings.Cut(rest, ": ")
		}
		if name = strings.TrimSpace(name); name != "" {
			addLine(traceLine{name: name, missing: true})
		}
	}
	return lines
}

// dynamic finds b's libraries with its loader and lays them out.
func (r *resolver) dynamic(b *Binary, path string) error {
	l, err := r.loader(path, b.Interp)
	if err != nil {
		return err
	}
	var env []string
	if v, ok := os.LookupEnv("LD_LIBRARY_PATH"); ok && v != "" {
		env = append(env, "LD_LIBRARY_PATH="+v)
		b.Notes = append(b.Notes, fmt.Sprintf("the host's LD_LIBRARY_PATH=%s took part in finding %s's libraries", v, filepath.Base(b.Path)))
	}
	// The real path, as the kernel would run it: glibc takes the main
	// program's $ORIGIN from /proc/self/exe, which has symlinks resolved.
	var stdout, stderr []byte
	if l.glibc {
		stdout, stderr, err = runLoaderBoth(append(env, "LD_TRACE_LOADED_OBJECTS=1"), l.path, b.Real)
	} else {
		stdout, stderr, err = runLoaderBoth(env, l.path, "--list", b.Real)
	}
	trace := parseTrace(string(stdout), string(stderr))
	var missing []string
	for _, t := range trace {
		if t.missing {
			missing = append(missing, t.name)
		}
	}
	if err != nil && len(missing) == 0 {
		return &Error{Path: path, Err: err, Reason: fmt.Sprintf("its loader %s could not list its libraries: %v: %s",
			l.path, err, strings.TrimSpace(string(stderr)))}
	}

	realInterp, err := filepath.EvalSymlinks(l.path)
	if err != nil {
		return &Error{Path: path, Reason: err.Error(), Err: err}
	}
	for _, t := range trace {
		if t.missing {
			continue
		}
		loaded, err := filepath.Abs(t.path)
		if err != nil {
			return &Error{Path: path, Reason: err.Error(), Err: err}
		}
		host, err := filepath.EvalSymlinks(loaded)
		if err != nil {
			return &Error{Path: path, Err: err, Reason: fmt.Sprintf("its library %s: %v", loaded, err)}
		}
		if loaded == l.path || host == realInterp {
			continue // the loader itself: the kernel maps it, at Interp
		}
		fi, err := os.Stat(host)
		if err != nil || !fi.Mode().IsRegular() {
			return &Error{Path: path, Err: err, Reason: fmt.Sprintf("its library %s is not a regular file", loaded)}
		}
		lib := Lib{Name: t.name, Loaded: loaded, File: File{Host: host, Mode: fi.Mode().Perm() | 0o444}}
		switch {
		case strings.Contains(t.name, "/"):
			// A DT_NEEDED path: the loader opens it as is, no search.
			lib.Guest = loaded
			if d := hidden(loaded); d != "" {
				return &Error{Path: path, Reason: fmt.Sprintf("needs %s by its path, which is under %s, which the guest mounts over", loaded, d)}
			}
		case l.sysDirs[filepath.Dir(loaded)] && filepath.Base(loaded) == t.name:
			// Where the guest's loader looks without LD_LIBRARY_PATH or a cache.
			lib.Guest = loaded
		default:
			lib.Guest = GuestLibDir + "/" + t.name
		}
		b.Libs = append(b.Libs, lib)
	}
	if len(missing) > 0 {
		return missingError(b, path, missing)
	}
	if l.glibc {
		r.runtimeLibs(b, l)
	}
	return nil
}

// glibcDlopens are libraries glibc itself opens at run time, which no
// DT_NEEDED names: libgcc_s for pthread_cancel and stack unwinding (a
// libfuse daemon's threads are cancelled at unmount, and without it
// glibc aborts: "libgcc_s.so.1 must be installed for pthread_cancel to
// work").
var glibcDlopens = []string{"libgcc_s.so.1"}

// runtimeLibs adds glibcDlopens to a program linked against glibc's libc,
// from the loader's own directories, where the guest's loader looks too.
func (r *resolver) runtimeLibs(b *Binary, l *loader) {
	if !slices.ContainsFunc(b.Libs, func(lib Lib) bool { return lib.Name == "libc.so.6" }) {
		return
	}
	dirs := slices.Sorted(maps.Keys(l.sysDirs))
	for _, name := range glibcDlopens {
		if slices.ContainsFunc(b.Libs, func(lib Lib) bool { return lib.Name == name }) {
			continue
		}
		found := false
		for _, d := range dirs {
			loaded := filepath.Join(d, name)
			host, err := filepath.EvalSymlinks(loaded)
			if err != nil {
				continue
			}
			fi, err := os.Stat(host)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			b.Libs = append(b.Libs, Lib{Name: name, Loaded: loaded, File: File{Guest: loaded, Host: host, Mode: fi.Mode().Perm() | 0o444}})
			found = true
			break
		}
		if !found {
			b.Notes = append(b.Notes, fmt.Sprintf("glibc opens %s at run time (thread cancellation, unwinding), and the host has none in %s: the daemon may abort when its threads are cancelled",
				name, strings.Join(dirs, ", ")))
		}
	}
}

// missingError names every library the loader could not find and the
// objects that need each one (their DT_NEEDED).
func missingError(b *Binary, path string, missing []string) error {
	type object struct{ shown, file string }
	objects := []object{{b.Path, b.Real}}
	for _, l := range b.Libs {
		objects = append(objects, object{l.Loaded, l.Host})
	}
	neededBy := map[string][]string{}
	for _, o := range objects {
		ef, err := elf.Open(o.file)
		if err != nil {
			continue
		}
		needed, _ := ef.DynString(elf.DT_NEEDED)
		ef.Close()
		for _, n := range needed {
			neededBy[n] = append(neededBy[n], o.shown)
		}
	}
	parts := make([]string, len(missing))
	for i, m := range missing {
		parts[i] = m
		if by := neededBy[m]; len(by) > 0 {
			parts[i] += " (needed by " + strings.Join(by, ", ") + ")"
		}
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
