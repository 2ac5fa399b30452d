package kernels

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// ListFormat is the format field of a List; it changes when a field
// changes meaning or goes away.
const ListFormat = 1

// List is what `fusematrix kernels list -format json` writes: what each
// kernel of a selection stands for, whether the cache holds it, and a key
// for a CI cache of it. Programs read it (the nightly workflow builds its
// job matrix from it with jq), so its field names and types are its
// interface.
type List struct {
	Format int `json:"format"`
	// Source says where the kernels come from, such as "matrix wide from
	// built-in kernels/catalog.conf"; empty when they were named as
	// arguments.
	Source  string     `json:"source,omitempty"`
	Kernels []ListItem `json:"kernels"`
}

// ListItem is what a List knows about one kernel.
type ListItem struct {
	// Kernel is the name as given, a selector or a catalog name: what
	// matrix, bench and caps take to boot this kernel.
	Kernel string `json:"kernel"`
	// Selector is what Kernel stands for, a catalog name expanded.
	Selector string `json:"selector"`
	// Slug is Kernel with every character outside [A-Za-z0-9._-]
	// replaced by "-", made unique in the list: a name for files and CI
	// artifacts, which refuse ":" and "/".
	Slug string `json:"slug"`
	// Kind is "debian", "file" (a kernel image on disk) or "source" (a
	// tree built on use).
	Kind string `json:"kind"`
	// Package, Version and Suite name the Debian image package (meta
	// packages followed). A source tree has the version its Makefile
	// names, a file none of the three.
	Package string `json:"package"`
	Version string `json:"version"`
	Suite   string `json:"suite"`
	// Parts are the packages unpacked for a Debian kernel, the image
	// first, and Missing those it depends on that the archive lacks.
	Parts   []ListPart `json:"parts,omitempty"`
	Missing []string   `json:"missing,omitempty"`
	// Image is a file kernel's image; Src and Base a source kernel's
	// tree and base configuration.
	Image string `json:"image,omitempty"`
	Src   string `json:"src,omitempty"`
	Base  string `json:"base,omitempty"`
	// Cached says whether the cache holds the kernel ready to boot (a
	// file is always ready), DiskBytes what it takes there (the image
	// alone for files and source builds), DownloadBytes the .deb files a
	// Debian kernel needs fetched when not cached.
	Cached        bool  `json:"cached"`
	DiskBytes     int64 `json:"disk_bytes"`
	DownloadBytes int64 `json:"download_bytes"`
	// CacheKey is the same exactly when the kernel is the same build
	// (package versions, source state, or file), in [A-Za-z0-9._-]: a
	// key for a CI cache of the fusematrix cache directory.
	CacheKey string `json:"cache_key"`
	// Unverified says why the archive's indexes were not checked
	// against the keyring (-insecure-unsigned); empty when they were.
	Unverified string `json:"unverified,omitempty"`
}

// ListPart is one package of a Debian kernel.
type ListPart struct {
	Package string `json:"package"`
	Version string `json:"version"`
}

// NewList returns a List of no kernels yet, from source (see
// List.Source).
func NewList(source string) *List {
	return &List{Format: ListFormat, Source: source, Kernels: []ListItem{}}
}

// WriteJSON gives each kernel its slug and writes l as indented JSON.
// When a kernel did not resolve (errs, from ListAll), it writes nothing
// and returns every error: a CI job fanning out over a list with a hole
// would pass without testing the missing kernel. Two kernels of one name
// would be two jobs booting one kernel, and their results could not be
// merged: an error, and nothing written.
func (l *List) WriteJSON(w io.Writer, errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return err
	}
	names := map[string]bool{}
	slugs := map[string]bool{}
	for i := range l.Kernels {
		k := &l.Kernels[i]
		if names[k.Kernel] {
			return fmt.Errorf("kernels list: kernel %q listed twice", k.Kernel)
		}
		names[k.Kernel] = true
		k.Slug = KeySafe(k.Kernel)
		for n := 2; slugs[k.Slug]; n++ {
			k.Slug = fmt.Sprintf("%s-%d", KeySafe(k.Kernel), n)
		}
		slugs[k.Slug] = true
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("kernels list: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("kernels list: %w", err)
	}
	return nil
}

// ListKernel says what the kernel called name stands for (see Resolve),
// without fetching or building anything: a Debian kernel's packages (the
// indexes are read as Lookup reads them), a source tree's state, a file's
// size. opts.Catalog expands catalog names.
func ListKernel(ctx context.Context, name string, opts Options) (ListItem, error) {
	sel := opts.Catalog.expand(name)
	k := ListItem{Kernel: name, Selector: sel}
	if strings.HasPrefix(sel, "src:") {
		info, err := SourceStatus(ctx, sel, opts)
		if err != nil {
			return k, err
		}
		k.Kind, k.Version, k.Src, k.Base = "source", info.Version, info.Src, info.Base
		k.Cached, k.DiskBytes = info.Cached, info.Size
		// The entry's name holds the hash of the tree's state, the
		// fragment and the base.
		k.CacheKey = "src-" + KeySafe(filepath.Base(info.Entry))
		return k, nil
	}
	if isPath(sel) {
		res, err := Resolve(ctx, name, opts)
		if err != nil {
			return k, err
		}
		st, err := os.Stat(res.Image)
		if err != nil {
			return k, err
		}
		k.Kind, k.Image, k.Cached, k.DiskBytes = "file", res.Image, true, st.Size()
		// Nothing to fetch, so nothing a cache could hold: the key only
		// has to change with the file.
		k.CacheKey = "file-" + shortHash(res.Image, fmt.Sprint(st.Size()), st.ModTime().UTC().Format(time.RFC3339Nano))
		return k, nil
	}
	res, err := Lookup(ctx, name, opts)
	if err != nil {
		return k, err
	}
	return debianItem(k, res), nil
}

// debianItem fills k from a Debian kernel's resolution.
func debianItem(k ListItem, res *Resolution) ListItem {
	k.Kind, k.Package, k.Version, k.Suite = "debian", res.Image.Name, res.Image.Version, res.Image.Suite
	for _, p := range res.Parts {
		k.Parts = append(k.Parts, ListPart{Package: p.Name, Version: p.Version})
	}
	k.Missing, k.Unverified = res.Missing, res.Unverified
	k.DownloadBytes = res.DownloadSize()
	k.DiskBytes, k.Cached = res.Cached()
	k.CacheKey = res.CacheKey()
	return k
}

// shortHash is the start of the SHA256 of the lines, in hex.
func shortHash(lines ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:8])
}

// ListAll lists every kernel of names (ListKernel) from source. A kernel
// that does not resolve has an item of its name alone, and its error at
// its index of errs; errs is nil when every kernel resolved.
func ListAll(ctx context.Context, source string, names []string, opts Options) (*List, []error) {
	l := NewList(source)
	var errs []error
	for i, name := range names {
		k, err := ListKernel(ctx, name, opts)
		if err != nil {
			if errs == nil {
				errs = make([]error, len(names))
			}
			errs[i], k = err, ListItem{Kernel: name}
		}
		l.Kernels = append(l.Kernels, k)
	}
	return l, errs
}

// WriteTable writes l's kernels for a terminal, a row each, and, numbered
// under the table, the errors ListAll returned with it. Errors are long (they list what is available instead): under
// the table they do not stretch its columns.
func (l *List) WriteTable(w io.Writer, errs []error) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tPACKAGE\tVERSION\tSUITE\tCACHED")
	var failed []error
	for i, k := range l.Kernels {
		row := k.tableRow()
		if i < len(errs) && errs[i] != nil {
			failed = append(failed, errs[i])
			row = fmt.Sprintf("%s\terror (%d, below)\t\t\t", k.Kernel, len(failed))
		}
		fmt.Fprintln(tw, row)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i, err := range failed {
		fmt.Fprintf(w, "\n(%d) %v\n", i+1, err)
	}
	return nil
}

// tableRow is k's row of List.WriteTable.
func (k ListItem) tableRow() string {
	switch k.Kind {
	case "source":
		cached := "no (built when used)"
		if k.Cached {
			cached = Megabytes(k.DiskBytes) + " (image)"
		}
		return fmt.Sprintf("%s\tsource %s\t%s\tbuilt, base %s\t%s", k.Kernel, k.Src, k.Version, k.Base, cached)
	case "file":
		return fmt.Sprintf("%s\t%s\t\tfile\t%s (image)", k.Kernel, k.Image, Megabytes(k.DiskBytes))
	}
	pkg := k.Package
	if n := len(k.Parts) - 1; n > 0 {
		pkg += fmt.Sprintf(" (+%d)", n)
	}
	cached := "no (" + Megabytes(k.DownloadBytes) + " to fetch)"
	if k.Cached {
		cached = Megabytes(k.DiskBytes)
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", k.Kernel, pkg, k.Version, k.Suite, cached)
}

// Megabytes spells n bytes as the kernels commands print sizes.
func Megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
