// Package modinfo reads Linux kernel module metadata without modinfo(8):
// the key=value strings of a module's .modinfo ELF section (name, depends,
// alias, ...), from plain, xz- or zstd-compressed module files, and the
// naming rules module tools share.
//
// It imports the standard library and the xz and zstd decompressors only.
package modinfo

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Suffixes are the module file name endings the kernel's module loader
// accepts, compressed ones included.
var Suffixes = []string{".ko", ".ko.xz", ".ko.zst"}

// ModuleName returns the module name of a module file name (or path):
// the base name without its suffix, with "-" written as "_" since module
// tools treat the two as the same character. ok is false for a file that is
// not a module.
func ModuleName(file string) (name string, ok bool) {
	base := file[strings.LastIndexByte(file, '/')+1:]
	for _, s := range Suffixes {
		if n, found := strings.CutSuffix(base, s); found && n != "" {
			return Normalize(n), true
		}
	}
	return "", false
}

// Normalize writes a module name (or pattern) the canonical way, with "_"
// for "-".
func Normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }

// Open returns the uncompressed bytes of the module file at path,
// decompressing .ko.xz and .ko.zst files.
func Open(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasSuffix(path, ".xz"):
		zr, err := xz.NewReader(bufio.NewReader(f))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return readCloser{zr, f.Close}, nil
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return readCloser{zr, func() error { zr.Close(); return f.Close() }}, nil
	default:
		return f, nil
	}
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// Info is a module's .modinfo strings: each key with its values in section
// order (keys such as alias and parm repeat).
type Info map[string][]string

// Get returns the first value of key, or "".
func (i Info) Get(key string) string {
	if v := i[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Depends returns the names of the modules this one needs loaded first, as
// modpost recorded them from unresolved symbols; built-in code never
// appears there.
func (i Info) Depends() []string {
	var deps []string
	for _, v := range i["depends"] {
		for d := range strings.SplitSeq(v, ",") {
			if d = strings.TrimSpace(d); d != "" {
				deps = append(deps, Normalize(d))
			}
		}
	}
	return deps
}

// Read returns the .modinfo strings of the module file at path.
func Read(path string) (Info, error) {
	rc, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	info, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

// Parse returns the .modinfo strings of an uncompressed module image.
func Parse(module []byte) (Info, error) {
	f, err := elf.NewFile(bytes.NewReader(module))
	if err != nil {
		return nil, fmt.Errorf("not an ELF module: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf(".modinfo: %w", err)
	}
	info := Info{}
	for s := range bytes.SplitSeq(data, []byte{0}) {
		k, v, ok := bytes.Cut(s, []byte("="))
		if !ok {
			// Padding between strings is a run of NULs.
			continue
		}
		info[string(k)] = append(info[string(k)], string(v))
	}
	return info, nil
}
