package bisect

import (
	"fmt"

	"github.com/fusematrix/fusematrix/harness/predicate"
	"github.com/fusematrix/fusematrix/results"
)

// retry is decide's why for repeats that disagree, which earn a second
// round before they count.
const retry = "its runs disagree"

// decide turns a step's runs into its verdict (the README's "Verdict
// rules"):
//   - runs that could not say are left out; a step none of whose runs
//     could say is skipped;
//   - for a status predicate a failure outweighs any number of passes: if
//     the new behaviour is a failure (pt/integrity=fail, X!=pass), one run
//     that shows it makes the step new; if it is a pass (X=pass), one run
//     that does not makes the step old;
//   - for a fact or a metric, the runs must agree, else (unless this is
//     the final round) the step is retried once (retry), and then the
//     majority decides; a tie is a skip.
func decide(p *predicate.Predicate, runs []Run, final bool) (Verdict, string) {
	var news, olds int
	for _, r := range runs {
		switch r.Verdict {
		case predicate.New:
			news++
		case predicate.Old:
			olds++
		}
	}
	judged := news + olds
	switch {
	case judged == 0:
		why := "no run could say"
		for _, r := range runs {
			if r.Evidence != "" {
				why = r.Evidence
				break
			}
		}
		return Skip, why
	case news == 0:
		return Old, partly(judged, len(runs))
	case olds == 0:
		return New, partly(judged, len(runs))
	}
	mixed := fmt.Sprintf("%d of %d runs new", news, judged)
	if p.Form == predicate.Status {
		if failureIsNew(p) {
			return New, mixed + ": a failure in any run counts"
		}
		return Old, mixed + ": a failure in any run counts"
	}
	if !final {
		return Skip, retry
	}
	switch {
	case news > olds:
		return New, mixed + ", the majority"
	case olds > news:
		return Old, mixed + ", the majority"
	}
	return Skip, mixed + ": a tie"
}

// rule applies the verdict rules to a step's runs in the order Judged
// makes them: the first repeat runs decide, unless they disagree (retry),
// and then the first 2×repeat decide for good. want is how many runs the
// verdict rests on; while runs has fewer, v is not yet set and the step
// boots again. Judged and a resumed log's steps (rejudge) both go through
// it, so a logged verdict is held to the rule that made it.
func rule(p *predicate.Predicate, runs []Run, repeat int) (v Verdict, why string, want int) {
	if len(runs) < repeat {
		return "", "", repeat
	}
	v, why = decide(p, runs[:repeat], false)
	if why != retry {
		return v, why, repeat
	}
	// Repeats that disagree get one more round before they count.
	if len(runs) < 2*repeat {
		return "", "", 2 * repeat
	}
	v, why = decide(p, runs[:2*repeat], true)
	return v, why, 2 * repeat
}

// failureIsNew says whether the predicate's new behaviour is a check not
// passing.
func failureIsNew(p *predicate.Predicate) bool {
	pass := p.Value == string(results.Pass)
	return (p.Op == predicate.Eq) != pass
}

func partly(judged, runs int) string {
	if judged == runs {
		return ""
	}
	return fmt.Sprintf("%d of %d runs could not say", runs-judged, runs)
}
