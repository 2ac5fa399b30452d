package kernels

import (
	"bufio"
	_ "embed"
	"fmt"
	"io"
	"slices"
	"strings"
)

// catalogText is the catalog compiled into fusematrix; see catalog.conf
// for its format.
//
//go:embed catalog.conf
var catalogText string

// Catalog is a set of named kernel matrices.
type Catalog struct {
	names    []string // in file order
	matrices map[string][]string
}

// DefaultCatalog is the catalog compiled into fusematrix.
var DefaultCatalog = mustCatalog(catalogText)

func mustCatalog(text string) *Catalog {
	c, err := ParseCatalog(strings.NewReader(text))
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

// ParseCatalog reads a catalog: "[name]" lines start matrices, other lines
// are kernel names, "#" starts a comment. Every selector is checked the way
// Resolve parses it, so a typo fails here rather than halfway through a run.
func ParseCatalog(r io.Reader) (*Catalog, error) {
	c := &Catalog{matrices: map[string][]string{}}
	current := ""
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "["):
			name, ok := strings.CutSuffix(line[1:], "]")
			name = strings.TrimSpace(name)
			if !ok || name == "" || strings.ContainsAny(name, " \t[]") {
				return nil, fmt.Errorf("line %d: want [name]", n)
			}
			if _, dup := c.matrices[name]; dup {
				return nil, fmt.Errorf("line %d: matrix %q defined twice", n, name)
			}
			current = name
			c.names = append(c.names, name)
			c.matrices[name] = []string{}
		case current == "":
			return nil, fmt.Errorf("line %d: kernel %q outside a [matrix]", n, line)
		default:
			if strings.ContainsAny(line, " \t") {
				return nil, fmt.Errorf("line %d: one kernel per line, no spaces: %q", n, line)
			}
			if !isPath(line) {
				if _, err := parseName(line); err != nil {
					return nil, fmt.Errorf("line %d: %w", n, err)
				}
			}
			if slices.Contains(c.matrices[current], line) {
				return nil, fmt.Errorf("line %d: %s listed twice in [%s]", n, line, current)
			}
			c.matrices[current] = append(c.matrices[current], line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, name := range c.names {
		if len(c.matrices[name]) == 0 {
			return nil, fmt.Errorf("matrix %q is empty", name)
		}
	}
	return c, nil
}

// Names lists the matrices in file order.
func (c *Catalog) Names() []string { return slices.Clone(c.names) }

// Matrix returns the kernels of the named matrix.
func (c *Catalog) Matrix(name string) ([]string, error) {
	m, ok := c.matrices[name]
	if !ok {
		return nil, fmt.Errorf("no kernel matrix %q in the catalog (known: %s)", name, strings.Join(c.names, ", "))
	}
	return slices.Clone(m), nil
}

// Selectors returns every kernel of every matrix, each once, in file
// order.
func (c *Catalog) Selectors() []string {
	var out []string
	for _, name := range c.names {
		for _, s := range c.matrices[name] {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}
