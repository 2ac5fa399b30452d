package initramfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/u-root/mkuimage/cpio"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// writeBase writes a small base archive followed by extra bytes (the NUL
// padding other tools leave after a trailer) and returns its path.
func writeBase(t *testing.T, extra []byte) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "base.cpio")
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	for _, r := range []cpio.Record{
		cpio.Directory("bin", 0o755),
		cpio.Directory("lib", 0o755),
		cpio.Directory("tmp", 0o777),
		cpio.StaticFile("init", "base init\n", 0o755),
		cpio.Symlink("bin/uinit", "../bbin/agent"),
	} {
		assert.NilError(t, w.WriteRecord(r))
	}
	assert.NilError(t, cpio.WriteTrailer(w))
	buf.Write(extra)
	assert.NilError(t, os.WriteFile(name, buf.Bytes(), 0o644))
	return name
}

type entry struct {
	mode uint64
	data string
}

// readArchive reads one newc archive starting at off with the cpio
// package's reader and returns its entries in order and the offset just
// past its trailer.
func readArchive(t *testing.T, data []byte, off int64) (names []string, entries map[string]entry, end int64) {
	t.Helper()
	rr := cpio.Newc.Reader(bytes.NewReader(data[off:])).(cpio.EOFReader).RecordReader
	entries = map[string]entry{}
	for {
		rec, err := rr.ReadRecord()
		assert.NilError(t, err, "archive at %d", off)
		if rec.Name == cpio.Trailer {
			return names, entries, off + rec.FilePos
		}
		content, err := io.ReadAll(io.NewSectionReader(rec.ReaderAt, 0, int64(rec.FileSize)))
		assert.NilError(t, err)
		names = append(names, rec.Name)
		entries[rec.Name] = entry{mode: rec.Mode, data: string(content)}
	}
}

func TestOverlayRoundTrip(t *testing.T) {
	host := filepath.Join(t.TempDir(), "fuse.ko")
	module := bytes.Repeat([]byte("\x7fELF module "), 1000) // not a multiple of 4 long
	assert.NilError(t, os.WriteFile(host, module, 0o600))

	files := []File{
		HostFile("/lib/modules/6.1.0-9-cloud-amd64/kernel/fs/fuse/fuse.ko", host, 0o644),
		BytesFile("/etc/fusematrix/modules", []byte("fuse\nvirtio_console\n"), 0o644),
		BytesFile("/tmp/empty", nil, 0o600),
		BytesFile("/sbin/probe", []byte("#!/bin/sh\n"), 0o755|os.ModeSetuid),
		// Absolute, as a root a daemon runs in under chroot has them.
		Symlink("/root/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
	}
	wantFiles := map[string]entry{
		"lib/modules/6.1.0-9-cloud-amd64/kernel/fs/fuse/fuse.ko": {mode: 0o100644, data: string(module)},
		"etc/fusematrix/modules":                                 {mode: 0o100644, data: "fuse\nvirtio_console\n"},
		"tmp/empty":                                              {mode: 0o100600},
		"sbin/probe":                                             {mode: 0o104755, data: "#!/bin/sh\n"},
		"root/usr/lib64/ld-linux-x86-64.so.2":                    {mode: 0o120777, data: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
	}
	// Directories the base lacks; lib and tmp are in the base and must not
	// be repeated (the kernel would reset tmp's 0777 to 0755).
	wantDirs := []string{
		"etc", "etc/fusematrix",
		"lib/modules", "lib/modules/6.1.0-9-cloud-amd64", "lib/modules/6.1.0-9-cloud-amd64/kernel",
		"lib/modules/6.1.0-9-cloud-amd64/kernel/fs", "lib/modules/6.1.0-9-cloud-amd64/kernel/fs/fuse",
		"root", "root/usr", "root/usr/lib64", "sbin",
	}

	for _, tc := range []struct {
		name  string
		extra []byte // bytes after the base archive's trailer
	}{
		{name: "aligned base"},
		{name: "base with NUL padding to a 512-byte block", extra: make([]byte, 512-124)},
		{name: "base of unaligned length", extra: []byte{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := writeBase(t, tc.extra)
			baseData, err := os.ReadFile(base)
			assert.NilError(t, err)
			dst := filepath.Join(t.TempDir(), "kernel.cpio")

			assert.NilError(t, Overlay(context.Background(), base, dst, files))

			fi, err := os.Stat(dst)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(fi.Mode(), os.FileMode(0o644)))
			data, err := os.ReadFile(dst)
			assert.NilError(t, err)
			assert.Assert(t, bytes.HasPrefix(data, baseData), "base must be copied verbatim")

			baseNames, _, _ := readArchive(t, data, 0)
			assert.DeepEqual(t, baseNames, []string{"bin", "lib", "tmp", "init", "bin/uinit"})

			// The kernel (init/initramfs.c) skips NULs after a trailer and
			// wants the next archive's magic at a 4-aligned offset.
			second := (int64(len(baseData)) + 3) &^ 3
			assert.Check(t, is.Equal(strings.Trim(string(data[len(baseData):second]), "\x00"), ""))
			assert.Check(t, is.Equal(string(data[second:second+6]), "070701"))

			names, got, end := readArchive(t, data, second)
			assert.Check(t, is.Equal(end, int64(len(data))), "the trailer must end the file")

			var dirs []string
			for i, n := range names {
				if e := got[n]; e.mode&modeTypeMask == modeDir {
					dirs = append(dirs, n)
					assert.Check(t, is.Equal(e.mode, uint64(0o40755)), n)
					continue
				}
				// Every file's parents exist by the time it is unpacked.
				for d := filepath.Dir(n); d != "."; d = filepath.Dir(d) {
					created := false
					for _, earlier := range names[:i] {
						created = created || earlier == d
					}
					inBase := d == "lib" || d == "tmp"
					assert.Check(t, created || inBase, "%s: parent %s missing", n, d)
				}
			}
			assert.DeepEqual(t, dirs, wantDirs)
			for n, want := range wantFiles {
				e, ok := got[n]
				if !assert.Check(t, ok, "%s missing", n) {
					continue
				}
				assert.Check(t, is.Equal(e.mode, want.mode), n)
				assert.Check(t, e.data == want.data, "%s: content differs (%d bytes, want %d)", n, len(e.data), len(want.data))
			}
			assert.Check(t, is.Len(names, len(wantDirs)+len(wantFiles)))

			// The package's own reader (used to find base directories)
			// must see both archives as the kernel does.
			modes, err := archiveModes(bytes.NewReader(data), int64(len(data)))
			assert.NilError(t, err)
			assert.Check(t, is.Equal(modes["tmp"], uint64(0o40777)))
			assert.Check(t, is.Equal(modes["sbin/probe"], uint64(0o104755)))
		})
	}
}

func TestOverlayRejects(t *testing.T) {
	content := func(s string) func() (io.ReadCloser, error) {
		return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
	}
	for _, tc := range []struct {
		name  string
		files []File
		want  string
	}{
		{name: "relative path", files: []File{{Path: "etc/x", Mode: 0o644, Open: content("")}}, want: "not an absolute, clean"},
		{name: "unclean path", files: []File{{Path: "/etc/../x", Mode: 0o644, Open: content("")}}, want: "not an absolute, clean"},
		{name: "root", files: []File{{Path: "/", Mode: 0o644, Open: content("")}}, want: "not an absolute, clean"},
		{name: "directory mode", files: []File{{Path: "/x", Mode: os.ModeDir | 0o755, Open: content("")}}, want: "not a regular file's"},
		{name: "no content", files: []File{{Path: "/x", Mode: 0o644}}, want: "Open is nil"},
		{name: "duplicate", files: []File{BytesFile("/x", nil, 0o644), BytesFile("/x", nil, 0o644)}, want: "given twice"},
		{name: "file is another file's parent", files: []File{BytesFile("/a", nil, 0o644), BytesFile("/a/b", nil, 0o644)}, want: "both a file and a directory"},
		{name: "parent is a symlink in base", files: []File{BytesFile("/bin/uinit/x", nil, 0o644)}, want: "/bin/uinit is not a directory in base"},
		{name: "file replaces a base directory", files: []File{BytesFile("/tmp", nil, 0o644)}, want: "/tmp is a directory in base"},
		// Issue 21, row 8: a base file is never replaced (the daemon
		// command refuses such a file first, naming it; this is the net).
		{name: "file replaces a base file", files: []File{BytesFile("/init", nil, 0o755)}, want: "overlay: /init is already in base"},
		{name: "file replaces a base symlink", files: []File{BytesFile("/bin/uinit", nil, 0o755)}, want: "overlay: /bin/uinit is already in base"},
		{name: "open fails", files: []File{{Path: "/x", Mode: 0o644, Open: func() (io.ReadCloser, error) {
			return nil, errors.New("no such module")
		}}}, want: "/x: no such module"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := writeBase(t, nil)
			dir := t.TempDir()
			dst := filepath.Join(dir, "kernel.cpio")
			assert.NilError(t, os.WriteFile(dst, []byte("previous"), 0o644))

			err := Overlay(context.Background(), base, dst, tc.files)
			assert.ErrorContains(t, err, tc.want)

			// A failed overlay leaves the old file and no temporary file.
			old, err := os.ReadFile(dst)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(string(old), "previous"))
			left, err := os.ReadDir(dir)
			assert.NilError(t, err)
			assert.Check(t, is.Len(left, 1))
		})
	}
}

func TestOverlayCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dst := filepath.Join(t.TempDir(), "kernel.cpio")
	err := Overlay(ctx, writeBase(t, nil), dst, []File{BytesFile("/x", nil, 0o644)})
	assert.ErrorIs(t, err, context.Canceled)
	_, err = os.Stat(dst)
	assert.Check(t, errors.Is(err, os.ErrNotExist))
}

func TestOverlayRejectsCompressedTail(t *testing.T) {
	// Data after the trailer that is not a newc archive (a compressed
	// archive) cannot be scanned for directories.
	base := writeBase(t, []byte("\x1f\x8b\x08\x00"))
	err := Overlay(context.Background(), base, filepath.Join(t.TempDir(), "k.cpio"), []File{BytesFile("/x", nil, 0o644)})
	assert.ErrorContains(t, err, "no newc archive")
}
