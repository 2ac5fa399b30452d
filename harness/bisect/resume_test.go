package bisect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/harness/predicate"
	"github.com/fusematrix/fusematrix/results"
)

// promptly bounds a resume that boots nothing: it reads a log and a few
// small files. The bisection it guards against never returned.
const promptly = 20 * time.Second

// logSink stands in for the progress log a bisection writes to the
// terminal or a file: it counts what it is given and keeps the lines, up
// to a cap, so that a loop logging without end shows as a count, not as
// 28 GB.
type logSink struct {
	mu     sync.Mutex
	lines  []string
	bytes  int
	onLine func(string)
}

func (l *logSink) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	l.mu.Lock()
	l.bytes += len(line) + 1
	if len(l.lines) < 1000 {
		l.lines = append(l.lines, line)
	}
	on := l.onLine
	l.mu.Unlock()
	if on != nil {
		on(line)
	}
}

func (l *logSink) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}

// within runs Bisect and fails the test unless it returns within d; a
// bisection that does not is left running (it ignores its context, which
// is the bug) and its log is no longer read.
func within(t *testing.T, ctx context.Context, o Options, d time.Duration) (*Report, error) {
	t.Helper()
	type result struct {
		r   *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := Bisect(ctx, o)
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		return res.r, res.err
	case <-time.After(d):
		t.Fatalf("Bisect did not return within %s", d)
		return nil, nil
	}
}

// logged is a finished bisection over n candidates whose behaviour
// changes at candidate at, its log and every step's results on disk.
func logged(t *testing.T, pred string, n, at int, mod ...func(*Options)) (Options, *fake, *Report) {
	t.Helper()
	f := &fake{verdicts: changeAt(at)}
	o := options(t, pred, n, f, mod...)
	r, err := Bisect(context.Background(), o)
	assert.NilError(t, err)
	assert.Equal(t, r.FirstNew.Selector, fmt.Sprintf("k%02d", at))
	f.boots = nil
	return o, f, r
}

// firstStep returns the index in r.Steps of the first step between the
// ends with verdict v.
func firstStep(t *testing.T, r *Report, v Verdict) int {
	t.Helper()
	for i, st := range r.Steps {
		if i >= 2 && st.Verdict == v {
			return i
		}
	}
	t.Fatalf("no step between the ends is %s", v)
	return -1
}

// Issue 21 rows 2 and 3: a resumed log is checked against the bisection
// and every step judged again from its stored results; anything that does
// not hold is refused (exit 2 in the command) naming the first bad step,
// promptly, booting nothing, logging a few lines and leaving the log as it
// was. Before: a verdict "bogus" spun for ever, deaf to SIGINT, logging
// 28 GB in 10 minutes; a verdict flipped from new to old moved the answer.
func TestResumeRefuses(t *testing.T) {
	const pred, n, at = "pt/integrity=fail", 40, 23
	for _, tc := range []struct {
		name string
		// edit changes the log (written back) or the files beside it, and
		// returns what the error must say.
		edit func(t *testing.T, dir string, r *Report) string
	}{
		{"a step's verdict is bogus", func(t *testing.T, dir string, r *Report) string {
			r.Steps[2].Verdict = "bogus"
			return fmt.Sprintf(`step 3 (%s): verdict "bogus" is not new, old or skip`, r.Steps[2].Candidate.Selector)
		}},
		{"a run's verdict is bogus", func(t *testing.T, dir string, r *Report) string {
			r.Steps[1].Runs[0].Verdict = "maybe"
			return `step 2 (k39): run 1: verdict "maybe" is not new, old or unknown`
		}},
		{"a step's verdict flipped from new to old", func(t *testing.T, dir string, r *Report) string {
			i := firstStep(t, r, New)
			r.Steps[i].Verdict = Old
			for k := range r.Steps[i].Runs {
				r.Steps[i].Runs[k].Verdict = predicate.Old
			}
			return fmt.Sprintf("step %d (%s): run 1 is logged as old, but its results say new (pt/integrity: fail)", i+1, r.Steps[i].Candidate.Selector)
		}},
		{"a step's verdict flipped from old to new", func(t *testing.T, dir string, r *Report) string {
			i := firstStep(t, r, Old)
			r.Steps[i].Verdict = New
			r.Steps[i].Runs[0].Verdict = predicate.New
			return fmt.Sprintf("step %d (%s): run 1 is logged as new, but its results say old", i+1, r.Steps[i].Candidate.Selector)
		}},
		{"only the step's verdict flipped", func(t *testing.T, dir string, r *Report) string {
			i := firstStep(t, r, New)
			r.Steps[i].Verdict = Old
			return fmt.Sprintf("step %d (%s): verdict old is logged, but its runs' results make it new", i+1, r.Steps[i].Candidate.Selector)
		}},
		{"a step made a skip", func(t *testing.T, dir string, r *Report) string {
			r.Steps[3].Verdict = Skip
			return "step 4 (" + r.Steps[3].Candidate.Selector + "): verdict skip is logged"
		}},
		{"the results hold the check twice, a pass and a fail", func(t *testing.T, dir string, r *Report) string {
			i := firstStep(t, r, New)
			st := r.Steps[i]
			k := kernelShowing(t, mustParse(t, pred), predicate.Old, st.Candidate)
			k.Results = append(k.Results, results.Result{ID: k.Results[0].ID, Status: results.Fail})
			writeResults(t, dir, st.Runs[0].Results, k)
			return fmt.Sprintf(`step %d (%s): run 1: read run %s: kernel %q: result "pt/integrity" appears more than once`,
				i+1, st.Candidate.Selector, filepath.Join(dir, st.Runs[0].Results), st.Candidate.Selector)
		}},
		{"the results are not a run", func(t *testing.T, dir string, r *Report) string {
			assert.NilError(t, os.WriteFile(filepath.Join(dir, r.Steps[2].Runs[0].Results), []byte(`{"verdict":"new"}`), 0o644))
			return "step 3 (" + r.Steps[2].Candidate.Selector + "): run 1: read run"
		}},
		{"the results are a FIFO", func(t *testing.T, dir string, r *Report) string {
			path := filepath.Join(dir, r.Steps[2].Runs[0].Results)
			assert.NilError(t, os.Remove(path))
			assert.NilError(t, syscall.Mkfifo(path, 0o644))
			return "step 3 (" + r.Steps[2].Candidate.Selector + "): run 1: read run " + path + ": not a regular file (a named pipe)"
		}},
		{"the results are of two kernels", func(t *testing.T, dir string, r *Report) string {
			path := filepath.Join(dir, r.Steps[2].Runs[0].Results)
			run, err := results.ReadFile(path)
			assert.NilError(t, err)
			run.Kernels = append(run.Kernels, run.Kernels[0])
			run.Kernels[1].Name = "other"
			data, _ := json.Marshal(run)
			assert.NilError(t, os.WriteFile(path, data, 0o644))
			return "holds 2 kernels, not the one a step boots"
		}},
		{"a run's results are another candidate's", func(t *testing.T, dir string, r *Report) string {
			r.Steps[2].Runs[0].Results = r.Steps[1].Runs[0].Results
			return fmt.Sprintf("step 3 (%s): run 1 keeps its results at %q, not at %s", r.Steps[2].Candidate.Selector,
				r.Steps[1].Runs[0].Results, RunResults(r.Steps[2].Candidate, 0))
		}},
		{"a run's results are outside the folder", func(t *testing.T, dir string, r *Report) string {
			r.Steps[2].Runs[0].Results = "../../../etc/passwd"
			return `run 1 keeps its results at "../../../etc/passwd"`
		}},
		{"a step's index is past the candidates", func(t *testing.T, dir string, r *Report) string {
			r.Steps[2].Index = n
			return "step 3: index 40 is not one of the 40 candidates"
		}},
		{"a step's index is negative", func(t *testing.T, dir string, r *Report) string {
			r.Steps[2].Index = -1
			return "step 3: index -1 is not one of the 40 candidates"
		}},
		{"a step's candidate is not at its index", func(t *testing.T, dir string, r *Report) string {
			r.Steps[2].Index++
			return fmt.Sprintf("step 3 (%s): its candidate %q is not candidate %d", candidates(n)[r.Steps[2].Index].Selector,
				r.Steps[2].Candidate.Selector, r.Steps[2].Index)
		}},
		{"a candidate judged twice", func(t *testing.T, dir string, r *Report) string {
			r.Steps = append(r.Steps, r.Steps[2])
			return fmt.Sprintf("step %d (%s): step 3 judged it already", len(r.Steps), r.Steps[2].Candidate.Selector)
		}},
		{"more steps than candidates", func(t *testing.T, dir string, r *Report) string {
			for len(r.Steps) <= n {
				r.Steps = append(r.Steps, r.Steps[0])
			}
			return "41 steps for 40 candidates"
		}},
		{"a step with a run too many", func(t *testing.T, dir string, r *Report) string {
			r.Steps[2].Runs = append(r.Steps[2].Runs, r.Steps[2].Runs[0])
			// Two runs are a retry under -repeat 1, which agreeing runs
			// never make.
			return "step 3 (" + r.Steps[2].Candidate.Selector + "): run 2 keeps its results at"
		}},
		{"a step with three runs", func(t *testing.T, dir string, r *Report) string {
			r.Steps[2].Runs = append(r.Steps[2].Runs, r.Steps[2].Runs[0], r.Steps[2].Runs[0])
			return "step 3 (" + r.Steps[2].Candidate.Selector + "): 3 runs, where -repeat 1 makes 1, or 2 after a retry"
		}},
		{"a step without runs", func(t *testing.T, dir string, r *Report) string {
			r.Steps[2].Runs = nil
			return "step 3 (" + r.Steps[2].Candidate.Selector + "): 0 runs"
		}},
		{"another predicate", func(t *testing.T, dir string, r *Report) string {
			r.Predicate = "pt/integrity!=pass"
			return `is of another bisection: its predicate is "pt/integrity!=pass", not "pt/integrity=fail"`
		}},
		{"other ends", func(t *testing.T, dir string, r *Report) string {
			r.Good = "k01"
			return `is of another bisection: its ends are "k01" and "k39"`
		}},
		{"another -repeat", func(t *testing.T, dir string, r *Report) string {
			r.Repeat = 2
			return "is of another bisection: it was made with -repeat 2, not 1"
		}},
		{"another candidate list", func(t *testing.T, dir string, r *Report) string {
			r.Candidates[7].Version = "6.12.57"
			return "is of another bisection: its 40 candidates are not these 40"
		}},
		{"another schema", func(t *testing.T, dir string, r *Report) string {
			r.Schema = 99
			return "its schema is 99"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, f, _ := logged(t, pred, n, at)
			r := readLogFile(t, o.Dir)
			want := tc.edit(t, o.Dir, r)
			writeLog(t, o.Dir, r)
			before, err := os.ReadFile(filepath.Join(o.Dir, "bisect.json"))
			assert.NilError(t, err)
			log := &logSink{}
			o.Logf, o.Resume = log.logf, true
			_, err = within(t, context.Background(), o, promptly)
			assert.Check(t, errors.Is(err, ErrInput), "%v", err)
			assert.Check(t, is.ErrorContains(err, want))
			assert.Check(t, is.Len(f.boots, 0), "a refused log boots nothing: %v", f.boots)
			assert.Check(t, log.bytes < 4096, "%d bytes of log: %q", log.bytes, log.lines)
			after, err := os.ReadFile(filepath.Join(o.Dir, "bisect.json"))
			assert.NilError(t, err)
			assert.Check(t, bytes.Equal(before, after), "a refused log is left as it was")
		})
	}
	t.Run("the log is a FIFO", func(t *testing.T) {
		o, f, _ := logged(t, pred, n, at)
		path := filepath.Join(o.Dir, "bisect.json")
		assert.NilError(t, os.Remove(path))
		assert.NilError(t, syscall.Mkfifo(path, 0o644))
		o.Resume = true
		_, err := within(t, context.Background(), o, promptly)
		assert.Check(t, errors.Is(err, ErrInput), "%v", err)
		assert.Check(t, is.ErrorContains(err, path+": not a regular file"))
		assert.Check(t, is.Len(f.boots, 0))
	})
}

func mustParse(t *testing.T, text string) *predicate.Predicate {
	t.Helper()
	p, err := predicate.Parse(text)
	assert.NilError(t, err)
	return p
}

// Issue 21 row 3: a step whose results are not on disk is never taken
// from the log: it is judged again by booting, and the answer is the
// kernels', whatever the log said of that step.
func TestResumeRejudgesMissing(t *testing.T) {
	const pred, n, at = "pt/integrity=fail", 40, 23
	for _, tc := range []struct {
		name string
		// edit returns the candidates that must boot again.
		edit func(t *testing.T, dir string, r *Report) []string
	}{
		{"a step's results deleted, its verdict flipped", func(t *testing.T, dir string, r *Report) []string {
			i := firstStep(t, r, New)
			st := &r.Steps[i]
			assert.NilError(t, os.RemoveAll(filepath.Join(dir, filepath.Dir(st.Runs[0].Results))))
			st.Verdict, st.Runs[0].Verdict = Old, predicate.Old
			return []string{st.Candidate.Selector}
		}},
		{"a run without results, flipped", func(t *testing.T, dir string, r *Report) []string {
			st := &r.Steps[2]
			st.Runs[0].Results = ""
			if st.Verdict == New {
				st.Verdict, st.Runs[0].Verdict = Old, predicate.Old
			} else {
				st.Verdict, st.Runs[0].Verdict = New, predicate.New
			}
			return []string{st.Candidate.Selector}
		}},
		{"every step's results deleted", func(t *testing.T, dir string, r *Report) []string {
			assert.NilError(t, os.RemoveAll(filepath.Join(dir, "steps")))
			var all []string
			for _, st := range r.Steps {
				all = append(all, st.Candidate.Selector)
			}
			return all
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, f, full := logged(t, pred, n, at)
			r := readLogFile(t, o.Dir)
			again := tc.edit(t, o.Dir, r)
			writeLog(t, o.Dir, r)
			o.Resume = true
			got, err := within(t, context.Background(), o, promptly)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(got.FirstNew.Selector, full.FirstNew.Selector))
			assert.Check(t, is.Equal(got.Certainty, "exact"))
			assert.Check(t, is.Len(f.boots, len(again)), "booted again: %v", f.boots)
			for _, sel := range again {
				assert.Check(t, is.Equal(f.boots[sel], 1), sel)
			}
		})
	}
}

// Every loop of a bisection stops when its context is cancelled: the
// steps of a resumed log (which boot nothing, so no boot notices), the
// steps judged again from their results, and a step's repeated boots.
func TestBisectCancelled(t *testing.T) {
	const pred, n, at = "pt/integrity=fail", 40, 23
	t.Run("replaying a resumed log", func(t *testing.T) {
		o, f, _ := logged(t, pred, n, at)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		log := &logSink{onLine: func(line string) {
			if strings.Contains(line, "(from the log") {
				cancel()
			}
		}}
		o.Logf, o.Resume = log.logf, true
		_, err := within(t, ctx, o, promptly)
		assert.Check(t, is.ErrorContains(err, "interrupted"))
		assert.Check(t, is.Equal(log.count("(from the log"), 1), "%q", log.lines)
		assert.Check(t, is.Len(f.boots, 0))
	})
	t.Run("reading a resumed log", func(t *testing.T) {
		o, f, _ := logged(t, pred, n, at)
		assert.NilError(t, os.RemoveAll(filepath.Join(o.Dir, "steps")))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		log := &logSink{onLine: func(line string) {
			if strings.Contains(line, "not on disk") {
				cancel()
			}
		}}
		o.Logf, o.Resume = log.logf, true
		_, err := within(t, ctx, o, promptly)
		assert.Check(t, is.ErrorContains(err, "interrupted"))
		assert.Check(t, is.Equal(log.count("not on disk"), 1), "%q", log.lines)
		assert.Check(t, is.Len(f.boots, 0))
	})
	t.Run("a step's repeated boots", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f := &fake{verdicts: changeAt(at)}
		o := options(t, pred, n, f, func(o *Options) { o.Repeat = 5 })
		calls := 0
		o.Judge = func(ctx context.Context, c Candidate, attempt int) Run {
			calls++
			if attempt == 1 {
				cancel()
			}
			return f.judge(ctx, c, attempt)
		}
		r, err := within(t, ctx, o, promptly)
		assert.Check(t, is.ErrorContains(err, "interrupted"))
		assert.Check(t, is.Equal(calls, 2), "boots after the cancel")
		assert.Check(t, is.Len(r.Steps, 0), "the step cut short is not recorded")
	})
}

// FuzzResumeLog feeds any bisect.json to -resume, beside the true results
// of every candidate (the change is at k05). Reading it never panics, and
// a log it accepts holds what a log of this bisection must (row 2 of
// issue 21: its candidates at their indexes, each once, known verdicts,
// the runs -repeat makes); the bisection then returns promptly, boots no
// candidate twice, and finds k05 whatever the log claimed (row 3).
func FuzzResumeLog(f *testing.F) {
	const pred, n, at = "pt/integrity=fail", 8, 5
	seed := func(edit func(r *Report)) []byte {
		dir := f.TempDir()
		p, err := predicate.Parse(pred)
		assert.NilError(f, err)
		fk := &fake{verdicts: changeAt(at), tb: f, pred: p, dir: dir}
		r, err := Bisect(context.Background(), Options{Predicate: p, Good: "k00", Bad: "k07", Candidates: candidates(n), Dir: dir, Judge: fk.judge})
		assert.NilError(f, err)
		if edit != nil {
			edit(r)
		}
		data, err := json.Marshal(r)
		assert.NilError(f, err)
		return data
	}
	f.Add(seed(nil))
	f.Add(seed(func(r *Report) { r.Steps[2].Verdict = "bogus" }))
	// The answer moves if the fourth step (k05, new) is taken as old, or
	// the third (k03, old) as new.
	f.Add(seed(func(r *Report) { r.Steps[3].Verdict, r.Steps[3].Runs[0].Verdict = Old, predicate.Old }))
	f.Add(seed(func(r *Report) { r.Steps[2].Verdict, r.Steps[2].Runs[0].Verdict = New, predicate.New }))
	f.Add(seed(func(r *Report) { r.Steps = append(r.Steps, r.Steps...) }))
	f.Add(seed(func(r *Report) { r.Steps[1].Index = 3 }))
	f.Add(seed(func(r *Report) { r.Steps[2].Runs[0].Results = "" }))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"schema":1,"predicate":"pt/integrity=fail","good":"k00","bad":"k07","repeat":1,"steps":[{"index":3}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := predicate.Parse(pred)
		assert.NilError(t, err)
		dir := t.TempDir()
		cands := candidates(n)
		truth := &fake{verdicts: changeAt(at), tb: t, pred: p, dir: dir}
		for _, c := range cands {
			truth.judge(context.Background(), c, 0)
		}
		o := Options{Predicate: p, Good: "k00", Bad: "k07", Candidates: cands, Repeat: 1, Dir: dir, Resume: true}

		if old, err := parseLog(data, o); err == nil {
			assert.Assert(t, len(old.Steps) <= n, "%d steps", len(old.Steps))
			seen := map[int]bool{}
			for _, st := range old.Steps {
				assert.Assert(t, st.Index >= 0 && st.Index < n, "index %d", st.Index)
				assert.Assert(t, st.Candidate == cands[st.Index], "step of %q at index %d", st.Candidate.Selector, st.Index)
				assert.Assert(t, !seen[st.Index], "index %d twice", st.Index)
				seen[st.Index] = true
				assert.Assert(t, st.Verdict == New || st.Verdict == Old || st.Verdict == Skip, "verdict %q", st.Verdict)
				assert.Assert(t, len(st.Runs) == 1 || len(st.Runs) == 2, "%d runs", len(st.Runs))
				for _, r := range st.Runs {
					assert.Assert(t, r.Verdict == predicate.New || r.Verdict == predicate.Old || r.Verdict == predicate.Unknown, "run verdict %q", r.Verdict)
				}
			}
		}

		assert.NilError(t, os.WriteFile(filepath.Join(dir, "bisect.json"), data, 0o644))
		fk := &fake{verdicts: changeAt(at), tb: t, pred: p, dir: dir}
		o.Judge = fk.judge
		log := &logSink{}
		o.Logf = log.logf
		ctx, cancel := context.WithTimeout(context.Background(), promptly)
		defer cancel()
		r, err := within(t, ctx, o, promptly+5*time.Second)
		assert.Assert(t, ctx.Err() == nil, "the bisection ran into its deadline")
		assert.Assert(t, log.bytes < 64<<10, "%d bytes of log", log.bytes)
		for sel, boots := range fk.boots {
			assert.Assert(t, boots == 1, "%s booted %d times", sel, boots)
		}
		if err != nil {
			assert.Assert(t, errors.Is(err, ErrInput), "%v", err)
			return
		}
		assert.Equal(t, r.Outcome, "found")
		assert.Equal(t, r.FirstNew.Selector, "k05", "whatever the log said")
		assert.Equal(t, r.LastOld.Selector, "k04")
	})
}

// A step whose verdict the halving loop does not know ends the bisection
// with an error, even with a context that is never cancelled: resume
// refuses such a step first, and this is the loop's own guard (an unknown
// verdict and a bound on the steps), which would otherwise spin.
func TestBisectUnknownVerdictStops(t *testing.T) {
	f := &fake{verdicts: changeAt(5)}
	o := options(t, "pt/integrity=fail", 10, f)
	log := &logSink{}
	o.Logf = log.logf
	b := &bisection{o: o, r: &Report{}, judged: map[int]*Step{}, stored: map[int]*Step{
		4: {Index: 4, Candidate: o.Candidates[4], Verdict: "bogus"},
	}}
	done := make(chan error, 1)
	go func() { done <- b.run(context.Background()) }()
	select {
	case err := <-done:
		assert.Check(t, is.ErrorContains(err, `k04: verdict "bogus" is not new, old or skip`))
	case <-time.After(promptly):
		t.Fatalf("the halving loop spins on an unknown verdict")
	}
	assert.Check(t, log.bytes < 4096, "%d bytes of log", log.bytes)
}
