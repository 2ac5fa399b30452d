package initramfs

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/fs"
)

// fakeModule is a module without dependencies, so go list works offline:
// an agent that imports lib (which embeds a file), an init, and a package
// nobody imports.
func fakeModule(t testing.TB) string {
	t.Helper()
	dir := fs.NewDir(t, "fakemodule",
		fs.WithFile("go.mod", "module example.com/fake\n\ngo 1.22\n"),
		fs.WithDir("cmd",
			fs.WithDir("agent", fs.WithFile("main.go", "package main\n\nimport \"example.com/fake/lib\"\n\nfunc main() { lib.Run() }\n")),
			fs.WithDir("init", fs.WithFile("main.go", "package main\n\nfunc main() {}\n")),
		),
		fs.WithDir("lib",
			fs.WithFile("lib.go", "package lib\n\nimport _ \"embed\"\n\n//go:embed data.txt\nvar data string\n\nfunc Run() { println(data) }\n"),
			fs.WithFile("data.txt", "hello\n"),
			fs.WithFile("lib_windows.go", "package lib\n\nvar windowsOnly = 1\n"),
			fs.WithFile("lib_test.go", "package lib\n"),
		),
		fs.WithDir("other", fs.WithFile("other.go", "package other\n")),
	)
	return dir.Path()
}

func fakeOptions(dir string) Options {
	return Options{
		ModuleDir: dir,
		AgentPkg:  "example.com/fake/cmd/agent",
		InitPkg:   "example.com/fake/cmd/init",
		CacheDir:  filepath.Join(dir, "cache"),
	}
}

func keyOf(t *testing.T, o Options) string {
	t.Helper()
	o, err := o.withDefaults()
	assert.NilError(t, err)
	k, err := cacheKey(context.Background(), o)
	assert.NilError(t, err)
	return k
}

func TestCacheKey(t *testing.T) {
	write := func(rel, content string) func(t *testing.T, dir string, o *Options) {
		return func(t *testing.T, dir string, o *Options) {
			assert.NilError(t, os.WriteFile(filepath.Join(dir, rel), []byte(content), 0o644))
		}
	}
	for _, tc := range []struct {
		name    string
		change  func(t *testing.T, dir string, o *Options)
		changes bool
	}{
		{name: "nothing", change: func(*testing.T, string, *Options) {}},
		{name: "agent source", change: write("cmd/agent/main.go", "package main\n\nimport \"example.com/fake/lib\"\n\nfunc main() { lib.Run(); lib.Run() }\n"), changes: true},
		{name: "dependency source", change: write("lib/lib.go", "package lib\n\nimport _ \"embed\"\n\n//go:embed data.txt\nvar data string\n\nfunc Run() { print(data) }\n"), changes: true},
		{name: "new file in a dependency", change: write("lib/more.go", "package lib\n"), changes: true},
		{name: "embedded file", change: write("lib/data.txt", "bye\n"), changes: true},
		{name: "init source", change: write("cmd/init/main.go", "package main\n\nfunc main() { println() }\n"), changes: true},
		{name: "go.mod", change: write("go.mod", "module example.com/fake\n\ngo 1.23\n"), changes: true},
		{name: "go.sum appears", change: write("go.sum", "example.com/x v1.0.0 h1:AAAA=\n"), changes: true},
		{name: "agent args", change: func(_ *testing.T, _ string, o *Options) { o.AgentArgs = []string{"-v"} }, changes: true},
		{name: "package outside the graph", change: write("other/other.go", "package other\n\nvar X = 1\n")},
		{name: "test file", change: write("lib/lib_test.go", "package lib\n\nvar y = 2\n")},
		{name: "file for another GOOS", change: write("lib/lib_windows.go", "package lib\n\nvar windowsOnly = 2\n")},
		{name: "cache dir", change: func(_ *testing.T, dir string, o *Options) { o.CacheDir = filepath.Join(dir, "elsewhere") }},
		{name: "logger", change: func(_ *testing.T, _ string, o *Options) { o.Logf = t.Logf }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fakeModule(t)
			o := fakeOptions(dir)
			before := keyOf(t, o)
			tc.change(t, dir, &o)
			after := keyOf(t, o)
			if tc.changes {
				assert.Check(t, before != after, "key must change")
			} else {
				assert.Check(t, before == after, "key must not change")
			}
		})
	}
}

func TestCacheKeyIndependentOfLocation(t *testing.T) {
	// gobusybox builds with -trimpath, so the same sources in another
	// checkout make the same image.
	assert.Equal(t, keyOf(t, fakeOptions(fakeModule(t))), keyOf(t, fakeOptions(fakeModule(t))))
}

func TestCacheKeyErrors(t *testing.T) {
	dir := fakeModule(t)
	o := fakeOptions(dir)
	o.AgentPkg = "example.com/fake/cmd/missing"
	o, err := o.withDefaults()
	assert.NilError(t, err)
	_, err = cacheKey(context.Background(), o)
	assert.ErrorContains(t, err, "go list")
}

func TestOptionsDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{name: "no module dir", o: Options{}, want: "ModuleDir is required"},
		{name: "agent named like init", o: Options{ModuleDir: "/m", AgentPkg: "example.com/x/init"}, want: "same command name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.o.withDefaults()
			assert.ErrorContains(t, err, tc.want)
		})
	}
	o, err := Options{ModuleDir: "/m", CacheDir: "/c"}.withDefaults()
	assert.NilError(t, err)
	assert.Equal(t, o.AgentPkg, DefaultAgentPkg)
	assert.Equal(t, o.InitPkg, DefaultInitPkg)
}

// BenchmarkCacheKey measures the key computation a cache hit pays, on the
// fake module and on this project.
func BenchmarkCacheKey(b *testing.B) {
	for _, bc := range []struct {
		name    string
		options func(b *testing.B) Options
	}{
		{name: "fake module", options: func(b *testing.B) Options { return fakeOptions(fakeModule(b)) }},
		{name: "project", options: func(b *testing.B) Options { return projectOptions(b) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			o, err := bc.options(b).withDefaults()
			assert.NilError(b, err)
			for b.Loop() {
				if _, err := cacheKey(context.Background(), o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
