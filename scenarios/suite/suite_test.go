package suite

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

func TestAllIDsValid(t *testing.T) {
	seen := map[contract.ID]bool{}
	for _, s := range All() {
		ev := results.Event{Type: results.ResultEvent, Result: &results.Result{ID: string(s.ID), Kind: s.Kind, Status: results.Pass}}
		assert.Check(t, ev.Validate(results.DefaultLimits), "scenario %q", s.ID)
		assert.Check(t, !seen[s.ID], "duplicate id %q", s.ID)
		assert.Check(t, s.Timeout > 0 && s.Run != nil && s.Description != "", "scenario %q incomplete", s.ID)
		seen[s.ID] = true
	}
}

func TestSelectBench(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		want    int // bench cells selected
	}{
		{pattern: "", want: 0},
		{pattern: ".", want: 0},
		{pattern: "read", want: 0},
		{pattern: "^bench/", want: 45},
		{pattern: "bench/read/", want: 21},
		{pattern: "bench/write/", want: 24},
		{pattern: "^bench/read/.*/1048576$", want: 7},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			ss, err := Select(tc.pattern)
			assert.NilError(t, err)
			n := 0
			for _, s := range ss {
				if strings.HasPrefix(string(s.ID), contract.BenchPrefix) {
					n++
				}
			}
			assert.Equal(t, n, tc.want)
			if tc.pattern == "" {
				assert.Check(t, is.Contains(IDs(ss), contract.SeqRead))
			}
		})
	}
}
