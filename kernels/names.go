package kernels

import (
	"fmt"
	"regexp"
	"strings"
)

// flavours maps the short flavour names accepted in kernel names to
// Debian's.
var flavours = map[string]string{
	"cloud": "cloud-amd64",
	"amd64": "amd64",
	"rt":    "rt-amd64",
}

// query is a parsed "debian:" kernel name.
type query struct {
	name    string // as asked
	series  string // e.g. "6.12"; "" when pkg is set
	flavour string // Debian's flavour name, e.g. "cloud-amd64"
	short   string // the flavour as asked, for messages
	pkg     string // an exact package name
	version string // with pkg: that exact version of it, "" for the newest
	// suite restricts the search to one suite ("bookworm-security") or to
	// every suite of a release ("bookworm": bookworm, bookworm-security,
	// bookworm-backports…); "" searches all of Suites.
	suite string
}

var (
	seriesPattern = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)
	// imageVersion is the <ver> of linux-image-<ver>-<flavour>: an ABI
	// such as "6.1.0-50" or "6.12.117+deb12". It keeps "6.1.0-50-cloud"
	// from passing for a version of the amd64 flavour.
	imageVersion = regexp.MustCompile(`^[0-9]+(\.[0-9]+)+(-[0-9]+)?(\+[0-9A-Za-z.]+)?$`)
	majorMinor   = regexp.MustCompile(`^[0-9]+\.[0-9]+`)
	suitePattern = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)
)

func parseName(name string) (query, error) {
	rest, ok := strings.CutPrefix(name, "debian:")
	if !ok {
		return query{}, fmt.Errorf("kernel %q: unknown kind of name: use debian:<series>[/<flavour>], debian:<package>, or a path to a file starting with /, ./ or ../", name)
	}
	rest, suite, hasSuite := strings.Cut(rest, "@")
	if hasSuite && !suitePattern.MatchString(suite) {
		return query{}, fmt.Errorf("kernel %q: %q is not a suite name (like bookworm or trixie-backports)", name, suite)
	}
	if strings.HasPrefix(rest, "linux-") {
		pkg, version, _ := strings.Cut(rest, "=")
		if strings.ContainsAny(version, " /=@") {
			return query{}, fmt.Errorf("kernel %q: %q is not a Debian version", name, version)
		}
		return query{name: name, pkg: pkg, version: version, suite: suite}, nil
	}
	series, short, hasFlavour := strings.Cut(rest, "/")
	if !seriesPattern.MatchString(series) {
		return query{}, fmt.Errorf("kernel %q: %q is neither a series (like 6.12) nor a package name (like linux-image-6.1.0-50-cloud-amd64)", name, series)
	}
	if !hasFlavour {
		short = "cloud"
	}
	flavour, ok := flavours[short]
	for _, full := range flavours {
		// Debian's own names ("cloud-amd64") are accepted too.
		ok = ok || full == short
	}
	if flavour == "" {
		flavour = short
	}
	if !ok {
		return query{}, fmt.Errorf("kernel %q: unknown flavour %q (known: cloud, amd64, rt)", name, short)
	}
	return query{name: name, series: series, flavour: flavour, short: short, suite: suite}, nil
}

// suites returns the suites q searches, in order of preference: those of
// all that q.suite names, or q.suite itself when all has none of them (a
// suite fusematrix does not search by default, such as trixie-updates).
func (q query) suites(all []string) []string {
	if q.suite == "" {
		return all
	}
	var out []string
	for _, s := range all {
		if s == q.suite || strings.HasPrefix(s, q.suite+"-") {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		out = []string{q.suite}
	}
	return out
}

// parseImage splits a kernel image package name of the given flavour into
// its version part and whether it is the unsigned build. Debug packages
// (-dbg) and the meta package linux-image-<flavour> do not parse; the meta
// package linux-image-<series>-<flavour> parses with the bare series as its
// version, which inSeries rejects.
func parseImage(name, flavour string) (ver string, unsigned, ok bool) {
	rest, ok := strings.CutPrefix(name, "linux-image-")
	if !ok {
		return "", false, false
	}
	rest, unsigned = strings.CutSuffix(rest, "-unsigned")
	ver, ok = strings.CutSuffix(rest, "-"+flavour)
	if !ok || !imageVersion.MatchString(ver) {
		return "", false, false
	}
	return ver, unsigned, true
}

// inSeries reports whether an image version belongs to series: "6.1"
// holds "6.1.0-50" but not "6.12.117+deb12".
func inSeries(ver, series string) bool {
	rest, ok := strings.CutPrefix(ver, series)
	return ok && rest != "" && strings.ContainsRune(".-+", rune(rest[0]))
}

// imageFlavour is the Debian flavour of a kernel image package's name.
func imageFlavour(name string) string {
	for _, f := range flavours {
		if _, _, ok := parseImage(name, f); ok {
			return f
		}
	}
	return ""
}
