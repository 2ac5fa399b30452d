package kernels

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParseCatalog(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       map[string][]string
		err        string
	}{
		{
			name: "matrices, comments, paths",
			text: "# head\n\n[a]\ndebian:6.1/cloud@bookworm # trailing\n  debian:6.12\n[b]\n./bzImage,modules=m,config=c\ndebian:linux-image-6.1.0-50-cloud-amd64\n",
			want: map[string][]string{
				"a": {"debian:6.1/cloud@bookworm", "debian:6.12"},
				"b": {"./bzImage,modules=m,config=c", "debian:linux-image-6.1.0-50-cloud-amd64"},
			},
		},
		{name: "outside a matrix", text: "debian:6.1\n", err: `line 1: kernel "debian:6.1" outside a [matrix]`},
		{name: "bad selector", text: "[a]\ndebian:6.1/arm64\n", err: `line 2: kernel "debian:6.1/arm64": unknown flavour`},
		{name: "bad suite", text: "[a]\ndebian:6.1@Bookworm\n", err: `line 2: kernel "debian:6.1@Bookworm": "Bookworm" is not a suite name`},
		{name: "two on a line", text: "[a]\ndebian:6.1 debian:6.12\n", err: "line 2: one kernel per line"},
		{name: "duplicate kernel", text: "[a]\ndebian:6.1\ndebian:6.1\n", err: "line 3: debian:6.1 listed twice in [a]"},
		{name: "duplicate matrix", text: "[a]\ndebian:6.1\n[a]\n", err: `line 3: matrix "a" defined twice`},
		{name: "empty matrix", text: "[a]\n[b]\ndebian:6.1\n", err: `matrix "a" is empty`},
		{name: "bad header", text: "[a\n", err: "line 1: want [name]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCatalog(strings.NewReader(tc.text))
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, c.matrices, tc.want)
		})
	}
}

func TestCatalogMatrix(t *testing.T) {
	c, err := ParseCatalog(strings.NewReader("[x]\ndebian:6.1\ndebian:6.12\n[y]\ndebian:6.12\ndebian:7.3\n"))
	assert.NilError(t, err)
	assert.DeepEqual(t, c.Names(), []string{"x", "y"})
	assert.DeepEqual(t, c.Selectors(), []string{"debian:6.1", "debian:6.12", "debian:7.3"})
	_, err = c.Matrix("z")
	assert.Error(t, err, `no kernel matrix "z" in the catalog (known: x, y)`)
	m, err := c.Matrix("x")
	assert.NilError(t, err)
	m[0] = "changed"
	again, _ := c.Matrix("x")
	assert.Equal(t, again[0], "debian:6.1", "Matrix must return a copy")
}

// TestEmbeddedCatalog checks the catalog compiled into fusematrix: the
// default matrix is Debian 12's two kernels, and the wide one covers every
// series the issue names, each once.
func TestEmbeddedCatalog(t *testing.T) {
	assert.DeepEqual(t, DefaultMatrix, []string{"debian:6.1/cloud@bookworm", "debian:6.12/cloud@bookworm"})
	wide, err := DefaultCatalog.Matrix("wide")
	assert.NilError(t, err)
	for _, series := range []string{"6.1", "6.12", "6.16", "6.17", "6.18", "6.19", "7.0", "7.1", "7.2", "7.3"} {
		found := false
		for _, name := range wide {
			q, err := parseName(name)
			assert.NilError(t, err)
			found = found || q.series == series
		}
		assert.Check(t, found, "no %s kernel in the wide matrix", series)
	}
	for _, name := range DefaultMatrix {
		assert.Check(t, is.Contains(wide, name))
	}
}
