package harness

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"gotest.tools/v3/assert"
)

// Every command of the shell image is imported by initramfs/tools.go, so
// that go.sum pins the modules gobusybox compiles it from.
func TestShellCommandsPinned(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("initramfs", "tools.go"), nil, parser.ImportsOnly)
	assert.NilError(t, err)
	var pinned []string
	for _, imp := range f.Imports {
		p, err := strconv.Unquote(imp.Path.Value)
		assert.NilError(t, err)
		pinned = append(pinned, p)
	}
	for _, c := range ShellCommands {
		assert.Check(t, slices.Contains(pinned, c), "%s is not in initramfs/tools.go", c)
	}
}
