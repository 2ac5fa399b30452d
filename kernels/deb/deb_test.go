package deb

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fusematrix/fusematrix/kernels/internal/fakearchive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/fs"
)

func keepAll(string) bool { return true }

func TestExtractCompressions(t *testing.T) {
	entries := []fakearchive.Entry{
		{Name: "./", Dir: true},
		{Name: "./boot/", Dir: true},
		{Name: "./boot/vmlinuz-6.1.0-50-cloud-amd64", Body: []byte("image")},
		{Name: "./boot/System.map-6.1.0-50-cloud-amd64", Body: []byte("map")},
		{Name: "./lib/modules/6.1.0-50-cloud-amd64/kernel/fs/fuse/fuse.ko", Body: []byte("fuse")},
		{Name: "usr/share/doc/linux/changelog.gz", Body: []byte("doc")},
	}
	keep := func(name string) bool {
		return !strings.Contains(name, "System.map") && !strings.HasPrefix(name, "usr/")
	}
	for _, compression := range []string{".xz", ".zst", ".gz", ""} {
		t.Run("data.tar"+compression, func(t *testing.T) {
			dir := t.TempDir()
			names, err := Extract(bytes.NewReader(fakearchive.Deb(compression, entries...)), dir, keep)
			assert.NilError(t, err)
			assert.DeepEqual(t, names, []string{
				"boot/vmlinuz-6.1.0-50-cloud-amd64",
				"lib/modules/6.1.0-50-cloud-amd64/kernel/fs/fuse/fuse.ko",
			})
			assert.Assert(t, fs.Equal(dir, fs.Expected(t, fs.MatchAnyFileMode,
				fs.WithDir("boot", fs.WithFile("vmlinuz-6.1.0-50-cloud-amd64", "image")),
				fs.WithDir("lib", fs.WithDir("modules", fs.WithDir("6.1.0-50-cloud-amd64",
					fs.WithDir("kernel", fs.WithDir("fs", fs.WithDir("fuse", fs.WithFile("fuse.ko", "fuse"))))))),
			)))
		})
	}
}

func TestExtractLinksInside(t *testing.T) {
	dir := t.TempDir()
	deb := fakearchive.Deb(".xz",
		fakearchive.Entry{Name: "./usr/lib/modules/7.3/vmlinuz", Body: []byte("image")},
		fakearchive.Entry{Name: "./usr/lib/modules/7.3/kernel/a.ko", Body: []byte("a")},
		fakearchive.Entry{Name: "./usr/lib/modules/7.3/kernel/b.ko", Link: "a.ko"},
		fakearchive.Entry{Name: "./usr/lib/modules/7.3/kernel/sub/c.ko", Link: "../../vmlinuz"},
		fakearchive.Entry{Name: "./usr/lib/modules/7.3/kernel/d.ko", Link: "usr/lib/modules/7.3/kernel/a.ko", Hard: true},
	)
	names, err := Extract(bytes.NewReader(deb), dir, keepAll)
	assert.NilError(t, err)
	assert.Equal(t, len(names), 5)
	for name, want := range map[string]string{"b.ko": "a", "sub/c.ko": "image", "d.ko": "a"} {
		got, err := os.ReadFile(filepath.Join(dir, "usr/lib/modules/7.3/kernel", name))
		assert.NilError(t, err)
		assert.Check(t, is.Equal(string(got), want), name)
	}
}

func TestExtractRejectsEscapes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []fakearchive.Entry
		keep    func(string) bool
	}{
		{"absolute name", []fakearchive.Entry{{Name: "/etc/passwd", Body: []byte("x")}}, keepAll},
		{"dot-dot name", []fakearchive.Entry{{Name: "./lib/../../escaped", Body: []byte("x")}}, keepAll},
		{"dot-dot name not kept", []fakearchive.Entry{{Name: "../escaped", Body: []byte("x")}}, func(string) bool { return false }},
		{"absolute symlink", []fakearchive.Entry{{Name: "boot/vmlinuz-x", Link: "/etc/passwd"}}, keepAll},
		{"symlink up and out", []fakearchive.Entry{{Name: "lib/modules/x/fuse.ko", Link: "../../../../etc/passwd"}}, keepAll},
		{"hard link out", []fakearchive.Entry{{Name: "boot/vmlinuz-x", Link: "../etc/passwd", Hard: true}}, keepAll},
		{
			// Lexically "x/x/x/y/evil.ko -> ../../../../z" stays inside, but x
			// is ".", so it leads three levels up.
			"symlink chain", []fakearchive.Entry{
				{Name: "x", Link: "."},
				{Name: "x/x/x/y/evil.ko", Link: "../../../../z"},
			}, keepAll,
		},
		{
			// A hard link to "d/e/l -> ../../f" is a link to "../../f" one
			// level below dir.
			"hard link to a symlink", []fakearchive.Entry{
				{Name: "d/e/l", Link: "../../f"},
				{Name: "f", Body: []byte("f")},
				{Name: "l2", Link: "d/e/l", Hard: true},
			}, keepAll,
		},
		{
			"write through a link", []fakearchive.Entry{
				{Name: "x", Link: "."},
				{Name: "x/x/y", Link: "../.."},
				{Name: "x/x/y/evil.ko", Body: []byte("x")},
			}, keepAll,
		},
	} {
		for _, sysroot := range []bool{false, true} {
			// What a sysroot takes as it is.
			if sysroot && tc.name == "absolute symlink" {
				continue
			}
			t.Run(fmt.Sprintf("%s/sysroot=%v", tc.name, sysroot), func(t *testing.T) {
				parent := t.TempDir()
				dir := filepath.Join(parent, "a", "b")
				assert.NilError(t, os.MkdirAll(dir, 0o755))
				_, err := ExtractWith(bytes.NewReader(fakearchive.Deb(".gz", tc.entries...)), dir, Options{Keep: tc.keep, Sysroot: sysroot})
				assert.Assert(t, err != nil)
				t.Log(err)
				assert.Check(t, errors.Is(err, ErrUnsafePath), err)
				// Nothing was written above dir.
				for _, p := range []string{"escaped", "z", "evil.ko", "a/escaped", "a/evil.ko"} {
					_, err := os.Lstat(filepath.Join(parent, p))
					assert.Check(t, errors.Is(err, os.ErrNotExist), p)
				}
			})
		}
	}
}

// A sysroot takes absolute links and links to what another package
// provides as they are, and a package unpacks through the merged-/usr
// links of the root (lib -> usr/lib) as dpkg unpacks it on such a system.
func TestExtractSysroot(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "usr/lib64"), 0o755))
	assert.NilError(t, os.Symlink("usr/lib", filepath.Join(dir, "lib")))
	assert.NilError(t, os.Symlink("usr/lib64", filepath.Join(dir, "lib64")))
	deb := fakearchive.Deb(".xz",
		fakearchive.Entry{Name: "./lib64/", Dir: true},
		fakearchive.Entry{Name: "./lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", Body: []byte("ld")},
		fakearchive.Entry{Name: "./lib64/ld-linux-x86-64.so.2", Link: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
		fakearchive.Entry{Name: "./usr/lib/x86_64-linux-gnu/libfuse3.so", Link: "libfuse3.so.4"},
	)
	names, err := ExtractWith(bytes.NewReader(deb), dir, Options{Sysroot: true})
	assert.NilError(t, err)
	assert.DeepEqual(t, names, []string{"lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "lib64/ld-linux-x86-64.so.2", "usr/lib/x86_64-linux-gnu/libfuse3.so"})
	got, err := os.ReadFile(filepath.Join(dir, "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(got), "ld"))
	target, err := os.Readlink(filepath.Join(dir, "usr/lib64/ld-linux-x86-64.so.2"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(target, "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"))
	fi, err := os.Lstat(filepath.Join(dir, "lib64"))
	assert.NilError(t, err)
	assert.Check(t, fi.Mode()&os.ModeSymlink != 0, "the directory entry replaced the root's link")

	// Outside a sysroot, the same package is refused.
	_, err = Extract(bytes.NewReader(deb), t.TempDir(), keepAll)
	assert.Check(t, errors.Is(err, ErrUnsafePath), err)
}

func TestExtractNotADeb(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		err  string
	}{
		{"empty", nil, "no ar header"},
		{"tarball", []byte("ustar....................................."), "no ar header"},
		{"no data member", []byte("!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n"), "no data.tar member"},
		{"wrong first member", []byte("!<arch>\ndata.tar        0           0     0     100644  0         `\n"), "first member"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Extract(bytes.NewReader(tc.data), t.TempDir(), keepAll)
			assert.ErrorContains(t, err, tc.err)
		})
	}
}

func TestCleanName(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "./boot/vmlinuz", want: "boot/vmlinuz"},
		{in: "boot//x/./y", want: "boot/x/y"},
		{in: "./", want: "."},
		{in: "/boot", err: "absolute"},
		{in: "a/../b", err: ".. element"},
		{in: "..", err: ".. element"},
	} {
		got, err := CleanName(tc.in)
		if tc.err != "" {
			assert.Check(t, is.ErrorContains(err, tc.err), tc.in)
			assert.Check(t, errors.Is(err, ErrUnsafePath), tc.in)
			continue
		}
		assert.Check(t, err, tc.in)
		assert.Check(t, is.Equal(got, tc.want))
	}
}
