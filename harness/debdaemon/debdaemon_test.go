package debdaemon

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/kernels"
	"github.com/fusematrix/fusematrix/kernels/debian"
	"github.com/fusematrix/fusematrix/scenarios/testbin"
)

// cc compiles a C program that calls fuse_version (linked with -lfuse3)
// when fuse is set, or only puts, and returns its path.
func cc(t *testing.T, fuse bool) string {
	t.Helper()
	dir := t.TempDir()
	src, out := filepath.Join(dir, "p.c"), filepath.Join(dir, "p")
	code := "#include <stdio.h>\nint main(void) { puts(\"tool\"); return 0; }\n"
	args := []string{"-o", out, src}
	if fuse {
		code = "int fuse_version(void);\nint main(void) { return fuse_version() == 0; }\n"
		args = append(args, "-lfuse3")
	}
	assert.NilError(t, os.WriteFile(src, []byte(code), 0o644))
	if msg, err := exec.Command("cc", args...).CombinedOutput(); err != nil {
		t.Skipf("cc %s: %v\n%s (needs a C compiler and libfuse3-dev)", strings.Join(args, " "), err, msg)
	}
	return out
}

func copyTo(t *testing.T, src, dst string) {
	t.Helper()
	real, err := filepath.EvalSymlinks(src)
	assert.NilError(t, err)
	data, err := os.ReadFile(real)
	assert.NilError(t, err)
	assert.NilError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	assert.NilError(t, os.WriteFile(dst, data, 0o755))
}

// sysroot lays out a merged-/usr root holding the host's loader and libc
// (and libfuse3 when withFuse) and the programs given, as the package's
// own files in /usr/bin.
func sysroot(t *testing.T, withFuse bool, programs map[string]string) *kernels.Sysroot {
	t.Helper()
	root := t.TempDir()
	lib := filepath.Join(root, "usr/lib/x86_64-linux-gnu")
	for _, l := range [][2]string{{"lib", "usr/lib"}, {"lib64", "usr/lib64"}, {"bin", "usr/bin"}} {
		assert.NilError(t, os.MkdirAll(filepath.Join(root, l[1]), 0o755))
		assert.NilError(t, os.Symlink(l[1], filepath.Join(root, l[0])))
	}
	copyTo(t, "/lib64/ld-linux-x86-64.so.2", filepath.Join(lib, "ld-linux-x86-64.so.2"))
	assert.NilError(t, os.Symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", filepath.Join(root, "usr/lib64/ld-linux-x86-64.so.2")))
	copyTo(t, "/lib/x86_64-linux-gnu/libc.so.6", filepath.Join(lib, "libc.so.6"))
	if withFuse {
		copyTo(t, "/lib/x86_64-linux-gnu/libfuse3.so.3", filepath.Join(lib, "libfuse3.so.3.14.0"))
		assert.NilError(t, os.Symlink("libfuse3.so.3.14.0", filepath.Join(lib, "libfuse3.so.3")))
	}
	s := &kernels.Sysroot{Root: root}
	s.Package = debian.Package{Name: "myfs", Version: "1", Suite: "sid"}
	s.Packages = []debian.Package{s.Package, {Name: "libc6"}}
	s.Key = strings.Repeat("ab", 32)
	for _, name := range slices.Sorted(maps.Keys(programs)) {
		copyTo(t, programs[name], filepath.Join(root, "usr/bin", name))
		s.Own = append(s.Own, "usr/bin/"+name)
	}
	return s
}

func TestFromSysroot(t *testing.T) {
	fs, tool := cc(t, true), cc(t, false)
	gofuse := testbin.Go(t, "github.com/fusematrix/fusematrix/scenarios/server/testdata/nopassthrough")

	t.Run("the one FUSE program", func(t *testing.T) {
		s := sysroot(t, true, map[string]string{"myfs": fs, "mytool": tool})
		d, err := FromSysroot(s, "")
		assert.NilError(t, err)
		assert.Check(t, is.Equal(d.Program, "/usr/bin/myfs"))
		assert.Check(t, is.Equal(d.Root, GuestDir+"/myfs-abababababababab"))
		assert.Check(t, is.Contains(d.Env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"))
		var paths []string
		for _, f := range d.Files {
			paths = append(paths, f.Path)
			if f.Path == d.Root+"/lib64" {
				assert.Check(t, is.Equal(f.Link, "usr/lib64"), "links go as they are")
			}
		}
		for _, want := range []string{d.Root + "/usr/bin/myfs", d.Root + "/lib64", d.Root + "/usr/lib64/ld-linux-x86-64.so.2",
			d.Root + "/usr/lib/x86_64-linux-gnu/libfuse3.so.3"} {
			assert.Check(t, slices.Contains(paths, want), "%s not in %v", want, paths)
		}
	})
	t.Run("a Go program that names /dev/fuse", func(t *testing.T) {
		d, err := FromSysroot(sysroot(t, false, map[string]string{"gofs": gofuse, "mytool": tool}), "")
		assert.NilError(t, err)
		assert.Check(t, is.Equal(d.Program, "/usr/bin/gofs"))
	})
	t.Run("-daemon-bin", func(t *testing.T) {
		d, err := FromSysroot(sysroot(t, true, map[string]string{"myfs": fs, "mytool": tool}), "/bin/mytool")
		assert.NilError(t, err)
		assert.Check(t, is.Equal(d.Program, "/bin/mytool"))
	})
	t.Run("LD_LIBRARY_PATH from ld.so.conf.d", func(t *testing.T) {
		s := sysroot(t, false, map[string]string{"myfs": fs})
		lib := filepath.Join(s.Root, "usr/lib/x86_64-linux-gnu")
		assert.NilError(t, os.MkdirAll(filepath.Join(lib, "fuse"), 0o755))
		copyTo(t, "/lib/x86_64-linux-gnu/libfuse3.so.3", filepath.Join(lib, "fuse", "libfuse3.so.3"))
		assert.NilError(t, os.MkdirAll(filepath.Join(s.Root, "etc/ld.so.conf.d"), 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(s.Root, "etc/ld.so.conf.d/fuse.conf"), []byte("# fuse\n/usr/lib/x86_64-linux-gnu/fuse\n/usr/lib/x86_64-linux-gnu\n"), 0o644))
		d, err := FromSysroot(s, "")
		assert.NilError(t, err)
		assert.Check(t, is.Contains(d.Env, "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/fuse"))
	})

	for _, tc := range []struct {
		name     string
		withFuse bool
		programs map[string]string
		bin      string
		want     string
	}{
		{"no FUSE program", true, map[string]string{"mytool": tool}, "",
			"myfs has no FUSE program in /usr/bin or /usr/sbin (its programs there: /usr/bin/mytool; none uses FUSE; name one with -daemon-bin)"},
		{"two", true, map[string]string{"myfs": fs, "gofs": gofuse}, "",
			"myfs has 2 FUSE programs, /usr/bin/gofs, /usr/bin/myfs: name the daemon's with -daemon-bin"},
		{"a library missing", false, map[string]string{"myfs": fs}, "",
			"/usr/bin/myfs needs libfuse3.so.3, which no package of its closure holds"},
		{"-daemon-bin not there", true, map[string]string{"myfs": fs}, "/usr/bin/other",
			"-daemon-bin /usr/bin/other: not in myfs's run-time closure (myfs, libc6)"},
		{"-daemon-bin relative", true, map[string]string{"myfs": fs}, "usr/bin/myfs",
			"-daemon-bin usr/bin/myfs: not an absolute path in the package's root (such as /usr/bin/myfs)"},
		{"-daemon-bin not a program", true, map[string]string{"myfs": fs}, "/etc",
			"-daemon-bin /etc: /etc is not an executable file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sysroot(t, tc.withFuse, tc.programs)
			assert.NilError(t, os.MkdirAll(filepath.Join(s.Root, "etc"), 0o755))
			_, err := FromSysroot(s, tc.bin)
			assert.Check(t, is.Error(err, tc.want))
		})
	}
}

func TestContainsAny(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content []byte
		want    bool
	}{
		{"none", []byte(strings.Repeat("x", 3<<20)), false},
		// Across the boundary of two 1 MiB reads.
		{"across chunks", append(append([]byte(strings.Repeat("x", 1<<20-4)), "/dev/fuse"...), strings.Repeat("y", 100)...), true},
		{"at the end", append([]byte(strings.Repeat("x", 2<<20)), "fusermount"...), true},
		{"short", []byte("fusermount3"), true},
	} {
		f := filepath.Join(dir, tc.name)
		assert.NilError(t, os.WriteFile(f, tc.content, 0o644))
		got, err := containsAny(f, "/dev/fuse", "fusermount")
		assert.NilError(t, err)
		assert.Check(t, is.Equal(got, tc.want), tc.name)
	}
}
