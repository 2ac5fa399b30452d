package elfdeps

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// guestPATH is the PATH u-root's init gives its programs (pkg/libinit,
// SetEnv), less its Go directories: where an exec of a bare
// "fusermount3" (go-fuse, or libfuse after its built-in path) looks.
var guestPATH = []string{"/ubin", "/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin", "/buildbin", "/bbin"}

// fuseNames is what the executable or its libraries say about fusermount.
type fuseNames struct {
	v3, v2 bool     // "fusermount3", or a bare "fusermount"
	paths  []string // absolute paths such as libfuse's built-in /usr/bin/fusermount3
	by     string   // the first file that names it
}

// fusermount sets b.Fusermount when b or one of its libraries names
// fusermount3 (libfuse 3 runs it to mount when not root, or for some mount
// options; go-fuse too) or fusermount (libfuse 2), and the host has it. A
// missing or broken fusermount3 is a note, not an error: the daemon runs as
// root in the guest and normally mounts without it.
func (r *resolver) fusermount(b *Binary) {
	var names fuseNames
	files := []string{b.Real}
	for _, l := range b.Libs {
		files = append(files, l.Host)
	}
	for _, f := range files {
		if err := scanFuse(f, &names); err != nil {
			b.Notes = append(b.Notes, fmt.Sprintf("cannot look for fusermount in %s: %v", f, err))
		}
	}
	if !names.v3 && !names.v2 {
		return
	}
	want := []string{"fusermount3"}
	if !names.v3 {
		want = []string{"fusermount", "fusermount3"}
	}
	var path string
	for _, p := range names.paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && hidden(p) == "" {
			path = p
			break
		}
	}
	if path == "" {
		for _, n := range want {
			p := lookPath(n)
			if p != "" {
				path = p
				break
			}
		}
	}
	if path == "" {
		b.Notes = append(b.Notes, fmt.Sprintf("%s names %s, but the host has none: left out "+
			"(the daemon runs as root in the guest and mounts without it, unless a mount option needs it)",
			names.by, want[0]))
		return
	}
	if real, err := filepath.EvalSymlinks(path); err == nil && real == b.Real {
		return // b is fusermount3 itself
	}
	if d := hidden(path); d != "" {
		b.Notes = append(b.Notes, fmt.Sprintf("%s names %s; the host's is %s, under %s, which the guest mounts over: left out",
			names.by, want[0], path, d))
		return
	}
	fm, err := r.binary(path, false)
	if err != nil {
		b.Notes = append(b.Notes, fmt.Sprintf("%s names %s, but the host's cannot run in the guest, left out: %v", names.by, want[0], err))
		return
	}
	if !slices.Contains(names.paths, path) && !slices.Contains(guestPATH, filepath.Dir(path)) {
		b.Notes = append(b.Notes, fmt.Sprintf("%s goes to %s in the guest, which is not on the guest's PATH", filepath.Base(path), path))
	}
	b.Fusermount = fm
}

// lookPath finds the executable file name on the host's PATH, as
// exec.LookPath does, and returns its absolute path or "". (This package
// imports no os/exec: it runs nothing.)
func lookPath(name string) string {
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if !filepath.IsAbs(dir) {
			continue // a relative entry would depend on where fusematrix runs
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// scanFuse records in names every "fusermount3" and "fusermount" in the
// file, and the absolute path before each one when it has one (a C string
// such as "/usr/bin/fusermount3"). It reads the file in chunks.
func scanFuse(file string, names *fuseNames) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	// Each match is taken in exactly one round, with at least keep bytes of
	// context either side unless at the file's ends: a round that is not the
	// last takes the matches starting before its last keep bytes, and the
	// next round starts with the last 2*keep bytes of this one (keep bytes
	// of context, then the keep bytes whose matches it takes).
	const keep, chunk = 512, 1 << 20
	buf := make([]byte, 2*keep+chunk)
	have, first := 0, true
	for {
		n, err := io.ReadFull(f, buf[have:])
		have += n
		last := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !last {
			return err
		}
		lo, hi := 0, have
		if !first {
			lo = keep
		}
		if !last {
			hi = have - keep
		}
		if scanChunk(buf[:have], lo, hi, names) && names.by == "" {
			names.by = file
		}
		if last {
			return nil
		}
		copy(buf, buf[have-2*keep:have])
		have, first = 2*keep, false
	}
}

var fusermountWord = []byte("fusermount")

// scanChunk records the matches in buf that start in [lo, hi) and reports
// whether there was one.
func scanChunk(buf []byte, lo, hi int, names *fuseNames) bool {
	found := false
	for i := lo; i < hi; {
		j := bytes.Index(buf[i:], fusermountWord)
		if j < 0 || i+j >= hi {
			break
		}
		at := i + j
		i = at + len(fusermountWord)
		found = true
		name := "fusermount"
		if i < len(buf) && buf[i] == '3' {
			name = "fusermount3"
			names.v3 = true
		} else {
			names.v2 = true
		}
		// An absolute path right before it, from a NUL (or the start).
		k := at
		for k > 0 && at-k < 256 && isPathByte(buf[k-1]) {
			k--
		}
		dir := string(buf[k:at])
		if (k == 0 || buf[k-1] == 0) && strings.HasPrefix(dir, "/") && strings.HasSuffix(dir, "/") {
			p := filepath.Clean(dir + name)
			if !slices.Contains(names.paths, p) {
				names.paths = append(names.paths, p)
			}
		}
	}
	return found
}

func isPathByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '/' || c == '.' || c == '_' || c == '-' || c == '+'
}
