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

	"github.com/fusematrix/fusematrix/harness/predicate"
	"github.com/fusematrix/fusematrix/results"
)

func candidates(n int) []Candidate {
	cs := make([]Candidate, n)
	for i := range cs {
		cs[i] = Candidate{Selector: fmt.Sprintf("k%02d", i), Version: fmt.Sprint(i)}
	}
	return cs
}

// fake judges candidate i by verdicts(i, attempt) the way a boot does:
// it writes the run's results.json where Boot has the harness write it
// (RunResults under dir), made to show that verdict for pred, and judges
// that file as Boot does, so that -resume finds what a real step leaves.
// It counts the boots.
type fake struct {
	verdicts func(i, attempt int) predicate.Verdict
	boots    map[string]int
	tb       testing.TB
	pred     *predicate.Predicate
	dir      string
}

// Verdicts a fake can give besides new, old and unknown (a kernel that
// booted and reported nothing the predicate reads).
const (
	// noBoot: the run stored no results (the harness could not start:
	// no QEMU, a folder it cannot write).
	noBoot predicate.Verdict = "no-boot"
	// reportsError: the predicate's check reported error (its setup
	// timed out).
	reportsError predicate.Verdict = "reports-error"
)

func (f *fake) judge(_ context.Context, c Candidate, attempt int) Run {
	if f.boots == nil {
		f.boots = map[string]int{}
	}
	f.boots[c.Selector]++
	var i int
	fmt.Sscanf(c.Selector, "k%d", &i)
	v := f.verdicts(i, attempt)
	if v == noBoot {
		return Run{Verdict: predicate.Unknown, Evidence: c.Selector + " did not run"}
	}
	rel := RunResults(c, attempt)
	writeResults(f.tb, f.dir, rel, kernelShowing(f.tb, f.pred, v, c))
	r, err := judgeResults(f.pred, f.dir, rel)
	if err != nil {
		f.tb.Fatalf("%s: %v", c.Selector, err)
	}
	return r
}

// kernelShowing is a kernel whose results make p say v: the first of a
// few made-up results for p's check that p.Judge finds to say v.
func kernelShowing(tb testing.TB, p *predicate.Predicate, v predicate.Verdict, c Candidate) results.Kernel {
	tb.Helper()
	k := results.Kernel{Name: c.Selector, Status: results.Pass, Release: "6.99." + c.Version}
	switch v {
	case predicate.Unknown:
		k.Status, k.Error, k.ConsoleTail = results.Error, c.Selector+" did not boot", []string{"Kernel panic"}
		return k
	case reportsError:
		k.Results = []results.Result{{ID: string(p.ID), Status: results.Error, Reason: "setup timed out"}}
		return k
	}
	var tries []results.Result
	switch p.Form {
	case predicate.Status:
		for _, st := range []results.Status{results.Pass, results.Fail, results.Skip, results.Error} {
			tries = append(tries, results.Result{Status: st})
		}
	case predicate.Fact:
		for _, val := range []string{p.Value, "other", "0", "7.39", "7.40", "7.41", "99", "65536"} {
			tries = append(tries, results.Result{Status: results.Pass, Facts: map[string]string{p.Key: val}})
		}
	case predicate.Metric:
		for _, val := range []float64{0, 0.5, 0.79, 0.8, 0.81, 1, 2, 1e9} {
			tries = append(tries, results.Result{Status: results.Pass, Metrics: map[string]float64{p.Key: val}})
		}
	}
	for _, r := range tries {
		r.ID = string(p.ID)
		k.Results = []results.Result{r}
		if got, _ := p.Judge(&k); got == v {
			return k
		}
	}
	tb.Fatalf("no made-up result makes %s say %s", p.Text, v)
	return k
}

// writeResults stores k as the run at rel under dir, as the harness does.
func writeResults(tb testing.TB, dir, rel string, k results.Kernel) {
	tb.Helper()
	data, err := json.Marshal(results.Run{Schema: results.SchemaVersion, Kernels: []results.Kernel{k}})
	assert.NilError(tb, err)
	path := filepath.Join(dir, rel)
	assert.NilError(tb, os.MkdirAll(filepath.Dir(path), 0o755))
	assert.NilError(tb, os.WriteFile(path, data, 0o644))
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

// options are those of a bisection over n candidates k00… judged by f,
// in a folder of its own unless mod says otherwise.
func options(t *testing.T, pred string, n int, f *fake, mod ...func(*Options)) Options {
	t.Helper()
	p, err := predicate.Parse(pred)
	assert.NilError(t, err)
	o := Options{Predicate: p, Good: "k00", Bad: fmt.Sprintf("k%02d", n-1), Candidates: candidates(n), Dir: t.TempDir(),
		Judge: f.judge, Command: func(c Candidate) string { return "fusematrix matrix " + c.Selector }, Logf: t.Logf}
	for _, m := range mod {
		m(&o)
	}
	f.tb, f.pred, f.dir = t, o.Predicate, o.Dir
	return o
}

func bisect(t *testing.T, pred string, n int, f *fake, mod ...func(*Options)) *Report {
	t.Helper()
	r, err := Bisect(context.Background(), options(t, pred, n, f, mod...))
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

// A request fact names a change as any fact does (issue 25): the kernel
// whose READDIRPLUS first asks for more than a page.
func TestBisectRequestFact(t *testing.T) {
	f := &fake{verdicts: changeAt(9)}
	r := bisect(t, "requests.readdirplus_size>4096", 16, f)
	assert.Equal(t, r.Outcome, "found")
	assert.Equal(t, r.FirstNew.Selector, "k09")
	assert.Equal(t, r.LastOld.Selector, "k08")
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
		}, "unjudged", "the good end k00 could not be judged: the kernel did not run to completion: k00 did not boot"},
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

// bisect run speaks git bisect run's protocol: 0 good, 1 bad, 125 skip.
func TestGitStatus(t *testing.T) {
	for _, tc := range []struct {
		v    Verdict
		want int
	}{{Old, 0}, {New, 1}, {Skip, 125}, {Verdict("unknown"), 125}} {
		assert.Check(t, is.Equal(tc.v.GitStatus(), tc.want), tc.v)
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
			// The steps' results stay on disk; the log forgets the steps
			// after the cut, as when interrupted there.
			f := &fake{verdicts: changeAt(23)}
			o := options(t, "pt/integrity=fail", 40, f)
			_, err := Bisect(context.Background(), o)
			assert.NilError(t, err)
			cutLog(t, o.Dir, cut)
			f.boots = nil
			r, err := Bisect(context.Background(), withResume(o))
			assert.NilError(t, err)
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

// cutLog keeps the first n steps of the log in dir, as if the bisection
// had been interrupted after them.
func cutLog(t *testing.T, dir string, n int) {
	t.Helper()
	r := readLogFile(t, dir)
	r.Steps = r.Steps[:n]
	r.Outcome, r.Message, r.FirstNew, r.LastOld, r.Certainty = "", "", nil, nil, ""
	writeLog(t, dir, r)
}

func readLogFile(t testing.TB, dir string) *Report {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "bisect.json"))
	assert.NilError(t, err)
	var r Report
	assert.NilError(t, json.Unmarshal(data, &r))
	return &r
}

func writeLog(t testing.TB, dir string, r *Report) {
	t.Helper()
	data, err := json.MarshalIndent(r, "", "  ")
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "bisect.json"), data, 0o644))
}

func withResume(o Options) Options {
	o.Resume = true
	return o
}

// Interrupting a bisection leaves a log that resumes.
func TestBisectInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	p, _ := predicate.Parse("pt/integrity=fail")
	n := 0
	f := &fake{verdicts: changeAt(11), tb: t, pred: p, dir: dir}
	judge := func(ctx context.Context, c Candidate, a int) Run {
		n++
		if n == 4 {
			cancel()
		}
		return f.judge(ctx, c, a)
	}
	r, err := Bisect(ctx, Options{Predicate: p, Candidates: candidates(30), Dir: dir, Judge: judge})
	assert.ErrorContains(t, err, "interrupted")
	assert.Equal(t, len(r.Steps), 3, "the step cut short is not recorded")
	f = &fake{verdicts: changeAt(11), tb: t, pred: p, dir: dir}
	r, err = Bisect(context.Background(), Options{Predicate: p, Candidates: candidates(30), Dir: dir, Judge: f.judge, Resume: true})
	assert.NilError(t, err)
	assert.Equal(t, r.FirstNew.Selector, "k11")
	md, err := os.ReadFile(filepath.Join(dir, "bisect.md"))
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(md), "**First with the new behaviour:** `k11`"))
}

// Issue 21 row 6: when no candidate between the ends can be judged, the
// bisection has no answer ("unjudged"), as the package says; it answered
// "found" with the bad end as the first new kernel.
func TestBisectUnjudged(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n       int
		between predicate.Verdict
		outcome string
		message string
	}{
		{"every candidate between unknown", 10, predicate.Unknown, "unjudged",
			"none of the 8 candidates between the ends could be judged (k01, k02 … k08): the change is in one of them or in the bad end k09"},
		{"every candidate between left no results", 5, noBoot, "unjudged",
			"none of the 3 candidates between the ends could be judged (k01, k02, k03)"},
		{"one candidate between, unknown", 3, predicate.Unknown, "unjudged", "the one candidate between the ends, k01, could not be judged: the change is in it or in the bad end k02"},
		{"no candidate between", 2, predicate.Unknown, "found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{verdicts: func(i, a int) predicate.Verdict {
				if i > 0 && i < tc.n-1 {
					return tc.between
				}
				return changeAt(tc.n-1)(i, a)
			}}
			r := bisect(t, "pt/integrity=fail", tc.n, f)
			assert.Equal(t, r.Outcome, tc.outcome)
			assert.Check(t, is.Contains(r.Message, tc.message))
			if tc.outcome == "unjudged" {
				assert.Check(t, r.FirstNew == nil && r.LastOld == nil, "no answer names no kernel")
				assert.Check(t, is.Len(f.boots, tc.n), "every candidate was tried: %v", f.boots)
			} else {
				assert.Check(t, is.Equal(r.Certainty, "exact"))
			}
		})
	}
}

// Issue 21 row 7: a step whose check reported error (a setup timeout) is
// skipped for X!=pass, not counted as the new behaviour.
func TestBisectErrorCannotSay(t *testing.T) {
	f := &fake{verdicts: func(i, a int) predicate.Verdict {
		if i == 5 {
			return reportsError
		}
		return changeAt(7)(i, a)
	}}
	r := bisect(t, "pt/integrity!=pass", 12, f)
	assert.Equal(t, r.Outcome, "found")
	assert.Equal(t, r.FirstNew.Selector, "k07")
	var k05 *Step
	for i, st := range r.Steps {
		if st.Candidate.Selector == "k05" {
			k05 = &r.Steps[i]
		}
	}
	assert.Assert(t, k05 != nil, "k05 was judged: %v", r.Steps)
	assert.Check(t, is.Equal(k05.Verdict, Skip))
	assert.Check(t, is.Contains(evidence(k05), "pt/integrity: error (setup timed out): an error says nothing of pt/integrity!=pass"))
}
