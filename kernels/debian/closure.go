package debian

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Universe is one suite's Packages index arranged for resolving
// relationships: every version of each package, and the providers of
// each virtual package.
type Universe struct {
	// Suite names the index in errors.
	Suite     string
	byName    map[string][]*Package // newest first
	providers map[string][]provider // by virtual name, in index order
}

type provider struct {
	pkg     *Package
	version string // the version provided ("=" in Provides), "" for none
}

// NewUniverse indexes pkgs, the entries of suite's Packages index.
func NewUniverse(suite string, pkgs []Package) *Universe {
	u := &Universe{Suite: suite, byName: map[string][]*Package{}, providers: map[string][]provider{}}
	for i := range pkgs {
		p := &pkgs[i]
		u.byName[p.Name] = append(u.byName[p.Name], p)
		for _, v := range p.Provided() {
			ver := ""
			if v.Operator == "=" {
				ver = v.Version
			}
			u.providers[v.Name] = append(u.providers[v.Name], provider{pkg: p, version: ver})
		}
	}
	for _, vs := range u.byName {
		// Stable: equal versions keep index order, so the choice does not
		// depend on anything but the index.
		slices.SortStableFunc(vs, func(a, b *Package) int { return CompareVersions(b.Version, a.Version) })
	}
	return u
}

// NotFoundError is a package the suite does not have, or not at the
// version asked for.
type NotFoundError struct {
	Suite, Name, Version string
	// Versions are the versions the suite has, newest first (none when it
	// lacks the package).
	Versions []string
	// ProvidedBy are the packages providing Name when it is a virtual
	// package.
	ProvidedBy []string
}

func (e *NotFoundError) Error() string {
	switch {
	case len(e.Versions) > 0:
		return fmt.Sprintf("%s has %s %s, not %s", e.Suite, e.Name, strings.Join(e.Versions, ", "), e.Version)
	case len(e.ProvidedBy) > 0:
		return fmt.Sprintf("%s is a virtual package in %s, provided by %s: name one of them", e.Name, e.Suite, strings.Join(e.ProvidedBy, ", "))
	}
	return fmt.Sprintf("no package %s in %s", e.Name, e.Suite)
}

// Find returns the package called name at version, or at its newest
// version when version is "".
func (u *Universe) Find(name, version string) (Package, error) {
	vs := u.byName[name]
	for _, p := range vs {
		if version == "" || CompareVersions(p.Version, version) == 0 {
			return *p, nil
		}
	}
	e := &NotFoundError{Suite: u.Suite, Name: name, Version: version}
	for _, p := range vs {
		e.Versions = append(e.Versions, p.Version)
	}
	for _, pr := range u.providers[name] {
		if !slices.Contains(e.ProvidedBy, pr.pkg.Name) {
			e.ProvidedBy = append(e.ProvidedBy, pr.pkg.Name)
		}
	}
	slices.Sort(e.ProvidedBy)
	return Package{}, e
}

// InstallOnly are the packages, real or virtual, that packages depend on
// for their maintainer scripts (configuration questions, creating users,
// registering services, system users and temporary files), never for a
// program's run time. Closure leaves a clause out when one of its
// alternatives is among them: a sysroot is unpacked, not configured.
var InstallOnly = []string{
	"debconf", "debconf-2.0", "cdebconf",
	"adduser", "init-system-helpers", "lsb-base", "sysvinit-utils",
	"ucf", "install-info", "dpkg", "perl-base",
	"systemd-sysusers", "systemd-standalone-sysusers",
	"systemd-tmpfiles", "systemd-standalone-tmpfiles",
}

// ClosureError is a relationship no package of the suite satisfies.
type ClosureError struct {
	Suite string
	// Chain leads from the package asked for to the one whose field
	// holds Clause: "bindfs 1.18.4-0.1", "fuse3 3.18.3-1".
	Chain []string
	// Clause is the relationship, alternatives joined by " | ".
	Clause string
	// Reasons says why each alternative failed.
	Reasons []string
}

func (e *ClosureError) Error() string {
	return fmt.Sprintf("run-time closure cannot be satisfied in %s: %s needs %s: %s",
		e.Suite, strings.Join(e.Chain, " → "), e.Clause, strings.Join(e.Reasons, "; "))
}

// Closure returns root and every package it needs at run time, sorted by
// name: the transitive closure of Pre-Depends and Depends within the
// suite. It is deterministic: the same index gives the same closure.
//
//   - A clause is left out when one of its alternatives is a package of
//     InstallOnly, or a real package that is Essential: those exist on any
//     Debian system for dpkg's sake and are not a daemon's libraries (a
//     sysroot of a daemon has no shell, coreutils or dpkg).
//   - A clause that a package chosen already satisfies (by name and
//     version, or through Provides) adds nothing.
//   - Otherwise its alternatives are tried in order, as apt tries them:
//     for each, the newest version of a real package of that name that
//     meets the constraint, else a provider of that name (one whose
//     Provides carries a version meeting the constraint, for a versioned
//     clause), the first by name when several do. A package already
//     chosen at another version is not chosen twice.
//   - Conflicts and Breaks are not read: within one suite of Debian's
//     archive, packages installable together are what the archive
//     promises, and a daemon's closure has no conflicting alternatives.
//
// A clause none of whose alternatives can be had is a *ClosureError
// naming the chain of packages that led to it.
func (u *Universe) Closure(root Package) ([]Package, error) {
	chosen := map[string]*Package{root.Name: &root}
	parent := map[string]string{}
	provided := map[string][]provider{} // virtual name → chosen providers
	choose := func(p *Package, from string) {
		chosen[p.Name] = p
		parent[p.Name] = from
		for _, v := range p.Provided() {
			ver := ""
			if v.Operator == "=" {
				ver = v.Version
			}
			provided[v.Name] = append(provided[v.Name], provider{pkg: p, version: ver})
		}
	}
	choose(&root, "")
	chain := func(name string) []string {
		var out []string
		for n := name; n != ""; n = parent[n] {
			out = append(out, chosen[n].Name+" "+chosen[n].Version)
		}
		slices.Reverse(out)
		return out
	}

	queue := []*Package{&root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, clause := range slices.Concat(p.PreDependsOn(), p.DependsOn()) {
			if u.skipped(clause) || satisfied(clause, chosen, provided) {
				continue
			}
			next, reasons := u.pick(clause, chosen)
			if next == nil {
				return nil, &ClosureError{Suite: u.Suite, Chain: chain(p.Name), Clause: clauseString(clause), Reasons: reasons}
			}
			choose(next, p.Name)
			queue = append(queue, next)
		}
	}
	out := make([]Package, 0, len(chosen))
	for _, p := range chosen {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Package) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// skipped says whether clause is one Closure leaves out.
func (u *Universe) skipped(clause []Relation) bool {
	for _, rel := range clause {
		if slices.Contains(InstallOnly, rel.Name) {
			return true
		}
		if vs := u.byName[rel.Name]; len(vs) > 0 && vs[0].Essential {
			return true
		}
	}
	return false
}

// satisfied says whether a chosen package meets one of clause's
// alternatives.
func satisfied(clause []Relation, chosen map[string]*Package, provided map[string][]provider) bool {
	for _, rel := range clause {
		if p, ok := chosen[rel.Name]; ok && rel.SatisfiedBy(p.Version) {
			return true
		}
		for _, pr := range provided[rel.Name] {
			if rel.Operator == "" || (pr.version != "" && rel.SatisfiedBy(pr.version)) {
				return true
			}
		}
	}
	return false
}

// pick chooses the package for a clause no chosen package satisfies, or
// says why each alternative fails.
func (u *Universe) pick(clause []Relation, chosen map[string]*Package) (*Package, []string) {
	var reasons []string
	for _, rel := range clause {
		vs := u.byName[rel.Name]
		for _, p := range vs {
			if _, taken := chosen[p.Name]; !taken && rel.SatisfiedBy(p.Version) {
				return p, nil
			}
		}
		var ps []provider
		for _, pr := range u.providers[rel.Name] {
			if _, taken := chosen[pr.pkg.Name]; taken {
				continue
			}
			if rel.Operator == "" || (pr.version != "" && rel.SatisfiedBy(pr.version)) {
				ps = append(ps, pr)
			}
		}
		if len(ps) > 0 {
			slices.SortStableFunc(ps, func(a, b provider) int {
				return cmp.Or(strings.Compare(a.pkg.Name, b.pkg.Name), CompareVersions(b.pkg.Version, a.pkg.Version))
			})
			return ps[0].pkg, nil
		}
		reasons = append(reasons, u.why(rel, chosen))
	}
	return nil, reasons
}

// why says why no package can be had for rel.
func (u *Universe) why(rel Relation, chosen map[string]*Package) string {
	if p, ok := chosen[rel.Name]; ok {
		return fmt.Sprintf("%s %s, chosen for another package, does not fit", rel.Name, p.Version)
	}
	vs := u.byName[rel.Name]
	if len(vs) > 0 {
		var have []string
		for _, p := range vs {
			have = append(have, p.Version)
		}
		return fmt.Sprintf("%s has %s %s only", u.Suite, rel.Name, strings.Join(have, ", "))
	}
	if len(u.providers[rel.Name]) > 0 {
		return fmt.Sprintf("no provider of %s in %s gives a version that fits", rel.String(), u.Suite)
	}
	return fmt.Sprintf("no package %s in %s", rel.Name, u.Suite)
}

// clauseString writes a clause as the field does.
func clauseString(clause []Relation) string {
	var parts []string
	for _, rel := range clause {
		parts = append(parts, rel.String())
	}
	return strings.Join(parts, " | ")
}
