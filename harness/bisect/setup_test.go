package bisect

import (
	"context"
	"errors"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/harness/predicate"
	"github.com/fusematrix/fusematrix/kernels"
)

// Boots is what kernels list -history promises a bisection takes: both
// ends, then one boot per halving.
func TestBoots(t *testing.T) {
	for _, tc := range []struct{ n, want int }{
		{n: 2, want: 2}, {n: 3, want: 3}, {n: 4, want: 3}, {n: 5, want: 4}, {n: 9, want: 5}, {n: 100, want: 8},
	} {
		assert.Check(t, is.Equal(Boots(tc.n), tc.want), "%d candidates", tc.n)
	}
}

// Without a tree, Plan steps through the packaged builds the history
// lists; a history that cannot be listed is the input's to fix, its text
// unchanged.
func TestPlanPackaged(t *testing.T) {
	pred, err := predicate.Parse("fuse-init.passthrough=offered")
	assert.NilError(t, err)
	builds := []kernels.Packaged{
		{Selector: "debian:a=1@s", Package: "a", Version: "1", Suite: "s"},
		{Selector: "debian:a=2@s", Package: "a", Version: "2", Suite: "s"},
	}
	for _, tc := range []struct {
		name    string
		err     error
		wantErr string
	}{
		{name: "found"},
		{name: "no history", err: errors.New(`kernel "x": not found`), wantErr: `kernel "x": not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			history := func(_ context.Context, good, bad string, _ kernels.Options) ([]kernels.Packaged, error) {
				assert.Check(t, is.Equal(good+" "+bad, "g b"))
				return builds, tc.err
			}
			setup, err := Plan(context.Background(), "", "g", "b", "tinyconfig", pred, kernels.Options{}, history)
			if tc.wantErr != "" {
				assert.Check(t, errors.Is(err, ErrInput))
				assert.Check(t, is.Equal(err.Error(), tc.wantErr))
				return
			}
			assert.NilError(t, err)
			assert.Check(t, is.Len(setup.Candidates, 2))
			assert.Check(t, is.Equal(setup.Candidates[1].Selector, "debian:a=2@s"))
			assert.Check(t, is.Equal(setup.Summary, "2 packaged kernels from g to b"))
		})
	}
}
