package debian

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
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
	// Suite and URI say where the entry was found, and Unsigned that the
	// index was not signature-checked; they are set by Index.
	Suite    string `json:"-"`
	URI      string `json:"-"`
	Unsigned bool   `json:"-"`
}

// Relation is one package named in a Depends field, with its version
// constraint ("" when there is none).
type Relation struct {
	Name     string
	Operator string // "=", ">=", "<=", ">>", "<<", or ""
	Version  string
}

// DependsOn parses the Depends field into groups of alternatives: each
// element of the result is one comma-separated clause, whose elements are
// its "|"-separated alternatives.
func (p Package) DependsOn() [][]Relation {
	var out [][]Relation
	for clause := range strings.SplitSeq(p.Depends, ",") {
		var alts []Relation
		for alt := range strings.SplitSeq(clause, "|") {
			alt = strings.TrimSpace(alt)
			if alt == "" {
				continue
			}
			var rel Relation
			name, constraint, _ := strings.Cut(alt, "(")
			rel.Name, _, _ = strings.Cut(strings.TrimSpace(name), ":") // drop ":any" qualifiers
			constraint, _, _ = strings.Cut(constraint, ")")
			constraint = strings.TrimSpace(constraint)
			for _, op := range []string{">=", "<=", ">>", "<<", "=", ">", "<"} {
				if v, ok := strings.CutPrefix(constraint, op); ok {
					rel.Operator, rel.Version = op, strings.TrimSpace(v)
					break
				}
			}
			alts = append(alts, rel)
		}
		if len(alts) > 0 {
			out = append(out, alts)
		}
	}
	return out
}

// MaxLine bounds a line of a Packages index, and the Depends field
// assembled from continuation lines; Debian's longest are a few KB.
const MaxLine = 4 << 20

// ParsePackages reads a Packages index (RFC 822-style stanzas separated by
// blank lines) as a stream and returns the entries whose name keep accepts
// (all when keep is nil), in index order. A line or a Depends field
// longer than MaxLine is an error, so memory stays bounded whatever the
// input.
func ParsePackages(r io.Reader, keep func(name string) bool) ([]Package, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	var (
		list    []Package
		p       Package
		last    string // field the previous line belonged to
		started bool   // p has at least one field
		depends []byte // p's Depends field, continuation lines joined
		n       int
	)
	flush := func() error {
		if !started {
			return nil
		}
		defer func() { p, started, last, depends = Package{}, false, "", depends[:0] }()
		p.Depends = string(depends)
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
			if last == "Depends" {
				more := bytes.TrimSpace(line)
				if len(depends)+1+len(more) > MaxLine {
					return nil, fmt.Errorf("line %d: Depends field longer than %d bytes", n, MaxLine)
				}
				// Appended, not concatenated: a field of many short
				// lines costs linear time, not quadratic.
				depends = append(append(depends, ' '), more...)
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
		case "Depends":
			depends = append(depends[:0], v...)
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
