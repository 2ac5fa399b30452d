// Package correct holds the correctness scenarios: passthrough (pt/*,
// passthrough-read) and classic FUSE (classic/*). Each mounts the FUSE
// server under test (a scenarios.Subject; by default fusematrix's own
// server of the kind the scenario is written for) over a backing directory
// on tmpfs, works through the mount and compares what it sees with the
// backing files and with what the server reports.
//
// It imports the core package scenarios (and fuseabi), never probe, bench
// or suite.
package correct

import (
	"context"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
)

// All returns the correctness scenarios; the suite runs them in the
// contract's order.
func All() []scenarios.Scenario {
	return []scenarios.Scenario{
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
		classicKilled,
	}
}

// ptNeeds is what every passthrough scenario needs: a kernel that offers
// passthrough, and our own server, whose report proves that no READ or
// WRITE reached it.
const ptNeeds = scenarios.NeedPassthrough | scenarios.NeedOwnServer

// against makes a scenario's Run from check, run against the server under
// test: Env.Subject, else our own server of kind. Tests call check
// directly with other servers.
func against(kind loopback.Kind, check func(context.Context, *scenarios.Env, scenarios.Subject) results.Result) func(context.Context, *scenarios.Env) results.Result {
	return func(ctx context.Context, env *scenarios.Env) results.Result {
		return check(ctx, env, env.SubjectFor(kind))
	}
}
