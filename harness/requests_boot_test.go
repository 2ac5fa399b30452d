package harness

import (
	"context"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// runProbes boots kernels under TCG with only the probes selected.
func runProbes(t *testing.T, kernelNames ...string) *results.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	run, err := Run(ctx, Options{
		Kernels:   kernelNames,
		OutDir:    t.TempDir(),
		Jobs:      1,
		Accel:     "tcg",
		Params:    contract.Params{Run: contract.ProbesOnly},
		SourceDir: sourceDir(t),
		Logf:      t.Logf,
	})
	assert.NilError(t, err)
	assert.Assert(t, is.Len(run.Kernels, len(kernelNames)))
	return run
}

// TestRequestsProbeBoots runs the requests probe twice on 6.1 and 6.12
// (issue 25): every fact is there and the same both times (or in two of
// three boots, see below), and a server
// that answers xattr requests is asked for security.capability on every
// write where one that answers ENOSYS is asked once.
func TestRequestsProbeBoots(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU guests with kernels fetched from the Debian mirror; run without -short")
	}
	names := []string{"debian:6.1/cloud", "debian:6.12/cloud"}
	first, second := runProbes(t, names...), runProbes(t, names...)
	for i, name := range names {
		a, b := &first.Kernels[i], &second.Kernels[i]
		for _, k := range []*results.Kernel{a, b} {
			assert.Assert(t, is.Equal(k.Status, results.Pass), "%s: %s\n%s", name, k.Error, strings.Join(k.ConsoleTail, "\n"))
		}
		ra, rb := contract.Requests.In(a), contract.Requests.In(b)
		assert.Assert(t, ra != nil && rb != nil, "%s: no requests result", name)
		assert.Assert(t, is.Equal(ra.Status, results.Pass), "%s: %s", name, ra.Reason)
		assert.Assert(t, is.Equal(rb.Status, results.Pass), "%s: %s", name, rb.Reason)
		t.Logf("%s: requests took %.1fs and %.1fs; %s", name, ra.Seconds, rb.Seconds, ra.Reason)
		// A fact two boots disagree on gets a third boot, whose value
		// must be one of theirs: one READDIRPLUS more in 6.12's
		// passthrough mode was seen once, in a CI run, cause
		// unknown (docs/checks.md#requests). A fact no two boots agree
		// on fails.
		var rc *results.Result
		for _, f := range contract.RequestFacts() {
			if f.Of(ra) != f.Of(rb) && rc == nil {
				third := runProbes(t, name)
				rc = contract.Requests.In(&third.Kernels[0])
				assert.Assert(t, rc != nil, "%s: no requests result in the third boot", name)
			}
		}
		for _, f := range contract.RequestFacts() {
			pt := strings.Contains(string(f), "_passthrough")
			if pt && !a.Capabilities.Passthrough {
				assert.Check(t, is.Equal(f.Of(ra), ""), "%s: %s without passthrough", name, f)
				continue
			}
			assert.Check(t, f.Of(ra) != "", "%s: no fact %s", name, f)
			if va, vb := f.Of(ra), f.Of(rb); va != vb {
				vc := f.Of(rc)
				t.Logf("%s: %s differs between two boots: %q, %q; a third boot: %q", name, f, va, vb, vc)
				assert.Check(t, vc == va || vc == vb, "%s: %s differs in three boots: %q, %q, %q", name, f, va, vb, vc)
			}
			t.Logf("%s: %s = %s", name, f, f.Of(ra))
		}
		assert.Check(t, is.Equal(contract.FactInterrupt.Of(ra), "sent"), name)
		assert.Check(t, is.Equal(contract.FactNotifyReply.Of(ra), "sent"), name)
		fact := func(op, mode string) string { return contract.RequestPhase(op, mode, contract.PhaseOpcodes).Of(ra) }
		assert.Check(t, is.Equal(fact("write_4k", "classic"), "WRITE:4,GETXATTR:4"), name)
		assert.Check(t, is.Equal(fact("write_4k", "classic_noxattr"), "WRITE:4,GETXATTR:1"), name)
		if a.Capabilities.Passthrough {
			assert.Check(t, is.Equal(fact("write_4k", "passthrough"), "GETXATTR:4"), name)
			assert.Check(t, is.Equal(fact("write_4k", "passthrough_noxattr"), "GETXATTR:1"), name)
		}
	}
	assert.Check(t, !first.Kernels[0].Capabilities.Passthrough, "6.1 offers no passthrough")
	assert.Check(t, first.Kernels[1].Capabilities.Passthrough, "6.12 offers passthrough")
}
