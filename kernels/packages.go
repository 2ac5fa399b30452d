package kernels

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/fusematrix/fusematrix/kernels/debian"
)

// choose picks the package q names from the indexes, given in order of
// preference.
func (q query) choose(idxs []*debian.Index) (debian.Package, error) {
	c, err := q.candidates(idxs)
	if err != nil {
		return debian.Package{}, err
	}
	return c[0], nil
}

// candidates returns every package q matches, best first: newest version
// first; at the same version the signed build, then the earlier suite. It
// fails, saying what is available instead, when nothing matches.
func (q query) candidates(idxs []*debian.Index) ([]debian.Package, error) {
	type candidate struct {
		p        debian.Package
		unsigned bool
	}
	var list []candidate
	for _, idx := range idxs {
		for _, p := range idx.Packages {
			unsigned := false
			if q.pkg != "" {
				if p.Name != q.pkg || q.version != "" && p.Version != q.version {
					continue
				}
			} else {
				ver, u, ok := parseImage(p.Name, q.flavour)
				if !ok || !inSeries(ver, q.series) {
					continue
				}
				unsigned = u
			}
			list = append(list, candidate{p, unsigned})
		}
	}
	slices.SortStableFunc(list, func(a, b candidate) int {
		if c := debian.CompareVersions(b.p.Version, a.p.Version); c != 0 {
			return c
		}
		switch {
		case a.unsigned == b.unsigned:
			return 0
		case b.unsigned:
			return -1
		}
		return 1
	})
	var out []debian.Package
	for _, c := range list {
		out = append(out, c.p)
	}
	if len(out) > 0 {
		return out, nil
	}
	if q.pkg != "" {
		if near := q.nearestPackages(idxs); len(near) > 0 {
			return nil, fmt.Errorf("kernel %q not found in %s; nearest: %s", q.name, suiteList(idxs), strings.Join(near, ", "))
		}
		return nil, fmt.Errorf("kernel %q not found in %s", q.name, suiteList(idxs))
	}
	available := q.availableSeries(idxs)
	if len(available) == 0 {
		return nil, fmt.Errorf("kernel %q not found; no %s kernels in %s", q.name, q.short, suiteList(idxs))
	}
	msg := fmt.Sprintf("kernel %q not found", q.name)
	if near := nearest(available, q.series, debian.CompareVersions); len(near) > 0 {
		msg += "; nearest: " + strings.Join(near, ", ")
	}
	if q.suite != "" {
		msg += " in " + suiteList(idxs)
	}
	return nil, fmt.Errorf("%s; available %s series: %s", msg, q.short, strings.Join(available, ", "))
}

// nearest returns the elements of sorted just below and just above want.
func nearest(sorted []string, want string, compare func(a, b string) int) []string {
	i, _ := slices.BinarySearchFunc(sorted, want, compare)
	var out []string
	if i > 0 {
		out = append(out, sorted[i-1])
	}
	if i < len(sorted) {
		out = append(out, sorted[i])
	}
	return out
}

// nearestPackages suggests, for a package name that is not in the
// indexes, the image packages of the same flavour whose versions are
// closest to the one asked for.
func (q query) nearestPackages(idxs []*debian.Index) []string {
	for _, flavour := range flavours {
		want, _, ok := parseImage(q.pkg, flavour)
		if !ok {
			continue
		}
		byVersion := map[string]string{}
		for _, idx := range idxs {
			for _, p := range idx.Packages {
				if ver, unsigned, ok := parseImage(p.Name, flavour); ok && !unsigned && ver != majorMinor.FindString(ver) {
					byVersion[ver] = p.Name
				}
			}
		}
		vers := slices.SortedFunc(maps.Keys(byVersion), debian.CompareVersions)
		var names []string
		for _, v := range nearest(vers, want, debian.CompareVersions) {
			names = append(names, byVersion[v])
		}
		return names
	}
	return nil
}

func (q query) availableSeries(idxs []*debian.Index) []string {
	var series []string
	for _, idx := range idxs {
		for _, p := range idx.Packages {
			if ver, _, ok := parseImage(p.Name, q.flavour); ok {
				if s := majorMinor.FindString(ver); s != "" && !slices.Contains(series, s) {
					series = append(series, s)
				}
			}
		}
	}
	slices.SortFunc(series, debian.CompareVersions)
	return series
}

func suiteList(idxs []*debian.Index) string {
	var names []string
	for _, idx := range idxs {
		names = append(names, idx.Suite)
	}
	return strings.Join(names, ", ")
}

// packageParts returns the image package that holds the kernel (following
// meta packages such as linux-image-6.12-cloud-amd64 to the image they
// depend on) and every package to unpack for it. In the older layout that
// is the image package alone. In the newer one, the linux-image package is
// a meta package whose Depends name linux-binary-<ver> (the image),
// linux-modules-<ver> (the modules) and linux-base-<ver> (config and
// modules.builtin); all of them are unpacked.
func packageParts(image debian.Package, idxs []*debian.Index) (debian.Package, []debian.Package, []string, error) {
	for range 4 {
		deps := image.DependsOn()
		split := false
		for _, clause := range deps {
			for _, rel := range clause {
				split = split || strings.HasPrefix(rel.Name, "linux-binary-") || strings.HasPrefix(rel.Name, "linux-modules-")
			}
		}
		if split {
			parts := []debian.Package{image}
			// Only the binary, which holds the image, is needed: a mirror
			// may list a kernel without its base and modules, and a cloud
			// kernel has FUSE and virtio built in. What is missing is named
			// for the results; a guest that needed it says so itself.
			var missing, needed []string
			for _, clause := range deps {
				for _, rel := range clause {
					if !hasAnyPrefix(rel.Name, "linux-binary-", "linux-modules-", "linux-base-") {
						continue
					}
					p, err := findRelation(rel, image, idxs)
					switch {
					case err == nil:
						parts = append(parts, p)
					case strings.HasPrefix(rel.Name, "linux-binary-"):
						needed = append(needed, rel.String())
					default:
						missing = append(missing, rel.String())
					}
					break
				}
			}
			if len(needed) > 0 {
				return image, nil, nil, fmt.Errorf("%s, needed by %s %s, not found in %s",
					strings.Join(needed, " and "), image.Name, image.Version, suiteList(idxs))
			}
			return image, parts, missing, nil
		}
		var next *debian.Relation
		for _, clause := range deps {
			if strings.HasPrefix(clause[0].Name, "linux-image-") {
				next = &clause[0]
				break
			}
		}
		if next == nil {
			return image, []debian.Package{image}, nil, nil
		}
		p, err := findRelation(*next, image, idxs)
		if err != nil {
			return image, nil, nil, err
		}
		image = p
	}
	return image, nil, nil, fmt.Errorf("%s: too many meta packages in a row", image.Name)
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// findRelation finds the package that satisfies rel for from: the newest,
// preferring from's suite.
func findRelation(rel debian.Relation, from debian.Package, idxs []*debian.Index) (debian.Package, error) {
	var (
		best  debian.Package
		found bool
	)
	for _, idx := range idxs {
		for _, p := range idx.Packages {
			if p.Name != rel.Name || !rel.SatisfiedBy(p.Version) {
				continue
			}
			if found {
				sameSuite, bestSameSuite := p.Suite == from.Suite, best.Suite == from.Suite
				if bestSameSuite && !sameSuite {
					continue
				}
				if sameSuite == bestSameSuite && debian.CompareVersions(p.Version, best.Version) <= 0 {
					continue
				}
			}
			best, found = p, true
		}
	}
	if !found {
		return best, fmt.Errorf("%s, needed by %s %s, not found in %s", rel.String(), from.Name, from.Version, suiteList(idxs))
	}
	return best, nil
}
