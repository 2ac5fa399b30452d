package bisect

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/fusematrix/fusematrix/harness/predicate"
	"github.com/fusematrix/fusematrix/kernels"
)

// Setup is what a bisection steps through and how each step is booted
// and reproduced by hand.
type Setup struct {
	Candidates []Candidate
	// Kernel is the kernel a step boots (a selector), made ready: a
	// packaged candidate's own selector, or the source tree's worktree
	// checked out at the candidate's commit.
	Kernel func(ctx context.Context, c Candidate) (string, error)
	// Command reproduces one run of a step.
	Command func(c Candidate) string
	// Summary says, for the progress log, what the candidates are.
	Summary string
}

// Packaged is the setup of a bisection over the packaged builds from good
// to bad, as kernels.History lists them.
func Packaged(builds []kernels.Packaged, pred *predicate.Predicate, good, bad string) Setup {
	cands := make([]Candidate, len(builds))
	for i, b := range builds {
		cands[i] = Candidate{Selector: b.Selector, Package: b.Package, Version: b.Version, Suite: b.Suite}
	}
	return Setup{
		Candidates: cands,
		Kernel:     PackagedKernel,
		Command:    func(c Candidate) string { return Reproduce(pred, c.Selector) },
		Summary:    fmt.Sprintf("%d packaged kernels from %s to %s", len(cands), good, bad),
	}
}

// Plan says what the bisection from good to bad steps through: with src,
// a Linux tree's commits (Source, built in the kernels cache kopts names),
// else the packaged builds history lists (kernels.History, which the
// caller passes so that tests can stand in for the archive).
// What only the input can fix is ErrInput.
func Plan(ctx context.Context, src, good, bad, base string, pred *predicate.Predicate, kopts kernels.Options,
	history func(ctx context.Context, good, bad string, o kernels.Options) ([]kernels.Packaged, error)) (Setup, error) {
	if src == "" {
		builds, err := history(ctx, good, bad, kopts)
		if err != nil {
			return Setup{}, inputError{err}
		}
		return Packaged(builds, pred, good, bad), nil
	}
	cache, err := kernels.CacheRoot(kopts)
	if err != nil {
		return Setup{}, err
	}
	return Source(ctx, src, good, bad, base, cache, pred)
}

// inputError is an error that is ErrInput, its text unchanged.
type inputError struct{ error }

func (e inputError) Is(target error) bool { return target == ErrInput }
func (e inputError) Unwrap() error        { return e.error }

// Boots is about how many boots a bisection over n candidates takes: both
// ends, then one per halving.
func Boots(n int) int {
	b := 2
	for ; n > 2; n = (n + 1) / 2 {
		b++
	}
	return b
}

// PackagedKernel boots a packaged candidate by its exact selector.
func PackagedKernel(_ context.Context, c Candidate) (string, error) { return c.Selector, nil }

// Source is the setup of a bisection over the commits of the Linux tree
// src from good to bad, each built from base (defconfig, tinyconfig or a
// file) and the project's fragment in a worktree fusematrix owns under
// cacheDir. Revisions that do not make such a line are ErrInput.
func Source(ctx context.Context, src, good, bad, base, cacheDir string, pred *predicate.Predicate) (Setup, error) {
	cands, err := Commits(ctx, src, good, bad)
	if err != nil {
		return Setup{}, err
	}
	wt, err := OpenWorktree(ctx, src, filepath.Join(cacheDir, "worktrees"))
	if err != nil {
		return Setup{}, err
	}
	selector := "src:" + wt.Path + ",base=" + base
	return Setup{
		Candidates: cands,
		Kernel: func(ctx context.Context, c Candidate) (string, error) {
			return selector, wt.Checkout(ctx, c.Commit)
		},
		Command: func(c Candidate) string {
			return fmt.Sprintf("git -C %s checkout --detach %.12s && %s", wt.Path, c.Commit, Reproduce(pred, selector))
		},
		Summary: fmt.Sprintf("%d commits from %s to %s, built in %s", len(cands), good, bad, wt.Path),
	}, nil
}

// Reproduce is the command that boots one step by hand.
func Reproduce(pred *predicate.Predicate, selector string) string {
	return fmt.Sprintf("fusematrix matrix -run '%s' '%s'", pred.RunPattern(), selector)
}

// Summary writes the answer of r for a terminal, and where its log is.
func Summary(w io.Writer, r *Report, dir string) {
	fmt.Fprintln(w)
	switch r.Outcome {
	case "found":
		for _, p := range []struct {
			name  string
			point *Point
		}{{"first new", r.FirstNew}, {"last old ", r.LastOld}} {
			if p.point.Commit != "" {
				fmt.Fprintf(w, "%s: %.12s %s (%s), release %s\n", p.name, p.point.Commit, p.point.Subject, p.point.Date, p.point.Release)
			} else {
				fmt.Fprintf(w, "%s: %s (release %s)\n", p.name, p.point.Selector, p.point.Release)
			}
		}
		fmt.Fprintf(w, "certainty: %s; %d steps\n", r.Certainty, len(r.Steps))
	default:
		fmt.Fprintf(w, "no answer (%s): %s\n", r.Outcome, r.Message)
	}
	fmt.Fprintf(w, "\nbisect: %s, %s\n", filepath.Join(dir, "bisect.json"), filepath.Join(dir, "bisect.md"))
}

// Evidences are what each run of st showed, and how they were decided.
func (st *Step) Evidences() []string {
	var out []string
	for _, r := range st.Runs {
		out = append(out, r.Evidence)
	}
	if st.Why != "" {
		out = append(out, st.Why)
	}
	return out
}
