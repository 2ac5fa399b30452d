package kernels

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// matrices returns every matrix of c by name.
func matrices(t *testing.T, c *Catalog) map[string][]string {
	out := map[string][]string{}
	for _, name := range c.Names() {
		m, err := c.Matrix(name)
		assert.NilError(t, err)
		out[name] = m
	}
	return out
}

func TestParseCatalog(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       map[string][]string
		kernels    map[string]string // named kernel → selector
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
		{
			name:    "named kernels",
			text:    "mine = ./bzImage,config=.config\nlts=debian:6.12/cloud@trixie\nbuilt = src:/usr/src/linux,j=2\n[a]\nmine\ndebian:6.1\nlts\n",
			want:    map[string][]string{"a": {"mine", "debian:6.1", "lts"}},
			kernels: map[string]string{"mine": "./bzImage,config=.config", "lts": "debian:6.12/cloud@trixie", "built": "src:/usr/src/linux,j=2"},
		},
		{name: "outside a matrix", text: "debian:6.1\n", err: `line 1: kernel "debian:6.1" outside a [matrix]`},
		{name: "bad selector", text: "[a]\ndebian:6.1/arm64\n", err: `line 2: kernel "debian:6.1/arm64": unknown flavour`},
		{name: "bad suite", text: "[a]\ndebian:6.1@Bookworm\n", err: `line 2: kernel "debian:6.1@Bookworm": "Bookworm" is not a suite name`},
		{name: "two on a line", text: "[a]\ndebian:6.1 debian:6.12\n", err: "line 2: one kernel per line"},
		{name: "duplicate kernel", text: "[a]\ndebian:6.1\ndebian:6.1\n", err: "line 3: debian:6.1 listed twice in [a]"},
		{name: "duplicate matrix", text: "[a]\ndebian:6.1\n[a]\n", err: `line 3: matrix "a" defined twice`},
		{name: "empty matrix", text: "[a]\n[b]\ndebian:6.1\n", err: `line 1: matrix "a" is empty`},
		{name: "bad header", text: "[a\n", err: "line 1: want [NAME] to start a matrix, or [daemon NAME]"},
		{name: "unknown named kernel", text: "[a]\ndebian:6.1\nmine\n", err: `line 3: "mine" in [a] is no named kernel of the catalog`},
		{name: "named kernel in a matrix", text: "[a]\ndebian:6.1\nmine = debian:6.12\n", err: `line 3: named kernel "mine" inside [a]: define named kernels before the first matrix`},
		{name: "named kernel twice", text: "mine = debian:6.1\nmine = debian:6.12\n", err: `line 2: kernel "mine" defined twice`},
		{name: "named kernel, bad selector", text: "mine = debian:6.1/arm64\n", err: `line 1: mine: kernel "debian:6.1/arm64": unknown flavour`},
		{name: "named kernel of a named kernel", text: "a = debian:6.1\nb = a\n", err: `line 2: b: kernel "a": unknown kind of name`},
		{name: "named kernel without selector", text: "mine =\n", err: `line 1: mine: no selector`},
		{name: "src without folder", text: "mine = src:,j=2\n", err: `line 1: mine: kernel "src:,j=2": want src:DIR`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCatalog(strings.NewReader(tc.text))
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				var ce *CatalogError
				assert.Check(t, errors.As(err, &ce))
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, matrices(t, c), tc.want)
			got := map[string]string{}
			for _, name := range c.Kernels() {
				sel, origin, ok := c.Kernel(name)
				assert.Check(t, ok)
				assert.Check(t, is.Equal(origin, ""))
				got[name] = sel
			}
			if tc.kernels == nil {
				tc.kernels = map[string]string{}
			}
			assert.DeepEqual(t, got, tc.kernels)
		})
	}
}

// TestCatalogOverlay layers a user's catalog file over a base catalog.
func TestCatalogOverlay(t *testing.T) {
	base, err := ParseCatalog(strings.NewReader("base-k = debian:6.1\n[default]\ndebian:6.1\ndebian:6.12\n[wide]\ndebian:6.1\ndebian:7.3\n"))
	assert.NilError(t, err)
	const file = "/home/u/.config/fusematrix/catalog.conf"
	type named struct{ Selector, Origin string }
	for _, tc := range []struct {
		name     string
		text     string
		names    []string            // matrices in order
		matrices map[string][]string // those that differ from base
		origins  map[string]string   // matrix → file, for every matrix
		kernels  map[string]named
		err      string
	}{
		{
			name:     "a matrix replaced, one added",
			text:     "mine = ./bzImage\n[default]\nmine\ndebian:6.12\n[mine]\nmine\nbase-k\n",
			names:    []string{"default", "wide", "mine"},
			matrices: map[string][]string{"default": {"mine", "debian:6.12"}, "mine": {"mine", "base-k"}},
			origins:  map[string]string{"default": file, "wide": "", "mine": file},
			kernels:  map[string]named{"base-k": {"debian:6.1", ""}, "mine": {"./bzImage", file}},
		},
		{
			name:    "a named kernel replaced",
			text:    "base-k = debian:6.12/rt\n",
			names:   []string{"default", "wide"},
			origins: map[string]string{"default": "", "wide": ""},
			kernels: map[string]named{"base-k": {"debian:6.12/rt", file}},
		},
		{
			name:  "empty file changes nothing",
			text:  "# nothing yet\n",
			names: []string{"default", "wide"}, origins: map[string]string{"default": "", "wide": ""},
			kernels: map[string]named{"base-k": {"debian:6.1", ""}},
		},
		{name: "parse error names file and line", text: "[default]\ndebian:6.1\n\ndebian:6.1/arm64\n", err: file + `:4: kernel "debian:6.1/arm64": unknown flavour`},
		{name: "unknown kernel names file and line", text: "\n[x]\nnot-defined\n", err: file + `:3: "not-defined" in [x] is no named kernel`},
		{name: "empty matrix names file and line", text: "[x]\n", err: file + `:1: matrix "x" is empty`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := base.Overlay(file, strings.NewReader(tc.text))
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, c.Files(), []string{"", file})
			assert.DeepEqual(t, c.Names(), tc.names)
			want := matrices(t, base)
			for name, m := range tc.matrices {
				want[name] = m
			}
			assert.DeepEqual(t, matrices(t, c), want)
			for _, name := range c.Names() {
				assert.Check(t, is.Equal(c.Origin(name), tc.origins[name]), name)
			}
			got := map[string]named{}
			for _, name := range c.Kernels() {
				sel, origin, _ := c.Kernel(name)
				got[name] = named{sel, origin}
			}
			assert.DeepEqual(t, got, tc.kernels)
			// The base is left as it was.
			assert.DeepEqual(t, base.Names(), []string{"default", "wide"})
			m, _ := base.Matrix("default")
			assert.DeepEqual(t, m, []string{"debian:6.1", "debian:6.12"})
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

	// Select: arguments win over the matrix, "all" is every kernel, and
	// the source says which.
	for _, tc := range []struct {
		matrix string
		args   []string
		want   []string
		source string
	}{
		{"x", []string{"./bzImage"}, []string{"./bzImage"}, ""},
		{"y", nil, []string{"debian:6.12", "debian:7.3"}, "matrix y from "},
		{"all", nil, []string{"debian:6.1", "debian:6.12", "debian:7.3"}, "every matrix of "},
	} {
		names, source, err := c.Select(tc.matrix, tc.args)
		assert.NilError(t, err)
		assert.DeepEqual(t, names, tc.want)
		assert.Check(t, strings.HasPrefix(source, tc.source), "%q", source)
		assert.Check(t, (source == "") == (tc.source == ""), "%q", source)
	}
	_, _, err = c.Select("z", nil)
	assert.ErrorContains(t, err, `no kernel matrix "z"`)
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

// TestUserCatalog checks where the catalog in effect comes from: the file
// named, else $FUSEMATRIX_CATALOG, else the user's config directory.
func TestUserCatalog(t *testing.T) {
	write := func(t *testing.T, dir, text string) string {
		name := filepath.Join(dir, "catalog.conf")
		assert.NilError(t, os.MkdirAll(dir, 0o755))
		assert.NilError(t, os.WriteFile(name, []byte(text), 0o644))
		return name
	}
	for _, tc := range []struct {
		name string
		// setup returns the file to name, after setting the environment.
		setup  func(t *testing.T, config string) string
		origin string // "config", "env" or "arg": which file [default] comes from; "" built in
		err    string
	}{
		{name: "none", setup: func(t *testing.T, config string) string { return "" }},
		{
			name: "config directory",
			setup: func(t *testing.T, config string) string {
				write(t, filepath.Join(config, "fusematrix"), "[default]\ndebian:7.3\n")
				return ""
			},
			origin: "config",
		},
		{
			name: "environment before config directory",
			setup: func(t *testing.T, config string) string {
				write(t, filepath.Join(config, "fusematrix"), "[default]\ndebian:7.3\n")
				t.Setenv(CatalogEnv, write(t, filepath.Join(t.TempDir(), "env"), "[default]\ndebian:7.3\n"))
				return ""
			},
			origin: "env",
		},
		{
			name: "argument before environment",
			setup: func(t *testing.T, config string) string {
				t.Setenv(CatalogEnv, write(t, filepath.Join(t.TempDir(), "env"), "[default]\ndebian:7.3\n"))
				return write(t, filepath.Join(t.TempDir(), "arg"), "[default]\ndebian:7.3\n")
			},
			origin: "arg",
		},
		{
			name:  "named file missing",
			setup: func(t *testing.T, config string) string { return filepath.Join(t.TempDir(), "nothing.conf") },
			err:   "catalog: open ",
		},
		{
			name: "error in the config directory's file",
			setup: func(t *testing.T, config string) string {
				write(t, filepath.Join(config, "fusematrix"), "[default]\ndebian:7.3 debian:6.1\n")
				return ""
			},
			err: filepath.Join("fusematrix", "catalog.conf") + ":2: one kernel per line",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			config := t.TempDir()
			t.Setenv("XDG_CONFIG_HOME", config)
			t.Setenv(CatalogEnv, "")
			file := tc.setup(t, config)
			c, err := UserCatalog(file)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			origin := c.Origin("default")
			switch tc.origin {
			case "":
				assert.Check(t, c == DefaultCatalog)
			case "config":
				assert.Equal(t, origin, filepath.Join(config, "fusematrix", "catalog.conf"))
			default:
				assert.Equal(t, filepath.Base(filepath.Dir(origin)), tc.origin)
			}
			if tc.origin != "" {
				m, err := c.Matrix("default")
				assert.NilError(t, err)
				assert.DeepEqual(t, m, []string{"debian:7.3"})
				assert.Equal(t, c.Origin("wide"), BuiltinCatalog)
			}
		})
	}
}

// A named kernel resolves under its own name to what its selector
// resolves to.
func TestResolveNamedKernel(t *testing.T) {
	ctx := context.Background()
	srv := testArchive(t)
	opts, _ := testOptions(t, srv)
	c, err := DefaultCatalog.Overlay("user.conf", strings.NewReader("old = debian:6.1/cloud\nnope = debian:6.99\n"))
	assert.NilError(t, err)
	opts.Catalog = c
	k, err := Resolve(ctx, "old", opts)
	assert.NilError(t, err)
	assert.Equal(t, k.Name, "old")
	assert.Equal(t, k.Source, "linux-image-6.1.0-56-cloud-amd64 6.1.192-2 (bookworm-security)")
	res, err := Lookup(ctx, "old", opts)
	assert.NilError(t, err)
	assert.Equal(t, res.Name, "old")
	assert.Equal(t, res.Image.Name, "linux-image-6.1.0-56-cloud-amd64")
	_, err = Resolve(ctx, "nope", opts)
	assert.ErrorContains(t, err, `nope: kernel "debian:6.99" not found`)
	// Without the catalog the name means nothing.
	opts.Catalog = nil
	_, err = Resolve(ctx, "old", opts)
	assert.ErrorContains(t, err, `kernel "old": unknown kind of name`)
}

// A catalog's [daemon NAME] sections are kept as written, with their line
// numbers, between matrices or after them; a later layer's replaces an
// earlier one's of the same name.
func TestCatalogDaemons(t *testing.T) {
	const text = `[default]
debian:6.1
[daemon myfs]   # my FUSE file system
binary = ./my-fs
args = -f {backing} {mnt}

env = A=1
[wide]
debian:7.3
[daemon other]
binary = /bin/other
`
	base, err := DefaultCatalog.Overlay("base.conf", strings.NewReader(text))
	assert.NilError(t, err)
	// After the built-in catalog's own clients.
	assert.DeepEqual(t, base.Daemons(), append(DefaultCatalog.Daemons(), "myfs", "other"))
	d, ok := base.Daemon("myfs")
	assert.Assert(t, ok)
	assert.DeepEqual(t, d, Section{Name: "myfs", File: "base.conf", Line: 3, Lines: []SectionLine{
		{4, "binary = ./my-fs"}, {5, "args = -f {backing} {mnt}"}, {7, "env = A=1"}}})
	m, err := base.Matrix("wide")
	assert.NilError(t, err)
	assert.DeepEqual(t, m, []string{"debian:7.3"})

	over, err := base.Overlay("user.conf", strings.NewReader("[daemon myfs]\nbinary = /usr/bin/myfs\n[daemon bindfs]\nbinary = debian:bindfs@trixie\n"))
	assert.NilError(t, err)
	d, _ = over.Daemon("myfs")
	assert.Check(t, is.Equal(d.File, "user.conf"))
	assert.Check(t, is.Len(d.Lines, 1))
	_, ok = over.Daemon("other")
	assert.Check(t, ok)
	// A user's section replaces a built-in client of the same name.
	d, _ = over.Daemon("bindfs")
	assert.Check(t, is.Equal(d.File, "user.conf"))
	_, ok = over.Daemon("none")
	assert.Check(t, !ok)

	for _, tc := range []struct{ text, err string }{
		{"[daemon a b]\n", "x.conf:1: want [daemon NAME]"},
		{"[daemon ]\n", "x.conf:1: want [daemon NAME]"},
		{"[daemon a]\n[daemon a]\n", `x.conf:2: daemon "a" defined twice`},
		{"[daemon clients]\nbinary = /bin/true\n", `x.conf:1: [daemon clients]: -daemon clients stands for every daemon of the catalog; name this one otherwise`},
	} {
		_, err := DefaultCatalog.Overlay("x.conf", strings.NewReader(tc.text))
		assert.Check(t, is.ErrorContains(err, tc.err), tc.text)
	}
}
