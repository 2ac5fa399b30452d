package agent

import (
	"fmt"
	"maps"

	"github.com/fusematrix/fusematrix/results"
)

// aggregate folds the results of running one scenario len(rs) times into
// one. Runs that agree give their common status (with the first run's
// reason, facts and log); runs that disagree make the scenario flaky,
// which is a failure carrying the first run that did not pass.
func aggregate(rs []results.Result) results.Result {
	if len(rs) == 1 {
		return rs[0]
	}
	passed, seconds := 0, 0.0
	base := rs[0]
	same := true
	for _, r := range rs {
		seconds += r.Seconds
		if r.Status == results.Pass {
			passed++
		}
		if r.Status != rs[0].Status {
			same = false
		}
	}
	if !same {
		for _, r := range rs {
			if r.Status != results.Pass {
				base = r
				break
			}
		}
	}
	out := base
	out.Facts = maps.Clone(base.Facts)
	if out.Facts == nil {
		out.Facts = map[string]string{}
	}
	out.Facts["runs"] = fmt.Sprint(len(rs))
	out.Facts["passed"] = fmt.Sprint(passed)
	if !same {
		out.Status = results.Fail
		out.Reason = fmt.Sprintf("flaky: %d/%d passed; first %s: %s", passed, len(rs), base.Status, base.Reason)
		out.Facts["flaky"] = "true"
	}
	out.Seconds = seconds
	return out
}
