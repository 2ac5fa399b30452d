package kernels

import (
	"slices"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// FuzzParseName: a kernel name (command line, catalog) never panics the
// parser, and a name it accepts is either an exact package or a series
// and one of the known flavours, with a well-formed suite or none; the
// catalog's selector check agrees with it. Seeds: TestParseName's names.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"debian:6.12/cloud", "debian:6.1", "debian:7.1/rt", "debian:6.16/amd64", "debian:6.1/cloud-amd64",
		"debian:linux-image-6.1.0-50-cloud-amd64", "debian:6.12/cloud@bookworm",
		"debian:linux-image-6.1.0-50-cloud-amd64@trixie-backports", "debian:6.12@", "debian:6.1/arm64",
		"debian:bookworm", "debian:", "ubuntu:6.8", "vmlinuz",
	} {
		f.Add(s)
	}
	known := slices.Collect(func(yield func(string) bool) {
		for _, full := range flavours {
			if !yield(full) {
				return
			}
		}
	})
	f.Fuzz(func(t *testing.T, name string) {
		q, err := parseName(name)
		if err != nil {
			assert.Assert(t, strings.Contains(err.Error(), "kernel "), "error without the name: %v", err)
			return
		}
		assert.Equal(t, q.name, name)
		assert.Assert(t, strings.HasPrefix(name, "debian:"))
		assert.Assert(t, q.suite == "" || suitePattern.MatchString(q.suite), "suite %q", q.suite)
		if q.pkg != "" {
			assert.Assert(t, strings.HasPrefix(q.pkg, "linux-") && q.series == "" && q.flavour == "")
		} else {
			assert.Assert(t, seriesPattern.MatchString(q.series), "series %q", q.series)
			assert.Assert(t, slices.Contains(known, q.flavour), "flavour %q", q.flavour)
		}
		assert.Assert(t, !strings.ContainsAny(q.pkg+q.series+q.suite, "@"), "%+v", q)
		assert.NilError(t, checkSelector(name))
		// The suites searched are never none.
		assert.Assert(t, len(q.suites([]string{"bookworm", "bookworm-security", "trixie"})) > 0)
	})
}

// FuzzParseImage: splitting a package name into the kernel release's
// version never panics, and what it accepts is exactly
// linux-image-<ver>-<flavour>[-unsigned] for that version, which belongs
// to its own major.minor series unless it is a bare series (a meta
// package). Module paths give their release the same way. Seeds:
// TestParseImage's names.
func FuzzParseImage(f *testing.F) {
	for _, s := range [][2]string{
		{"linux-image-6.1.0-50-cloud-amd64", "cloud-amd64"},
		{"linux-image-6.1.0-50-cloud-amd64-unsigned", "cloud-amd64"},
		{"linux-image-6.12.117+deb12-cloud-amd64", "cloud-amd64"},
		{"linux-image-6.12.90+deb12.1-cloud-amd64", "cloud-amd64"},
		{"linux-image-7.3.4+deb13-rt-amd64", "rt-amd64"},
		{"linux-image-6.1.0-50-cloud-amd64", "amd64"},
		{"linux-image-6.1.0-50-cloud-amd64-dbg", "cloud-amd64"},
		{"linux-image-cloud-amd64", "cloud-amd64"},
		{"linux-image-6.12-cloud-amd64", "cloud-amd64"},
		{"linux-headers-6.1.0-50-cloud-amd64", "cloud-amd64"},
		{"usr/lib/modules/7.3.4+deb13-cloud-amd64/kernel/fs/fuse/fuse.ko.xz", "cloud-amd64"},
		{"lib/modules/6.1.0-50-cloud-amd64/modules.builtin", "amd64"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, flavour string) {
		if dir, release, rest, ok := modulesPrefix(name); ok {
			assert.Assert(t, release != "" && rest != "" && !strings.Contains(release, "/"))
			assert.Equal(t, dir+"/"+rest, name)
		}
		keepKernelFile(name)
		ver, unsigned, ok := parseImage(name, flavour)
		if !ok {
			assert.Equal(t, ver, "")
			return
		}
		assert.Assert(t, imageVersion.MatchString(ver), "version %q", ver)
		want := "linux-image-" + ver + "-" + flavour
		if unsigned {
			want += "-unsigned"
		}
		assert.Equal(t, name, want)
		series := majorMinor.FindString(ver)
		assert.Assert(t, series != "")
		assert.Equal(t, inSeries(ver, series), ver != series, "%q in %q", ver, series)
	})
}

// FuzzParseCatalog: a catalog file never panics the parser; one it
// accepts has no empty matrix, no kernel twice in a matrix, only named
// kernels with valid selectors, reads back the same when written out
// again, and layers over the built-in catalog without a panic. Seeds: the
// built-in catalog and TestParseCatalog's texts.
func FuzzParseCatalog(f *testing.F) {
	f.Add(catalogText)
	for _, s := range []string{
		"# head\n\n[a]\ndebian:6.1/cloud@bookworm # trailing\n  debian:6.12\n[b]\n./bzImage,modules=m,config=c\ndebian:linux-image-6.1.0-50-cloud-amd64\n",
		"mine = ./bzImage,config=.config\nlts=debian:6.12/cloud@trixie\nbuilt = src:/usr/src/linux,j=2\n[a]\nmine\ndebian:6.1\nlts\n",
		"debian:6.1\n", "[a]\ndebian:6.1 debian:6.12\n", "[a]\ndebian:6.1\ndebian:6.1\n", "[a]\n[b]\ndebian:6.1\n",
		"[a\n", "[a]\ndebian:6.1\nmine = debian:6.12\n", "a = debian:6.1\nb = a\n", "mine =\n", "mine = src:,j=2\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseCatalog(strings.NewReader(text))
		if err != nil {
			return
		}
		var out strings.Builder
		for _, k := range c.Kernels() {
			sel, _, ok := c.Kernel(k)
			assert.Assert(t, ok)
			assert.Assert(t, kernelName.MatchString(k), "named kernel %q", k)
			assert.NilError(t, checkSelector(sel))
			out.WriteString(k + " = " + sel + "\n")
		}
		for _, name := range c.Names() {
			m, err := c.Matrix(name)
			assert.NilError(t, err)
			assert.Assert(t, len(m) > 0, "matrix %q is empty", name)
			out.WriteString("[" + name + "]\n")
			for i, k := range m {
				assert.Assert(t, !slices.Contains(m[:i], k), "%q twice in [%s]", k, name)
				assert.Assert(t, !strings.ContainsAny(k, " \t#"), "kernel %q", k)
				out.WriteString(k + "\n")
			}
		}
		again, err := ParseCatalog(strings.NewReader(out.String()))
		assert.NilError(t, err, "written out:\n%s", out.String())
		assert.DeepEqual(t, again.Names(), c.Names())
		assert.DeepEqual(t, again.Kernels(), c.Kernels())
		for _, name := range c.Names() {
			a, _ := c.Matrix(name)
			b, _ := again.Matrix(name)
			assert.DeepEqual(t, a, b)
		}
		if layered, err := DefaultCatalog.Overlay("user.conf", strings.NewReader(text)); err == nil {
			layered.Selectors()
		}
	})
}
