package debian

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// testRelease is a Release file in Debian's layout (also a fuzzing seed).
const testRelease = `Origin: Debian
Suite: bookworm
MD5Sum:
 d41d8cd98f00b204e9800998ecf8427e 0 main/binary-amd64/Packages
SHA256:
 E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855 9 main/binary-amd64/Packages.xz
 0000000000000000000000000000000000000000000000000000000000000001 12 main/binary-amd64/Packages.gz
SHA512:
 ffff 1 main/binary-amd64/Packages.xz
`

// testIndex is a Packages index in Debian's layout (also a fuzzing seed).
const testIndex = `Package: linux-image-6.1.0-50-cloud-amd64
Source: linux-signed-amd64 (6.1.176+1)
Version: 6.1.176-1
Depends: kmod, linux-base (>= 4.3~),
 initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Description: Linux 6.1 for x86-64 cloud (signed)
 A long description: with a colon.
 .
 Depends: this is not a field
Filename: pool/main/l/linux-signed-amd64/linux-image-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb
Size: 26484304
SHA256: EFE19F605B6F54A8352E68D85A629ABB2D30B72A085FAEF603A9152590BAA791

Package: vim
Version: 2:9.0.1378-2
Filename: pool/main/v/vim/vim_9.0.1378-2_amd64.deb
Size: 1
SHA256: 00


Package: linux-image-cloud-amd64
Version: 6.1.176-1
Depends: linux-image-6.1.0-50-cloud-amd64 (= 6.1.176-1)
Filename: pool/main/l/linux-signed-amd64/linux-image-cloud-amd64_6.1.176-1_amd64.deb
Size: 1496
SHA256: ab`

func TestParseRelease(t *testing.T) {
	want := map[string]FileSum{
		"main/binary-amd64/Packages.xz": {Size: 9, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		"main/binary-amd64/Packages.gz": {Size: 12, SHA256: "0000000000000000000000000000000000000000000000000000000000000001"},
	}
	body := testRelease
	signed := "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n" +
		strings.Replace(body, "Origin", "- Origin", 1) + // dash-escaped line
		"-----BEGIN PGP SIGNATURE-----\n\nxyz\n-----END PGP SIGNATURE-----\n"
	for _, tc := range []struct{ name, data string }{
		{"Release", body},
		{"InRelease", signed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRelease([]byte(tc.data))
			assert.NilError(t, err)
			assert.DeepEqual(t, got, want)
		})
	}
	t.Run("no SHA256 list", func(t *testing.T) {
		_, err := ParseRelease([]byte("Origin: Debian\nMD5Sum:\n 00 1 x\n"))
		assert.ErrorContains(t, err, "no SHA256 list")
	})
	t.Run("bad size", func(t *testing.T) {
		_, err := ParseRelease([]byte("SHA256:\n 00 big x\n"))
		assert.ErrorContains(t, err, "size")
	})
}

func TestParsePackages(t *testing.T) {
	keep := func(name string) bool { return strings.HasPrefix(name, "linux-image-") }
	got, err := ParsePackages(strings.NewReader(testIndex), keep)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []Package{
		{
			Name:     "linux-image-6.1.0-50-cloud-amd64",
			Version:  "6.1.176-1",
			Depends:  "kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool",
			Filename: "pool/main/l/linux-signed-amd64/linux-image-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb",
			Size:     26484304,
			SHA256:   "efe19f605b6f54a8352e68d85a629abb2d30b72a085faef603a9152590baa791",
		},
		{
			Name:     "linux-image-cloud-amd64",
			Version:  "6.1.176-1",
			Depends:  "linux-image-6.1.0-50-cloud-amd64 (= 6.1.176-1)",
			Filename: "pool/main/l/linux-signed-amd64/linux-image-cloud-amd64_6.1.176-1_amd64.deb",
			Size:     1496,
			SHA256:   "ab",
		},
	})

	all, err := ParsePackages(strings.NewReader(testIndex), nil)
	assert.NilError(t, err)
	assert.Equal(t, len(all), 3)
	assert.Equal(t, all[1].Version, "2:9.0.1378-2")

	for _, bad := range []struct{ name, index, err string }{
		{"no Package", "Version: 1\n\n", "without Package"},
		{"bad Size", "Package: a\nSize: x\n", "Size"},
		{"no colon", "Package: a\nnonsense\n", "line 2"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			_, err := ParsePackages(strings.NewReader(bad.index), nil)
			assert.ErrorContains(t, err, bad.err)
		})
	}
}

func TestParsePackagesLongLine(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	index := "Package: a\nDescription: " + long + "\nVersion: 1\n"
	got, err := ParsePackages(strings.NewReader(index), nil)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []Package{{Name: "a", Version: "1"}})
}

func TestDependsOn(t *testing.T) {
	p := Package{Depends: "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, " +
		"linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), kmod:any, linux-modules-7.3.4+deb13-cloud-amd64 (=7.3.4-1~bpo13+1), libc (<< 3)"}
	assert.DeepEqual(t, p.DependsOn(), [][]Relation{
		{{Name: "dracut"}, {Name: "initramfs-tools", Operator: ">=", Version: "0.120+deb8u2"}, {Name: "linux-initramfs-tool"}},
		{{Name: "linux-base-7.3.4+deb13-cloud-amd64", Operator: "=", Version: "7.3.4-1~bpo13+1"}},
		{{Name: "kmod"}},
		{{Name: "linux-modules-7.3.4+deb13-cloud-amd64", Operator: "=", Version: "7.3.4-1~bpo13+1"}},
		{{Name: "libc", Operator: "<<", Version: "3"}},
	})
	assert.Check(t, len(Package{}.DependsOn()) == 0)
}

// A line, or a Depends field assembled from continuation lines, longer
// than MaxLine is an error, not an allocation.
func TestParsePackagesLimits(t *testing.T) {
	_, err := ParsePackages(strings.NewReader("Package: a\nDescription: "+strings.Repeat("x", MaxLine)+"\n"), nil)
	assert.ErrorIs(t, err, ErrLineTooLong)
	assert.ErrorContains(t, err, "line 2: ")
	_, err = ParsePackages(strings.NewReader("Package: a\nDepends: b\n"+strings.Repeat(" c, d, e, f, g\n", MaxLine/10)), nil)
	assert.ErrorContains(t, err, "Depends field longer than")
	_, err = ParsePackages(strings.NewReader("Package: a\nSize: -1\n"), nil)
	assert.ErrorContains(t, err, "line 2: Size: negative")
}

// The fields a run-time closure reads: Pre-Depends and Provides, which
// continue on the next lines like Depends, and Essential.
func TestParsePackagesClosureFields(t *testing.T) {
	got, err := ParsePackages(strings.NewReader("Package: mount\nVersion: 2.42.4-1\nEssential: no\nPre-Depends: libblkid1 (= 2.42.4-1),\n libc6 (>= 2.38)\n"+
		"Provides: fuse (= 3.18.3-1),\n fusermount\nDescription: x\n y\n\nPackage: sed\nEssential: yes\nVersion: 4.9-2\n"), nil)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []Package{
		{Name: "mount", Version: "2.42.4-1", PreDepends: "libblkid1 (= 2.42.4-1), libc6 (>= 2.38)", Provides: "fuse (= 3.18.3-1), fusermount"},
		{Name: "sed", Version: "4.9-2", Essential: true},
	})
	_, err = ParsePackages(strings.NewReader("Package: a\nProvides: b\n"+strings.Repeat(" c, d, e, f, g\n", MaxLine/10)), nil)
	assert.ErrorContains(t, err, "Provides field longer than")
}
