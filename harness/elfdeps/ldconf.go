package elfdeps

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ldsoConf reads glibc's ldconfig configuration (/etc/ld.so.conf) and
// returns its directories in order, each once, as ldconfig reads it
// (elf/ldconfig.c, parse_conf): one directory per line, "#" comments,
// "include GLOB…" (relative globs taken from the including file's
// directory, each glob's matches in sorted order), "hwcap" lines ignored.
// The cache that ldconfig builds from these directories (and glibc's own
// system directories, searched after it) is where glibc's loader looks
// after RPATH, LD_LIBRARY_PATH and RUNPATH; the cache itself is not read,
// so a library installed without running ldconfig is found here though
// the host's loader would miss it (and it then goes to the guest).
// A missing file is no directories, not an error, as for ldconfig.
func ldsoConf(file string) ([]string, error) {
	var dirs []string
	seen := map[string]bool{}
	active := map[string]bool{} // files being read: an include loop ends
	var read func(file string, depth int) error
	read = func(file string, depth int) error {
		if depth > 16 || active[file] {
			return nil
		}
		active[file] = true
		defer delete(active, file)
		f, err := os.Open(file)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 4096), 1<<20)
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			line = strings.TrimSpace(line)
			switch {
			case line == "":
			case strings.HasPrefix(line, "include") && len(line) > 7 && (line[7] == ' ' || line[7] == '\t'):
				for _, pat := range strings.Fields(line[8:]) {
					if !filepath.IsAbs(pat) {
						pat = filepath.Join(filepath.Dir(file), pat)
					}
					matches, err := filepath.Glob(pat)
					if err != nil {
						return fmt.Errorf("%s: include %s: %w", file, pat, err)
					}
					slices.Sort(matches)
					for _, m := range matches {
						if err := read(m, depth+1); err != nil {
							return err
						}
					}
				}
			case strings.HasPrefix(line, "hwcap") && len(line) > 5 && (line[5] == ' ' || line[5] == '\t'):
			default:
				d := filepath.Clean(line)
				if filepath.IsAbs(d) && !seen[d] {
					seen[d] = true
					dirs = append(dirs, d)
				}
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		return nil
	}
	if err := read(file, 0); err != nil {
		return nil, err
	}
	return dirs, nil
}

// muslPath reads musl's /etc/ld-musl-x86_64.path: directories separated
// by colons or newlines (ldso/dynlink.c). It returns nil, without error,
// when the file does not exist: musl then uses muslDefaultPath.
func muslPath(file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	dirs := []string{}
	for _, d := range strings.FieldsFunc(string(data), func(r rune) bool { return r == ':' || r == '\n' }) {
		if d = strings.TrimSpace(d); d != "" {
			dirs = append(dirs, d)
		}
	}
	return dirs, nil
}
