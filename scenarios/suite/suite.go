// Package suite lists every probe, correctness scenario and benchmark in
// the order the agent runs them, the contract's, each with the contract's
// kind and time limit, and selects among them by id. It is the
// one package that imports probe, correct and bench (and the core
// package scenarios); nothing in scenarios imports it.
package suite

import (
	"fmt"
	"slices"

	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/bench"
	"github.com/fusematrix/fusematrix/scenarios/correct"
	"github.com/fusematrix/fusematrix/scenarios/probe"
)

// Suite is every check of one run, whose benchmark cells share the
// medians their ratios divide by.
type Suite struct {
	all, daemon []scenarios.Scenario
}

// New lists the checks of one run: the contract's, each run by the
// scenario of its id and with the contract's kind and time limit.
func New() *Suite {
	all, daemon := own(bench.NewSuite())
	return &Suite{all: fromContract(contract.Checks(), all), daemon: fromContract(contract.DaemonScenarios(), daemon)}
}

// own returns the scenarios of probe, correct and b: those of every run,
// and those of a user's daemon, under their ids within the daemon.
func own(b bench.Suite) (all, daemon []scenarios.Scenario) {
	all = slices.Concat(probe.All(), correct.All(), correct.OverURing(), b.All())
	daemon = slices.Concat(correct.ForDaemon(), b.ForDaemon())
	return all, daemon
}

// fromContract returns, in the order of checks, the scenario of ss of
// each check's id, given the check's kind and time limit. A check that
// no scenario runs is left out, for Select and the agent's daemon run to
// report as missing.
func fromContract(checks []contract.Check, ss []scenarios.Scenario) []scenarios.Scenario {
	byID := make(map[contract.ID]scenarios.Scenario, len(ss))
	for _, s := range ss {
		byID[s.ID] = s
	}
	out := make([]scenarios.Scenario, 0, len(checks))
	for _, c := range checks {
		if s, ok := byID[c.ID]; ok {
			s.Kind, s.Timeout = c.Kind, c.Timeout
			out = append(out, s)
		}
	}
	return out
}

// All returns every scenario in the order the agent runs them: probes
// first, since later scenarios read what probes found; then the
// correctness scenarios, seq-read and the benchmark cells.
func (s *Suite) All() []scenarios.Scenario { return s.all }

// Select returns the scenarios pattern selects, in run order, by the
// contract's rule (contract.Select), which the host applies too: probes
// always, benchmark cells only when the pattern starts with "bench".
func (s *Suite) Select(pattern string) ([]scenarios.Scenario, error) {
	checks, err := contract.Select(pattern)
	if err != nil {
		return nil, err
	}
	byID := map[contract.ID]scenarios.Scenario{}
	for _, s := range s.all {
		byID[s.ID] = s
	}
	out := make([]scenarios.Scenario, 0, len(checks))
	for _, c := range checks {
		s, ok := byID[c.ID]
		if !ok {
			return nil, fmt.Errorf("check %s: in the contract but not in the suite", c.ID)
		}
		out = append(out, s)
	}
	return out, nil
}

// ForDaemon returns the checks the agent runs against a user's daemon
// (contract.DaemonScenarios), under their own ids: the agent reports them
// under the daemon's prefix. Its cells are given as ratios to those of All
// measured before them.
func (s *Suite) ForDaemon() []scenarios.Scenario { return s.daemon }

// All is New().All().
func All() []scenarios.Scenario { return New().All() }

// Select is New().Select(pattern).
func Select(pattern string) ([]scenarios.Scenario, error) { return New().Select(pattern) }

// IDs returns the ids of ss.
func IDs(ss []scenarios.Scenario) []contract.ID {
	ids := make([]contract.ID, len(ss))
	for i, s := range ss {
		ids[i] = s.ID
	}
	return ids
}

// ForDaemon is New().ForDaemon().
func ForDaemon() []scenarios.Scenario { return New().ForDaemon() }
