package debian

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestReadAptSources(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string // relative to the apt directory
		want  map[string]string
	}{
		{
			name: "deb822 with two stanzas and comments",
			files: map[string]string{"sources.list.d/debian.sources": `Types: deb
# a comment inside a stanza
URIs: http://archive.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security/
Suites: bookworm-security
Components: main contrib
`},
			want: map[string]string{
				"bookworm":          "http://archive.example/debian",
				"bookworm-updates":  "http://archive.example/debian",
				"bookworm-security": "http://security.example/debian-security",
			},
		},
		{
			name: "deb822 Enabled no, deb-src, other architecture, no main, file URI",
			files: map[string]string{"sources.list.d/x.sources": `Types: deb
URIs: http://off.example/debian
Suites: off
Components: main
Enabled: no

Types: deb-src
URIs: http://src.example/debian
Suites: src
Components: main

Types: deb
URIs: http://arm.example/debian
Suites: arm
Components: main
Architectures: arm64

Types: deb
URIs: http://contrib.example/debian
Suites: contrib
Components: contrib non-free

Types: deb
URIs: file:///srv/mirror
Suites: local
Components: main

types: deb deb-src
uris: https://both.example/debian
suites: both
components: main
architectures: amd64 arm64
`},
			want: map[string]string{"both": "https://both.example/debian"},
		},
		{
			name: "deb822 with an embedded key in continuation lines",
			files: map[string]string{"sources.list.d/key.sources": `Types: deb
URIs: http://key.example/debian
Suites: trixie
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBF...
 -----END PGP PUBLIC KEY BLOCK-----
`},
			want: map[string]string{"trixie": "http://key.example/debian"},
		},
		{
			name: "one-line format with options and comments",
			files: map[string]string{"sources.list": `# the main archive
deb http://archive.example/debian bookworm main contrib # trailing comment
deb-src http://archive.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] https://security.example/debian-security bookworm-security main
deb [arch=arm64] http://arm.example/debian arm main
deb http://contrib.example/debian contrib contrib

`},
			want: map[string]string{
				"bookworm":          "http://archive.example/debian",
				"bookworm-security": "https://security.example/debian-security",
			},
		},
		{
			name: "sources.list first, then sources.list.d in name order; first wins; other names ignored",
			files: map[string]string{
				"sources.list":                            "deb http://first.example/debian bookworm main\n",
				"sources.list.d/a.list":                   "deb http://second.example/debian bookworm main\ndeb http://a.example/debian sid main\n",
				"sources.list.d/b.sources":                "Types: deb\nURIs: http://b.example/debian\nSuites: sid experimental\nComponents: main\n",
				"sources.list.d/c.list.disabled-by-farm":  "deb http://disabled.example/debian trixie main\n",
				"sources.list.d/d.sources.disabled-by-me": "Types: deb\nURIs: http://disabled.example/debian\nSuites: trixie\nComponents: main\n",
			},
			want: map[string]string{
				"bookworm":     "http://first.example/debian",
				"sid":          "http://a.example/debian",
				"experimental": "http://b.example/debian",
			},
		},
		{
			name:  "nothing configured",
			files: map[string]string{},
			want:  map[string]string{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				p := filepath.Join(dir, name)
				assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
				assert.NilError(t, os.WriteFile(p, []byte(content), 0o644))
			}
			m, err := ReadAptSources(dir, "amd64")
			assert.NilError(t, err)
			assert.DeepEqual(t, m.Suites, tc.want)
		})
	}
}

func TestReadAptSourcesErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, content, want string
	}{
		{"unterminated options", "sources.list", "deb [arch=amd64 http://x.example/debian sid main\n", "unterminated [options]"},
		{"too few fields", "sources.list", "deb http://x.example/debian\n", "line 1"},
		{"deb822 line without colon", "sources.list.d/x.sources", "Types: deb\nnonsense\n", "line 2"},
		{"deb822 stray continuation", "sources.list.d/x.sources", " continued\n", "continuation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, tc.file)
			assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			assert.NilError(t, os.WriteFile(p, []byte(tc.content), 0o644))
			_, err := ReadAptSources(dir, "amd64")
			assert.ErrorContains(t, err, tc.want)
			assert.ErrorContains(t, err, p)
		})
	}
}

func TestMirrorsURI(t *testing.T) {
	apt := Mirrors{Suites: map[string]string{
		"bookworm":          "http://archive.example/debian",
		"bookworm-security": "http://security.example/debian-security",
	}}
	override, err := OverrideMirrors("http://mirror.example/debian/", "")
	assert.NilError(t, err)
	given, err := OverrideMirrors("http://mirror.example/debian/", "http://sec.example/debian-security")
	assert.NilError(t, err)
	for _, tc := range []struct {
		name     string
		mirrors  Mirrors
		suite    string
		want     string // "" for none
		required bool
	}{
		{"configured", apt, "bookworm", "http://archive.example/debian", true},
		{"configured security", apt, "bookworm-security", "http://security.example/debian-security", true},
		{"backports live with their codename", apt, "bookworm-backports", "http://archive.example/debian", false},
		{"another release lives where this one does", apt, "trixie", "http://archive.example/debian", false},
		{"and its backports", apt, "sid", "http://archive.example/debian", false},
		{"another release's security lives where this one's does", apt, "trixie-security", "http://security.example/debian-security", false},
		{"security never falls back to the codename", Mirrors{Suites: map[string]string{"trixie": "http://a.example/debian"}}, "trixie-security", "", false},
		{"an archive without a Debian release is no sibling", Mirrors{Suites: map[string]string{"nodistro": "http://a.example/node"}}, "trixie", "", false},
		{"override serves every codename", override, "trixie", "http://mirror.example/debian", false},
		{"override serves every suite", override, "trixie-backports", "http://mirror.example/debian", false},
		{"override derives security", override, "trixie-security", "http://mirror.example/debian-security", false},
		{"override with a security archive given", given, "trixie-security", "http://sec.example/debian-security", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.mirrors.URI(tc.suite)
			assert.Check(t, is.Equal(got, tc.want))
			assert.Check(t, is.Equal(ok, tc.want != ""))
			assert.Check(t, is.Equal(tc.mirrors.Required(tc.suite), tc.required))
		})
	}
}

func TestOverrideMirrors(t *testing.T) {
	for _, tc := range []struct {
		mirror, security string
		want             Mirrors
		err              string
	}{
		{mirror: "http://m.example/debian", want: Mirrors{Default: "http://m.example/debian", Security: "http://m.example/debian-security", SecurityDerived: true}},
		{mirror: "https://m.example/a/debian/", want: Mirrors{Default: "https://m.example/a/debian", Security: "https://m.example/a/debian-security", SecurityDerived: true}},
		{mirror: "http://m.example/debian", security: "http://s.example/sec/", want: Mirrors{Default: "http://m.example/debian", Security: "http://s.example/sec"}},
		{mirror: "http://m.example", err: "set FUSEMATRIX_SECURITY_MIRROR"},
		{mirror: "ftp://m.example/debian", err: "only http:// and https://"},
		{mirror: "m.example/debian", err: "only http:// and https://"},
		{mirror: "http://m.example/debian", security: "file:///srv", err: "security mirror"},
	} {
		t.Run(tc.mirror+" "+tc.security, func(t *testing.T) {
			got, err := OverrideMirrors(tc.mirror, tc.security)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want)
		})
	}
}
