package kernels

import (
	"testing"

	"github.com/fusematrix/fusematrix/kernels/debian"
	"gotest.tools/v3/assert"
)

func TestChoose(t *testing.T) {
	pkg := func(suite, name, version string) debian.Package {
		return debian.Package{Name: name, Version: version, Suite: suite}
	}
	security := &debian.Index{Suite: "bookworm-security", Packages: []debian.Package{
		pkg("bookworm-security", "linux-image-6.1.0-56-cloud-amd64-unsigned", "6.1.192-2"),
		pkg("bookworm-security", "linux-image-6.1.0-56-cloud-amd64", "6.1.192-2"),
		pkg("bookworm-security", "linux-image-6.1.0-56-cloud-amd64-dbg", "6.1.192-2"),
		pkg("bookworm-security", "linux-image-6.12.117+deb12-cloud-amd64", "6.12.117-1~deb12u1"),
		pkg("bookworm-security", "linux-image-6.12.117+deb12-cloud-amd64-unsigned", "6.12.117-1~deb12u1"),
		pkg("bookworm-security", "linux-image-6.12.117+deb12-cloud-amd64-dbg", "6.12.999-1"),
		pkg("bookworm-security", "linux-image-6.12-cloud-amd64", "6.12.999-1"),
		pkg("bookworm-security", "linux-image-cloud-amd64", "6.12.999-1"),
		pkg("bookworm-security", "linux-image-6.1.0-56-amd64", "6.1.192-2"),
	}}
	main := &debian.Index{Suite: "bookworm", Packages: []debian.Package{
		pkg("bookworm", "linux-image-6.1.0-50-cloud-amd64", "6.1.176-1"),
		pkg("bookworm", "linux-image-6.1.0-57-amd64-unsigned", "6.1.200-1"),
		pkg("bookworm", "linux-image-6.1.0-56-amd64", "6.1.192-2"),
		pkg("bookworm", "linux-image-6.1.0-56-rt-amd64", "6.1.192-2"),
	}}
	backports := &debian.Index{Suite: "bookworm-backports", Packages: []debian.Package{
		pkg("bookworm-backports", "linux-image-6.12.95+deb12-cloud-amd64", "6.12.95-1~bpo12+1"),
		pkg("bookworm-backports", "linux-image-6.16.3+deb12-cloud-amd64", "6.16.3-1~bpo12+1"),
	}}
	idxs := []*debian.Index{security, main, backports}
	for _, tc := range []struct {
		name, want, err string
	}{
		{name: "debian:6.1/cloud", want: "linux-image-6.1.0-56-cloud-amd64 6.1.192-2 bookworm-security"},
		{name: "debian:6.12/cloud", want: "linux-image-6.12.117+deb12-cloud-amd64 6.12.117-1~deb12u1 bookworm-security"},
		{name: "debian:6.16", want: "linux-image-6.16.3+deb12-cloud-amd64 6.16.3-1~bpo12+1 bookworm-backports"},
		// The newest version wins even unsigned; at the same version the
		// signed build does, and then the earlier suite.
		{name: "debian:6.1/amd64", want: "linux-image-6.1.0-57-amd64-unsigned 6.1.200-1 bookworm"},
		{name: "debian:6.1/rt", want: "linux-image-6.1.0-56-rt-amd64 6.1.192-2 bookworm"},
		{name: "debian:linux-image-6.1.0-56-amd64", want: "linux-image-6.1.0-56-amd64 6.1.192-2 bookworm-security"},
		{name: "debian:linux-image-cloud-amd64", want: "linux-image-cloud-amd64 6.12.999-1 bookworm-security"},
		{name: "debian:6.99/cloud", err: `kernel "debian:6.99/cloud" not found; nearest: 6.16; available cloud series: 6.1, 6.12, 6.16`},
		{name: "debian:6.12/rt", err: `kernel "debian:6.12/rt" not found; nearest: 6.1; available rt series: 6.1`},
		{name: "debian:linux-image-6.1.0-1-cloud-amd64", err: `kernel "debian:linux-image-6.1.0-1-cloud-amd64" not found in bookworm-security, bookworm, bookworm-backports; nearest: linux-image-6.1.0-50-cloud-amd64`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := parseName(tc.name)
			assert.NilError(t, err)
			got, err := q.choose(idxs)
			if tc.err != "" {
				assert.Error(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, got.Name+" "+got.Version+" "+got.Suite, tc.want)
		})
	}

	t.Run("signed before unsigned whatever the index order", func(t *testing.T) {
		for _, order := range [][]int{{0, 1}, {1, 0}} {
			list := []debian.Package{
				pkg("s", "linux-image-6.1.0-56-cloud-amd64-unsigned", "6.1.192-2"),
				pkg("s", "linux-image-6.1.0-56-cloud-amd64", "6.1.192-2"),
			}
			idx := &debian.Index{Suite: "s", Packages: []debian.Package{list[order[0]], list[order[1]]}}
			got, err := query{series: "6.1", flavour: "cloud-amd64"}.choose([]*debian.Index{idx})
			assert.NilError(t, err)
			assert.Equal(t, got.Name, "linux-image-6.1.0-56-cloud-amd64")
		}
	})
	t.Run("the earlier suite at the same version", func(t *testing.T) {
		a := &debian.Index{Suite: "a", Packages: []debian.Package{pkg("a", "linux-image-6.1.0-1-cloud-amd64", "1")}}
		b := &debian.Index{Suite: "b", Packages: []debian.Package{pkg("b", "linux-image-6.1.0-1-cloud-amd64", "1")}}
		got, err := query{series: "6.1", flavour: "cloud-amd64"}.choose([]*debian.Index{b, a})
		assert.NilError(t, err)
		assert.Equal(t, got.Suite, "b")
	})
}

func TestPackageParts(t *testing.T) {
	const v = "7.3.4-1~bpo13+1"
	pkg := func(suite, name, version, depends string) debian.Package {
		return debian.Package{Name: name, Version: version, Suite: suite, Depends: depends}
	}
	meta := pkg("tb", "linux-image-7.3.4+deb13-cloud-amd64", v,
		"dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-cloud-amd64 (= "+v+"), "+
			"linux-binary-7.3.4+deb13-cloud-amd64 (= "+v+"), linux-modules-7.3.4+deb13-cloud-amd64 (= "+v+")")
	idxs := []*debian.Index{
		{Suite: "sid", Packages: []debian.Package{
			pkg("sid", "linux-binary-7.3.4+deb13-cloud-amd64", "7.3.4-1", ""),
			pkg("sid", "linux-modules-7.3.4+deb13-cloud-amd64", v, ""),
		}},
		{Suite: "tb", Packages: []debian.Package{
			meta,
			pkg("tb", "linux-binary-7.3.4+deb13-cloud-amd64", "7.3.4-1~bpo13+0", ""),
			pkg("tb", "linux-binary-7.3.4+deb13-cloud-amd64", v, ""),
			pkg("tb", "linux-modules-7.3.4+deb13-cloud-amd64", v, ""),
			pkg("tb", "linux-base-7.3.4+deb13-cloud-amd64", v, ""),
			pkg("tb", "linux-image-6.12-cloud-amd64", "6.12.117-1", "linux-image-6.12.117+deb12-cloud-amd64 (= 6.12.117-1)"),
			pkg("tb", "linux-image-6.12.117+deb12-cloud-amd64", "6.12.117-1", "kmod, linux-base (>= 4.3~)"),
			pkg("tb", "linux-image-7.9.1+deb13-cloud-amd64", "7.9.1-1", "linux-binary-7.9.1+deb13-cloud-amd64 (= 7.9.1-1)"),
			// As the mirror has 6.19, 7.0 and 7.1: the binary alone.
			pkg("tb", "linux-image-7.1.13+deb13-cloud-amd64", "7.1.13-1", "linux-base-7.1.13+deb13-cloud-amd64 (= 7.1.13-1), "+
				"linux-binary-7.1.13+deb13-cloud-amd64 (= 7.1.13-1), linux-modules-7.1.13+deb13-cloud-amd64 (= 7.1.13-1)"),
			pkg("tb", "linux-binary-7.1.13+deb13-cloud-amd64", "7.1.13-1", ""),
			// The modules without the base.
			pkg("tb", "linux-image-7.4.2+deb13-cloud-amd64", "7.4.2-1", "linux-base-7.4.2+deb13-cloud-amd64 (= 7.4.2-1), "+
				"linux-binary-7.4.2+deb13-cloud-amd64 (= 7.4.2-1), linux-modules-7.4.2+deb13-cloud-amd64 (= 7.4.2-1)"),
			pkg("tb", "linux-binary-7.4.2+deb13-cloud-amd64", "7.4.2-1", ""),
			pkg("tb", "linux-modules-7.4.2+deb13-cloud-amd64", "7.4.2-1", ""),
			// The base alone.
			pkg("tb", "linux-image-7.5.1+deb13-cloud-amd64", "7.5.1-1", "linux-base-7.5.1+deb13-cloud-amd64 (= 7.5.1-1), "+
				"linux-binary-7.5.1+deb13-cloud-amd64 (= 7.5.1-1), linux-modules-7.5.1+deb13-cloud-amd64 (= 7.5.1-1)"),
			pkg("tb", "linux-base-7.5.1+deb13-cloud-amd64", "7.5.1-1", ""),
		}},
	}
	describe := func(ps []debian.Package) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name+" "+p.Version+" "+p.Suite)
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		from      debian.Package
		wantImage string
		wantParts []string
		missing   []string
		err       string
	}{
		{
			name:      "newer layout: meta, base, binary and modules at the pinned version from the same suite",
			from:      meta,
			wantImage: "linux-image-7.3.4+deb13-cloud-amd64",
			wantParts: []string{
				"linux-image-7.3.4+deb13-cloud-amd64 " + v + " tb",
				"linux-base-7.3.4+deb13-cloud-amd64 " + v + " tb",
				"linux-binary-7.3.4+deb13-cloud-amd64 " + v + " tb",
				"linux-modules-7.3.4+deb13-cloud-amd64 " + v + " tb",
			},
		},
		{
			name:      "older layout: the image alone",
			from:      idxs[1].Packages[6],
			wantImage: "linux-image-6.12.117+deb12-cloud-amd64",
			wantParts: []string{"linux-image-6.12.117+deb12-cloud-amd64 6.12.117-1 tb"},
		},
		{
			name:      "a meta package leads to its image",
			from:      idxs[1].Packages[5],
			wantImage: "linux-image-6.12.117+deb12-cloud-amd64",
			wantParts: []string{"linux-image-6.12.117+deb12-cloud-amd64 6.12.117-1 tb"},
		},
		{
			name: "a missing part",
			from: idxs[1].Packages[7],
			err:  "linux-binary-7.9.1+deb13-cloud-amd64 (= 7.9.1-1), needed by linux-image-7.9.1+deb13-cloud-amd64 7.9.1-1, not found in sid, tb",
		},
		{
			// The guest needs the image; modules only when the kernel has
			// FUSE or virtio as modules, and then it says so itself.
			name:      "the binary alone: booted, the missing parts named",
			from:      idxs[1].Packages[8],
			wantImage: "linux-image-7.1.13+deb13-cloud-amd64",
			wantParts: []string{
				"linux-image-7.1.13+deb13-cloud-amd64 7.1.13-1 tb",
				"linux-binary-7.1.13+deb13-cloud-amd64 7.1.13-1 tb",
			},
			missing: []string{"linux-base-7.1.13+deb13-cloud-amd64 (= 7.1.13-1)", "linux-modules-7.1.13+deb13-cloud-amd64 (= 7.1.13-1)"},
		},
		{
			name:      "a missing base alone: the binary and the modules, the base named",
			from:      idxs[1].Packages[10],
			wantImage: "linux-image-7.4.2+deb13-cloud-amd64",
			wantParts: []string{
				"linux-image-7.4.2+deb13-cloud-amd64 7.4.2-1 tb",
				"linux-binary-7.4.2+deb13-cloud-amd64 7.4.2-1 tb",
				"linux-modules-7.4.2+deb13-cloud-amd64 7.4.2-1 tb",
			},
			missing: []string{"linux-base-7.4.2+deb13-cloud-amd64 (= 7.4.2-1)"},
		},
		{
			// The missing modules do not stop it, so the error does not
			// name them.
			name: "a missing binary is an error whatever else is there: it holds the image",
			from: idxs[1].Packages[13],
			err:  "linux-binary-7.5.1+deb13-cloud-amd64 (= 7.5.1-1), needed by linux-image-7.5.1+deb13-cloud-amd64 7.5.1-1, not found in sid, tb",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			image, parts, missing, err := packageParts(tc.from, idxs)
			if tc.err != "" {
				assert.Error(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, image.Name, tc.wantImage)
			assert.DeepEqual(t, describe(parts), tc.wantParts)
			assert.DeepEqual(t, missing, tc.missing)
		})
	}
}
