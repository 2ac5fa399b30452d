package daemonspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/fusematrix/fusematrix/kernels"
)

// Read reads what -daemon names: a binary (an ELF file, or a script,
// which elfdeps then refuses with its reason), a description file, or a
// daemon section of the catalog.
func Read(path, catalog string) (*Spec, error) {
	if strings.HasPrefix(path, DebianPrefix) {
		// A package of Debian's archive, resolved by harness.
		return &Spec{Binary: path}, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && !strings.ContainsRune(path, '/') {
		c, cerr := kernels.UserCatalog(catalog)
		if cerr != nil {
			return nil, cerr
		}
		sec, ok := c.Daemon(path)
		if !ok {
			known := "none"
			if names := c.Daemons(); len(names) > 0 {
				known = strings.Join(names, ", ")
			}
			return nil, fmt.Errorf("no such file, and no [daemon %s] in the catalog (%s; its daemons: %s)", path, strings.Join(c.Files(), ", "), known)
		}
		return FromSection(sec)
	}
	if err != nil {
		// Left to elfdeps, which says what is wrong with the path.
		return &Spec{Binary: path}, nil
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	if head = head[:n]; bytes.HasPrefix(head, []byte("\x7fELF")) || bytes.HasPrefix(head, []byte("#!")) {
		return &Spec{Binary: path}, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	// One byte past the cap, so that Parse refuses a larger file rather
	// than reading part of it.
	text, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	spec, err := Parse(path, bytes.NewReader(text))
	if err != nil && !bytes.Contains(text, []byte("[daemon ")) {
		return nil, fmt.Errorf("neither an ELF binary nor a daemon description: %w", err)
	}
	return spec, err
}
