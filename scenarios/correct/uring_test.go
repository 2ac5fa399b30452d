package correct

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/internal/scentest"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/testbin"
)

// hostURingEnv, set to 1, lets the test switch this machine's
// fuse.enable_uring on while the checks run (they put it back).
const hostURingEnv = "FUSEMATRIX_HOST_URING"

// TestOverURing runs the io_uring checks on this machine's kernel with
// our own servers: each passes, or skips only where the kernel has no
// passthrough.
func TestOverURing(t *testing.T) {
	scentest.NeedMount(t)
	if why := scenarios.URingMissing(); why != "" {
		t.Skip(why)
	}
	if os.Getenv(hostURingEnv) != "1" {
		t.Skipf("switching fuse.enable_uring on is up to the machine's owner: set %s=1", hostURingEnv)
	}
	caps := hostCapabilities(t)
	def, err := os.ReadFile(scenarios.EnableURing)
	assert.NilError(t, err)
	for _, s := range OverURing() {
		t.Run(string(s.ID), func(t *testing.T) {
			env := scentest.Env(t)
			env.Capabilities = caps
			r := scenarios.Run(context.Background(), s, env)
			t.Logf("%s: %s %v", r.Status, r.Reason, r.Facts)
			if r.Status == results.Skip {
				assert.Check(t, is.Contains(r.Reason, "PASSTHROUGH"))
				return
			}
			assert.Check(t, is.Equal(r.Status, results.Pass), r.Reason)
		})
	}
	now, err := os.ReadFile(scenarios.EnableURing)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(now), string(def)), "enable_uring restored")
}

// Without the transport, every io_uring check skips saying why.
func TestOverURingSkips(t *testing.T) {
	old := scenarios.EnableURing
	scenarios.EnableURing = "/nonexistent/enable_uring"
	t.Cleanup(func() { scenarios.EnableURing = old })
	for _, s := range OverURing() {
		env := scentest.Env(t)
		env.Capabilities = &results.Capabilities{FuseMajor: 7, FuseMinor: 44, Passthrough: true}
		r := scenarios.Run(context.Background(), s, env)
		assert.Check(t, is.Equal(r.Status, results.Skip), s.ID)
		assert.Check(t, is.Contains(r.Reason, "CONFIG_FUSE_IO_URING"), s.ID)
	}
}

// keepHostURing points scenarios.EnableURing at a copy of this machine's
// parameter for the test, unless hostURingEnv allows switching the real
// one: the checks a test runs then leave the kernel's setting alone.
func keepHostURing(t *testing.T) {
	if os.Getenv(hostURingEnv) == "1" || scenarios.URingMissing() != "" {
		return
	}
	def, err := os.ReadFile(scenarios.EnableURing)
	assert.NilError(t, err)
	old := scenarios.EnableURing
	scenarios.EnableURing = filepath.Join(t.TempDir(), "enable_uring")
	assert.NilError(t, os.WriteFile(scenarios.EnableURing, def, 0o644))
	t.Cleanup(func() { scenarios.EnableURing = old })
}

// A daemon that claims io_uring passes daemon/NAME/io-uring when it
// serves over the ring (fusematrix's own server run as a user's daemon,
// -uring) and fails when it serves through /dev/fuse (go-fuse's loopback).
func TestDaemonIOUring(t *testing.T) {
	scentest.NeedMount(t)
	if why := scenarios.URingMissing(); why != "" {
		t.Skip(why)
	}
	if os.Getenv(hostURingEnv) != "1" {
		t.Skipf("switching fuse.enable_uring on is up to the machine's owner: set %s=1", hostURingEnv)
	}
	own := ownAsDaemon(t, loopback.KindLoopback)
	own.Args[1] += " -uring"
	own.URing = true
	for _, tc := range []struct {
		name   string
		spec   *contract.DaemonSpec
		want   results.Status
		reason string
	}{
		{"over the ring", own, results.Pass, "served over io_uring: while 256 names"},
		{"through /dev/fuse", &contract.DaemonSpec{Name: "gofuse", Path: testbin.Go(t, "github.com/hanwen/go-fuse/v2/example/loopback"),
			Args: []string{"-q", "-directmount", "{mnt}", "{backing}"}, URing: true}, results.Fail, "claims io_uring, but it served the lookups through /dev/fuse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := scentest.Env(t)
			env.Subject = scenarios.DaemonSubject{Spec: tc.spec}
			r := scenarios.Run(context.Background(), daemonIOUring, env)
			t.Logf("%s: %s %v", r.Status, r.Reason, r.Facts)
			assert.Check(t, is.Equal(r.Status, tc.want))
			assert.Check(t, is.Contains(r.Reason, tc.reason))
		})
	}
}
