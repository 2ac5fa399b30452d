package kernels

import (
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want query
		err  string
	}{
		{name: "debian:6.12/cloud", want: query{series: "6.12", flavour: "cloud-amd64", short: "cloud"}},
		{name: "debian:6.1", want: query{series: "6.1", flavour: "cloud-amd64", short: "cloud"}},
		{name: "debian:7.1/rt", want: query{series: "7.1", flavour: "rt-amd64", short: "rt"}},
		{name: "debian:6.16/amd64", want: query{series: "6.16", flavour: "amd64", short: "amd64"}},
		{name: "debian:6.1/cloud-amd64", want: query{series: "6.1", flavour: "cloud-amd64", short: "cloud-amd64"}},
		{name: "debian:linux-image-6.1.0-50-cloud-amd64", want: query{pkg: "linux-image-6.1.0-50-cloud-amd64"}},
		{name: "debian:6.12/cloud@bookworm", want: query{series: "6.12", flavour: "cloud-amd64", short: "cloud", suite: "bookworm"}},
		{name: "debian:linux-image-6.1.0-50-cloud-amd64@trixie-backports", want: query{pkg: "linux-image-6.1.0-50-cloud-amd64", suite: "trixie-backports"}},
		{name: "debian:6.12@", err: `"" is not a suite name`},
		{name: "debian:6.1/arm64", err: `kernel "debian:6.1/arm64": unknown flavour "arm64" (known: cloud, amd64, rt)`},
		{name: "debian:bookworm", err: `"bookworm" is neither a series`},
		{name: "debian:", err: `"" is neither a series`},
		{name: "ubuntu:6.8", err: `kernel "ubuntu:6.8": unknown kind of name`},
		{name: "vmlinuz", err: "a path to a file starting with /, ./ or ../"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseName(tc.name)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			tc.want.name = tc.name
			assert.DeepEqual(t, got, tc.want, cmpQuery)
		})
	}
}

var cmpQuery = gocmp.AllowUnexported(query{})

func TestParseImage(t *testing.T) {
	for _, tc := range []struct {
		pkg, flavour, ver string
		unsigned, ok      bool
	}{
		{"linux-image-6.1.0-50-cloud-amd64", "cloud-amd64", "6.1.0-50", false, true},
		{"linux-image-6.1.0-50-cloud-amd64-unsigned", "cloud-amd64", "6.1.0-50", true, true},
		{"linux-image-6.12.117+deb12-cloud-amd64", "cloud-amd64", "6.12.117+deb12", false, true},
		{"linux-image-6.12.90+deb12.1-cloud-amd64", "cloud-amd64", "6.12.90+deb12.1", false, true},
		{"linux-image-7.3.4+deb13-rt-amd64", "rt-amd64", "7.3.4+deb13", false, true},
		{"linux-image-6.1.0-50-amd64", "amd64", "6.1.0-50", false, true},
		// Another flavour that ends like this one.
		{"linux-image-6.1.0-50-cloud-amd64", "amd64", "", false, false},
		{"linux-image-6.1.0-50-rt-amd64", "amd64", "", false, false},
		// Debug symbols and meta packages.
		{"linux-image-6.1.0-50-cloud-amd64-dbg", "cloud-amd64", "", false, false},
		{"linux-image-cloud-amd64", "cloud-amd64", "", false, false},
		{"linux-image-6.12-cloud-amd64", "cloud-amd64", "6.12", false, true}, // a version, but excluded by inSeries
		{"linux-headers-6.1.0-50-cloud-amd64", "cloud-amd64", "", false, false},
		{"linux-image-amd64-signed-template", "amd64", "", false, false},
	} {
		ver, unsigned, ok := parseImage(tc.pkg, tc.flavour)
		assert.Check(t, is.Equal(ver, tc.ver), "%s %s", tc.pkg, tc.flavour)
		assert.Check(t, is.Equal(unsigned, tc.unsigned), "%s %s", tc.pkg, tc.flavour)
		assert.Check(t, is.Equal(ok, tc.ok), "%s %s", tc.pkg, tc.flavour)
	}
}

func TestInSeries(t *testing.T) {
	for _, tc := range []struct {
		ver, series string
		want        bool
	}{
		{"6.1.0-50", "6.1", true},
		{"6.12.117+deb12", "6.1", false},
		{"6.12.117+deb12", "6.12", true},
		{"6.12", "6.12", false}, // the meta package linux-image-6.12-cloud-amd64
		{"6.16.3+deb13", "6.16", true},
		{"6.16.3+deb13", "6.1", false},
		{"7.1.13+deb13", "7.1", true},
		{"7.10.1+deb14", "7.1", false},
		{"6.1+x", "6.1", true},
		{"6.1.0-50", "6", true},
	} {
		assert.Check(t, is.Equal(inSeries(tc.ver, tc.series), tc.want), "%s in %s", tc.ver, tc.series)
	}
}

func TestParseNameExactVersion(t *testing.T) {
	q, err := parseName("debian:linux-image-6.1.0-10-cloud-amd64=6.1.38-1@bookworm-security")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(q.pkg, "linux-image-6.1.0-10-cloud-amd64"))
	assert.Check(t, is.Equal(q.version, "6.1.38-1"))
	assert.Check(t, is.Equal(q.suite, "bookworm-security"))
	_, err = parseName("debian:linux-image-x=1 2")
	assert.ErrorContains(t, err, "is not a Debian version")
}
