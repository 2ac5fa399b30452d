package kernels

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// catalogText is the catalog compiled into fusematrix; see catalog.conf
// for its format.
//
//go:embed catalog.conf
var catalogText string

// CatalogText is the text of the catalog compiled into fusematrix.
func CatalogText() string { return catalogText }

// BuiltinCatalog is what Catalog.Origin says of what the compiled-in
// catalog defines.
const BuiltinCatalog = "built-in kernels/catalog.conf"

// Catalog is a set of named kernel matrices and named kernels, layered
// from one or more catalog files; each remembers the file it came from.
type Catalog struct {
	files    []string // the layers, first to last
	names    []string // matrices, first defined first
	matrices map[string]*matrix
	knames   []string // named kernels, first defined first
	kernels  map[string]namedKernel
	dnames   []string // daemon sections, first defined first
	daemons  map[string]*Section
}

// Section is a "[daemon NAME]" section of a catalog: the description of a
// user's FUSE daemon (fusematrix matrix -daemon NAME), kept as written for
// the harness to read, since what it means is no kernel's business.
type Section struct {
	Name string
	// File and Line say where its "[daemon NAME]" line is.
	File string
	Line int
	// Lines are its lines as written, blank lines and lines that are only
	// a comment left out: a "#" within a line may be part of a quoted
	// value, which only the reader of the section can tell.
	Lines []SectionLine
}

// SectionLine is one line of a Section and its number in the file.
type SectionLine struct {
	Line int
	Text string
}

// place is where a catalog file says something.
type place struct {
	file string
	line int
}

// CatalogError is a mistake in a catalog file, at a line of it.
type CatalogError struct {
	File string // "" when the text was not read from a file
	Line int    // 0 when the mistake is not on one line
	Err  error
}

func (e *CatalogError) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	case e.File != "":
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	case e.Line > 0:
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return e.Err.Error()
}

func (e *CatalogError) Unwrap() error { return e.Err }

func (p place) errorf(format string, args ...any) error {
	return &CatalogError{File: p.file, Line: p.line, Err: fmt.Errorf(format, args...)}
}

type matrix struct {
	kernels []string
	places  []place // of each kernel
	at      place   // of its [name] line
}

type namedKernel struct {
	selector string
	at       place
}

// kernelName is what a named kernel may be called: nothing a selector
// could be (no ":" as in "debian:", no leading "/" or ".").
var kernelName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// DefaultCatalog is the catalog compiled into fusematrix.
var DefaultCatalog = mustCatalog(catalogText)

// DefaultMatrix is what `make matrix` runs when no kernel is named: the
// catalog's "default" matrix.
var DefaultMatrix = mustMatrix("default")

func mustCatalog(text string) *Catalog {
	c, err := parseCatalog(strings.NewReader(text), BuiltinCatalog)
	if err == nil {
		err = c.check()
	}
	if err != nil {
		panic("kernels: catalog.conf: " + err.Error())
	}
	return c
}

func mustMatrix(name string) []string {
	m, err := DefaultCatalog.Matrix(name)
	if err != nil {
		panic("kernels: catalog.conf: " + err.Error())
	}
	return m
}

// ParseCatalog reads a catalog on its own (see catalog.conf):
//
//	NAME = SELECTOR   a named kernel, before the first matrix
//	[name]            starts a matrix
//	KERNEL            a kernel of the current matrix: a selector or the
//	                  NAME of a named kernel
//
// "#" starts a comment. Every selector is checked the way Resolve parses
// it, so a typo fails here rather than halfway through a run.
func ParseCatalog(r io.Reader) (*Catalog, error) { return ParseCatalogFile("", r) }

// ParseCatalogFile is ParseCatalog of the text of file, which its errors
// name.
func ParseCatalogFile(file string, r io.Reader) (*Catalog, error) {
	c, err := parseCatalog(r, file)
	if err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// Overlay returns c with the catalog text r, read from file, layered over
// it: a matrix or named kernel r defines replaces c's of the same name,
// and the others are added. Errors name file and line.
func (c *Catalog) Overlay(file string, r io.Reader) (*Catalog, error) {
	over, err := parseCatalog(r, file)
	if err != nil {
		return nil, err
	}
	out := &Catalog{
		files:    append(slices.Clone(c.files), file),
		names:    slices.Clone(c.names),
		matrices: map[string]*matrix{},
		knames:   slices.Clone(c.knames),
		kernels:  map[string]namedKernel{},
		dnames:   slices.Clone(c.dnames),
		daemons:  maps.Clone(c.daemons),
	}
	for name, m := range c.matrices {
		out.matrices[name] = m
	}
	for name, k := range c.kernels {
		out.kernels[name] = k
	}
	for _, name := range over.names {
		if _, ok := out.matrices[name]; !ok {
			out.names = append(out.names, name)
		}
		out.matrices[name] = over.matrices[name]
	}
	for _, name := range over.knames {
		if _, ok := out.kernels[name]; !ok {
			out.knames = append(out.knames, name)
		}
		out.kernels[name] = over.kernels[name]
	}
	for _, name := range over.dnames {
		if _, ok := out.daemons[name]; !ok {
			out.dnames = append(out.dnames, name)
		}
		out.daemons[name] = over.daemons[name]
	}
	if err := out.check(); err != nil {
		return nil, err
	}
	return out, nil
}

// LoadCatalog returns DefaultCatalog with the catalog file named layered
// over it.
func LoadCatalog(file string) (*Catalog, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	defer f.Close()
	return DefaultCatalog.Overlay(file, f)
}

// CatalogEnv names the environment variable that gives a catalog file.
const CatalogEnv = "FUSEMATRIX_CATALOG"

// UserCatalog returns the catalog in effect: DefaultCatalog with the
// user's catalog file layered over it. The file is the one named, else
// $FUSEMATRIX_CATALOG, else fusematrix/catalog.conf in os.UserConfigDir
// when that exists; with none of them it is DefaultCatalog. A file named
// (by argument or environment) must exist.
func UserCatalog(file string) (*Catalog, error) {
	if file == "" {
		file = os.Getenv(CatalogEnv)
	}
	if file == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return DefaultCatalog, nil
		}
		file = filepath.Join(dir, "fusematrix", "catalog.conf")
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			return DefaultCatalog, nil
		}
	}
	return LoadCatalog(file)
}

// parseCatalog reads catalog text without checking that the kernels its
// matrices name exist: they may be defined by a layer below.
func parseCatalog(r io.Reader, file string) (*Catalog, error) {
	c := &Catalog{files: []string{file}, matrices: map[string]*matrix{}, kernels: map[string]namedKernel{}, daemons: map[string]*Section{}}
	current := ""
	var daemon *Section
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		at := place{file, n}
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		name, selector, isDef := strings.Cut(line, "=")
		name, selector = strings.TrimSpace(name), strings.TrimSpace(selector)
		isDef = isDef && kernelName.MatchString(name)
		header, isDaemon := strings.CutPrefix(line, "[daemon ")
		switch {
		case line == "":
		case isDaemon:
			name, ok := strings.CutSuffix(header, "]")
			name = strings.TrimSpace(name)
			if !ok || !kernelName.MatchString(name) {
				return nil, at.errorf("want [daemon NAME], NAME of letters, digits, '.', '_', '+' or '-'")
			}
			if _, dup := c.daemons[name]; dup {
				return nil, at.errorf("daemon %q defined twice", name)
			}
			if name == AllDaemons {
				return nil, at.errorf("[daemon %s]: -daemon %s stands for every daemon of the catalog; name this one otherwise", name, name)
			}
			daemon = &Section{Name: name, File: file, Line: n}
			c.dnames = append(c.dnames, name)
			c.daemons[name] = daemon
			current = ""
		case daemon != nil && !strings.HasPrefix(line, "["):
			// Whole: a "#" may be part of a quoted value; the harness,
			// which knows the quoting, strips comments.
			daemon.Lines = append(daemon.Lines, SectionLine{Line: n, Text: strings.TrimSpace(sc.Text())})
		case strings.HasPrefix(line, "["):
			daemon = nil
			name, ok := strings.CutSuffix(line[1:], "]")
			name = strings.TrimSpace(name)
			if !ok || name == "" || strings.ContainsAny(name, " \t[]") {
				return nil, at.errorf("want [NAME] to start a matrix, or [daemon NAME] to describe a daemon")
			}
			if _, dup := c.matrices[name]; dup {
				return nil, at.errorf("matrix %q defined twice", name)
			}
			current = name
			c.names = append(c.names, name)
			c.matrices[name] = &matrix{at: at}
		case isDef:
			if current != "" {
				return nil, at.errorf("named kernel %q inside [%s]: define named kernels before the first matrix", name, current)
			}
			if _, dup := c.kernels[name]; dup {
				return nil, at.errorf("kernel %q defined twice", name)
			}
			if err := checkSelector(selector); err != nil {
				return nil, at.errorf("%s: %w", name, err)
			}
			c.knames = append(c.knames, name)
			c.kernels[name] = namedKernel{selector: selector, at: at}
		case current == "":
			return nil, at.errorf("kernel %q outside a [matrix]", line)
		default:
			if strings.ContainsAny(line, " \t") {
				return nil, at.errorf("one kernel per line, no spaces: %q", line)
			}
			if !kernelName.MatchString(line) {
				if err := checkSelector(line); err != nil {
					return nil, at.errorf("%w", err)
				}
			}
			m := c.matrices[current]
			if slices.Contains(m.kernels, line) {
				return nil, at.errorf("%s listed twice in [%s]", line, current)
			}
			m.kernels = append(m.kernels, line)
			m.places = append(m.places, at)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &CatalogError{File: file, Err: err}
	}
	for _, name := range c.names {
		if m := c.matrices[name]; len(m.kernels) == 0 {
			return nil, m.at.errorf("matrix %q is empty", name)
		}
	}
	return c, nil
}

// checkSelector parses a selector the way Resolve does, as far as that
// is possible without the archive or the file system.
func checkSelector(s string) error {
	switch {
	case s == "":
		return errors.New("no selector")
	case isPath(s):
		return nil
	case strings.HasPrefix(s, "src:"):
		if dir, _, _ := strings.Cut(strings.TrimPrefix(s, "src:"), ","); dir == "" {
			return fmt.Errorf("kernel %q: want src:DIR[,option…]", s)
		}
		return nil
	}
	_, err := parseName(s)
	return err
}

// check reports a matrix kernel that is neither a selector nor a named
// kernel, where the matrix names it.
func (c *Catalog) check() error {
	for _, name := range c.names {
		m := c.matrices[name]
		for i, k := range m.kernels {
			if _, ok := c.kernels[k]; kernelName.MatchString(k) && !ok {
				return m.places[i].errorf("%q in [%s] is no named kernel of the catalog (and not a selector such as debian:6.12/cloud)", k, name)
			}
		}
	}
	return nil
}

// Files lists the catalog files layered into c, the built-in one first.
func (c *Catalog) Files() []string { return slices.Clone(c.files) }

// Names lists the matrices in the order they were first defined.
func (c *Catalog) Names() []string { return slices.Clone(c.names) }

// Matrix returns the kernels of the named matrix, as listed: selectors
// and names of named kernels.
func (c *Catalog) Matrix(name string) ([]string, error) {
	m, ok := c.matrices[name]
	if !ok {
		return nil, fmt.Errorf("no kernel matrix %q in the catalog (known: %s)", name, strings.Join(c.names, ", "))
	}
	return slices.Clone(m.kernels), nil
}

// Origin returns the file that defines the named matrix, or "" when none
// does.
func (c *Catalog) Origin(matrix string) string {
	if m, ok := c.matrices[matrix]; ok {
		return m.at.file
	}
	return ""
}

// Kernels lists the named kernels in the order they were first defined.
func (c *Catalog) Kernels() []string { return slices.Clone(c.knames) }

// Kernel returns the selector a named kernel stands for and the file that
// defines it.
func (c *Catalog) Kernel(name string) (selector, origin string, ok bool) {
	k, ok := c.kernels[name]
	return k.selector, k.at.file, ok
}

// AllDaemons is the name that stands for every daemon section of a
// catalog (fusematrix matrix -daemon clients): no section may take it.
const AllDaemons = "clients"

// Daemons lists the daemon sections in the order they were first defined.
func (c *Catalog) Daemons() []string { return slices.Clone(c.dnames) }

// Daemon returns the section "[daemon name]".
func (c *Catalog) Daemon(name string) (Section, bool) {
	d, ok := c.daemons[name]
	if !ok {
		return Section{}, false
	}
	return *d, true
}

// expand returns the selector name stands for: the named kernel's, or
// name itself. A nil catalog is DefaultCatalog.
func (c *Catalog) expand(name string) string {
	if c == nil {
		c = DefaultCatalog
	}
	if k, ok := c.kernels[name]; ok {
		return k.selector
	}
	return name
}

// Selectors returns every kernel of every matrix, each once, in the order
// of Names.
func (c *Catalog) Selectors() []string {
	var out []string
	for _, name := range c.names {
		for _, s := range c.matrices[name].kernels {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// Select returns the kernels named in args, else those of the matrix
// called matrix ("all": every kernel of every matrix), and says where the
// matrix comes from ("" for kernels given as arguments).
func (c *Catalog) Select(matrix string, args []string) ([]string, string, error) {
	switch {
	case len(args) > 0:
		return args, "", nil
	case matrix == "all":
		return c.Selectors(), "every matrix of " + strings.Join(c.Files(), ", "), nil
	}
	names, err := c.Matrix(matrix)
	if err != nil {
		return nil, "", err
	}
	return names, fmt.Sprintf("matrix %s from %s", matrix, c.Origin(matrix)), nil
}

// WriteSummary writes c for a terminal: each matrix and its kernels, the
// named kernels and the daemon sections, each with where it comes from.
// program says what a daemon section runs: harness/daemonspec reads those
// sections, not this package.
func (c *Catalog) WriteSummary(w io.Writer, program func(Section) string) error {
	for _, name := range c.Names() {
		m, err := c.Matrix(name)
		if err != nil {
			return errors.New("catalog: " + err.Error())
		}
		fmt.Fprintf(w, "%s (from %s):\n", name, c.Origin(name))
		for _, k := range m {
			fmt.Fprintf(w, "  %s\n", k)
		}
	}
	if names := c.Kernels(); len(names) > 0 {
		fmt.Fprintf(w, "\nnamed kernels:\n")
		for _, name := range names {
			sel, origin, _ := c.Kernel(name)
			fmt.Fprintf(w, "  %s = %s (from %s)\n", name, sel, origin)
		}
	}
	if names := c.Daemons(); len(names) > 0 {
		fmt.Fprintf(w, "\ndaemons (-daemon NAME):\n")
		for _, name := range names {
			sec, _ := c.Daemon(name)
			fmt.Fprintf(w, "  %s = %s (from %s:%d)\n", name, program(sec), sec.File, sec.Line)
		}
	}
	return nil
}
