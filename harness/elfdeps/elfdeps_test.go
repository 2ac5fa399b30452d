package elfdeps

import (
	"debug/elf"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// need skips the test when the host lacks a tool.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
}

// run runs a command in dir and fails the test with its output if it fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
}

// goBuild builds a static Go program for GOARCH goarch and returns its path.
func goBuild(t *testing.T, goarch, src string) string {
	t.Helper()
	need(t, "go")
	dir := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n\ngo 1.21\n"), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644))
	run(t, dir, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + goarch, "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local"},
		"go", "build", "-o", "prog", ".")
	return filepath.Join(dir, "prog")
}

// cc compiles the C source src in dir to out with gcc and extra flags.
func cc(t *testing.T, dir, out, src string, flags ...string) string {
	t.Helper()
	return ccWith(t, "gcc", dir, out, src, flags...)
}

// ccWith is cc with another compiler (musl-gcc).
func ccWith(t *testing.T, compiler, dir, out, src string, flags ...string) string {
	t.Helper()
	need(t, compiler)
	c := filepath.Join(dir, out+".c")
	assert.NilError(t, os.WriteFile(c, []byte(src), 0o644))
	run(t, dir, nil, compiler, append([]string{"-o", out, c}, flags...)...)
	return filepath.Join(dir, out)
}

// outsideTmp returns a new directory that is not under /tmp (which the
// guest mounts over, and which elfdeps refuses for a path it must keep),
// removed when the test ends.
func outsideTmp(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "fusematrix-elfdeps-")
	if err != nil {
		t.Skipf("no directory outside /tmp: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// pkgConfig returns the flags of a pkg-config module, skipping without it.
func pkgConfig(t *testing.T, module string) []string {
	t.Helper()
	need(t, "pkg-config")
	out, err := exec.Command("pkg-config", "--cflags", "--libs", module).Output()
	if err != nil {
		t.Skipf("pkg-config %s: %v (install libfuse3-dev)", module, err)
	}
	return strings.Fields(string(out))
}

const goStatic = `package main

import "fmt"

// go-fuse runs fusermount3 when it cannot mount by itself.
var helper = "fusermount3"

func main() { fmt.Println("static", len(helper)) }
`

const cFuse = `#define FUSE_USE_VERSION 31
#include <stdio.h>
#include <fuse.h>
int main(void) { printf("libfuse %s\n", fuse_pkgversion()); return 0; }
`

const cFooLib = `int foo(void) { return 42; }`

const cFooMain = `#include <stdio.h>
int foo(void);
int main(void) { printf("foo %d\n", foo()); return 0; }
`

// fooProgram builds libfoo.so.1 and a program that finds it next to
// itself ($ORIGIN), in a fresh directory (under /tmp, which the guest
// mounts over); it returns the program and the library.
func fooProgram(t *testing.T, flags ...string) (prog, lib string) {
	dir := t.TempDir()
	lib = cc(t, dir, "libfoo.so.1", cFooLib, "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1")
	prog = cc(t, dir, "foo", cFooMain, append([]string{"-L" + dir, "-l:libfoo.so.1", "-Wl,-rpath,$ORIGIN"}, flags...)...)
	return prog, lib
}

// chainProgram builds, in dir, lib/libfoo.so.1, lib/libbar.so.2 (which
// needs libfoo and says nothing of where it is) and a program that needs
// libbar and names $ORIGIN/lib as its DT_RPATH (dtags
// "--disable-new-dtags") or DT_RUNPATH ("--enable-new-dtags"), built with
// compiler (gcc, or musl-gcc).
func chainProgram(t *testing.T, compiler, dir, dtags string) (prog, lib string) {
	lib = filepath.Join(dir, "lib")
	assert.NilError(t, os.MkdirAll(lib, 0o755))
	ccWith(t, compiler, lib, "libfoo.so.1", cFooLib, "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1")
	ccWith(t, compiler, lib, "libbar.so.2", "int foo(void); int bar(void) { return foo(); }",
		"-shared", "-fPIC", "-Wl,-soname,libbar.so.2", "-L"+lib, "-l:libfoo.so.1")
	prog = ccWith(t, compiler, dir, "p", "int bar(void); int main(void) { return bar() - 42; }",
		"-L"+lib, "-l:libbar.so.2", "-Wl,-rpath-link,"+lib, "-Wl,"+dtags+",-rpath,$ORIGIN/lib")
	return prog, lib
}

func libNames(b *Binary) []string {
	var names []string
	for _, l := range b.Libs {
		names = append(names, l.Name)
	}
	return names
}

func hostFusermount(t *testing.T) string {
	p, err := exec.LookPath("fusermount3")
	if err != nil {
		return ""
	}
	return p
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(t *testing.T) string
		check func(t *testing.T, b *Binary)
	}{
		{
			name:  "static Go",
			build: func(t *testing.T) string { return goBuild(t, "amd64", goStatic) },
			check: func(t *testing.T, b *Binary) {
				assert.Check(t, b.Static)
				assert.Check(t, is.Equal(b.Interp, ""))
				assert.Check(t, is.Len(b.Libs, 0))
				assert.Check(t, is.Nil(b.Env))
				// It names fusermount3, as go-fuse does: the host's comes
				// along, with its own loader and libc.
				if hostFusermount(t) == "" {
					assert.Check(t, b.Fusermount == nil)
					assert.Check(t, is.Len(b.Notes, 1))
					return
				}
				assert.Assert(t, b.Fusermount != nil, "notes: %q", b.Notes)
				assert.Check(t, is.Equal(filepath.Base(b.Fusermount.Path), "fusermount3"))
				files, err := b.Files("/daemon/prog")
				assert.NilError(t, err)
				assert.Check(t, slices.ContainsFunc(files, func(f File) bool { return f.Guest == b.Fusermount.Path }))
				assert.Check(t, slices.ContainsFunc(files, func(f File) bool { return f.Guest == b.Fusermount.Interp }))
			},
		},
		{
			name: "static-pie C",
			build: func(t *testing.T) string {
				need(t, "gcc")
				dir := t.TempDir()
				c := filepath.Join(dir, "p.c")
				assert.NilError(t, os.WriteFile(c, []byte(cFooLib+"\nint main(void){return foo()-42;}\n"), 0o644))
				if out, err := exec.Command("gcc", "-static-pie", "-o", filepath.Join(dir, "p"), c).CombinedOutput(); err != nil {
					t.Skipf("gcc -static-pie: %v: %s (no static libc?)", err, out)
				}
				return filepath.Join(dir, "p")
			},
			check: func(t *testing.T, b *Binary) {
				assert.Check(t, b.Static)
				assert.Check(t, is.Len(b.Libs, 0))
				assert.Check(t, b.Fusermount == nil)
			},
		},
		{
			name: "libfuse program",
			build: func(t *testing.T) string {
				return cc(t, t.TempDir(), "fuseprog", cFuse, pkgConfig(t, "fuse3")...)
			},
			check: func(t *testing.T, b *Binary) {
				assert.Check(t, !b.Static)
				assert.Check(t, is.Equal(b.Interp, "/lib64/ld-linux-x86-64.so.2"))
				names := libNames(b)
				assert.Check(t, is.Contains(names, "libfuse3.so.3"))
				assert.Check(t, is.Contains(names, "libc.so.6"))
				assert.Check(t, is.Contains(names, "libgcc_s.so.1"), "glibc's pthread_cancel opens it at run time")
				assert.Check(t, !slices.Contains(names, "ld-linux-x86-64.so.2"), "the loader is Interp, not a Lib")
				assert.Check(t, is.Nil(b.Env), "Debian's libraries are in the loader's system directories")
				for _, l := range b.Libs {
					assert.Check(t, filepath.IsAbs(l.Guest) && filepath.IsAbs(l.Host), "%+v", l)
					fi, err := os.Lstat(l.Host)
					assert.NilError(t, err)
					assert.Check(t, fi.Mode().IsRegular(), "%s: symlinks resolved", l.Host)
				}
				if hostFusermount(t) == "" {
					assert.Check(t, b.Fusermount == nil)
					return
				}
				// libfuse3.so.3 names its built-in /usr/bin/fusermount3.
				assert.Assert(t, b.Fusermount != nil, "notes: %q", b.Notes)
				assert.Check(t, is.Equal(b.Fusermount.Path, "/usr/bin/fusermount3"))
				assert.Check(t, is.Contains(libNames(b.Fusermount), "libc.so.6"))
			},
		},
		{
			name: "library next to the program",
			build: func(t *testing.T) string {
				prog, _ := fooProgram(t)
				return prog
			},
			check: func(t *testing.T, b *Binary) {
				// libgcc_s: glibc opens it at run time (glibcDlopens).
				assert.Check(t, is.DeepEqual(libNames(b), []string{"libfoo.so.1", "libc.so.6", "libgcc_s.so.1"}))
				assert.Check(t, is.Equal(b.Libs[0].Loaded, filepath.Join(filepath.Dir(b.Path), "libfoo.so.1")))
				assert.Check(t, is.Equal(b.Libs[0].Guest, GuestLibDir+"/libfoo.so.1"), "not under /tmp")
				assert.Check(t, is.Equal(b.Libs[1].Guest, "/lib/x86_64-linux-gnu/libc.so.6"))
				assert.Check(t, is.DeepEqual(b.Env, []string{"LD_LIBRARY_PATH=" + GuestLibDir}))
				assert.Check(t, b.Fusermount == nil)
			},
		},
		{
			name: "RPATH serves a library's library",
			build: func(t *testing.T) string {
				prog, _ := chainProgram(t, "gcc", t.TempDir(), "--disable-new-dtags")
				return prog
			},
			check: func(t *testing.T, b *Binary) {
				// Breadth first, as the loader maps them.
				assert.Check(t, is.DeepEqual(libNames(b), []string{"libbar.so.2", "libc.so.6", "libfoo.so.1", "libgcc_s.so.1"}))
				assert.Check(t, is.Equal(b.Libs[2].Loaded, filepath.Join(filepath.Dir(b.Path), "lib", "libfoo.so.1")))
				assert.Check(t, is.Equal(b.Libs[2].Guest, GuestLibDir+"/libfoo.so.1"))
			},
		},
		{
			name: "another machine's library is passed over",
			build: func(t *testing.T) string {
				dir := t.TempDir()
				lib := cc(t, dir, "libfoo.so.1", cFooLib, "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1")
				data, err := os.ReadFile(lib)
				assert.NilError(t, err)
				data[18], data[19] = byte(elf.EM_AARCH64), 0 // e_machine
				assert.NilError(t, os.Mkdir(filepath.Join(dir, "arm64"), 0o755))
				assert.NilError(t, os.WriteFile(filepath.Join(dir, "arm64", "libfoo.so.1"), data, 0o755))
				return cc(t, dir, "p", cFooMain, "-L"+dir, "-l:libfoo.so.1", "-Wl,--enable-new-dtags,-rpath,${ORIGIN}/arm64:${ORIGIN}")
			},
			check: func(t *testing.T, b *Binary) {
				assert.Check(t, is.Equal(b.Libs[0].Loaded, filepath.Join(filepath.Dir(b.Path), "libfoo.so.1")))
			},
		},
		{
			name: "DT_NEEDED path",
			build: func(t *testing.T) string {
				dir := outsideTmp(t)
				lib := cc(t, dir, "libabs.so", cFooLib, "-shared", "-fPIC") // no soname: the link names it by path
				return cc(t, dir, "p", cFooMain, lib)
			},
			check: func(t *testing.T, b *Binary) {
				lib := filepath.Join(filepath.Dir(b.Path), "libabs.so")
				assert.Check(t, is.DeepEqual(libNames(b), []string{lib, "libc.so.6", "libgcc_s.so.1"}))
				assert.Check(t, is.Equal(b.Libs[0].Guest, lib), "opened by its path in the guest too")
				assert.Check(t, is.Nil(b.Env))
			},
		},
		{
			// musl searches the RUNPATH of every object up the chain, and
			// its libc is its loader.
			name: "musl",
			build: func(t *testing.T) string {
				prog, _ := chainProgram(t, "musl-gcc", t.TempDir(), "--enable-new-dtags")
				return prog
			},
			check: func(t *testing.T, b *Binary) {
				assert.Check(t, is.Equal(b.Interp, "/lib/ld-musl-x86_64.so.1"))
				assert.Check(t, is.DeepEqual(libNames(b), []string{"libbar.so.2", "libfoo.so.1"}))
				assert.Check(t, is.DeepEqual(b.Env, []string{"LD_LIBRARY_PATH=" + GuestLibDir}))
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := tc.build(t)
			b, err := Resolve(path)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(b.Path, path))
			tc.check(t, b)
		})
	}
}

func TestResolveErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		build    func(t *testing.T) string
		standard map[string]loaderKind // the standard loaders, when not the real ones
		want     string                // the error after "PATH: "; {path} is PATH, {dir} its directory
		is       error
	}{
		{
			name:  "missing path",
			build: func(t *testing.T) string { return filepath.Join(t.TempDir(), "nothing") },
			want:  "no such file",
			is:    fs.ErrNotExist,
		},
		{
			name: "dangling symlink",
			build: func(t *testing.T) string {
				p := filepath.Join(t.TempDir(), "link")
				assert.NilError(t, os.Symlink("/nonexistent/daemon", p))
				return p
			},
			want: "a symlink to /nonexistent/daemon, which does not exist",
			is:   fs.ErrNotExist,
		},
		{
			name:  "directory",
			build: func(t *testing.T) string { return t.TempDir() },
			want:  "a directory, not an executable",
		},
		{
			name:  "shell script",
			build: writeFile("run.sh", "#!/bin/sh\nexec /usr/bin/mydaemon \"$@\"\n"),
			want:  "a script (#!/bin/sh): give the binary it runs",
		},
		{
			name:  "text file",
			build: writeFile("notes.txt", "mount it at /mnt\n"),
			want:  "not an ELF executable",
		},
		{
			name:  "empty file",
			build: writeFile("empty", ""),
			want:  "an empty file, not an ELF executable",
		},
		{
			name:  "truncated ELF",
			build: writeFile("short", "\x7fELF\x02\x01\x01"),
			want:  "a damaged ELF file: ",
		},
		{
			name:  "arm64 binary",
			build: func(t *testing.T) string { return goBuild(t, "arm64", "package main\n\nfunc main() {}\n") },
			want:  "arm64 (EM_AARCH64) binary: the guests are x86-64",
		},
		{
			name: "object file",
			build: func(t *testing.T) string {
				dir := t.TempDir()
				cc(t, dir, "foo.o", cFooLib, "-c")
				return filepath.Join(dir, "foo.o")
			},
			want: "an object file (ET_REL), not an executable: link it first",
		},
		{
			name: "shared library",
			build: func(t *testing.T) string {
				_, lib := fooProgram(t)
				return lib
			},
			want: "a shared library (ET_DYN without PT_INTERP), not an executable",
		},
		{
			name: "missing library",
			build: func(t *testing.T) string {
				prog, lib := fooProgram(t)
				assert.NilError(t, os.Remove(lib))
				return prog
			},
			want: "needs libfoo.so.1 (needed by {path}), which the host's loader cannot find: " +
				"install it, or point LD_LIBRARY_PATH at its directory",
		},
		{
			name: "missing library of a library",
			build: func(t *testing.T) string {
				dir := t.TempDir()
				foo := cc(t, dir, "libfoo.so.1", cFooLib, "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1")
				cc(t, dir, "libbar.so.2", "int foo(void); int bar(void) { return foo(); }",
					"-shared", "-fPIC", "-Wl,-soname,libbar.so.2", "-L"+dir, "-l:libfoo.so.1", "-Wl,-rpath,$ORIGIN")
				prog := cc(t, dir, "bar", "int bar(void); int main(void) { return bar(); }",
					"-L"+dir, "-l:libbar.so.2", "-Wl,-rpath,$ORIGIN", "-Wl,-rpath-link,"+dir)
				assert.NilError(t, os.Remove(foo))
				return prog
			},
			want: "needs libfoo.so.1 (needed by {dir}/libbar.so.2), which the host's loader cannot find: " +
				"install it, or point LD_LIBRARY_PATH at its directory",
		},
		{
			name: "two missing libraries",
			build: func(t *testing.T) string {
				dir := t.TempDir()
				foo := cc(t, dir, "libfoo.so.1", cFooLib, "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1")
				bar := cc(t, dir, "libbar.so.2", "int bar(void) { return 1; }", "-shared", "-fPIC", "-Wl,-soname,libbar.so.2")
				prog := cc(t, dir, "p", "int foo(void); int bar(void); int main(void) { return foo() + bar(); }",
					"-L"+dir, "-l:libfoo.so.1", "-l:libbar.so.2")
				assert.NilError(t, os.Remove(foo))
				assert.NilError(t, os.Remove(bar))
				return prog
			},
			want: "needs libfoo.so.1 (needed by {path}) and libbar.so.2 (needed by {path}), which the host's loader cannot find: " +
				"install them, or point LD_LIBRARY_PATH at their directories",
		},
		{
			name: "a loader that is not standard",
			build: func(t *testing.T) string {
				return cc(t, t.TempDir(), "p", "int main(void){return 0;}", "-Wl,--dynamic-linker=/nonexistent/ld.so.1")
			},
			want: "its dynamic loader /nonexistent/ld.so.1 (PT_INTERP) is none of the standard x86-64 loaders (/lib/ld-musl-x86_64.so.1, " +
				"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2, /lib64/ld-linux-x86-64.so.2, /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2, " +
				"/usr/lib64/ld-linux-x86-64.so.2), the only ones fusematrix copies into a guest (it never runs a binary's loader): " +
				"link it against the host's C library, or statically",
		},
		{
			name: "missing loader",
			build: func(t *testing.T) string {
				return cc(t, t.TempDir(), "p", "int main(void){return 0;}", "-Wl,--dynamic-linker=/nonexistent/ld.so.1")
			},
			standard: map[string]loaderKind{"/nonexistent/ld.so.1": glibc},
			want:     "needs the dynamic loader /nonexistent/ld.so.1 (PT_INTERP), which does not exist on the host",
		},
		{
			name: "RUNPATH does not serve a library's library",
			build: func(t *testing.T) string {
				prog, _ := chainProgram(t, "gcc", t.TempDir(), "--enable-new-dtags")
				return prog
			},
			want: "needs libfoo.so.1 (needed by {dir}/lib/libbar.so.2), which the host's loader cannot find: " +
				"install it, or point LD_LIBRARY_PATH at its directory",
		},
		{
			name: "a file that is not ELF stops the search",
			build: func(t *testing.T) string {
				dir := t.TempDir()
				cc(t, dir, "libfoo.so.1", cFooLib, "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1")
				assert.NilError(t, os.Mkdir(filepath.Join(dir, "script"), 0o755))
				assert.NilError(t, os.WriteFile(filepath.Join(dir, "script", "libfoo.so.1"), []byte("/* GNU ld script */\nGROUP ( libfoo.so.1.0 )\n"), 0o644))
				return cc(t, dir, "p", cFooMain, "-L"+dir, "-l:libfoo.so.1", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/script:$ORIGIN")
			},
			want: "its library {dir}/script/libfoo.so.1 (needed by {path}) is not an ELF file",
		},
		{
			name: "DF_1_NODEFLIB",
			build: func(t *testing.T) string {
				prog, _ := fooProgram(t, "-Wl,-z,nodefaultlib")
				return prog
			},
			want: "needs libc.so.6 (needed by {path}), which the host's loader cannot find: " +
				"install it, or point LD_LIBRARY_PATH at its directory",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := tc.build(t)
			r, err := newResolver()
			assert.NilError(t, err)
			if tc.standard != nil {
				r.standard = tc.standard
			}
			b, err := r.binary(path, true)
			assert.Check(t, is.Nil(b))
			want := strings.ReplaceAll(tc.want, "{path}", path)
			want = strings.ReplaceAll(want, "{dir}", filepath.Dir(path))
			if !strings.HasSuffix(want, ": ") {
				assert.Error(t, err, path+": "+want)
			} else {
				assert.ErrorContains(t, err, path+": "+want)
			}
			var e *Error
			assert.Check(t, errors.As(err, &e))
			if tc.is != nil {
				assert.Check(t, errors.Is(err, tc.is))
			}
		})
	}
}

// cEvil writes the marker file MARKER when run: a stand-in for a loader
// of the daemon author's choice.
const cEvil = `#include <stdio.h>
int main(void) { FILE *f = fopen(MARKER, "w"); if (f) { fputs("ran\n", f); fclose(f); } return 0; }
`

// evilLoader builds, in a new directory outside /tmp (elfdeps once gave
// up on a loader under /tmp before running it, not elsewhere), a program
// that writes a marker file when run, and a program that names it as its
// dynamic loader (PT_INTERP); it returns the program, the loader and the
// marker's path.
func evilLoader(t *testing.T) (prog, evil, marker string) {
	dir := outsideTmp(t)
	marker = filepath.Join(dir, "evil-ran")
	evil = cc(t, dir, "evil", cEvil, fmt.Sprintf("-DMARKER=%q", marker))
	prog = cc(t, dir, "daemon", "int main(void) { return 0; }", "-Wl,--dynamic-linker="+evil)
	return prog, evil, marker
}

// Issue 21, row 1: nothing the daemon's ELF file names runs on the host.
// elfdeps used to run the binary's PT_INTERP to list its libraries, so a
// daemon linked with -Wl,--dynamic-linker=/var/tmp/x/evil ran evil, as
// root. Its loader must be a standard one, which is read, not run.
func TestResolveNeverRunsLoader(t *testing.T) {
	prog, evil, marker := evilLoader(t)
	b, err := Resolve(prog)
	_, statErr := os.Stat(marker)
	assert.Check(t, errors.Is(statErr, fs.ErrNotExist), "the loader the binary names ran: %v", statErr)
	assert.Check(t, is.Nil(b))
	assert.Check(t, is.ErrorContains(err, prog+": its dynamic loader "+evil+" (PT_INTERP) is none of the standard x86-64 loaders"))

	// The marker is what evil leaves when it runs.
	run(t, filepath.Dir(evil), nil, evil)
	_, statErr = os.Stat(marker)
	assert.Check(t, statErr, "evil leaves no marker: the test proves nothing")
}

// The host's LD_LIBRARY_PATH takes part, as it would for the host's loader
// (before RUNPATH), and a note says so.
func TestResolveLibraryPath(t *testing.T) {
	prog, lib := chainProgram(t, "gcc", t.TempDir(), "--enable-new-dtags")
	t.Setenv("LD_LIBRARY_PATH", "/nonexistent:"+lib)
	b, err := Resolve(prog)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(libNames(b), []string{"libbar.so.2", "libc.so.6", "libfoo.so.1", "libgcc_s.so.1"}))
	assert.Check(t, is.Equal(b.Libs[2].Loaded, filepath.Join(lib, "libfoo.so.1")))
	assert.Check(t, is.DeepEqual(b.Notes, []string{"the host's LD_LIBRARY_PATH=/nonexistent:" + lib + " took part in finding p's libraries"}))
}

// glibc's dynamic string tokens, as _dl_dst_substitute replaces them.
func TestExpand(t *testing.T) {
	r := &resolver{}
	o := &object{origin: "/opt/app/bin"}
	debian := &loader{kind: glibc, sysDirs: []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"}}
	for _, tc := range []struct {
		in, want string
		l        *loader
		drop     bool
	}{
		{in: "$ORIGIN/../lib", want: "/opt/app/bin/../lib"},
		{in: "${ORIGIN}/lib", want: "/opt/app/bin/lib"},
		{in: "$ORIGINAL/lib", want: "$ORIGINAL/lib"}, // another name: kept
		{in: "/opt/$LIB/x:$PLATFORM", want: "/opt/lib/x86_64-linux-gnu/x:x86_64"},
		{in: "/opt/${LIB}", l: &loader{kind: glibc, sysDirs: []string{"/lib64", "/usr/lib64"}}, want: "/opt/lib64"},
		{in: "/opt/$LIB", l: &loader{kind: glibc}, drop: true}, // no value: glibc drops the path
		{in: "/a$", want: "/a$"},
		{in: "/a/${ORIGIN", want: "/a/${ORIGIN"},
	} {
		l := tc.l
		if l == nil {
			l = debian
		}
		got, ok := r.expand(tc.in, o, l)
		assert.Check(t, is.Equal(ok, !tc.drop), tc.in)
		if ok {
			assert.Check(t, is.Equal(got, tc.want), tc.in)
		}
	}
}

// glibc's default directories are read from the loader's bytes.
func TestGlibcSystemDirs(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       []string
	}{
		{"debian", "\x1a\x00\x00\x00\x05\x00\x00\x00/lib/x86_64-linux-gnu/\x00/usr/lib/x86_64-linux-gnu/\x00/lib/\x00/usr/lib/\x00\x00\x00",
			[]string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"}},
		{"fedora", "junk\x00/lib64/\x00/usr/lib64/\x00\x00", []string{"/lib64", "/usr/lib64"}},
		{"found in the middle", "x\x00/opt/glibc/lib/\x00/lib64/\x00\x01", []string{"/opt/glibc/lib", "/lib64"}},
		{"none", "/lib64 is not written so\x00", nil},
	} {
		assert.Check(t, is.DeepEqual(glibcSystemDirs([]byte(tc.data)), tc.want), tc.name)
	}
	// The host's loader says the same as ld.so --help (system search path).
	data, err := os.ReadFile("/lib64/ld-linux-x86-64.so.2")
	if err != nil {
		t.Skipf("no glibc loader on the host: %v", err)
	}
	dirs := glibcSystemDirs(data)
	assert.Check(t, len(dirs) > 0)
	if _, err := os.Stat("/etc/debian_version"); err == nil {
		assert.Check(t, is.DeepEqual(dirs[:2], []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"}))
	}
}

// /etc/ld.so.conf as ldconfig reads it: includes (relative to the
// including file, sorted), comments, hwcap lines, each directory once, an
// include loop ended.
func TestLdsoConf(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	write("ld.so.conf", "include ld.so.conf.d/*.conf\n/usr/local/lib # after the includes\n")
	write("ld.so.conf.d/b.conf", "# multiarch\n/lib/x86_64-linux-gnu/\n\n/usr/lib/x86_64-linux-gnu\n")
	write("ld.so.conf.d/a.conf", "/opt/a/lib\nhwcap 1 nosegneg\ninclude ../ld.so.conf\n/usr/local/lib\n")
	write("ld.so.conf.d/c.txt", "/not/included\n")
	got, err := ldsoConf(filepath.Join(dir, "ld.so.conf"))
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(got, []string{"/opt/a/lib", "/usr/local/lib", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"}))

	got, err = ldsoConf(filepath.Join(dir, "none.conf"))
	assert.NilError(t, err)
	assert.Check(t, is.Len(got, 0))
}

func writeFile(name, content string) func(t *testing.T) string {
	return func(t *testing.T) string {
		p := filepath.Join(t.TempDir(), name)
		assert.NilError(t, os.WriteFile(p, []byte(content), 0o755))
		return p
	}
}

// TestFilesRunInEmptyRoot copies the files Resolve returns into an empty
// directory at their guest paths and runs the program there with chroot,
// with Env as its whole environment: no host library can help, as in a
// u-root guest.
func TestFilesRunInEmptyRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	for _, tc := range []struct {
		name  string
		build func(t *testing.T) string
		want  string // a line of the program's output
	}{
		{"static Go", func(t *testing.T) string { return goBuild(t, "amd64", goStatic) }, "static 11"},
		{"libfuse program", func(t *testing.T) string {
			return cc(t, t.TempDir(), "fuseprog", cFuse, pkgConfig(t, "fuse3")...)
		}, "libfuse 3."},
		{"library next to the program", func(t *testing.T) string {
			prog, _ := fooProgram(t)
			return prog
		}, "foo 42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := Resolve(tc.build(t))
			assert.NilError(t, err)
			files, err := b.Files("/daemon/prog")
			assert.NilError(t, err)
			root := t.TempDir()
			for _, f := range files {
				copyFile(t, f.Host, filepath.Join(root, f.Guest), f.Mode)
			}

			inRoot := func(env []string, name string, args ...string) (string, error) {
				cmd := exec.Command(name, args...)
				cmd.Env = append([]string{}, env...)
				cmd.Dir = "/"
				cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			out, err := inRoot(b.Env, "/daemon/prog")
			assert.NilError(t, err, "%s\nfiles: %+v", out, files)
			assert.Check(t, is.Contains(out, tc.want))

			if b.Env != nil {
				_, err := inRoot(nil, "/daemon/prog")
				assert.Check(t, err != nil, "runs without Env too: Env is not needed")
			}
			if fm := b.Fusermount; fm != nil {
				out, err := inRoot(b.Env, fm.Path, "-V")
				assert.NilError(t, err, out)
				assert.Check(t, is.Contains(out, "version"))
			}
		})
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	assert.NilError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	in, err := os.Open(src)
	assert.NilError(t, err)
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	assert.NilError(t, err)
	_, err = io.Copy(out, in)
	assert.NilError(t, err)
	assert.NilError(t, out.Close())
}

func TestScanFuse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		want    fuseNames
	}{
		{"none", "nothing to see", fuseNames{}},
		{"libfuse 3", "\x00/usr/bin/fusermount3\x00fuse: failed to exec fusermount3\x00", fuseNames{v3: true, paths: []string{"/usr/bin/fusermount3"}}},
		{"libfuse 2", "\x00/bin/fusermount\x00", fuseNames{v2: true, paths: []string{"/bin/fusermount"}}},
		{"Go strings", "abcfusermount3fusermountxyz/usr/bin/fusermount3", fuseNames{v3: true, v2: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f")
			assert.NilError(t, os.WriteFile(p, []byte(tc.content), 0o644))
			var got fuseNames
			assert.NilError(t, scanFuse(p, &got))
			if tc.want.v2 || tc.want.v3 {
				tc.want.by = p
			}
			assert.DeepEqual(t, got, tc.want, cmpFuse)
		})
	}
	// Around the end of scanFuse's first 1 MiB chunk, at and past it: the
	// path and the "3" must stay whole, and every match count once.
	for _, at := range []int{-30, -16, -11, -10, -1, 0, 5, 511, 512, 600, 1 << 20} {
		const path = "/usr/local/bin/fusermount3"
		pad := 1<<20 + at - len(path) + len("fusermount3") - 1 // "fusermount" starts at 1 MiB + at
		content := strings.Repeat("x", pad) + "\x00" + path + "\x00" + strings.Repeat("y", 3000)
		p := filepath.Join(t.TempDir(), "f")
		assert.NilError(t, os.WriteFile(p, []byte(content), 0o644))
		var got fuseNames
		assert.NilError(t, scanFuse(p, &got))
		assert.Check(t, is.DeepEqual(got, fuseNames{v3: true, paths: []string{path}, by: p}, cmpFuse), "match at 1 MiB%+d", at)
	}
}

var (
	cmpFuse = cmp.AllowUnexported(fuseNames{})
)

// TestImports keeps the package doc's promises: the standard library,
// golang.org/x/sys and u-root only, and no os/exec (it runs nothing on the
// host; issue 21).
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	assert.NilError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		pf, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		assert.NilError(t, err)
		for _, imp := range pf.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			first, _, _ := strings.Cut(p, "/")
			ok := !strings.Contains(first, ".") ||
				strings.HasPrefix(p, "golang.org/x/sys/") ||
				strings.HasPrefix(p, "github.com/u-root/")
			assert.Check(t, ok, "%s imports %s", f, p)
			assert.Check(t, p != "os/exec" && !strings.HasPrefix(p, "github.com/u-root/u-root/pkg/ldd"), "%s imports %s: elfdeps runs nothing", f, p)
		}
	}
}
