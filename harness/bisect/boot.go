package bisect

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/harness/predicate"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// Boot is the Judge that boots a candidate: kernel gives the kernel name
// to boot for it (for a commit, after checking it out), and base the rest
// of the harness's options. Only the check pred reads runs (and the
// probes), into a folder of its own under base.OutDir/steps. A kernel
// that cannot be named, built or booted makes a run that cannot say.
func Boot(base harness.Options, pred *predicate.Predicate, kernel func(ctx context.Context, c Candidate) (string, error)) Judge {
	return BootWith(harness.Run, base, pred, kernel)
}

// Runner runs the harness for one step's boot: harness.Run, or a test's
// stand-in for QEMU.
type Runner func(ctx context.Context, o harness.Options) (*results.Run, error)

// BootWith is Boot with the harness run by run.
func BootWith(run Runner, base harness.Options, pred *predicate.Predicate, kernel func(ctx context.Context, c Candidate) (string, error)) Judge {
	return func(ctx context.Context, c Candidate, attempt int) Run {
		start := time.Now()
		r := Run{Verdict: predicate.Unknown, Results: RunResults(c, attempt)}
		name, err := kernel(ctx, c)
		if err != nil {
			// Stored like a kernel that failed to boot, so that -resume
			// finds on disk why the run could not say, rather than no
			// results (which it would have to boot again).
			r.Evidence = err.Error()
			failed := results.Kernel{Name: c.Selector, Status: results.Error, Error: err.Error()}
			if werr := writeRun(filepath.Join(base.OutDir, r.Results), failed); werr != nil {
				r.Results = ""
				return r
			}
			j, jerr := judgeResults(pred, base.OutDir, r.Results)
			if jerr != nil {
				return r
			}
			j.Seconds = time.Since(start).Seconds()
			return j
		}
		o := base
		o.Kernels = []string{name}
		o.Params = contract.Params{Run: pred.RunPattern()}
		o.OutDir = filepath.Join(base.OutDir, filepath.Dir(r.Results))
		if logf := base.Logf; logf != nil {
			o.Logf = func(format string, args ...any) { logf("  "+format, args...) }
		}
		got, err := run(ctx, o)
		r.Seconds = time.Since(start).Seconds()
		if err != nil || got == nil || len(got.Kernels) != 1 {
			r.Evidence = fmt.Sprintf("did not run: %v", err)
			return r
		}
		// Judged from the file the run left, as -resume judges it again:
		// what the log says of a step is what its results on disk say.
		j, err := judgeResults(pred, base.OutDir, r.Results)
		if err != nil {
			r.Evidence = fmt.Sprintf("its results: %v", err)
			return r
		}
		j.Seconds = r.Seconds
		return j
	}
}

// writeRun stores a run of the one kernel k at path, as the harness does.
func writeRun(path string, k results.Kernel) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	now := time.Now().UTC()
	run := &results.Run{Schema: results.SchemaVersion, Started: now, Finished: now, Kernels: []results.Kernel{k}}
	return harness.WriteFile(path, func(w io.Writer) error { return results.WriteJSON(w, run) })
}

// RunResults is where run attempt (from 0) of candidate c keeps its
// results.json, relative to the bisection's folder: Boot has the harness
// write it there, and -resume judges the run again from it.
func RunResults(c Candidate, attempt int) string {
	return filepath.Join("steps", fmt.Sprintf("%s.%d", stepName(c), attempt+1), "results.json")
}

// judgeResults judges the results a run stored at rel under dir by pred:
// the one way a step's run is judged, live (Boot) and on -resume
// (rejudge). The error is for results that cannot be read (results.ReadFile
// refuses a FIFO, an oversized or malformed file, one id twice) or that
// are not of exactly one kernel, as a step's run is.
func judgeResults(pred *predicate.Predicate, dir, rel string) (Run, error) {
	run, err := results.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		return Run{}, err
	}
	if len(run.Kernels) != 1 {
		return Run{}, fmt.Errorf("%s holds %d kernels, not the one a step boots", rel, len(run.Kernels))
	}
	k := &run.Kernels[0]
	r := Run{Results: rel, Release: k.Release}
	r.Verdict, r.Evidence = pred.Judge(k)
	if r.Verdict == predicate.Unknown {
		r.ConsoleTail = k.ConsoleTail
	}
	return r, nil
}

// stepName names a step's folder from host-side values only.
func stepName(c Candidate) string {
	name := c.Version
	if c.Commit != "" {
		name = fmt.Sprintf("%.12s", c.Commit)
	}
	if name == "" {
		name = c.Selector
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '+', r == '~':
			return r
		}
		return '-'
	}, name)
	name = strings.Trim(name, "-.")
	if len(name) > 80 {
		name = name[:80]
	}
	return name
}
