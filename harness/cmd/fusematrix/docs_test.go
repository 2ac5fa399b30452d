package main

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"gotest.tools/v3/assert"
)

// docsRoot is the repository's root, seen from this package's directory.
const docsRoot = "../../.."

// TestDocs keeps the guide and its pages honest: every relative link of
// README.md and docs/*.md leads to a file that exists and, with an
// #anchor, to a heading of that file; docs/architecture.md names every
// package of the module; and the README stays a guide, at most 300 lines.
func TestDocs(t *testing.T) {
	pages, err := filepath.Glob(filepath.Join(docsRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append([]string{filepath.Join(docsRoot, "README.md")}, pages...)

	t.Run("links", func(t *testing.T) {
		anchors := map[string][]string{} // a Markdown file's heading slugs, read once
		anchorsOf := func(path string) []string {
			if a, ok := anchors[path]; ok {
				return a
			}
			a := docHeadingSlugs(t, path)
			anchors[path] = a
			return a
		}
		checked := 0
		for _, page := range pages {
			name := docName(page)
			for _, l := range docLinks(t, page) {
				checked++
				target, anchor, _ := strings.Cut(l.target, "#")
				path := page
				if target != "" {
					p, err := urlPathUnescape(target)
					if err != nil {
						t.Errorf("%s:%d: link %q: %v", name, l.line, l.target, err)
						continue
					}
					path = filepath.Join(filepath.Dir(page), filepath.FromSlash(p))
					if _, err := os.Stat(path); err != nil {
						t.Errorf("%s:%d: link %q: no such file %s", name, l.line, l.target, docName(path))
						continue
					}
				}
				if anchor == "" {
					continue
				}
				if !strings.HasSuffix(path, ".md") {
					t.Errorf("%s:%d: link %q: an #anchor into a file that is not Markdown", name, l.line, l.target)
					continue
				}
				if !slices.Contains(anchorsOf(path), anchor) {
					t.Errorf("%s:%d: link %q: %s has no heading #%s (it has %s)", name, l.line, l.target,
						docName(path), anchor, strings.Join(anchorsOf(path), ", "))
				}
			}
		}
		if checked == 0 {
			t.Error("no relative links found: is the parser broken?")
		}
	})

	t.Run("packages", func(t *testing.T) {
		arch, err := os.ReadFile(filepath.Join(docsRoot, "docs", "architecture.md"))
		if err != nil {
			t.Fatal(err)
		}
		pkgs := docPackages(t)
		if len(pkgs) < 10 {
			t.Fatalf("found only %d packages: %v", len(pkgs), pkgs)
		}
		for _, pkg := range pkgs {
			if !strings.Contains(string(arch), "`"+pkg+"`") {
				t.Errorf("docs/architecture.md does not name package `%s`: add it to the package map", pkg)
			}
		}
	})

	t.Run("readme-length", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(docsRoot, "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(data), "\n"); n > 300 {
			t.Errorf("README.md has %d lines, more than 300: move the detail to a page under docs/", n)
		}
	})
}

// docName is path relative to the repository's root, for messages.
func docName(path string) string {
	if rel, err := filepath.Rel(docsRoot, path); err == nil {
		return filepath.ToSlash(rel)
	}
	return path
}

type docLink struct {
	line   int
	target string
}

// docLinkRE matches an inline Markdown link or image: [text](target) or
// ![alt](target "title"). Link text holds no ']' in these pages.
var docLinkRE = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)

// docLinks returns the relative links of a Markdown file: those outside
// fenced code blocks and code spans, without a scheme (https:, mailto:).
func docLinks(t *testing.T, path string) []docLink {
	t.Helper()
	var links []docLink
	docEachLine(t, path, func(n int, line string) {
		spans := docCodeSpans(line)
		for _, m := range docLinkRE.FindAllStringSubmatchIndex(line, -1) {
			if docInSpan(spans, m[0]) {
				continue
			}
			target := line[m[2]:m[3]]
			if docHasScheme(target) || strings.HasPrefix(target, "//") {
				continue
			}
			links = append(links, docLink{line: n, target: target})
		}
	})
	return links
}

var docSchemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

func docHasScheme(target string) bool { return docSchemeRE.MatchString(target) }

// docEachLine calls f with every line of a Markdown file that is not
// inside a fenced code block (``` or ~~~), numbered from 1.
func docEachLine(t *testing.T, path string, f func(n int, line string)) {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	s := bufio.NewScanner(file)
	s.Buffer(make([]byte, 0, 64<<10), 1<<20)
	fence := ""
	for n := 1; s.Scan(); n++ {
		line := s.Text()
		trimmed := strings.TrimLeft(line, " ")
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]) == "" {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			ch := trimmed[:1]
			fence = trimmed[:len(trimmed)-len(strings.TrimLeft(trimmed, ch))]
			continue
		}
		f(n, line)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
}

// docCodeSpans returns the [start, end) byte ranges of a line's code
// spans: a run of backticks up to the next run of the same length.
func docCodeSpans(line string) [][2]int {
	var spans [][2]int
	for i := 0; i < len(line); {
		if line[i] != '`' {
			i++
			continue
		}
		j := i
		for j < len(line) && line[j] == '`' {
			j++
		}
		ticks := line[i:j]
		end := -1
		for k := j; k < len(line); {
			if line[k] != '`' {
				k++
				continue
			}
			l := k
			for l < len(line) && line[l] == '`' {
				l++
			}
			if l-k == len(ticks) {
				end = l
				break
			}
			k = l
		}
		if end < 0 {
			i = j // an unmatched run is literal text
			continue
		}
		spans = append(spans, [2]int{i, end})
		i = end
	}
	return spans
}

func docInSpan(spans [][2]int, i int) bool {
	for _, s := range spans {
		if i >= s[0] && i < s[1] {
			return true
		}
	}
	return false
}

var docHeadingRE = regexp.MustCompile(`^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$`)

// docHeadingSlugs returns the anchors GitHub gives a Markdown file's
// headings: the text lower-cased, every character but letters, digits,
// spaces, '-' and '_' dropped, spaces made '-'; a repeated slug gets
// -1, -2, … as on GitHub.
func docHeadingSlugs(t *testing.T, path string) []string {
	t.Helper()
	var slugs []string
	seen := map[string]int{}
	docEachLine(t, path, func(_ int, line string) {
		m := docHeadingRE.FindStringSubmatch(line)
		if m == nil {
			return
		}
		slug := docSlug(m[1])
		if n, ok := seen[slug]; ok {
			seen[slug] = n + 1
			slug += "-" + strconv.Itoa(n+1)
		} else {
			seen[slug] = 0
		}
		slugs = append(slugs, slug)
	})
	return slugs
}

// docLinkTextRE keeps a link's text in a heading: [text](target) → text.
var docLinkTextRE = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)

func docSlug(heading string) string {
	heading = docLinkTextRE.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// urlPathUnescape undoes %XX escapes in a link's path (a space as %20).
func urlPathUnescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", strconv.ErrSyntax
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// docPackages returns every package directory of the module, relative to
// its root: a directory holding a .go file that is not a test, outside
// testdata and the directories the go command ignores (".x", "_x").
func docPackages(t *testing.T) []string {
	t.Helper()
	set := map[string]bool{}
	err := filepath.WalkDir(docsRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != docsRoot && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			if path != docsRoot {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			set[docName(filepath.Dir(path))] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pkgs := make([]string, 0, len(set))
	for p := range set {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	return pkgs
}

// Each command's -h ends with the page of docs/ that explains it, and that
// page (and its heading) exists.
func TestHelpNamesDocs(t *testing.T) {
	for name, page := range docPages {
		args := append(strings.Fields(name), "-h")
		_, out := fusematrix(t, args...)
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		last := lines[len(lines)-1]
		assert.Check(t, strings.Contains(last, page), "%s -h ends with %q", name, last)
		file, anchor, _ := strings.Cut(page, "#")
		path := filepath.Join("..", "..", "..", file)
		_, err := os.Stat(path)
		assert.Check(t, err, "%s -h names %s", name, file)
		if anchor != "" && err == nil {
			assert.Check(t, slices.Contains(docHeadingSlugs(t, path), anchor), "%s -h names %s, which has no heading #%s", name, file, anchor)
		}
	}
}
