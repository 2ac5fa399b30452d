package bisect

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/results/predicate"
)

// Boot is the Judge that boots a candidate: kernel gives the kernel name
// to boot for it (for a commit, after checking it out), and base the rest
// of the harness's options. Only the check pred reads runs (and the
// probes), into a folder of its own under base.OutDir/steps. A kernel
// that cannot be named, built or booted makes a run that cannot say.
func Boot(base harness.Options, pred *predicate.Predicate, kernel func(ctx context.Context, c Candidate) (string, error)) Judge {
	return func(ctx context.Context, c Candidate, attempt int) Run {
		start := time.Now()
		r := Run{Verdict: predicate.Unknown}
		name, err := kernel(ctx, c)
		if err != nil {
			r.Evidence = err.Error()
			return r
		}
		o := base
		o.Kernels = []string{name}
		o.Params = contract.Params{Run: pred.RunPattern()}
		o.OutDir = filepath.Join(base.OutDir, "steps", fmt.Sprintf("%s.%d", stepName(c), attempt+1))
		if logf := base.Logf; logf != nil {
			o.Logf = func(format string, args ...any) { logf("  "+format, args...) }
		}
		run, err := harness.Run(ctx, o)
		r.Seconds = time.Since(start).Seconds()
		r.Results, _ = filepath.Rel(base.OutDir, filepath.Join(o.OutDir, "results.json"))
		if err != nil || run == nil || len(run.Kernels) != 1 {
			r.Evidence = fmt.Sprintf("did not run: %v", err)
			return r
		}
		k := &run.Kernels[0]
		r.Release = k.Release
		r.Verdict, r.Evidence = pred.Judge(k)
		if r.Verdict == predicate.Unknown {
			r.ConsoleTail = k.ConsoleTail
		}
		return r
	}
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
