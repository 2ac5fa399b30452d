// Package bisect finds the first kernel, in an ordered list of
// candidates, whose results show the behaviour a predicate names: the
// third question fusematrix answers, "when did that change?". It checks
// both ends first, then halves the range, judging each step by booting the
// candidate (through a Judge) as often as -repeat says, and writes its
// log after every step, so that an interrupted bisection resumes where it
// stopped.
//
// It imports harness (for its atomic file writes) and results/predicate;
// what a step boots, and how, is the Judge its caller gives it.
package bisect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/results/predicate"
)

// SchemaVersion is written into bisect.json.
const SchemaVersion = 1

// Candidate is one kernel on the way from good to bad.
type Candidate struct {
	// Selector boots exactly this kernel (a kernel name fusematrix
	// resolves: debian:<package>=<version>@<suite>, src:DIR…).
	Selector string `json:"selector"`
	Package  string `json:"package,omitempty"`
	Version  string `json:"version,omitempty"`
	Suite    string `json:"suite,omitempty"`
	Commit   string `json:"commit,omitempty"`
	Subject  string `json:"subject,omitempty"`
	Date     string `json:"date,omitempty"`
}

// Verdict of one step.
type Verdict string

const (
	New Verdict = "new"
	Old Verdict = "old"
	// Skip: the step could not be judged (no boot, no result, a build
	// that failed, repeats that disagree twice); bisection goes around it.
	Skip Verdict = "skip"
)

// Run is one boot of a candidate.
type Run struct {
	Verdict  predicate.Verdict `json:"verdict"`
	Evidence string            `json:"evidence"`
	Release  string            `json:"release,omitempty"`
	Seconds  float64           `json:"seconds"`
	// ConsoleTail is kept when the run could not say.
	ConsoleTail []string `json:"console_tail,omitempty"`
	// Results is the run's results.json, relative to the bisection's
	// folder.
	Results string `json:"results,omitempty"`
}

// Step is one judged candidate.
type Step struct {
	Index     int       `json:"index"`
	Candidate Candidate `json:"candidate"`
	Verdict   Verdict   `json:"verdict"`
	// Why says how the runs made the verdict, when it is not unanimous.
	Why     string  `json:"why,omitempty"`
	Runs    []Run   `json:"runs"`
	Seconds float64 `json:"seconds"`
	// Command reproduces one run of the step.
	Command string `json:"command"`
}

// Point is a bisection's answer: the first candidate with the new
// behaviour, or the last without.
type Point struct {
	Candidate
	Release string `json:"release,omitempty"`
}

// Report is bisect.json.
type Report struct {
	Schema     int         `json:"schema"`
	Predicate  string      `json:"predicate"`
	Good       string      `json:"good"`
	Bad        string      `json:"bad"`
	Repeat     int         `json:"repeat"`
	Candidates []Candidate `json:"candidates"`
	Steps      []Step      `json:"steps"`
	// Outcome is "found", "not-bracketed" (an end does not behave as
	// given) or "unjudged" (an end or every candidate in between could
	// not be judged); FirstNew and LastOld are set when found.
	Outcome  string `json:"outcome"`
	Message  string `json:"message,omitempty"`
	FirstNew *Point `json:"first_new,omitempty"`
	LastOld  *Point `json:"last_old,omitempty"`
	// Certainty says how sure the answer is: "exact", or which skipped
	// candidates could hold the change instead.
	Certainty string    `json:"certainty,omitempty"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished,omitzero"`
}

// Judge boots a candidate once and returns what its results say; an
// error means the step cannot be judged (it is skipped), never that it is
// old or new.
type Judge func(ctx context.Context, c Candidate, attempt int) Run

// Options configure a bisection.
type Options struct {
	Predicate  *predicate.Predicate
	Good, Bad  string
	Candidates []Candidate // Candidates[0] is good, the last is bad
	// Repeat is how many times each step boots; 0 is 1.
	Repeat int
	// Dir receives bisect.json and bisect.md after every step.
	Dir string
	// Resume reuses the verdicts of a bisect.json in Dir made for the
	// same predicate and candidates.
	Resume bool
	Judge  Judge
	// Command renders the command that reproduces one run of c.
	Command func(c Candidate) string
	Logf    func(format string, args ...any)
}

// ErrInput is wrapped by errors that are the caller's to fix.
var ErrInput = errors.New("bad bisection input")

// Bisect runs the bisection and returns its report, also written to
// o.Dir. The error is for what stopped it from finishing (ctx, a folder
// it cannot write); a bisection that finished without an answer says so
// in Outcome.
func Bisect(ctx context.Context, o Options) (*Report, error) {
	if o.Repeat < 1 {
		o.Repeat = 1
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if len(o.Candidates) < 2 {
		return nil, fmt.Errorf("%w: %d candidates from %s to %s: a bisection needs two ends", ErrInput, len(o.Candidates), o.Good, o.Bad)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("bisect: %w", err)
	}
	b := &bisection{o: o, judged: map[int]*Step{}}
	b.r = &Report{Schema: SchemaVersion, Predicate: o.Predicate.Text, Good: o.Good, Bad: o.Bad, Repeat: o.Repeat,
		Candidates: o.Candidates, Started: time.Now().UTC()}
	if o.Resume {
		if err := b.resume(); err != nil {
			return nil, err
		}
	}
	err := b.run(ctx)
	if err == nil {
		b.r.Finished = time.Now().UTC()
	}
	return b.r, errors.Join(err, b.write())
}

type bisection struct {
	o      Options
	r      *Report
	judged map[int]*Step // by candidate index
}

func (b *bisection) run(ctx context.Context) error {
	n := len(b.o.Candidates)
	lo, hi := 0, n-1
	for _, end := range []struct {
		i    int
		want Verdict
		name string
	}{{lo, Old, "good"}, {hi, New, "bad"}} {
		st, err := b.step(ctx, end.i)
		if err != nil {
			return err
		}
		switch st.Verdict {
		case end.want:
		case Skip:
			b.r.Outcome = "unjudged"
			b.r.Message = fmt.Sprintf("the %s end %s could not be judged: %s", end.name, st.Candidate.Selector, st.Why)
			return nil
		default:
			b.r.Outcome = "not-bracketed"
			b.r.Message = fmt.Sprintf("the %s end %s already shows the %s behaviour (%s): the ends do not bracket a change",
				end.name, st.Candidate.Selector, st.Verdict, evidence(st))
			return nil
		}
	}
	for {
		mid := b.next(lo, hi)
		if mid < 0 {
			break
		}
		st, err := b.step(ctx, mid)
		if err != nil {
			return err
		}
		switch st.Verdict {
		case New:
			hi = mid
		case Old:
			lo = mid
		}
	}
	b.r.Outcome = "found"
	b.r.LastOld, b.r.FirstNew = b.point(lo), b.point(hi)
	b.r.Certainty = "exact"
	var skipped []string
	for i := lo + 1; i < hi; i++ {
		skipped = append(skipped, b.o.Candidates[i].Selector)
	}
	if len(skipped) > 0 {
		b.r.Certainty = fmt.Sprintf("the change is in one of %d candidates: %s, or %s itself (the others could not be judged)",
			len(skipped), joinShort(skipped), b.o.Candidates[hi].Selector)
	}
	b.o.Logf("bisect: first new %s, last old %s (%s)", b.r.FirstNew.Selector, b.r.LastOld.Selector, b.r.Certainty)
	return nil
}

// next picks the candidate strictly between lo and hi to judge: the one
// nearest the middle that was not skipped; -1 when none is left.
func (b *bisection) next(lo, hi int) int {
	mid := (lo + hi) / 2
	best := -1
	for i := lo + 1; i < hi; i++ {
		if st, ok := b.judged[i]; ok && st.Verdict == Skip {
			continue
		}
		if best < 0 || abs(i-mid) < abs(best-mid) {
			best = i
		}
	}
	return best
}

func abs(x int) int { return max(x, -x) }

// step judges candidate i, or takes its verdict from a resumed log.
func (b *bisection) step(ctx context.Context, i int) (*Step, error) {
	if st, ok := b.judged[i]; ok {
		b.o.Logf("bisect: %s: %s (from the log)", st.Candidate.Selector, st.Verdict)
		return st, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bisect interrupted: %w", err)
	}
	c := b.o.Candidates[i]
	b.o.Logf("bisect: step %d: %s (%d candidates, %d left between the ends judged so far)",
		len(b.r.Steps)+1, c.Selector, len(b.o.Candidates), b.left())
	st, err := Judged(ctx, b.o, c)
	if err != nil {
		return nil, err
	}
	st.Index = i
	b.judged[i] = st
	b.r.Steps = append(b.r.Steps, *st)
	b.o.Logf("bisect: %s: %s: %s (%.1fs)", c.Selector, st.Verdict, evidence(st), st.Seconds)
	return st, b.write()
}

// Judged boots c as often as o says and decides its verdict by the
// README's rules, without a bisection around it: what git bisect run
// asks of one commit.
func Judged(ctx context.Context, o Options, c Candidate) (*Step, error) {
	if o.Repeat < 1 {
		o.Repeat = 1
	}
	st := &Step{Candidate: c}
	if o.Command != nil {
		st.Command = o.Command(c)
	}
	start := time.Now()
	for attempt := 0; attempt < o.Repeat; attempt++ {
		st.Runs = append(st.Runs, o.Judge(ctx, c, attempt))
	}
	st.Verdict, st.Why = decide(o.Predicate, st.Runs, false)
	if st.Why == retry {
		// Repeats that disagree get one more round before they count.
		for attempt := o.Repeat; attempt < 2*o.Repeat; attempt++ {
			st.Runs = append(st.Runs, o.Judge(ctx, c, attempt))
		}
		st.Verdict, st.Why = decide(o.Predicate, st.Runs, true)
	}
	if ctx.Err() != nil {
		// A run cut short by Ctrl-C says nothing: leave the step unjudged.
		return nil, fmt.Errorf("bisect interrupted: %w", ctx.Err())
	}
	st.Seconds = time.Since(start).Seconds()
	return st, nil
}

// left counts the candidates strictly between the nearest judged old
// below and new above, for progress lines.
func (b *bisection) left() int {
	lo, hi := 0, len(b.o.Candidates)-1
	for i, st := range b.judged {
		switch {
		case st.Verdict == Old && i > lo:
			lo = i
		case st.Verdict == New && i < hi:
			hi = i
		}
	}
	return max(hi-lo-1, 0)
}

func (b *bisection) point(i int) *Point {
	p := &Point{Candidate: b.o.Candidates[i]}
	if st, ok := b.judged[i]; ok {
		for _, r := range st.Runs {
			if r.Release != "" {
				p.Release = r.Release
				break
			}
		}
	}
	return p
}

func evidence(st *Step) string {
	for _, r := range st.Runs {
		if r.Evidence != "" {
			if st.Why != "" {
				return r.Evidence + "; " + st.Why
			}
			return r.Evidence
		}
	}
	return st.Why
}

func joinShort(ss []string) string {
	if len(ss) > 4 {
		return fmt.Sprintf("%s, %s … %s", ss[0], ss[1], ss[len(ss)-1])
	}
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}

// resume loads the steps of an earlier bisect.json in the folder, made
// for the same predicate, ends and candidates.
func (b *bisection) resume() error {
	data, err := os.ReadFile(filepath.Join(b.o.Dir, "bisect.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bisect -resume: %w", err)
	}
	var old Report
	if err := json.Unmarshal(data, &old); err != nil {
		// A log cut short mid-write cannot be: it is replaced whole. Any
		// other damage is not ours to guess about.
		return fmt.Errorf("%w: bisect -resume: %s: %v", ErrInput, filepath.Join(b.o.Dir, "bisect.json"), err)
	}
	if old.Schema != SchemaVersion || old.Predicate != b.r.Predicate || !sameCandidates(old.Candidates, b.o.Candidates) {
		return fmt.Errorf("%w: bisect -resume: %s is of another bisection (predicate %q, %d candidates); use another -out",
			ErrInput, b.o.Dir, old.Predicate, len(old.Candidates))
	}
	for _, st := range old.Steps {
		if st.Index < 0 || st.Index >= len(b.o.Candidates) {
			continue
		}
		s := st
		b.judged[st.Index] = &s
		b.r.Steps = append(b.r.Steps, s)
	}
	b.r.Started = old.Started
	b.o.Logf("bisect: resuming with %d judged steps from %s", len(b.r.Steps), b.o.Dir)
	return nil
}

func sameCandidates(a, b []Candidate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Selector != b[i].Selector {
			return false
		}
	}
	return true
}

// write replaces bisect.json and bisect.md, each whole.
func (b *bisection) write() error {
	return errors.Join(
		harness.WriteFile(filepath.Join(b.o.Dir, "bisect.json"), func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(b.r)
		}),
		harness.WriteFile(filepath.Join(b.o.Dir, "bisect.md"), func(w io.Writer) error { return Markdown(w, b.r) }),
	)
}
