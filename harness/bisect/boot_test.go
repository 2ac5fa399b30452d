package bisect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/results"
)

// Boot judges a run from the results.json it left, the file -resume reads
// again; a kernel that could not be named (a build that failed) leaves
// one too, so only a run that left nothing is booted again on -resume.
func TestBootJudgesStoredResults(t *testing.T) {
	const n, at = 8, 5
	p := mustParse(t, "pt/integrity=fail")
	dir := t.TempDir()
	kernels := map[string]int{}
	kernel := func(_ context.Context, c Candidate) (string, error) {
		kernels[c.Selector]++
		if c.Selector == "k03" {
			return "", fmt.Errorf("kernel build of %s failed: make: *** [bzImage] Error 2", c.Selector)
		}
		return "image-" + c.Selector, nil
	}
	// run stands in for harness.Run: it writes the results a guest of
	// the kernel would give, except for k04, whose run fails before it
	// writes anything (no QEMU, say).
	run := func(_ context.Context, o harness.Options) (*results.Run, error) {
		var i int
		fmt.Sscanf(o.Kernels[0], "image-k%d", &i)
		if i == 4 {
			return nil, errors.New("qemu-system-x86_64: not found")
		}
		c := candidates(n)[i]
		k := kernelShowing(t, p, changeAt(at)(i, 0), c)
		k.Name = o.Kernels[0]
		r := &results.Run{Schema: results.SchemaVersion, Kernels: []results.Kernel{k}}
		data, err := json.Marshal(r)
		assert.NilError(t, err)
		assert.NilError(t, os.MkdirAll(o.OutDir, 0o755))
		return r, os.WriteFile(filepath.Join(o.OutDir, "results.json"), data, 0o644)
	}
	o := Options{Predicate: p, Good: "k00", Bad: "k07", Candidates: candidates(n), Dir: dir, Logf: t.Logf,
		Judge: BootWith(run, harness.Options{OutDir: dir}, p, kernel)}
	r, err := Bisect(context.Background(), o)
	assert.NilError(t, err)
	assert.Equal(t, r.FirstNew.Selector, "k05")
	assert.Equal(t, r.LastOld.Selector, "k02")
	assert.Check(t, is.Contains(r.Certainty, "k03, k04, or k05 itself"))
	for _, st := range r.Steps {
		assert.Check(t, is.Equal(st.Runs[0].Results, RunResults(st.Candidate, 0)))
		switch st.Candidate.Selector {
		case "k03":
			assert.Check(t, is.Equal(st.Verdict, Skip))
			assert.Check(t, is.Contains(st.Runs[0].Evidence, "kernel build of k03 failed"))
			_, err := results.ReadFile(filepath.Join(dir, st.Runs[0].Results))
			assert.Check(t, err, "a kernel that failed leaves results saying so")
		case "k04":
			assert.Check(t, is.Equal(st.Verdict, Skip))
			assert.Check(t, is.Contains(st.Runs[0].Evidence, "did not run: qemu-system-x86_64: not found"))
		case "k05":
			assert.Check(t, is.Equal(st.Runs[0].Evidence, "pt/integrity: fail"))
			assert.Check(t, is.Equal(st.Runs[0].Release, "6.99.5"))
		}
	}

	clear(kernels)
	o.Resume = true
	again, err := Bisect(context.Background(), o)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(again.FirstNew.Selector, "k05"))
	assert.Check(t, is.DeepEqual(kernels, map[string]int{"k04": 1}), "only the run that left no results boots again")
}
