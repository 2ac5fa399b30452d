package suite

import (
	"slices"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/bench"
)

// The host selects, names and judges checks by the contract's catalogue;
// the agent runs the scenarios of the same ids, those of a daemon too. A
// scenario the contract does not list would never run, and a check
// without a scenario would be reported missing on every kernel.
func TestScenariosAreContract(t *testing.T) {
	all, daemon := own(bench.NewSuite())
	for _, tc := range []struct {
		name   string
		ss     []scenarios.Scenario
		checks []contract.Check
	}{
		{name: "every run", ss: all, checks: contract.Checks()},
		{name: "a daemon", ss: daemon, checks: contract.DaemonScenarios()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := make([]contract.ID, len(tc.checks))
			for i, c := range tc.checks {
				want[i] = c.ID
			}
			got := IDs(tc.ss)
			slices.Sort(got)
			slices.Sort(want)
			assert.DeepEqual(t, got, want)
		})
	}
}

// The suite's scenarios are the contract's checks, in its order and with
// its kinds and time limits.
func TestSuiteIsContract(t *testing.T) {
	checksOf := func(ss []scenarios.Scenario) []contract.Check {
		var out []contract.Check
		for _, s := range ss {
			out = append(out, contract.Check{ID: s.ID, Kind: s.Kind, Timeout: s.Timeout})
		}
		return out
	}
	s := New()
	assert.DeepEqual(t, checksOf(s.All()), contract.Checks())
	assert.DeepEqual(t, checksOf(s.ForDaemon()), contract.DaemonScenarios())
}
