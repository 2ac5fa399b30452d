package deb

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fusematrix/fusematrix/kernels/internal/fakearchive"
	"gotest.tools/v3/assert"
)

// FuzzExtract unpacks whatever .deb it is given below a directory two
// levels down a fresh one. Whether or not Extract fails, nothing may
// appear outside that directory; when it succeeds, every name it returns
// is local and every symbolic link below the directory resolves to
// something inside it. It must never panic. The seeds are the unit tests'
// packages, with an uncompressed data.tar so that the fuzzer can reach
// the tar headers, and one of each compression.
func FuzzExtract(f *testing.F) {
	for _, entries := range [][]fakearchive.Entry{
		{
			{Name: "./", Dir: true},
			{Name: "./boot/vmlinuz-6.1.0-50-cloud-amd64", Body: []byte("image")},
			{Name: "./lib/modules/6.1.0-50-cloud-amd64/kernel/fs/fuse/fuse.ko", Body: []byte("fuse")},
		},
		{
			{Name: "./usr/lib/modules/7.3/vmlinuz", Body: []byte("image")},
			{Name: "./usr/lib/modules/7.3/kernel/a.ko", Body: []byte("a")},
			{Name: "./usr/lib/modules/7.3/kernel/b.ko", Link: "a.ko"},
			{Name: "./usr/lib/modules/7.3/kernel/sub/c.ko", Link: "../../vmlinuz"},
			{Name: "./usr/lib/modules/7.3/kernel/d.ko", Link: "usr/lib/modules/7.3/kernel/a.ko", Hard: true},
		},
		{{Name: "/etc/passwd", Body: []byte("x")}},
		{{Name: "./lib/../../escaped", Body: []byte("x")}},
		{{Name: "boot/vmlinuz-x", Link: "/etc/passwd"}},
		{{Name: "lib/modules/x/fuse.ko", Link: "../../../../etc/passwd"}},
		{{Name: "boot/vmlinuz-x", Link: "../etc/passwd", Hard: true}},
		{{Name: "x", Link: "."}, {Name: "x/x/x/y/evil.ko", Link: "../../../../z"}},
		{{Name: "x", Link: "."}, {Name: "x/x/y", Link: "../.."}, {Name: "x/x/y/evil.ko", Body: []byte("x")}},
		// A hard link to a symbolic link is a symbolic link in another
		// directory, where its target means something else.
		{{Name: "d/e/l", Link: "../../f"}, {Name: "f", Body: []byte("f")}, {Name: "l2", Link: "d/e/l", Hard: true}},
	} {
		f.Add(fakearchive.Deb("", entries...))
	}
	for _, c := range []string{".gz", ".xz", ".zst"} {
		f.Add(fakearchive.Deb(c, fakearchive.Entry{Name: "./boot/vmlinuz", Body: []byte("image")}, fakearchive.Entry{Name: "./vmlinuz", Link: "boot/vmlinuz"}))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "a", "b")
		assert.NilError(t, os.MkdirAll(dir, 0o755))
		names, err := Extract(bytes.NewReader(data), dir, keepAll)
		for _, d := range []string{parent, filepath.Join(parent, "a")} {
			entries, rerr := os.ReadDir(d)
			assert.NilError(t, rerr)
			assert.Assert(t, len(entries) == 1, "Extract (error %v) wrote outside its directory, into %s: %v", err, d, entries)
		}
		if err != nil {
			return // the caller removes dir
		}
		for _, name := range names {
			assert.Assert(t, filepath.IsLocal(name), "name %q is not local", name)
		}
		filepath.WalkDir(dir, func(p string, d os.DirEntry, werr error) error {
			if werr != nil || d.Type()&os.ModeSymlink == 0 {
				return nil
			}
			target, _ := os.Readlink(p)
			real, rerr := filepath.EvalSymlinks(p)
			assert.Assert(t, rerr == nil, "link %s -> %s resolves to nothing: %v", p, target, rerr)
			assert.Assert(t, real == dir || strings.HasPrefix(real, dir+"/"), "link %s -> %s leads out, to %s", p, target, real)
			return nil
		})
	})
}
