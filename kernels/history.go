package kernels

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/fusematrix/fusematrix/kernels/debian"
)

// Packaged is one build of a kernel package in the archive's history.
type Packaged struct {
	// Selector names exactly this build: debian:<package>=<version>@<suite>.
	Selector string `json:"selector"`
	Package  string `json:"package"`
	Version  string `json:"version"`
	Suite    string `json:"suite"`
}

// History lists every build of good's flavour that the suites of good
// and bad carry, from good's version to bad's, both included, ordered by
// Debian version comparison (never by string: 6.1.0-9 comes before
// 6.1.0-10). It is what a bisection over packaged kernels steps through.
// With bad "", it lists every build of good's series (6.12) instead.
func History(ctx context.Context, good, bad string, opts Options) ([]Packaged, error) {
	series := bad == ""
	if series {
		bad = good
	}
	good, bad = opts.Catalog.expand(good), opts.Catalog.expand(bad)
	r, err := newResolver(opts)
	if err != nil {
		return nil, err
	}
	var ends [2]*Resolution
	var suites []string
	var flavour string
	for i, name := range []string{good, bad} {
		q, err := parseName(name)
		if err != nil {
			return nil, err
		}
		for _, s := range q.suites(Suites) {
			if !slices.Contains(suites, s) {
				suites = append(suites, s)
			}
		}
		if ends[i], err = r.lookup(ctx, name); err != nil {
			return nil, err
		}
		f := q.flavour
		if f == "" {
			if f = imageFlavour(ends[i].Image.Name); f == "" {
				return nil, fmt.Errorf("kernel %q: %s is not a kernel image package of a known flavour", name, ends[i].Image.Name)
			}
		}
		if flavour != "" && f != flavour {
			return nil, fmt.Errorf("kernels %q and %q are of different flavours (%s, %s): a history is of one flavour", good, bad, flavour, f)
		}
		flavour = f
	}
	from, to := ends[0].Image.Version, ends[1].Image.Version
	if debian.CompareVersions(from, to) > 0 {
		return nil, fmt.Errorf("the good kernel %s (%s) is newer than the bad one %s (%s): give the older one as -good", good, from, bad, to)
	}
	idxs, err := r.indexes(ctx, suites)
	if err != nil {
		return nil, err
	}
	if series {
		ver, _, _ := parseImage(ends[0].Image.Name, flavour)
		s := majorMinor.FindString(ver)
		return history(idxs, flavour, func(image, _ string) bool { return inSeries(image, s) }), nil
	}
	return history(idxs, flavour, func(_, version string) bool {
		return debian.CompareVersions(version, from) >= 0 && debian.CompareVersions(version, to) <= 0
	}), nil
}

// history lists the builds of flavour in idxs that keep accepts, by image
// and package version (in order of preference: the first suite to carry a
// version names it), one per version, the signed image over the unsigned
// one.
func history(idxs []*debian.Index, flavour string, keep func(image, version string) bool) []Packaged {
	byVersion := map[string]Packaged{}
	signed := map[string]bool{}
	for _, idx := range idxs {
		for _, p := range idx.Packages {
			ver, unsigned, ok := parseImage(p.Name, flavour)
			// A meta package (linux-image-6.12-cloud-amd64) names a series,
			// not a build: a build's version has an ABI number or a +tag.
			if !ok || !strings.ContainsAny(ver, "-+") {
				continue
			}
			if !keep(ver, p.Version) {
				continue
			}
			if _, seen := byVersion[p.Version]; seen && (signed[p.Version] || unsigned) {
				continue
			}
			byVersion[p.Version] = Packaged{
				Selector: fmt.Sprintf("debian:%s=%s@%s", p.Name, p.Version, p.Suite),
				Package:  p.Name, Version: p.Version, Suite: p.Suite,
			}
			signed[p.Version] = !unsigned
		}
	}
	out := make([]Packaged, 0, len(byVersion))
	for _, b := range byVersion {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Packaged) int { return debian.CompareVersions(a.Version, b.Version) })
	return out
}

// WriteHistory writes builds as a numbered table for a terminal.
func WriteHistory(w io.Writer, builds []Packaged) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tPACKAGE\tVERSION\tSUITE")
	for i, b := range builds {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", i+1, b.Package, b.Version, b.Suite)
	}
	return tw.Flush()
}
