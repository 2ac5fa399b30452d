// Package scenarios holds what fusematrix runs inside each guest: probes
// that report facts about the kernel's FUSE, correctness scenarios, and
// benchmarks. The host imports it only for ids and descriptions (to select
// and to render); the guest agent runs them.
//
// A scenario never decides how it is reported: it returns a results.Result
// and the agent streams it. A scenario that cannot run on a kernel returns
// Skip with the reason, never Pass.
package scenarios

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios/server"
)

// Env is what a scenario runs against inside a guest.
type Env struct {
	// Dir is an empty scratch directory on tmpfs that belongs to this
	// scenario alone; the agent removes it afterwards.
	Dir string
	// Capabilities is what the fuse-init probe found, nil until it ran or
	// when it failed. The probe sets it.
	Capabilities *results.Capabilities
	// BenchBytes is the size of the file benchmarks move.
	BenchBytes int64
	// BlockSize is the I/O size benchmarks use.
	BlockSize int
	// BenchRuns is how many times each benchmark cell measures; 0 means
	// DefaultBenchRuns. BenchBytes, when positive, caps a cell's run.
	BenchRuns int
	// Profile asks the benchmark cells of the NOOP and classic servers to
	// profile the server processes and attach a summary to the result.
	Profile bool
	// Logf reports progress; it is never nil when the agent calls Run.
	Logf func(format string, args ...any)
	// Server starts the FUSE servers correctness scenarios run against,
	// each as a process of its own; the zero value re-executes this
	// program with "serve".
	Server server.Launcher
}

// Scenario is one named check.
type Scenario struct {
	ID          string
	Kind        results.Kind
	Description string
	// Timeout bounds Run; the agent cancels ctx when it expires.
	Timeout time.Duration
	// Run performs the check. ID, Kind and Seconds of the returned result
	// are filled in by the agent.
	Run func(ctx context.Context, env *Env) results.Result
}

// All returns every scenario in the order the agent runs them: probes
// first, since later scenarios read what probes found.
func All() []Scenario {
	return append([]Scenario{
		fuseInitProbe,
		passthroughIoctlProbe,
		fuseFeaturesProbe,
		passthroughRead,
		ptIntegrity,
		ptSizeAfterWrite,
		ptMmapShared,
		ptFsync,
		ptOpenTwice,
		ptDirectIO,
		ptCloseBacking,
		ptUnmountOpen,
		ptAbortOpen,
		classicFallback,
		classicBasics,
		seqRead,
	}, benchScenarios()...)
}

// Select returns the scenarios whose id matches pattern, in run order.
// Probes always run, because other scenarios depend on what they find.
// The benchmark cells (BenchPrefix) take minutes and are selected only by
// a pattern that starts with "bench" or "^bench".
func Select(pattern string) ([]Scenario, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("scenario pattern %q: %w", pattern, err)
	}
	bench := strings.HasPrefix(strings.TrimPrefix(pattern, "^"), "bench")
	var out []Scenario
	for _, s := range All() {
		if !bench && strings.HasPrefix(s.ID, BenchPrefix) {
			continue
		}
		if s.Kind == results.Probe || re.MatchString(s.ID) {
			out = append(out, s)
		}
	}
	return out, nil
}

// IDs returns the ids of ss.
func IDs(ss []Scenario) []string {
	ids := make([]string, len(ss))
	for i, s := range ss {
		ids[i] = s.ID
	}
	return ids
}
