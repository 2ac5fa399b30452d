// Package scentest is what the tests of the scenario packages share: an
// Env on a temporary directory, the checks that skip a test where this
// machine cannot run it, this machine's capabilities as the fuse-init
// probe finds them, and a TestMain that serves file systems for
// server.Launcher. It imports only the core package scenarios, so
// that the tests of every kind, probe's included, can use it.
package scentest

import (
	"context"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// Main lets the test binary serve file systems for server.Launcher,
// as the agent does, and runs the tests otherwise.
func Main(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(server.Serve(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// Env is an Env for one test: a scratch directory of its own, logs to t,
// small benchmark sizes.
func Env(t *testing.T) *scenarios.Env {
	return &scenarios.Env{Dir: t.TempDir(), Logf: t.Logf, BenchBytes: 8 << 20, BlockSize: 64 << 10}
}

// NeedMount skips tests that mount when this run cannot.
func NeedMount(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("mounts FUSE; skipped in -short mode")
	}
	if err := wire.CanMount(); err != nil {
		t.Skipf("cannot mount FUSE here: %v", err)
	}
}

// KernelAtLeast reports whether the running kernel's release is at least
// major.minor.
func KernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	assert.NilError(t, unix.Uname(&u))
	rel := unix.ByteSliceToString(u.Release[:])
	var got [2]int
	_, err := fmt.Sscanf(rel, "%d.%d", &got[0], &got[1])
	assert.NilError(t, err, "release %q", rel)
	return got[0] > major || got[0] == major && got[1] >= minor
}

// Capabilities runs the fuse-init probe, found by its id among probes,
// on this machine.
func Capabilities(t *testing.T, probes []scenarios.Scenario) *results.Capabilities {
	t.Helper()
	NeedMount(t)
	for _, p := range probes {
		if p.ID != contract.FuseInit {
			continue
		}
		env := Env(t)
		r := scenarios.Run(context.Background(), p, env)
		assert.Assert(t, is.Equal(r.Status, results.Pass), r.Reason)
		return env.Capabilities
	}
	t.Fatalf("no %s among the probes", contract.FuseInit)
	return nil
}

// NeedPassthrough skips the test unless caps offer passthrough.
func NeedPassthrough(t *testing.T, caps *results.Capabilities) {
	t.Helper()
	if !caps.Passthrough {
		t.Skipf("this kernel does not offer FUSE_PASSTHROUGH (protocol %s)", scenarios.Protocol(caps))
	}
}
