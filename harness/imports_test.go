package harness

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// TestImports keeps architecture.md's promise that only the renderers
// plot: harness, and bisect through it, write no report that needs
// gonum/plot (Options.Reports is the caller's), and expect, compare,
// predicate and inert show guest text without it. Whole link graphs
// (go list -deps), since the plotting came in once through an import of
// an import. harness/report is the control: there the test must see it.
func TestImports(t *testing.T) {
	for _, tc := range []struct {
		pkg  string
		plot bool
	}{
		{pkg: "."},
		{pkg: "./bisect"},
		{pkg: "./expect"},
		{pkg: "./compare"},
		{pkg: "./predicate"},
		{pkg: "./inert"},
		{pkg: "./report", plot: true},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", tc.pkg).Output()
			assert.NilError(t, err)
			deps := strings.Fields(string(out))
			plotting := slices.DeleteFunc(slices.Clone(deps), func(p string) bool { return !strings.HasPrefix(p, "gonum.org/") })
			if tc.plot {
				assert.Check(t, len(plotting) > 0, "%s: no gonum in %d dependencies: the test cannot see what it looks for", tc.pkg, len(deps))
				return
			}
			assert.Check(t, len(plotting) == 0, "%s links the report's plotting: %s", tc.pkg, strings.Join(plotting, " "))
		})
	}
}
