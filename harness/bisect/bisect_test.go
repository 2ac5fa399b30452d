package bisect

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results/predicate"
)

func candidates(n int) []Candidate {
	cs := make([]Candidate, n)
	for i := range cs {
		cs[i] = Candidate{Selector: fmt.Sprintf("k%02d", i), Version: fmt.Sprint(i)}
	}
	return cs
}

// fake judges candidate i by verdicts(i, attempt) and counts the boots.
type fake struct {
	verdicts func(i, attempt int) predicate.Verdict
	boots    map[string]int
}

func (f *fake) judge(_ context.Context, c Candidate, attempt int) Run {
	if f.boots == nil {
		f.boots = map[string]int{}
	}
	f.boots[c.Selector]++
	var i int
	fmt.Sscanf(c.Selector, "k%d", &i)
	v := f.verdicts(i, attempt)
	return Run{Verdict: v, Evidence: fmt.Sprintf("%s said %s", c.Selector, v), Release: "6.99." + c.Version}
}

// changeAt is a kernel line whose behaviour changes at candidate at.
func changeAt(at int) func(int, int) predicate.Verdict {
	return func(i, _ int) predicate.Verdict {
		if i >= at {
			return predicate.New
		}
		return predicate.Old
	}
}

func bisect(t *testing.T, pred string, n int, f *fake, mod ...func(*Options)) *Report {
	t.Helper()
	p, err := predicate.Parse(pred)
	assert.NilError(t, err)
	o := Options{Predicate: p, Good: "k00", Bad: fmt.Sprintf("k%02d", n-1), Candidates: candidates(n), Dir: t.TempDir(),
		Judge: f.judge, Command: func(c Candidate) string { return "fusematrix matrix " + c.Selector }, Logf: t.Logf}
	for _, m := range mod {
		m(&o)
	}
	r, err := Bisect(context.Background(), o)
	assert.NilError(t, err)
	return r
}

func TestBisectFinds(t *testing.T) {
	for _, at := range []int{1, 2, 7, 20, 31} {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			f := &fake{verdicts: changeAt(at)}
			r := bisect(t, "fuse-init.protocol>=7.40", 32, f)
			assert.Equal(t, r.Outcome, "found")
			assert.Equal(t, r.FirstNew.Selector, fmt.Sprintf("k%02d", at))
			assert.Equal(t, r.LastOld.Selector, fmt.Sprintf("k%02d", at-1))
			assert.Equal(t, r.FirstNew.Release, fmt.Sprintf("6.99.%d", at))
			assert.Equal(t, r.Certainty, "exact")
			// Both ends, then about log2(32) halvings; nothing twice.
			assert.Check(t, len(r.Steps) <= 2+5, "%d steps", len(r.Steps))
			for sel, n := range f.boots {
				assert.Check(t, is.Equal(n, 1), sel)
			}
		})
	}
}

func TestBisectEnds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		verdicts func(int, int) predicate.Verdict
		outcome  string
		message  string
	}{
		{"good already new", func(int, int) predicate.Verdict { return predicate.New }, "not-bracketed", "the good end k00 already shows the new behaviour"},
		{"bad still old", func(int, int) predicate.Verdict { return predicate.Old }, "not-bracketed", "the bad end k09 already shows the old behaviour"},
		{"good unjudged", func(i, _ int) predicate.Verdict {
			if i == 0 {
				return predicate.Unknown
			}
			return predicate.New
		}, "unjudged", "the good end k00 could not be judged: k00 said unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{verdicts: tc.verdicts}
			r := bisect(t, "pt/integrity=fail", 10, f)
			assert.Equal(t, r.Outcome, tc.outcome)
			assert.Check(t, is.Contains(r.Message, tc.message))
			assert.Check(t, r.FirstNew == nil && r.LastOld == nil)
			assert.Check(t, len(f.boots) <= 2, "stops after the ends: %v", f.boots)
		})
	}
}

// A candidate that cannot be judged (no boot, a failed build) is skipped,
// never blamed, and the answer says which candidates it leaves open.
func TestBisectSkips(t *testing.T) {
	f := &fake{verdicts: func(i, a int) predicate.Verdict {
		if i == 6 || i == 5 {
			return predicate.Unknown
		}
		return changeAt(6)(i, a)
	}}
	r := bisect(t, "pt/integrity=fail", 12, f)
	assert.Equal(t, r.Outcome, "found")
	assert.Equal(t, r.FirstNew.Selector, "k07")
	assert.Equal(t, r.LastOld.Selector, "k04")
	assert.Check(t, is.Contains(r.Certainty, "one of 2 candidates: k05, k06, or k07 itself"))
	for _, st := range r.Steps {
		if st.Candidate.Selector == "k06" {
			assert.Equal(t, st.Verdict, Skip)
		}
	}
}

// The verdict rules of the README.
func TestDecide(t *testing.T) {
	runs := func(vs ...predicate.Verdict) []Run {
		var out []Run
		for _, v := range vs {
			out = append(out, Run{Verdict: v})
		}
		return out
	}
	N, O, U := predicate.New, predicate.Old, predicate.Unknown
	for _, tc := range []struct {
		pred  string
		runs  []Run
		final bool
		want  Verdict
		why   string
	}{
		{"pt/integrity=fail", runs(O, O, N), false, New, "a failure in any run counts"},
		{"pt/integrity!=pass", runs(O, N, O), false, New, "a failure in any run counts"},
		{"passthrough-read=pass", runs(N, N, O), false, Old, "a failure in any run counts"},
		{"passthrough-read=pass", runs(N, N, N), false, New, ""},
		{"pt/integrity=fail", runs(U, U), false, Skip, "no run could say"},
		{"pt/integrity=fail", runs(U, O), false, Old, "1 of 2 runs could not say"},
		{"bench/read/noop/4096:ratio_native<0.8", runs(N, N, O), false, Skip, retry},
		{"bench/read/noop/4096:ratio_native<0.8", runs(N, N, O, N, O, N), true, New, "4 of 6 runs new, the majority"},
		{"bench/read/noop/4096:ratio_native<0.8", runs(N, O, O, O), true, Old, "the majority"},
		{"bench/read/noop/4096:ratio_native<0.8", runs(N, O, N, O), true, Skip, "a tie"},
		{"fuse-init.protocol>=7.40", runs(N, O), false, Skip, retry},
	} {
		p, err := predicate.Parse(tc.pred)
		assert.NilError(t, err)
		v, why := decide(p, tc.runs, tc.final)
		assert.Check(t, is.Equal(v, tc.want), "%s %v", tc.pred, tc.runs)
		assert.Check(t, is.Contains(why, tc.why), "%s %v", tc.pred, tc.runs)
	}
}

// Repeats that disagree get a second round before the majority counts.
func TestBisectRetriesDisagreement(t *testing.T) {
	f := &fake{verdicts: func(i, attempt int) predicate.Verdict {
		if i == 4 {
			// new, old, then new twice: 3 of 4.
			return []predicate.Verdict{predicate.New, predicate.Old, predicate.New, predicate.New}[attempt]
		}
		return changeAt(4)(i, attempt)
	}}
	r := bisect(t, "bench/read/noop/4096:ratio_native<0.8", 8, f, func(o *Options) { o.Repeat = 2 })
	assert.Equal(t, r.FirstNew.Selector, "k04")
	assert.Equal(t, f.boots["k04"], 4)
	assert.Equal(t, f.boots["k00"], 2)
}

// An interrupted bisection resumes from its log, whatever step it was
// cut after, judges none of the steps it had, and finds the same answer.
func TestBisectResume(t *testing.T) {
	full := bisect(t, "pt/integrity=fail", 40, &fake{verdicts: changeAt(23)})
	assert.Equal(t, full.FirstNew.Selector, "k23")
	for cut := 0; cut <= len(full.Steps); cut++ {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			dir := t.TempDir()
			partial := *full
			partial.Steps = full.Steps[:cut]
			partial.Outcome, partial.FirstNew, partial.LastOld = "", nil, nil
			data, err := json.Marshal(&partial)
			assert.NilError(t, err)
			assert.NilError(t, os.WriteFile(filepath.Join(dir, "bisect.json"), data, 0o644))
			f := &fake{verdicts: changeAt(23)}
			r := bisect(t, "pt/integrity=fail", 40, f, func(o *Options) { o.Dir, o.Resume = dir, true })
			assert.Equal(t, r.FirstNew.Selector, "k23")
			assert.Equal(t, len(r.Steps), len(full.Steps))
			assert.Equal(t, len(f.boots), len(full.Steps)-cut, "re-judged: %v", f.boots)
			for _, st := range full.Steps[:cut] {
				assert.Check(t, f.boots[st.Candidate.Selector] == 0, "%s judged again", st.Candidate.Selector)
			}
		})
	}
	t.Run("another bisection's log", func(t *testing.T) {
		dir := t.TempDir()
		data, _ := json.Marshal(full)
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "bisect.json"), data, 0o644))
		p, _ := predicate.Parse("pt/fsync=fail")
		_, err := Bisect(context.Background(), Options{Predicate: p, Candidates: candidates(40), Dir: dir, Resume: true,
			Judge: (&fake{verdicts: changeAt(1)}).judge})
		assert.ErrorIs(t, err, ErrInput)
		assert.ErrorContains(t, err, "is of another bisection")
	})
}

// Interrupting a bisection leaves a log that resumes.
func TestBisectInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	p, _ := predicate.Parse("pt/integrity=fail")
	n := 0
	judge := func(ctx context.Context, c Candidate, a int) Run {
		n++
		if n == 4 {
			cancel()
		}
		return (&fake{verdicts: changeAt(11)}).judge(ctx, c, a)
	}
	r, err := Bisect(ctx, Options{Predicate: p, Candidates: candidates(30), Dir: dir, Judge: judge})
	assert.ErrorContains(t, err, "interrupted")
	assert.Equal(t, len(r.Steps), 3, "the step cut short is not recorded")
	f := &fake{verdicts: changeAt(11)}
	r, err = Bisect(context.Background(), Options{Predicate: p, Candidates: candidates(30), Dir: dir, Judge: f.judge, Resume: true})
	assert.NilError(t, err)
	assert.Equal(t, r.FirstNew.Selector, "k11")
	md, err := os.ReadFile(filepath.Join(dir, "bisect.md"))
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(md), "**First with the new behaviour:** `k11`"))
}
