// Package suite lists every probe, correctness scenario and benchmark in
// the order the agent runs them, and selects among them by id. It is the
// one package that imports probe, correct and bench (and the core
// package scenarios); nothing in scenarios imports it.
package suite

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/bench"
	"github.com/fusematrix/fusematrix/scenarios/correct"
	"github.com/fusematrix/fusematrix/scenarios/probe"
)

// All returns every scenario in the order the agent runs them: probes
// first, since later scenarios read what probes found; then the
// correctness scenarios, seq-read and the benchmark cells.
func All() []scenarios.Scenario {
	var out []scenarios.Scenario
	out = append(out, probe.All()...)
	out = append(out, correct.All()...)
	return append(out, bench.All()...)
}

// Select returns the scenarios whose id matches pattern, in run order.
// Probes always run, because other scenarios depend on what they find.
// The benchmark cells (scenarios.BenchPrefix) take minutes and are
// selected only by a pattern that starts with "bench" or "^bench".
func Select(pattern string) ([]scenarios.Scenario, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("scenario pattern %q: %w", pattern, err)
	}
	benchCells := strings.HasPrefix(strings.TrimPrefix(pattern, "^"), "bench")
	var out []scenarios.Scenario
	for _, s := range All() {
		if !benchCells && strings.HasPrefix(s.ID, scenarios.BenchPrefix) {
			continue
		}
		if s.Kind == results.Probe || re.MatchString(s.ID) {
			out = append(out, s)
		}
	}
	return out, nil
}

// IDs returns the ids of ss.
func IDs(ss []scenarios.Scenario) []string {
	ids := make([]string, len(ss))
	for i, s := range ss {
		ids[i] = s.ID
	}
	return ids
}
