// Package bisect finds the first kernel, in an ordered list of
// candidates, whose results show the behaviour a predicate names: the
// third question fusematrix answers, "when did that change?". It checks
// both ends first, then halves the range, judging each step by booting the
// candidate (through a Judge) as often as -repeat says, and writes its
// log after every step, so that an interrupted bisection resumes where it
// stopped: a resumed log is checked against the bisection and each of its
// steps judged again from the results it stored, never taken on trust.
//
// It imports harness (to boot, and for its atomic file writes), results
// (to read a step's stored results) and harness/predicate; what a step
// boots, and how, is the Judge its caller gives it.
package bisect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/harness/predicate"
)

// SchemaVersion is written into bisect.json.
const SchemaVersion = 1

// MaxRepeat bounds Options.Repeat, the boots of one step, and so the runs
// a resumed log may hold for a step (twice as many, after a retry).
const MaxRepeat = 100

// MaxLogBytes bounds a bisect.json read back by -resume. No bisection
// writes one near this size: a step is a few KiB and there are at most as
// many steps as candidates.
const MaxLogBytes = 64 << 20

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

// GitStatus is v as git bisect run's exit status: 0 old (good), 1 new
// (bad), 125 cannot say (skip).
func (v Verdict) GitStatus() int {
	switch v {
	case Old:
		return 0
	case New:
		return 1
	}
	return 125
}

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
	// Resume reuses the steps of a bisect.json in Dir made for the same
	// predicate, ends, -repeat and candidates, each judged again from the
	// results its runs stored (see resume).
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
	if o.Repeat > MaxRepeat {
		return nil, fmt.Errorf("%w: -repeat %d: at most %d boots per step", ErrInput, o.Repeat, MaxRepeat)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("bisect: %w", err)
	}
	b := &bisection{o: o, judged: map[int]*Step{}, stored: map[int]*Step{}}
	b.r = &Report{Schema: SchemaVersion, Predicate: o.Predicate.Text, Good: o.Good, Bad: o.Bad, Repeat: o.Repeat,
		Candidates: o.Candidates, Started: time.Now().UTC()}
	if o.Resume {
		// A log that is refused is left as it is: nothing is written.
		if err := b.resume(ctx); err != nil {
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
	// stored holds a resumed log's steps, judged again from their
	// results, until the bisection comes to them.
	stored map[int]*Step
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
	// Each step narrows [lo, hi] or skips a candidate inside it, so at most
	// n steps follow the ends. The bound turns a step that does neither (a
	// verdict this loop does not know) into an error instead of a spin;
	// b.step watches ctx.
	for steps := 0; ; steps++ {
		if steps > n {
			return fmt.Errorf("bisect: no answer after %d steps over %d candidates", steps, n)
		}
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
		case Skip:
		default:
			return fmt.Errorf("bisect: %s: verdict %q is not new, old or skip", st.Candidate.Selector, st.Verdict)
		}
	}
	if lo == 0 && hi == n-1 && n > 2 {
		// Nothing between the ends could be judged: naming the bad end as
		// the first new kernel would be a guess.
		var between []string
		for _, c := range b.o.Candidates[1 : n-1] {
			between = append(between, c.Selector)
		}
		b.r.Outcome = "unjudged"
		b.r.Message = fmt.Sprintf("none of the %d candidates between the ends could be judged (%s): the change is in one of them or in the bad end %s",
			n-2, joinShort(between), b.o.Candidates[n-1].Selector)
		if n == 3 {
			b.r.Message = fmt.Sprintf("the one candidate between the ends, %s, could not be judged: the change is in it or in the bad end %s",
				between[0], b.o.Candidates[n-1].Selector)
		}
		b.o.Logf("bisect: %s", b.r.Message)
		return nil
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
	// Before the log too: a step from the log boots nothing, and a loop
	// over such steps must still stop on Ctrl-C.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bisect interrupted: %w", err)
	}
	if st, ok := b.judged[i]; ok {
		return st, nil
	}
	if st, ok := b.stored[i]; ok {
		delete(b.stored, i)
		b.judged[i] = st
		b.r.Steps = append(b.r.Steps, *st)
		b.o.Logf("bisect: %s: %s (from the log, judged again from its results)", st.Candidate.Selector, st.Verdict)
		return st, nil
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
	// rule says how many runs the verdict needs (a second round when the
	// first disagrees): at most 2×Repeat, one boot per turn.
	for ctx.Err() == nil {
		v, why, want := rule(o.Predicate, st.Runs, o.Repeat)
		if len(st.Runs) >= want {
			st.Verdict, st.Why = v, why
			break
		}
		st.Runs = append(st.Runs, o.Judge(ctx, c, len(st.Runs)))
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

// resume loads the steps of an earlier bisect.json in the folder. The
// log is checked against this bisection (checkLog) and each step is
// judged again from the results its runs stored (rejudge), by the code
// that judged them live: a log is a cache of verdicts, never their
// authority. A step whose results are not on disk (deleted, or a kernel
// that never got to boot) is judged again by booting; one whose results
// cannot be read or do not bear out its verdict refuses the whole log,
// since something other than fusematrix wrote it.
func (b *bisection) resume(ctx context.Context) error {
	path := filepath.Join(b.o.Dir, "bisect.json")
	data, err := readLog(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: bisect -resume: %v", ErrInput, err)
	}
	old, err := parseLog(data, b.o)
	if err != nil {
		return fmt.Errorf("%w: bisect -resume: %s: %v; %s", ErrInput, path, err, startAgain)
	}
	for n := range old.Steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("bisect interrupted: %w", err)
		}
		st := &old.Steps[n]
		trusted, err := rejudge(b.o, st)
		if err != nil {
			return fmt.Errorf("%w: bisect -resume: %s: step %d (%s): %v; %s",
				ErrInput, path, n+1, st.Candidate.Selector, err, startAgain)
		}
		if !trusted {
			b.o.Logf("bisect: %s: its results are not on disk: it is judged again", st.Candidate.Selector)
			continue
		}
		b.stored[st.Index] = st
	}
	b.r.Started = old.Started
	b.o.Logf("bisect: resuming with %d of %d logged steps from %s", len(b.stored), len(old.Steps), b.o.Dir)
	return nil
}

// startAgain ends the error of a refused log.
const startAgain = "use another -out, or remove the log to start again"

// readLog reads bisect.json the way results.ReadFile reads a run: only a
// regular file (a FIFO in its place would block -resume for ever), opened
// without blocking, and at most MaxLogBytes.
func readLog(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxLogBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxLogBytes {
		return nil, fmt.Errorf("%s: larger than %d MiB, which no bisection writes", path, MaxLogBytes>>20)
	}
	return data, nil
}

// parseLog decodes a bisect.json and checks it against the bisection o
// describes (checkLog).
func parseLog(data []byte, o Options) (*Report, error) {
	var old Report
	if err := json.Unmarshal(data, &old); err != nil {
		// A log cut short mid-write cannot be: it is replaced whole. Any
		// other damage is not ours to guess about.
		return nil, err
	}
	if err := checkLog(&old, o); err != nil {
		return nil, err
	}
	return &old, nil
}

// checkLog says whether old is a log of the bisection o describes: the
// same schema, predicate, ends, -repeat and candidates, and steps each of
// the candidate at its index, each candidate at most once (so no more
// steps than candidates), with verdicts the bisection knows and as many
// runs as -repeat makes. It names the first step that is not; it reads
// no files (rejudge does).
func checkLog(old *Report, o Options) error {
	repeat := max(o.Repeat, 1)
	var other string
	switch {
	case old.Schema != SchemaVersion:
		other = fmt.Sprintf("its schema is %d, not %d", old.Schema, SchemaVersion)
	case old.Predicate != o.Predicate.Text:
		other = fmt.Sprintf("its predicate is %.200q, not %q", old.Predicate, o.Predicate.Text)
	case old.Good != o.Good || old.Bad != o.Bad:
		other = fmt.Sprintf("its ends are %.200q and %.200q, not %q and %q", old.Good, old.Bad, o.Good, o.Bad)
	case old.Repeat != repeat:
		other = fmt.Sprintf("it was made with -repeat %d, not %d", old.Repeat, repeat)
	case !slices.Equal(old.Candidates, o.Candidates):
		other = fmt.Sprintf("its %d candidates are not these %d", len(old.Candidates), len(o.Candidates))
	case len(old.Steps) > len(o.Candidates):
		return fmt.Errorf("%d steps for %d candidates: a bisection judges each candidate at most once", len(old.Steps), len(o.Candidates))
	}
	if other != "" {
		return fmt.Errorf("it is of another bisection: %s", other)
	}
	seen := map[int]int{}
	for n, st := range old.Steps {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("step %d: %s", n+1, fmt.Sprintf(format, args...))
		}
		if st.Index < 0 || st.Index >= len(o.Candidates) {
			return bad("index %d is not one of the %d candidates", st.Index, len(o.Candidates))
		}
		c := o.Candidates[st.Index]
		bad = func(format string, args ...any) error {
			return fmt.Errorf("step %d (%s): %s", n+1, c.Selector, fmt.Sprintf(format, args...))
		}
		if st.Candidate != c {
			return bad("its candidate %.200q is not candidate %d of this bisection", st.Candidate.Selector, st.Index)
		}
		if prev, ok := seen[st.Index]; ok {
			return bad("step %d judged it already", prev+1)
		}
		seen[st.Index] = n
		switch st.Verdict {
		case New, Old, Skip:
		default:
			return bad("verdict %.40q is not new, old or skip", st.Verdict)
		}
		if len(st.Runs) != repeat && len(st.Runs) != 2*repeat {
			return bad("%d runs, where -repeat %d makes %d, or %d after a retry", len(st.Runs), repeat, repeat, 2*repeat)
		}
		for k, r := range st.Runs {
			switch r.Verdict {
			case predicate.New, predicate.Old, predicate.Unknown:
			default:
				return bad("run %d: verdict %.40q is not new, old or unknown", k+1, r.Verdict)
			}
		}
	}
	return nil
}

// rejudge judges a logged step again from the results its runs stored,
// with judgeResults and rule, the code that judged it live: true when the
// results bear out every run's verdict and the step's, and then st holds
// what the results say (evidence, release). It returns false, and no
// error, when a run's results are not on disk: the step is to be judged
// again by booting.
func rejudge(o Options, st *Step) (bool, error) {
	for k := range st.Runs {
		r := &st.Runs[k]
		want := RunResults(st.Candidate, k)
		if r.Results == "" {
			return false, nil
		}
		if r.Results != want {
			return false, fmt.Errorf("run %d keeps its results at %.200q, not at %s where this bisection puts them", k+1, r.Results, want)
		}
		if _, err := os.Lstat(filepath.Join(o.Dir, want)); errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		again, err := judgeResults(o.Predicate, o.Dir, want)
		if err != nil {
			return false, fmt.Errorf("run %d: %w", k+1, err)
		}
		if again.Verdict != r.Verdict {
			return false, fmt.Errorf("run %d is logged as %s, but its results say %s (%s)", k+1, r.Verdict, again.Verdict, again.Evidence)
		}
		again.Seconds = r.Seconds
		*r = again
	}
	v, why, want := rule(o.Predicate, st.Runs, max(o.Repeat, 1))
	if want != len(st.Runs) {
		return false, fmt.Errorf("%d runs, but the verdict rules stop at %d for these", len(st.Runs), want)
	}
	if v != st.Verdict {
		return false, fmt.Errorf("verdict %s is logged, but its runs' results make it %s", st.Verdict, v)
	}
	st.Why = why
	return true, nil
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
