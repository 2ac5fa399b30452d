package debian

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Package is one binary package entry of a Packages index.
type Package struct {
	Name     string `json:"package"`
	Version  string `json:"version"`
	Filename string `json:"filename"` // relative to the archive's base URI
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	Depends  string `json:"depends,omitempty"`
	// PreDepends and Provides are those fields as the index has them
	// (continuation lines joined); Essential is "Essential: yes". A
	// run-time closure (Universe.Closure) reads them; kernels do not.
	PreDepends string `json:"pre_depends,omitempty"`
	Provides   string `json:"provides,omitempty"`
	Essential  bool   `json:"essential,omitempty"`
	// Suite and URI say where the entry was found, and Unsigned that the
	// index was not signature-checked; they are set by Index.
	Suite    string `json:"-"`
	URI      string `json:"-"`
	Unsigned bool   `json:"-"`
}

// Relation is one package named in a Depends, Pre-Depends or Provides
// field, with its version constraint ("" when there is none).
type Relation struct {
	Name     string
	Operator string // "=", ">=", "<=", ">>", "<<", or ""
	Version  string
}

// String writes rel as a Depends field does: "libc6 (>= 2.38)".
func (rel Relation) String() string {
	if rel.Operator == "" {
		return rel.Name
	}
	return rel.Name + " (" + rel.Operator + " " + rel.Version + ")"
}

// SatisfiedBy reports whether version meets rel's constraint. The
// obsolete "<" and ">" mean "<=" and ">=", as dpkg still reads them
// (deb-control(5)).
func (rel Relation) SatisfiedBy(version string) bool {
	if rel.Operator == "" {
		return true
	}
	c := CompareVersions(version, rel.Version)
	switch rel.Operator {
	case "=":
		return c == 0
	case ">=", ">":
		return c >= 0
	case "<=", "<":
		return c <= 0
	case ">>":
		return c > 0
	case "<<":
		return c < 0
	}
	return false
}

// DependsOn parses the Depends field (see ParseRelations).
func (p Package) DependsOn() [][]Relation { return ParseRelations(p.Depends) }

// PreDependsOn parses the Pre-Depends field (see ParseRelations).
func (p Package) PreDependsOn() [][]Relation { return ParseRelations(p.PreDepends) }

// Provided lists the virtual packages p provides, each with the version
// it provides them at ("=" and a version) or none.
func (p Package) Provided() []Relation {
	var out []Relation
	for _, clause := range ParseRelations(p.Provides) {
		out = append(out, clause[0])
	}
	return out
}

// ParseRelations parses a relationship field (Depends, Pre-Depends,
// Provides) into groups of alternatives: each element of the result is one
// comma-separated clause, whose elements are its "|"-separated
// alternatives. Architecture qualifiers (":any", ":amd64") are dropped:
// an index holds one architecture and its "all" packages, so every name
// stands for the package of that index.
func ParseRelations(field string) [][]Relation {
	var out [][]Relation
	for clause := range strings.SplitSeq(field, ",") {
		var alts []Relation
		for alt := range strings.SplitSeq(clause, "|") {
			alt = strings.TrimSpace(alt)
			if alt == "" {
				continue
			}
			var rel Relation
			name, constraint, _ := strings.Cut(alt, "(")
			rel.Name, _, _ = strings.Cut(strings.TrimSpace(name), ":")
			rel.Name = strings.TrimSpace(rel.Name)
			constraint, _, _ = strings.Cut(constraint, ")")
			constraint = strings.TrimSpace(constraint)
			for _, op := range []string{">=", "<=", ">>", "<<", "=", ">", "<"} {
				if v, ok := strings.CutPrefix(constraint, op); ok {
					rel.Operator, rel.Version = op, strings.TrimSpace(v)
					break
				}
			}
			if rel.Name == "" {
				continue
			}
			alts = append(alts, rel)
		}
		if len(alts) > 0 {
			out = append(out, alts)
		}
	}
	return out
}

// MaxLine bounds a line of a Packages index, and each relationship field
// (Depends, Pre-Depends, Provides) assembled from continuation lines;
// Debian's longest are a few KB.
const MaxLine = 4 << 20

// multiline are the fields ParsePackages keeps whose values may continue
// on the following lines.
var multiline = []string{"Depends", "Pre-Depends", "Provides"}

// ParsePackages reads a Packages index (RFC 822-style stanzas separated by
// blank lines) as a stream and returns the entries whose name keep accepts
// (all when keep is nil), in index order. A line or a relationship field
// longer than MaxLine is an error, so memory stays bounded whatever the
// input.
func ParsePackages(r io.Reader, keep func(name string) bool) ([]Package, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	var (
		list    []Package
		p       Package
		last    string // field the previous line belonged to
		started bool   // p has at least one field
		fields  = map[string][]byte{}
		n       int
	)
	flush := func() error {
		if !started {
			return nil
		}
		defer func() {
			p, started, last = Package{}, false, ""
			for k, v := range fields {
				fields[k] = v[:0]
			}
		}()
		p.Depends, p.PreDepends, p.Provides = string(fields["Depends"]), string(fields["Pre-Depends"]), string(fields["Provides"])
		if p.Name == "" {
			return fmt.Errorf("line %d: stanza without Package field", n)
		}
		if keep == nil || keep(p.Name) {
			list = append(list, p)
		}
		return nil
	}
	for {
		line, err := readLine(br)
		if err == io.EOF {
			break
		}
		n++
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if v, ok := fields[last]; ok && slices.Contains(multiline, last) {
				more := bytes.TrimSpace(line)
				if len(v)+1+len(more) > MaxLine {
					return nil, fmt.Errorf("line %d: %s field longer than %d bytes", n, last, MaxLine)
				}
				// Appended, not concatenated: a field of many short
				// lines costs linear time, not quadratic.
				fields[last] = append(append(v, ' '), more...)
			}
			continue
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return nil, fmt.Errorf("line %d: want %q", n, "Field: value")
		}
		started = true
		last = string(k)
		v = bytes.TrimSpace(v)
		switch last {
		case "Package":
			p.Name = string(v)
		case "Version":
			p.Version = string(v)
		case "Filename":
			p.Filename = string(v)
		case "Size":
			size, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: Size: %w", n, err)
			}
			if size < 0 {
				return nil, fmt.Errorf("line %d: Size: negative", n)
			}
			p.Size = size
		case "SHA256":
			p.SHA256 = strings.ToLower(string(v))
		case "Essential":
			p.Essential = string(v) == "yes"
		case "Depends", "Pre-Depends", "Provides":
			fields[last] = append(fields[last][:0], v...)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return list, nil
}

// ErrLineTooLong is the cause of a Packages index refused for a line
// longer than MaxLine.
var ErrLineTooLong = fmt.Errorf("line longer than %d bytes", MaxLine)

// readLine returns the next line without its line ending, up to MaxLine
// bytes long; the slice is valid until the next call.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = br.ReadSlice('\n')
			// The line ending does not count.
			if len(long)+len(bytes.TrimRight(line, "\r\n")) > MaxLine {
				return nil, ErrLineTooLong
			}
			long = append(long, line...)
		}
		line = long
	}
	if err == io.EOF && len(line) > 0 {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}
