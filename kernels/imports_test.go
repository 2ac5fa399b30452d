package kernels

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// TestImports keeps the package docs' promise that imports go one way:
// kernels imports its leaf packages and no other part of fusematrix, and
// each leaf imports the standard library and the modules its doc names,
// never kernels nor another leaf.
func TestImports(t *testing.T) {
	const (
		module   = "github.com/fusematrix/fusematrix/"
		openpgp  = "github.com/ProtonMail/go-crypto/"
		xz       = "github.com/ulikunitz/xz"
		zstd     = "github.com/klauspost/compress/zstd"
		kernelsP = module + "kernels/"
	)
	allowed := map[string][]string{
		".":                    {openpgp, kernelsP + "debian", kernelsP + "deb", kernelsP + "modinfo", kernelsP + "kconfig", kernelsP + "flock"},
		"debian":               {openpgp, xz},
		"deb":                  {xz, zstd},
		"modinfo":              {xz, zstd},
		"kconfig":              nil,
		"flock":                nil,
		"internal/fakearchive": {openpgp, xz, zstd},
		// A command for tests outside kernels, which cannot import
		// fakearchive.
		"internal/fakearchive/fakemirror": {kernelsP + "internal/fakearchive"},
	}
	var dirs []string
	err := filepath.WalkDir(".", func(name string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if files, _ := filepath.Glob(filepath.Join(name, "*.go")); len(files) > 0 {
			dirs = append(dirs, filepath.ToSlash(name))
		}
		return nil
	})
	assert.NilError(t, err)
	for _, dir := range dirs {
		allow, known := allowed[dir]
		assert.Check(t, known, "package kernels/%s: say in its doc what it may import, and here", dir)
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		assert.NilError(t, err)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			pf, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			assert.NilError(t, err)
			for _, imp := range pf.Imports {
				p, err := strconv.Unquote(imp.Path.Value)
				assert.NilError(t, err)
				first, _, _ := strings.Cut(p, "/")
				ok := !strings.Contains(first, ".") || slices.ContainsFunc(allow, func(prefix string) bool {
					return p == prefix || strings.HasPrefix(p, strings.TrimSuffix(prefix, "/")+"/")
				})
				assert.Check(t, ok, "%s imports %s", f, p)
			}
		}
	}
}
