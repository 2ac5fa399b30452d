package initramfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	// mkuimage's copy of u-root's cpio package: u-root's own imports
	// pkg/ls, whose go-humanize dependency has no go.sum entry here.
	"github.com/u-root/mkuimage/cpio"
)

// File is one regular file, or symbolic link, to add to an overlay.
type File struct {
	// Path is the absolute, clean path in the guest, e.g. "/lib/modules/x.ko".
	Path string
	// Mode holds the permission bits (and setuid, setgid, sticky); no type bits.
	Mode os.FileMode
	// Open returns the content. It is called once, when the file is written.
	Open func() (io.ReadCloser, error)
	// Link, when not "", makes the entry a symbolic link to Link, written
	// as it is (a tree a program runs in under chroot has absolute links
	// meant for that root); Mode and Open are then unused.
	Link string
	// Src is the host file a HostFile copies, "" for other entries: two
	// entries of one path with the same Src, Mode and Link are the same
	// entry (Same), which a caller joining several lists keeps once.
	Src string
}

// Same says whether f and g are the same entry: one host file copied to
// one path with one mode, or one symbolic link.
func (f File) Same(g File) bool {
	if f.Path != g.Path || f.Link != g.Link || f.Mode != g.Mode {
		return false
	}
	return f.Link != "" || (f.Src != "" && f.Src == g.Src)
}

// Symlink is a File that is a symbolic link to target.
func Symlink(guestPath, target string) File {
	return File{Path: guestPath, Link: target}
}

// HostFile is a File whose content is the host file src.
func HostFile(guestPath, src string, mode os.FileMode) File {
	return File{Path: guestPath, Mode: mode, Src: src, Open: func() (io.ReadCloser, error) { return os.Open(src) }}
}

// BytesFile is a File with the given content.
func BytesFile(guestPath string, data []byte, mode os.FileMode) File {
	return File{Path: guestPath, Mode: mode, Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}}
}

// Linux mode_t type bits, as newc stores them.
const (
	modeTypeMask = 0o170000
	modeDir      = 0o040000
	modeRegular  = 0o100000
	modeSymlink  = 0o120000
)

// Overlay writes base followed by a second newc archive holding files to
// dst. Parent directories of the files that base lacks are created (mode
// 0755); directories base already has are not repeated, because the kernel
// would apply the overlay's mode to them (base's /tmp is 0777). A parent
// that is a non-directory in base, or a file that base already has, as a
// directory or not, is an error: the kernel would replace the base entry. dst is written to a
// temporary file next to it and renamed, so it is either old or complete.
//
// The kernel (init/initramfs.c, unpack_to_rootfs and do_reset) skips NUL
// bytes after an archive's trailer and accepts the next archive only at an
// offset that is a multiple of 4 from the start of the initrd; Overlay
// pads base with NULs to that boundary.
func Overlay(ctx context.Context, base, dst string, files []File) (err error) {
	dirs, err := overlayDirs(files)
	if err != nil {
		return err
	}
	in, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	baseModes, err := archiveModes(in, fi.Size())
	if err != nil {
		return fmt.Errorf("overlay: read base %s: %w", base, err)
	}
	var newDirs []string
	for _, d := range dirs {
		m, ok := baseModes[d]
		switch {
		case !ok:
			newDirs = append(newDirs, d)
		case m&modeTypeMask != modeDir:
			return fmt.Errorf("overlay: /%s is not a directory in base %s", d, base)
		}
	}
	for _, f := range files {
		m, ok := baseModes[strings.TrimPrefix(f.Path, "/")]
		switch {
		case !ok:
		case m&modeTypeMask == modeDir:
			return fmt.Errorf("overlay: %s is a directory in base %s", f.Path, base)
		default:
			// The base's own file (u-root's init, its busybox, the agent's
			// flags): the overlay would replace it, which no caller means to.
			return fmt.Errorf("overlay: %s is already in base %s", f.Path, base)
		}
	}

	out, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".writing-*")
	if err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	// io.Copy between files uses copy_file_range: no pass through user space.
	n, err := io.Copy(out, in)
	if err != nil {
		return fmt.Errorf("overlay: copy base %s: %w", base, err)
	}
	w := &newcWriter{f: out, off: n}
	if err := w.pad(); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	for _, d := range newDirs {
		if err := w.entry(d, modeDir|0o755, 2, nil); err != nil {
			return fmt.Errorf("overlay: %w", err)
		}
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("overlay: %w", err)
		}
		if err := w.file(f); err != nil {
			return fmt.Errorf("overlay: %s: %w", f.Path, err)
		}
	}
	if err := w.entry(cpio.Trailer, 0, 1, nil); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	if err := out.Chmod(0o644); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("overlay: sync %s: %w", out.Name(), err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("overlay: close %s: %w", out.Name(), err)
	}
	if err := os.Rename(out.Name(), dst); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	return nil
}

// overlayDirs checks the file paths and returns, sorted (parents first),
// every ancestor directory of them in archive form (no leading slash).
func overlayDirs(files []File) ([]string, error) {
	seen := map[string]bool{}
	dirSet := map[string]bool{}
	for _, f := range files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return nil, fmt.Errorf("overlay: %q is not an absolute, clean file path", f.Path)
		}
		if f.Mode&^(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
			return nil, fmt.Errorf("overlay: %s: mode %v is not a regular file's", f.Path, f.Mode)
		}
		if f.Open == nil && f.Link == "" {
			return nil, fmt.Errorf("overlay: %s: Open is nil", f.Path)
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("overlay: %s given twice", f.Path)
		}
		seen[f.Path] = true
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			dirSet[d] = true
		}
	}
	dirs := make([]string, 0, len(dirSet))
	for d := range dirSet {
		if seen[d] {
			return nil, fmt.Errorf("overlay: %s is both a file and a directory", d)
		}
		dirs = append(dirs, d[1:])
	}
	// A parent is a prefix of its children, so it sorts first.
	sort.Strings(dirs)
	return dirs, nil
}

// archiveModes returns the mode of every entry of the possibly
// concatenated newc archives in r, read the way the kernel reads them.
func archiveModes(r io.ReaderAt, size int64) (map[string]uint64, error) {
	modes := map[string]uint64{}
	for off := int64(0); off < size; {
		// EOFReader hides the trailer record; the raw reader inside it
		// returns it, and its position is where the next archive begins.
		rr := cpio.Newc.Reader(io.NewSectionReader(r, off, size-off)).(cpio.EOFReader).RecordReader
		for {
			rec, err := rr.ReadRecord()
			if err != nil {
				return nil, fmt.Errorf("archive at offset %d: %w", off, err)
			}
			if rec.Name == cpio.Trailer {
				off += (rec.FilePos + int64(rec.FileSize) + 3) &^ 3
				break
			}
			modes[rec.Name] = rec.Mode
		}
		var b [1]byte
		for off < size {
			if _, err := r.ReadAt(b[:], off); err != nil {
				return nil, fmt.Errorf("offset %d: %w", off, err)
			}
			if b[0] != 0 {
				break
			}
			off++
		}
		if off < size && (b[0] != '0' || off%4 != 0) {
			return nil, fmt.Errorf("offset %d: no newc archive (compressed data is not supported)", off)
		}
	}
	return modes, nil
}

// newcWriter writes newc records straight to a file, so that file contents
// of unknown length can be streamed: the size field is patched in place
// once the content has been copied.
type newcWriter struct {
	f   *os.File
	off int64 // bytes in f so far
	ino uint32
}

// sizeField is the offset of the filesize field in a newc header: magic
// (6) and six 8-digit fields (ino mode uid gid nlink mtime).
const sizeField = 6 + 6*8

func (w *newcWriter) write(b []byte) error {
	n, err := w.f.Write(b)
	w.off += int64(n)
	return err
}

func (w *newcWriter) pad() error {
	if r := w.off % 4; r != 0 {
		return w.write(make([]byte, 4-r))
	}
	return nil
}

// entry writes a record for name (archive form, no leading slash). content
// may be nil for entries without data.
func (w *newcWriter) entry(name string, mode, nlink uint32, content io.Reader) error {
	w.ino++
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		w.ino, mode, 0, 0, nlink, 0, // ino mode uid gid nlink mtime
		0,          // filesize, patched below
		0, 0, 0, 0, // devmajor devminor rdevmajor rdevminor
		len(name)+1, 0) // namesize check
	start := w.off
	if err := w.write(append([]byte(hdr+name), 0)); err != nil {
		return err
	}
	if err := w.pad(); err != nil {
		return err
	}
	if content == nil {
		return nil
	}
	// Straight to the file, so that a host file is copied in the kernel
	// (copy_file_range).
	n, err := io.Copy(w.f, content)
	w.off += n
	if err != nil {
		return err
	}
	if n > math.MaxUint32 {
		return errors.New("larger than newc's 4 GiB limit")
	}
	if _, err := w.f.WriteAt(fmt.Appendf(nil, "%08X", n), start+sizeField); err != nil {
		return err
	}
	return w.pad()
}

func (w *newcWriter) file(f File) error {
	if f.Link != "" {
		return w.entry(f.Path[1:], modeSymlink|0o777, 1, strings.NewReader(f.Link))
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	mode := uint32(modeRegular) | uint32(f.Mode.Perm())
	for _, b := range []struct {
		os   os.FileMode
		unix uint32
	}{{os.ModeSetuid, 0o4000}, {os.ModeSetgid, 0o2000}, {os.ModeSticky, 0o1000}} {
		if f.Mode&b.os != 0 {
			mode |= b.unix
		}
	}
	if err := w.entry(f.Path[1:], mode, 1, rc); err != nil {
		return err
	}
	return rc.Close()
}
