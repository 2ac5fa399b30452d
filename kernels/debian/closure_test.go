package debian

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// testdata/sid-fuse.Packages holds real stanzas of Debian sid's
// main/binary-amd64 Packages index (its InRelease dated 2026-10-30), cut
// to the fields a closure reads and a download needs: the run-time
// closures of cryfs, mergerfs, encfs and bindfs, and debconf. They hold
// the cases a closure must get right on Debian's own data:
//
//   - cryfs depends on libspdlog1.15-fmt11, a virtual package that only
//     libspdlog1.15 provides;
//   - mergerfs depends on "fuse3 (>= 3.10.1-3) | fuse (<< 3)": the first
//     alternative is taken, and fuse, a real package too, is not;
//   - encfs depends on "debconf (>= 0.5) | debconf-2.0", needed only by
//     its maintainer scripts, and on fuse, a real package that fuse3 also
//     provides;
//   - libc6 depends on libgcc-s1, which depends on libc6 again.
func sidFuse(t *testing.T) []Package {
	t.Helper()
	f, err := os.Open("testdata/sid-fuse.Packages")
	assert.NilError(t, err)
	defer f.Close()
	pkgs, err := ParsePackages(f, nil)
	assert.NilError(t, err)
	return pkgs
}

func pkgNames(pkgs []Package) []string {
	var out []string
	for _, p := range pkgs {
		out = append(out, p.Name)
	}
	return out
}

func TestClosureSid(t *testing.T) {
	base := []string{"fuse3", "gcc-16-base", "libblkid1", "libc-gconv-modules-extra", "libc6", "libfuse3-4", "libgcc-s1",
		"libmount1", "libpcre2-8-0", "libselinux1", "libsmartcols1", "libsystemd0", "mount"}
	with := func(extra ...string) []string {
		return slices.Sorted(slices.Values(append(slices.Clone(base), extra...)))
	}
	for _, tc := range []struct {
		root string
		want []string
	}{
		{"bindfs", with("bindfs")},
		{"mergerfs", with("mergerfs", "libstdc++6")},
		{"cryfs", with("cryfs", "libboost-chrono1.92.0", "libboost-filesystem1.92.0", "libboost-program-options1.92.0",
			"libboost-thread1.92.0", "libcrypto++8t64", "libfmt11", "libspdlog1.15", "libstdc++6")},
		{"encfs", with("encfs", "fuse", "libfuse2t64", "libssl3t64", "libstdc++6", "libtinyxml2-11", "libzstd1",
			"openssl-provider-legacy", "zlib1g")},
		// Reached through Pre-Depends only: mount's libraries.
		{"mount", []string{"gcc-16-base", "libblkid1", "libc-gconv-modules-extra", "libc6", "libgcc-s1", "libmount1",
			"libpcre2-8-0", "libselinux1", "libsmartcols1", "libsystemd0", "mount"}},
	} {
		t.Run(tc.root, func(t *testing.T) {
			pkgs := sidFuse(t)
			u := NewUniverse("sid", pkgs)
			root, err := u.Find(tc.root, "")
			assert.NilError(t, err)
			got, err := u.Closure(root)
			assert.NilError(t, err)
			assert.DeepEqual(t, pkgNames(got), tc.want)
			assert.Check(t, !slices.Contains(pkgNames(got), "debconf"))

			// The same index in another order gives the same closure.
			slices.Reverse(pkgs)
			u = NewUniverse("sid", pkgs)
			again, err := u.Closure(root)
			assert.NilError(t, err)
			assert.DeepEqual(t, again, got)
		})
	}
}

// parse reads a made-up index given as stanzas.
func parse(t *testing.T, stanzas ...string) *Universe {
	t.Helper()
	pkgs, err := ParsePackages(strings.NewReader(strings.Join(stanzas, "\n\n")), nil)
	assert.NilError(t, err)
	return NewUniverse("test", pkgs)
}

func TestClosureRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		index   []string
		root    string
		want    []string
		wantErr string
	}{
		{
			name:  "a missing first alternative falls to the next",
			index: []string{"Package: d\nVersion: 1\nDepends: gone | b", "Package: b\nVersion: 1"},
			root:  "d", want: []string{"b", "d"},
		},
		{
			name:  "a first alternative at too old a version falls to the next",
			index: []string{"Package: d\nVersion: 1\nDepends: a (>= 2) | b", "Package: a\nVersion: 1", "Package: b\nVersion: 1"},
			root:  "d", want: []string{"b", "d"},
		},
		{
			name:  "the newest version that fits",
			index: []string{"Package: d\nVersion: 1\nDepends: a (<< 3)", "Package: a\nVersion: 3", "Package: a\nVersion: 2", "Package: a\nVersion: 1"},
			root:  "d", want: []string{"a=2", "d"},
		},
		{
			name: "a virtual package through its providers, the first by name",
			index: []string{"Package: d\nVersion: 1\nDepends: virt", "Package: zz\nVersion: 1\nProvides: virt",
				"Package: pb\nVersion: 1\nProvides: virt"},
			root: "d", want: []string{"d", "pb"},
		},
		{
			name: "a provider chosen already beats a real package of the name",
			index: []string{"Package: d\nVersion: 1\nDepends: x, virt", "Package: x\nVersion: 1\nProvides: virt (= 1)",
				"Package: virt\nVersion: 9"},
			root: "d", want: []string{"d", "x"},
		},
		{
			name: "a real package beats a provider not chosen",
			index: []string{"Package: d\nVersion: 1\nDepends: virt", "Package: x\nVersion: 1\nProvides: virt",
				"Package: virt\nVersion: 9"},
			root: "d", want: []string{"d", "virt"},
		},
		{
			name: "a versioned clause needs a versioned Provides that fits",
			index: []string{"Package: d\nVersion: 1\nDepends: virt (>= 2)", "Package: old\nVersion: 5\nProvides: virt (= 1)",
				"Package: plain\nVersion: 5\nProvides: virt", "Package: new\nVersion: 1\nProvides: virt (= 2)"},
			root: "d", want: []string{"d", "new"},
		},
		{
			name: "essential packages and install-time helpers are left out",
			index: []string{"Package: d\nVersion: 1\nPre-Depends: dpkg (>= 1.15)\nDepends: sed, debconf (>= 0.5) | debconf-2.0, libc6",
				"Package: sed\nVersion: 4\nEssential: yes\nDepends: libacl1", "Package: debconf\nVersion: 1",
				"Package: dpkg\nVersion: 1.22\nEssential: yes", "Package: libc6\nVersion: 2.41"},
			root: "d", want: []string{"d", "libc6"},
		},
		{
			name:  "a cycle ends",
			index: []string{"Package: a\nVersion: 1\nDepends: b", "Package: b\nVersion: 1\nDepends: a (= 1)"},
			root:  "a", want: []string{"a", "b"},
		},
		{
			name:    "nothing provides it",
			index:   []string{"Package: d\nVersion: 1\nDepends: a", "Package: a\nVersion: 1\nDepends: gone | virt (>= 2)", "Package: p\nVersion: 1\nProvides: virt (= 1)"},
			root:    "d",
			wantErr: "run-time closure cannot be satisfied in test: d 1 → a 1 needs gone | virt (>= 2): no package gone in test; no provider of virt (>= 2) in test gives a version that fits",
		},
		{
			name:    "the only version is too old",
			index:   []string{"Package: d\nVersion: 1\nDepends: a (>= 2)", "Package: a\nVersion: 1"},
			root:    "d",
			wantErr: "d 1 needs a (>= 2): test has a 1 only",
		},
		{
			name:    "two packages need two versions of one",
			index:   []string{"Package: d\nVersion: 1\nDepends: a (= 1), b", "Package: b\nVersion: 1\nDepends: a (= 2)", "Package: a\nVersion: 1", "Package: a\nVersion: 2"},
			root:    "d",
			wantErr: "d 1 → b 1 needs a (= 2): a 1, chosen for another package, does not fit",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := parse(t, tc.index...)
			root, err := u.Find(tc.root, "")
			assert.NilError(t, err)
			got, err := u.Closure(root)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				var ce *ClosureError
				assert.Check(t, errors.As(err, &ce))
				return
			}
			assert.NilError(t, err)
			var gotNames []string
			for _, p := range got {
				n := p.Name
				if slices.ContainsFunc(tc.want, func(w string) bool { return strings.HasPrefix(w, n+"=") }) {
					n += "=" + p.Version
				}
				gotNames = append(gotNames, n)
			}
			assert.DeepEqual(t, gotNames, tc.want)
		})
	}
}

func TestFind(t *testing.T) {
	u := NewUniverse("sid", sidFuse(t))
	p, err := u.Find("bindfs", "")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(p.Version, "1.18.4-0.1"))
	assert.Check(t, is.Equal(p.Filename, "pool/main/b/bindfs/bindfs_1.18.4-0.1_amd64.deb"))
	_, err = u.Find("bindfs", "1.18.4-0.1")
	assert.NilError(t, err)
	for _, tc := range []struct{ name, version, want string }{
		{"nosuchfs", "", "no package nosuchfs in sid"},
		{"bindfs", "1.17.2-1", "sid has bindfs 1.18.4-0.1, not 1.17.2-1"},
		{"libspdlog1.15-fmt11", "", "libspdlog1.15-fmt11 is a virtual package in sid, provided by libspdlog1.15: name one of them"},
	} {
		_, err := u.Find(tc.name, tc.version)
		assert.Check(t, is.Error(err, tc.want))
		var nf *NotFoundError
		assert.Check(t, errors.As(err, &nf))
	}
}

func TestRelations(t *testing.T) {
	p := Package{PreDepends: "libc6 (>= 2.38), libmount1:any (=2.42.4-1)", Provides: "fuse (= 3.18.3-1), fusermount"}
	assert.DeepEqual(t, p.PreDependsOn(), [][]Relation{
		{{Name: "libc6", Operator: ">=", Version: "2.38"}},
		{{Name: "libmount1", Operator: "=", Version: "2.42.4-1"}},
	})
	assert.DeepEqual(t, p.Provided(), []Relation{{Name: "fuse", Operator: "=", Version: "3.18.3-1"}, {Name: "fusermount"}})
	for _, tc := range []struct {
		rel     Relation
		version string
		want    bool
	}{
		{Relation{Name: "a"}, "1", true},
		{Relation{Name: "a", Operator: ">=", Version: "3.17.2"}, "3.18.3-1", true},
		{Relation{Name: "a", Operator: ">=", Version: "3.17.2"}, "3.17.1~rc0", false},
		{Relation{Name: "a", Operator: ">>", Version: "2.19.1"}, "2.19.1", false},
		{Relation{Name: "a", Operator: "<<", Version: "3"}, "3.18.3-1", false},
		{Relation{Name: "a", Operator: "=", Version: "1:16.2.0-4"}, "1:16.2.0-4", true},
		// dpkg still reads the obsolete forms as <= and >=.
		{Relation{Name: "a", Operator: "<", Version: "2"}, "2", true},
		{Relation{Name: "a", Operator: ">", Version: "2"}, "2", true},
	} {
		assert.Check(t, is.Equal(tc.rel.SatisfiedBy(tc.version), tc.want), "%s by %s", tc.rel, tc.version)
	}
}
