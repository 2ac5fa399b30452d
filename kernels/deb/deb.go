// Package deb unpacks Debian binary packages (.deb files) in Go, without
// dpkg: it reads the ar archive, decompresses its data.tar member and writes
// a chosen subset of its entries below a directory. A package is not trusted
// to stay in that directory: entries with absolute names or ".." elements,
// and links leading outside, are rejected.
//
// It imports the standard library and the xz and zstd decompressors only.
package deb

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// ErrUnsafePath is wrapped by the error for an entry that would leave the
// extraction directory.
var ErrUnsafePath = errors.New("unsafe path")

const (
	arMagic      = "!<arch>\n"
	arHeaderSize = 60
)

// Extract reads the .deb in r and writes the data.tar entries whose names
// keep accepts below dir, which must exist. Names are given to keep
// relative and cleaned, without a leading "./" (for example
// "boot/vmlinuz-6.1.0-50-cloud-amd64"). Regular files, symbolic links and
// hard links are written; parent directories are created as needed; other
// entry types are skipped. It returns the names written, in archive order.
//
// Every entry's name is checked, kept or not, since a package with an
// absolute or ".." name is broken or hostile. Link targets are checked for
// the entries written: a symbolic link must be relative and resolve to
// something inside dir once all entries are written, a hard link must name
// an entry inside dir (and if that entry is a symbolic link, the new one
// must resolve inside dir too). Writes go through os.Root, so no chain of
// links lets one lead outside dir either. On error, dir holds a part of the
// package and the caller removes it.
func Extract(r io.Reader, dir string, keep func(name string) bool) ([]string, error) {
	return ExtractWith(r, dir, Options{Keep: keep})
}

// Options say what ExtractWith writes and accepts.
type Options struct {
	// Keep selects the entries written by name, as Extract's keep does;
	// nil keeps them all.
	Keep func(name string) bool
	// Sysroot accepts what a package unpacked into a system root holds
	// besides what Extract accepts: symbolic links with an absolute
	// target, which lead to the right file only when the tree is used as
	// "/" (under chroot), and relative links to a file no entry of this
	// package writes, which another package of the root may provide.
	// Both are written as they are. Nothing here follows an absolute
	// link (os.Root refuses to), a relative one must still stay inside
	// dir lexically, and one that leads outside through other links is
	// still an error; so the tree is safe to walk without following
	// links, not to read through them with plain file calls.
	Sysroot bool
}

// ExtractWith is Extract with Options.
func ExtractWith(r io.Reader, dir string, o Options) ([]string, error) {
	keep := o.Keep
	if keep == nil {
		keep = func(string) bool { return true }
	}
	data, compression, err := dataMember(r)
	if err != nil {
		return nil, err
	}
	dec, err := decompress(data, compression)
	if err != nil {
		return nil, fmt.Errorf("data.tar%s: %w", compression, err)
	}
	defer dec.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	names, err := untar(dec, root, keep, o.Sysroot)
	if err != nil {
		return names, fmt.Errorf("data.tar%s: %w", compression, err)
	}
	return names, nil
}

// dataMember walks the ar archive up to the data.tar member and returns a
// reader limited to it and its compression suffix ("" for none).
func dataMember(r io.Reader) (io.Reader, string, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(arMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != arMagic {
		return nil, "", errors.New("not a Debian package: no ar header")
	}
	for i := 0; ; i++ {
		var hdr [arHeaderSize]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.EOF {
				return nil, "", errors.New("not a Debian package: no data.tar member")
			}
			return nil, "", fmt.Errorf("ar header: %w", err)
		}
		if string(hdr[58:60]) != "`\n" {
			return nil, "", errors.New("ar header: bad magic")
		}
		name := strings.TrimSuffix(strings.TrimSpace(string(hdr[0:16])), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || size < 0 {
			return nil, "", fmt.Errorf("ar member %q: bad size", name)
		}
		if i == 0 && name != "debian-binary" {
			return nil, "", fmt.Errorf("not a Debian package: first member is %q, not debian-binary", name)
		}
		if rest, ok := strings.CutPrefix(name, "data.tar"); ok {
			return io.LimitReader(br, size), rest, nil
		}
		// Members are padded to an even size.
		if _, err := io.CopyN(io.Discard, br, size+size%2); err != nil {
			return nil, "", fmt.Errorf("ar member %q: %w", name, err)
		}
	}
}

func decompress(r io.Reader, compression string) (io.ReadCloser, error) {
	switch compression {
	case "":
		return io.NopCloser(r), nil
	case ".xz":
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(zr), nil
	case ".zst":
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	case ".gz":
		return gzip.NewReader(r)
	default:
		return nil, errors.New("unsupported compression")
	}
}

func untar(r io.Reader, root *os.Root, keep func(string) bool, sysroot bool) ([]string, error) {
	var names, links []string
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names, checkLinks(root, links, sysroot)
		}
		if err != nil {
			return names, err
		}
		name, err := CleanName(hdr.Name)
		if err != nil {
			return names, err
		}
		if name == "." || !keep(name) {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			err = writeFile(root, name, hdr.FileInfo().Mode(), tr)
		case tar.TypeSymlink:
			if err = symlink(root, name, hdr.Linkname, sysroot); err == nil && !path.IsAbs(hdr.Linkname) {
				links = append(links, name)
			}
		case tar.TypeLink:
			// A hard link to a symbolic link is a symbolic link in
			// another directory, where its target may lead out: it is
			// checked as one.
			if err = hardlink(root, name, hdr.Linkname); err == nil {
				if fi, lerr := root.Lstat(name); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
					links = append(links, name)
				}
			}
		case tar.TypeDir:
			err = root.MkdirAll(name, 0o755)
		default:
			continue
		}
		if err != nil {
			// os.Root refuses to write through a link leading out; say
			// which link that is rather than where the write went.
			if lerr := checkLinks(root, links, sysroot); lerr != nil && !errors.Is(err, ErrUnsafePath) {
				return names, lerr
			}
			return names, fmt.Errorf("%s: %w", name, err)
		}
		if hdr.Typeflag != tar.TypeDir {
			names = append(names, name)
		}
	}
}

// checkLinks makes sure every symbolic link written leads to something
// inside the root (or, for a sysroot, to nothing yet: another package may
// provide it). The check when writing a link is lexical, and links
// through other links (a link to "." below a link to "..") can defeat it;
// os.Root resolves them for real.
func checkLinks(root *os.Root, links []string, sysroot bool) error {
	for _, name := range links {
		_, err := root.Stat(name)
		if sysroot && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			target, _ := root.Readlink(name)
			return fmt.Errorf("%w: link %s -> %s leads outside the package or nowhere: %v", ErrUnsafePath, name, target, err)
		}
	}
	return nil
}

// CleanName returns an archive entry's name relative to the package root,
// without a leading "./", or an error wrapping ErrUnsafePath when the name
// is absolute or has a ".." element.
func CleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: %q is absolute", ErrUnsafePath, name)
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("%w: %q has a .. element", ErrUnsafePath, name)
		}
	}
	return path.Clean(name), nil
}

func writeFile(root *os.Root, name string, mode os.FileMode, r io.Reader) error {
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	perm := os.FileMode(0o644)
	if mode&0o111 != 0 {
		perm = 0o755
	}
	// Remove first so that a duplicate entry replaces a link instead of
	// writing through it.
	if err := root.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	if _, err := io.Copy(bw, r); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func symlink(root *os.Root, name, target string, sysroot bool) error {
	if target == "" || (path.IsAbs(target) && !sysroot) {
		return fmt.Errorf("%w: link to %q leaves the package", ErrUnsafePath, target)
	}
	if dest := path.Join(path.Dir(name), target); !path.IsAbs(target) && (dest == ".." || strings.HasPrefix(dest, "../")) {
		return fmt.Errorf("%w: link to %q leaves the package", ErrUnsafePath, target)
	}
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	if err := root.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return root.Symlink(target, name)
}

func hardlink(root *os.Root, name, target string) error {
	old, err := CleanName(target)
	if err != nil {
		return err
	}
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	if err := root.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := root.Link(old, name); err != nil {
		return fmt.Errorf("hard link to %q: %w", old, err)
	}
	return nil
}
