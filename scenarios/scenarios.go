// Package scenarios is the core of what fusematrix runs inside each guest:
// the Scenario and Env types, the requirements a scenario declares (Needs)
// and the one runner that evaluates them (Run), the FUSE server under test
// (Subject, with fusematrix's own server as OwnServer), the benchmark
// defaults, and the helpers more than one kind of check uses. Check ids are
// package contract's, which the host shares; the servers are package
// server's (processes), loopback's and wire's.
//
// The checks themselves live in subpackages that import this one and
// nothing of each other: probe (facts about the kernel's FUSE), correct
// (correctness scenarios) and bench (benchmarks); suite imports all three
// and lists them in run order. This package imports none of them.
//
// A scenario never decides how it is reported: it returns a results.Result
// and the agent streams it. A scenario that cannot run on a kernel returns
// Skip with the reason, never Pass.
package scenarios

import (
	"context"
	"fmt"
	"time"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
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
	// Server starts fusematrix's own FUSE servers, each as a process of
	// its own; the zero value re-executes this program with "serve".
	Server server.Launcher
	// URing has our own servers serve over FUSE's io_uring transport
	// (OverURing sets it, with the kernel's parameter on).
	URing bool
	// Subject, when set, is the FUSE server under test: correctness
	// scenarios mount it instead of our own server of the kind they would
	// start (SubjectFor). Nil means our own server (OwnServer over Server).
	Subject Subject
}

// Printf reports progress through Logf, if there is one.
func (env *Env) Printf(format string, args ...any) {
	if env.Logf != nil {
		env.Logf(format, args...)
	}
}

// Scenario is one named check: how to run one of the contract's checks.
type Scenario struct {
	ID contract.ID
	// Kind and Timeout are the contract's (contract.Check): the suite sets
	// them from the check of ID, so that the agent, which cancels Run's
	// ctx after Timeout, and the host, which waits for a result that long
	// and judges it by Kind, cannot disagree.
	Kind        results.Kind
	Timeout     time.Duration
	Description string
	// Needs is what the check requires of the kernel and of the server
	// under test; Run skips it, with the reason, where that is missing.
	Needs Needs
	// AnyServer says the check also holds for a server that is not ours
	// (a user's daemon): what it checks of the data holds for any server,
	// and what only our server reports (the requests that reached it) is
	// then left to the daemon's passthrough check. Against such a server
	// Run drops NeedOwnServer and NeedPassthrough; a check without
	// AnyServer is skipped there, saying it needs our server.
	AnyServer bool
	// OwnFiles says the check, against a daemon that serves no backing
	// directory, reads the daemon's own files instead (its passthrough
	// check, its benchmark cells); the others are skipped there.
	OwnFiles bool
	// Run performs the check. ID, Kind and Seconds of the returned result
	// are filled in by the agent.
	Run func(ctx context.Context, env *Env) results.Result
}

// Run runs s in env: a skip with the reason when env does not meet
// s.Needs, else s.Run.
func Run(ctx context.Context, s Scenario, env *Env) results.Result {
	needs := s.Needs
	if env.Subject != nil && !env.Subject.Ours() {
		if !s.AnyServer {
			// Said first: it holds on every kernel.
			needs = NeedOwnServer
		} else {
			needs &^= NeedOwnServer | NeedPassthrough
			if d, ok := env.Subject.(DaemonSubject); ok && !d.Spec.Backed() && !s.OwnFiles {
				return results.Result{Status: results.Skip, Reason: fmt.Sprintf("%s serves no backing directory (%s is not among its arguments): nothing to compare its files with", d.Name(), contract.PlaceholderBacking)}
			}
		}
	}
	if why := needs.Unmet(env); why != "" {
		return results.Result{Status: results.Skip, Reason: why}
	}
	return s.Run(ctx, env)
}
