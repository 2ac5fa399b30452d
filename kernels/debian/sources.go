package debian

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Mirrors says which archive serves which suite.
type Mirrors struct {
	// Suites maps a suite to the base URI of the archive that serves it, as
	// configured.
	Suites map[string]string
	// Default serves every suite missing from Suites except "*-security"
	// suites; "" means none.
	Default string
	// Security serves every "*-security" suite missing from Suites; "" means
	// none.
	Security string
	// SecurityDerived says Security was derived from Default rather than
	// given.
	SecurityDerived bool
}

// Required reports whether suite's archive was configured in a way that
// says the suite is there: apt sources name it, or a security archive was
// given for it. A required suite the archive does not publish is an
// error; any other is merely absent. A Default mirror promises no
// particular release: a mirror may carry some releases and not others.
func (m Mirrors) Required(suite string) bool {
	if _, ok := m.Suites[suite]; ok {
		return true
	}
	if strings.HasSuffix(suite, "-security") {
		return m.Security != "" && !m.SecurityDerived
	}
	return false
}

// URI returns the base URI of the archive serving suite. A suite the
// configuration does not name falls back to Default, or, since Debian
// publishes "<codename>-backports" and "<codename>-updates" in the same
// archive as "<codename>", to the archive serving its codename, and
// failing that to the archive of another Debian release (see sibling).
// Security suites live in a separate archive and only fall back to the
// archive of another security suite.
func (m Mirrors) URI(suite string) (string, bool) {
	if u, ok := m.Suites[suite]; ok {
		return u, true
	}
	if strings.HasSuffix(suite, "-security") {
		if m.Security != "" {
			return m.Security, true
		}
		return m.sibling(func(s string) bool { return strings.HasSuffix(s, "-security") })
	}
	if m.Default != "" {
		return m.Default, true
	}
	if codename, _, ok := strings.Cut(suite, "-"); ok {
		if u, ok := m.Suites[codename]; ok {
			return u, true
		}
	}
	return m.sibling(func(s string) bool {
		codename, _, _ := strings.Cut(s, "-")
		return slices.Contains(debianReleases, codename)
	})
}

// debianReleases are the codenames that identify an archive as Debian's.
var debianReleases = []string{"buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid", "experimental"}

// sibling returns the archive serving the first configured suite (in name
// order) that like accepts. Debian publishes all its releases in one
// archive and all their security updates in another, so a machine set up
// for bookworm reaches trixie, sid and trixie-security at the same places.
// Such a suite is not Required: a mirror that lacks it merely lacks it.
func (m Mirrors) sibling(like func(suite string) bool) (string, bool) {
	for _, s := range slices.Sorted(maps.Keys(m.Suites)) {
		if like(s) {
			return m.Suites[s], true
		}
	}
	return "", false
}

// Empty reports whether no suite has an archive.
func (m Mirrors) Empty() bool {
	return len(m.Suites) == 0 && m.Default == "" && m.Security == ""
}

// OverrideMirrors returns Mirrors where mirror serves every suite except
// "*-security" ones, which security serves. An empty security defaults to
// mirror with "-security" appended to its last path element, the way
// Debian's archives are laid out.
func OverrideMirrors(mirror, security string) (Mirrors, error) {
	mirror = strings.TrimRight(mirror, "/")
	if err := checkHTTP(mirror); err != nil {
		return Mirrors{}, fmt.Errorf("mirror %q: %w", mirror, err)
	}
	derived := security == ""
	if derived {
		u, err := url.Parse(mirror)
		if err != nil {
			return Mirrors{}, fmt.Errorf("mirror %q: %w", mirror, err)
		}
		if strings.Trim(u.Path, "/") == "" {
			return Mirrors{}, fmt.Errorf("mirror %q has no path to derive the security archive from: set FUSEMATRIX_SECURITY_MIRROR", mirror)
		}
		u.Path += "-security"
		u.RawPath = ""
		security = u.String()
	}
	security = strings.TrimRight(security, "/")
	if err := checkHTTP(security); err != nil {
		return Mirrors{}, fmt.Errorf("security mirror %q: %w", security, err)
	}
	return Mirrors{Default: mirror, Security: security, SecurityDerived: derived}, nil
}

func checkHTTP(uri string) error {
	u, err := url.Parse(uri)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return errors.New("only http:// and https:// URIs are supported")
	}
	return nil
}

// aptNoValidUntil matches an apt configuration line turning the
// Valid-Until check off ("Acquire::Check-Valid-Until "false";").
var aptNoValidUntil = regexp.MustCompile(`(?mi)^[ \t]*Acquire::Check-Valid-Until[ \t]+"?(false|no|off|0)"?[ \t]*;`)

// AptIgnoresValidUntil reports whether the apt configuration under dir
// (apt.conf and apt.conf.d/*, normally /etc/apt) turns off apt's check of
// Release files' Valid-Until, as machines behind a mirror that serves
// frozen snapshots do, and names the file that says so.
func AptIgnoresValidUntil(dir string) (bool, string) {
	files := []string{filepath.Join(dir, "apt.conf")}
	more, _ := filepath.Glob(filepath.Join(dir, "apt.conf.d", "*"))
	files = append(files, more...)
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil || len(data) > 1<<20 {
			continue
		}
		if aptNoValidUntil.Match(data) {
			return true, name
		}
	}
	return false, ""
}

// ReadAptSources reads the apt source configuration under dir (normally
// /etc/apt): sources.list, then sources.list.d/*.list and *.sources in name
// order, the order apt reads them. Only binary ("deb") entries over http or
// https that include the main component and the given architecture count;
// the first entry naming a suite wins. Files with other names (for example
// "*.disabled") are ignored, as apt ignores them.
func ReadAptSources(dir, arch string) (Mirrors, error) {
	m := Mirrors{Suites: map[string]string{}}
	files := []string{filepath.Join(dir, "sources.list")}
	entries, err := os.ReadDir(filepath.Join(dir, "sources.list.d"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("read apt sources: %w", err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() || e.Type()&fs.ModeSymlink != 0 {
			files = append(files, filepath.Join(dir, "sources.list.d", e.Name()))
		}
	}
	for _, name := range files {
		var parse func(io.Reader) ([]SourceEntry, error)
		switch {
		case strings.HasSuffix(name, ".list"):
			parse = ParseSourcesList
		case strings.HasSuffix(name, ".sources"):
			parse = ParseDeb822Sources
		default:
			continue
		}
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return m, fmt.Errorf("read apt sources: %w", err)
		}
		list, err := parse(f)
		f.Close()
		if err != nil {
			return m, fmt.Errorf("read apt sources %s: %w", name, err)
		}
		for _, e := range list {
			if !e.usable(arch) {
				continue
			}
			for _, s := range e.Suites {
				if _, ok := m.Suites[s]; !ok {
					m.Suites[s] = strings.TrimRight(e.URIs[0], "/")
				}
			}
		}
	}
	return m, nil
}

// SourceEntry is one apt source: a one-line entry or a deb822 stanza.
type SourceEntry struct {
	Types         []string
	URIs          []string
	Suites        []string
	Components    []string
	Architectures []string // empty: all
	Enabled       bool
}

func (e SourceEntry) usable(arch string) bool {
	if !e.Enabled || !slices.Contains(e.Types, "deb") || !slices.Contains(e.Components, "main") {
		return false
	}
	if len(e.Architectures) > 0 && !slices.Contains(e.Architectures, arch) {
		return false
	}
	// Only the first URI is used; apt would treat the others as equal
	// alternatives.
	return len(e.URIs) > 0 && checkHTTP(e.URIs[0]) == nil
}

// ParseSourcesList parses the one-line format of sources.list(5):
// "deb [opt=value ...] URI suite [component...]". Comments start at "#".
func ParseSourcesList(r io.Reader) ([]SourceEntry, error) {
	var list []SourceEntry
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		typ, rest, _ := strings.Cut(line, " ")
		e := SourceEntry{Types: []string{typ}, Enabled: true}
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "[") {
			opts, after, ok := strings.Cut(rest[1:], "]")
			if !ok {
				return nil, fmt.Errorf("line %d: unterminated [options]", n)
			}
			for _, o := range strings.Fields(opts) {
				k, v, _ := strings.Cut(o, "=")
				if k == "arch" {
					e.Architectures = strings.Split(v, ",")
				}
			}
			rest = after
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return nil, fmt.Errorf("line %d: want %q", n, "deb URI suite [component...]")
		}
		e.URIs, e.Suites, e.Components = f[:1], f[1:2], f[2:]
		list = append(list, e)
	}
	return list, sc.Err()
}

// ParseDeb822Sources parses the deb822 format of sources.list(5): stanzas
// separated by blank lines, case-insensitive field names, continuation lines
// starting with white space, comments starting with "#" at the beginning of
// a line, and "Enabled: no" to switch a stanza off.
func ParseDeb822Sources(r io.Reader) ([]SourceEntry, error) {
	var list []SourceEntry
	fields := map[string]string{}
	last := ""
	flush := func() {
		if len(fields) == 0 {
			return
		}
		list = append(list, SourceEntry{
			Types:         strings.Fields(fields["types"]),
			URIs:          strings.Fields(fields["uris"]),
			Suites:        strings.Fields(fields["suites"]),
			Components:    strings.Fields(fields["components"]),
			Architectures: strings.Fields(fields["architectures"]),
			Enabled:       !strings.EqualFold(strings.TrimSpace(fields["enabled"]), "no"),
		})
		fields = map[string]string{}
		last = ""
	}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("line %d: continuation line outside a field", n)
			}
			fields[last] += "\n" + strings.TrimSpace(line)
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("line %d: want %q", n, "Field: value")
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
	}
	flush()
	return list, sc.Err()
}
