package harness

import (
	"context"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/harness/daemonspec"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios/testbin"
)

// TestIOUringBoot boots a kernel with FUSE over io_uring built in (6.18,
// parameter off by default) and one without it (6.12), with the probes
// and the uring/* checks: on 6.18 the io-uring probe turns the parameter
// on for itself, serves a request over its ring and records each
// misuse's errno, while fuse-features, which ran before it, still sees
// the kernel's default; every uring/* check passes over fusematrix's own
// ring loop, uring/transport with no read(2) or write(2) accounted to
// the server's threads. On 6.12 all of them skip saying why. A daemon
// that claims io_uring but serves through /dev/fuse (go-fuse's loopback,
// which never asks for it) fails daemon/NAME/io-uring on 6.18 and skips
// it on 6.12. Teardown with the ring active: unmount and abort with files
// open and mapped, and the server killed holding a request from its ring.
func TestIOUringBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU guests with kernels fetched from the Debian mirror; run without -short")
	}
	yes := true
	daemon, err := NewDaemon(&daemonspec.Spec{Name: "gofuse", Binary: testbin.Go(t, "github.com/hanwen/go-fuse/v2/example/loopback"),
		Args: []string{"-q", "-directmount", contract.PlaceholderMount, contract.PlaceholderBacking}, URing: &yes}, "go-fuse's loopback")
	assert.NilError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run, err := Run(ctx, Options{
		Kernels:   []string{"debian:6.18/cloud", "debian:6.12/cloud"},
		OutDir:    t.TempDir(),
		Jobs:      1,
		Accel:     "tcg",
		Params:    contract.Params{Run: "^" + contract.URingPrefix + "|^daemon/.*/io-uring$"},
		Daemons:   []*Daemon{daemon},
		SourceDir: sourceDir(t),
		Logf:      t.Logf,
	})
	assert.NilError(t, err)
	assert.Assert(t, is.Len(run.Kernels, 2))
	with, without := &run.Kernels[0], &run.Kernels[1]
	for _, k := range run.Kernels {
		// Pass is the kernel's run completing; the daemon's failing check
		// makes it not OK.
		assert.Equal(t, k.Status, results.Pass, "%s: %s", k.Name, k.Error)
	}

	r := contract.IOUring.In(with)
	assert.Assert(t, r != nil, "6.18: no io-uring result")
	t.Logf("6.18 io-uring: %s in %.1fs: %v", r.Status, r.Seconds, r.Facts)
	assert.Equal(t, r.Status, results.Pass, r.Reason)
	for f, want := range map[contract.Fact]string{
		contract.FactURingParamDefault: "N",
		contract.FactURingParamSet:     "Y",
		contract.FactURingOfferedOff:   "absent",
		contract.FactURingOfferedOn:    "offered",
		contract.FactURingRegister:     "ok",
		contract.FactURingServes:       "ok",
		contract.FactURingTransport:    "works",
		contract.FactURingParamOff:     "EOPNOTSUPP",
		"before_init":                  "EAGAIN",
		"no_sqe128":                    "EINVAL",
		"qid_out_of_range":             "EINVAL",
		"header_short":                 "EINVAL",
		"payload_short":                "EINVAL",
		"commit_unknown":               "ENOENT",
	} {
		assert.Check(t, is.Equal(f.Of(r), want), "6.18 %s", f)
	}
	// The kernel's default is what every other check saw.
	assert.Check(t, is.Equal(contract.FactIOUring.Of(contract.FuseFeatures.In(with)), "disabled"))
	assert.Check(t, is.Equal(with.Config["CONFIG_FUSE_IO_URING"], "y"))

	r = contract.IOUring.In(without)
	assert.Assert(t, r != nil, "6.12: no io-uring result")
	assert.Check(t, is.Equal(r.Status, results.Skip), r.Reason)
	assert.Check(t, is.Contains(r.Reason, "CONFIG_FUSE_IO_URING"))
	assert.Check(t, is.Equal(contract.FactURingTransport.Of(r), "absent"))

	var uringChecks int
	for _, c := range contract.Checks() {
		if !strings.HasPrefix(string(c.ID), contract.URingPrefix) {
			continue
		}
		uringChecks++
		r := c.ID.In(with)
		assert.Assert(t, r != nil, "6.18: no %s", c.ID)
		t.Logf("6.18 %s: %s in %.1fs: %s %v", c.ID, r.Status, r.Seconds, r.Reason, r.Facts)
		assert.Check(t, is.Equal(r.Status, results.Pass), "6.18 %s: %s", c.ID, r.Reason)
		assert.Check(t, is.Equal(contract.FactTransport.Of(r), "io_uring"), c.ID)
		r = c.ID.In(without)
		assert.Assert(t, r != nil, "6.12: no %s", c.ID)
		assert.Check(t, is.Equal(r.Status, results.Skip), "6.12 %s: %s", c.ID, r.Reason)
		assert.Check(t, is.Contains(r.Reason, "CONFIG_FUSE_IO_URING"), c.ID)
	}
	assert.Check(t, uringChecks > 1)
	tr := contract.URingTransport.In(with)
	assert.Assert(t, tr != nil)
	assert.Check(t, is.Equal(tr.Facts["daemon_read_calls"], "0"))
	assert.Check(t, is.Equal(tr.Facts["daemon_write_calls"], "0"))
	// The server killed while it holds a READ it took from its ring: the
	// read ends cleanly and the dead mount unmounts.
	k := contract.ID(contract.URingPrefix + contract.ClassicKilled).In(with)
	assert.Assert(t, k != nil)
	assert.Check(t, is.Contains([]string{"ENOTCONN (transport endpoint is not connected)", "EIO (input/output error)", "ECONNABORTED (software caused connection abort)"}, k.Facts["held_read"]))
	assert.Check(t, is.Equal(k.Facts["server_rings"], "1"))
	assert.Check(t, is.Equal(k.Facts["umount"], "ok"))
	d := contract.DaemonID("gofuse", contract.DaemonIOUring)
	dr := d.In(with)
	assert.Assert(t, dr != nil, "6.18: no %s", d)
	assert.Check(t, is.Equal(dr.Status, results.Fail), dr.Reason)
	assert.Check(t, is.Contains(dr.Reason, "claims io_uring, but it served the lookups through /dev/fuse"))
	assert.Check(t, is.Equal(dr.Facts["rings"], "0"))
	dr = d.In(without)
	assert.Assert(t, dr != nil, "6.12: no %s", d)
	assert.Check(t, is.Equal(dr.Status, results.Skip), dr.Reason)
	assert.Check(t, is.Contains(dr.Reason, "CONFIG_FUSE_IO_URING"))

	// Only the io_uring checks saw the parameter on.
	assert.Check(t, is.Equal(contract.FactIOUring.Of(contract.FuseFeatures.In(with)), "disabled"))
}
