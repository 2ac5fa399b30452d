package correct

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/internal/scentest"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/testbin"
)

// ownAsDaemon is fusematrix's own server of kind, run as a user's daemon
// would be: a program given the mount point and the backing directory,
// reporting nothing of what reached it.
func ownAsDaemon(t *testing.T, kind loopback.Kind) *contract.DaemonSpec {
	exe, err := os.Executable()
	assert.NilError(t, err)
	return &contract.DaemonSpec{Name: string(kind), Path: "/bin/sh",
		Args: []string{"-c", "exec " + exe + " serve -kind " + string(kind) + " -mnt {mnt} -backing {backing} 3>/dev/null"}}
}

// The checks of a user's daemon hold for daemons that are right, whatever
// they do about passthrough (go-fuse's loopback asks for it, the others do
// not; libfuse's passthrough_ll forks into the background), and fail
// daemons that are wrong for the reason the fault implies.
func TestForDaemon(t *testing.T) {
	caps := hostCapabilities(t)
	keepHostURing(t)
	checks := map[contract.ID]scenarios.Scenario{}
	for _, s := range ForDaemon() {
		checks[s.ID] = s
	}
	// The time limits are the contract's, which the suite gives the agent.
	limits := map[contract.ID]time.Duration{}
	for _, c := range contract.DaemonScenarios() {
		limits[c.ID] = c.Timeout
	}
	run := func(t *testing.T, spec *contract.DaemonSpec, id contract.ID) results.Result {
		env := scentest.Env(t)
		env.Capabilities, env.Subject = caps, scenarios.DaemonSubject{Spec: spec}
		ctx, cancel := context.WithTimeout(context.Background(), limits[id])
		defer cancel()
		return scenarios.Run(ctx, checks[id], env)
	}
	mustPass := []contract.ID{contract.DaemonMounted, contract.DaemonReadAll, contract.DaemonWrite, contract.DaemonUnmount, contract.PtIntegrity, contract.PtSizeAfterWrite, contract.PtMmapShared, contract.PtFsync,
		contract.PtOpenTwice, contract.PtUnmountOpen, contract.PtAbortOpen, contract.ClassicBasics, contract.ClassicKilled}
	for _, tc := range []struct {
		name string
		spec func(t *testing.T) *contract.DaemonSpec
		// maySkip are checks of mustPass that this daemon may skip.
		maySkip []contract.ID
	}{
		{"go-fuse loopback", func(t *testing.T) *contract.DaemonSpec {
			return &contract.DaemonSpec{Name: "gofuse", Path: testbin.Go(t, "github.com/hanwen/go-fuse/v2/example/loopback"),
				Args: []string{"-q", "-directmount", "{mnt}", "{backing}"}}
		}, nil},
		{"without passthrough", func(t *testing.T) *contract.DaemonSpec {
			return &contract.DaemonSpec{Name: "nopt", Path: testbin.Go(t, "../server/testdata/nopassthrough"), Args: []string{"{mnt}", "{backing}"}}
		}, nil},
		{"libfuse passthrough_ll", func(t *testing.T) *contract.DaemonSpec {
			return &contract.DaemonSpec{Name: "ll", Path: testbin.PassthroughLL(t), Args: []string{"-o", "source={backing}", "{mnt}"}}
		}, nil},
		// The kernel holds writes until it writes them back.
		{"libfuse passthrough_ll with writeback cache", func(t *testing.T) *contract.DaemonSpec {
			return &contract.DaemonSpec{Name: "ll", Path: testbin.PassthroughLL(t), Args: []string{"-o", "source={backing},writeback", "{mnt}"}}
		}, nil},
		// direct_io: its files cannot be mapped MAP_SHARED.
		{"libfuse passthrough_ll with direct_io", func(t *testing.T) *contract.DaemonSpec {
			return &contract.DaemonSpec{Name: "ll", Path: testbin.PassthroughLL(t), Args: []string{"-o", "source={backing},cache=never", "{mnt}"}}
		}, []contract.ID{contract.PtMmapShared}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec(t)
			for _, s := range ForDaemon() {
				r := run(t, spec, s.ID)
				t.Logf("%s: %s %s %v", s.ID, r.Status, r.Reason, r.Facts)
				want := []results.Status{results.Pass, results.Skip}
				if slices.Contains(mustPass, s.ID) && !slices.Contains(tc.maySkip, s.ID) {
					want = want[:1]
				}
				assert.Check(t, slices.Contains(want, r.Status), "%s: %s: %s", s.ID, r.Status, r.Reason)
			}
		})
	}

	for _, tc := range []struct {
		kind   loopback.Kind
		id     contract.ID
		needPT bool
		want   string
	}{
		{loopback.KindMixed, contract.PtOpenTwice, true, "the kernel refused the second open while the first was open (EIO)"},
		{loopback.KindFlipBytes, contract.PtUnmountOpen, false, "wrong bytes"},
		{loopback.KindFlipBytes, contract.PtMmapShared, false, "the mapping differs from the backing file"},
		{loopback.KindDropWrites, contract.PtOpenTwice, false, "after both pairs of opens: backing file: bytes differ"},
		{loopback.KindDropWrites, contract.DaemonWrite, false, "read back"},
		{loopback.KindFlipBytes, contract.DaemonWrite, false, "read back"},
		{loopback.KindFlipBytes, contract.ClassicKilled, false, "read of other before the kill: wrong bytes: bytes differ at offset 0"},
	} {
		t.Run(string(tc.kind)+"/"+string(tc.id), func(t *testing.T) {
			if tc.needPT {
				scentest.NeedPassthrough(t, caps)
			}
			r := run(t, ownAsDaemon(t, tc.kind), tc.id)
			assert.Check(t, is.Equal(r.Status, results.Fail), r.Reason)
			assert.Check(t, is.Contains(r.Reason, tc.want))
		})
	}

	// A daemon that shows no backing directory (here the loopback of a
	// scratch directory, as an encrypted store would be) skips the data
	// checks, yet its mount is checked.
	t.Run("no backing directory", func(t *testing.T) {
		spec := &contract.DaemonSpec{Name: "nopt", Path: testbin.Go(t, "../server/testdata/nopassthrough"), Args: []string{"{mnt}", "{scratch}"}}
		r := run(t, spec, contract.PtIntegrity)
		assert.Check(t, is.Equal(r.Status, results.Skip), r.Reason)
		for _, id := range []contract.ID{contract.DaemonMounted, contract.DaemonReadAll, contract.DaemonWrite, contract.DaemonUnmount} {
			r = run(t, spec, id)
			assert.Check(t, is.Equal(r.Status, results.Pass), "%s: %s", id, r.Reason)
		}
	})
}
