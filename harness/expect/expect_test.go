package expect

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// Fabricated kernels: a release, an optional config, what fuse-init saw
// and the probe results.
type fab struct {
	release string
	config  map[string]string
	caps    *results.Capabilities
	results []results.Result
}

func (f fab) kernel() *results.Kernel {
	return &results.Kernel{Name: "k", Release: f.release, Status: results.Pass, Config: f.config, Capabilities: f.caps, Results: f.results}
}

const (
	rel61  = "6.1.0-56-cloud-amd64"
	rel612 = "6.12.117+deb12-cloud-amd64"
	rel73  = "7.3.4+deb13-cloud-amd64"
)

var (
	upstream = &results.Capabilities{FuseMajor: 7, FuseMinor: 41, Passthrough: true, PassthroughABI: "upstream"}
	android  = &results.Capabilities{FuseMajor: 7, FuseMinor: 38, PassthroughABI: "android"}
	none     = &results.Capabilities{FuseMajor: 7, FuseMinor: 38}
)

func cfg(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func ioctl(status results.Status, reason string, kv ...string) results.Result {
	return results.Result{ID: "passthrough-ioctl", Kind: results.Probe, Status: status, Reason: reason, Facts: cfg(kv...)}
}

func features(kv ...string) results.Result {
	return results.Result{ID: "fuse-features", Kind: results.Probe, Status: results.Pass, Facts: cfg(kv...)}
}

func ptRead(status results.Status) results.Result {
	return results.Result{ID: "passthrough-read", Kind: results.Scenario, Status: status, Reason: "short read"}
}

type outcome struct {
	status                    results.Status
	expected, observed, basis string
	reason                    string // a part of the reason; "" for a pass
}

type ruleCase struct {
	name string
	k    fab
	want outcome
}

func checkRule(t *testing.T, id string, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got *results.Result
			rs := Evaluate(tc.k.kernel())
			for i := range rs {
				if rs[i].ID == id {
					got = &rs[i]
				}
			}
			assert.Assert(t, got != nil, "no %s among %v", id, rs)
			assert.Equal(t, got.Kind, results.Expectation)
			assert.Equal(t, outcome{got.Status, contract.FactExpected.Of(got), contract.FactObserved.Of(got), contract.FactBasis.Of(got), ""},
				outcome{tc.want.status, tc.want.expected, tc.want.observed, tc.want.basis, ""})
			if tc.want.status == results.Pass {
				assert.Equal(t, got.Reason, "")
				return
			}
			assert.Check(t, got.Reason != "", "a %s needs a reason", got.Status)
			assert.Check(t, is.Contains(got.Reason, tc.want.reason))
		})
	}
}

func TestPassthroughOffered(t *testing.T) {
	const (
		cfgY    = "CONFIG_FUSE_PASSTHROUGH=y"
		cfgN    = "CONFIG_FUSE_PASSTHROUGH is not set"
		cfgNone = "no CONFIG_FUSE_PASSTHROUGH in the kernel's config (CONFIG_FUSE_FS=m)"
		v61     = "version 6.1 < 6.9 (upstream FUSE passthrough arrived in 6.9), config unknown"
		v612    = "version 6.12 >= 6.9, config unknown"
		andObs  = "android passthrough ABI offered, upstream not offered"
	)
	y := cfg("CONFIG_FUSE_FS", "y", "CONFIG_FUSE_PASSTHROUGH", "y")
	n := cfg("CONFIG_FUSE_FS", "y", "CONFIG_FUSE_PASSTHROUGH", "n")
	absent := cfg("CONFIG_FUSE_FS", "m", "CONFIG_CUSE", "m")
	checkRule(t, "expect/passthrough-offered", []ruleCase{
		{"config y, offered", fab{rel612, y, upstream, nil}, outcome{results.Pass, "offered", "offered", cfgY, ""}},
		{"config y, not offered", fab{rel612, y, none, nil}, outcome{results.Fail, "offered", "not offered", cfgY, "expected offered, observed not offered (" + cfgY + ")"}},
		{"config y, only android", fab{rel612, y, android, nil}, outcome{results.Fail, "offered", andObs, cfgY, andObs}},
		{"config n, not offered", fab{rel612, n, none, nil}, outcome{results.Pass, "not offered", "not offered", cfgN, ""}},
		{"config n, offered", fab{rel612, n, upstream, nil}, outcome{results.Fail, "not offered", "offered", cfgN, "expected not offered"}},
		{"option absent, not offered", fab{rel61, absent, none, nil}, outcome{results.Pass, "not offered", "not offered", cfgNone, ""}},
		{"option absent, android", fab{rel61, absent, android, nil}, outcome{results.Pass, "not offered", andObs, cfgNone, ""}},
		{"option absent, offered", fab{rel61, absent, upstream, nil}, outcome{results.Fail, "not offered", "offered", cfgNone, "observed offered"}},
		{"old version, not offered", fab{rel61, nil, none, nil}, outcome{results.Pass, "not offered", "not offered", v61, ""}},
		{"old version, offered", fab{rel61, nil, upstream, nil}, outcome{results.Fail, "not offered", "offered", v61, "expected not offered, observed offered"}},
		{"new version, offered", fab{rel612, nil, upstream, nil}, outcome{results.Pass, "offered unless configured out", "offered", v612, ""}},
		{"new version, not offered", fab{rel73, nil, none, nil},
			outcome{results.Skip, "offered unless configured out", "not offered", "version 7.3 >= 6.9, config unknown", "cannot be told from a broken one"}},
		{"config without CONFIG_FUSE_FS falls back on the version", fab{rel612, cfg("CONFIG_CUSE", "m"), upstream, nil},
			outcome{results.Pass, "offered unless configured out", "offered", v612, ""}},
		{"no version, no config", fab{"custom", nil, upstream, nil},
			outcome{results.Skip, "unknown", "offered", `config unknown and release "custom" names no version`, "no basis"}},
		{"strange config value", fab{rel612, cfg("CONFIG_FUSE_FS", "y", "CONFIG_FUSE_PASSTHROUGH", "maybe"), upstream, nil},
			outcome{results.Skip, "unknown", "offered", "CONFIG_FUSE_PASSTHROUGH=maybe is neither y, m nor n", "no basis"}},
		{"no capabilities", fab{rel612, y, nil, nil}, outcome{results.Skip, "offered", "-", cfgY, "fuse-init reported no capabilities"}},
	})
}

func TestPassthroughWorks(t *testing.T) {
	const (
		exp      = "BACKING_OPEN ok as root"
		expRead  = exp + ", passthrough-read passes"
		offered  = "the kernel offers FUSE_PASSTHROUGH"
		offeredY = offered + ", CONFIG_FUSE_PASSTHROUGH=y"
		nothing  = "upstream passthrough not offered"
	)
	y := cfg("CONFIG_FUSE_FS", "y", "CONFIG_FUSE_PASSTHROUGH", "y")
	ok := ioctl(results.Pass, "", "negotiated", "yes", "backing_open", "ok", "backing_close", "ok")
	checkRule(t, "expect/passthrough-works", []ruleCase{
		{"works", fab{rel612, y, upstream, []results.Result{ok}}, outcome{results.Pass, exp, "BACKING_OPEN ok", offeredY, ""}},
		{"works, config unknown", fab{rel612, nil, upstream, []results.Result{ok}}, outcome{results.Pass, exp, "BACKING_OPEN ok", offered, ""}},
		{"offered but BACKING_OPEN fails", fab{rel612, y, upstream, []results.Result{
			ioctl(results.Fail, "BACKING_OPEN: EPERM", "negotiated", "no", "backing_open", "EPERM")}},
			outcome{results.Fail, exp, "BACKING_OPEN EPERM, negotiated no", offeredY, "observed BACKING_OPEN EPERM"}},
		{"passthrough read passes", fab{rel612, y, upstream, []results.Result{ok, ptRead(results.Pass)}},
			outcome{results.Pass, expRead, "BACKING_OPEN ok; passthrough-read pass", offeredY, ""}},
		{"passthrough read fails", fab{rel612, y, upstream, []results.Result{ok, ptRead(results.Fail)}},
			outcome{results.Fail, expRead, "BACKING_OPEN ok; passthrough-read fail", offeredY, "passthrough-read fail"}},
		{"passthrough read errors, not counted", fab{rel612, y, upstream, []results.Result{ok, ptRead(results.Error)}},
			outcome{results.Pass, expRead, "BACKING_OPEN ok; passthrough-read error (not counted)", offeredY, ""}},
		{"probe missing", fab{rel612, y, upstream, nil}, outcome{results.Skip, exp, "-", offeredY, "did not run"}},
		{"probe errored", fab{rel612, y, upstream, []results.Result{ioctl(results.Error, "timed out after 30s")}},
			outcome{results.Skip, exp, "-", offeredY, "passthrough-ioctl reported no backing_open (status error: timed out after 30s)"}},
		{"not offered", fab{rel61, nil, none, []results.Result{ioctl(results.Skip, "no passthrough", "not_negotiated", "ENOTTY")}},
			outcome{results.Skip, exp, "not offered", nothing, "nothing to use"}},
		{"android", fab{rel61, nil, android, nil}, outcome{results.Skip, exp, "android passthrough ABI offered, upstream not offered", nothing, "Android passthrough ABI"}},
		{"no capabilities", fab{rel612, y, nil, []results.Result{ok}}, outcome{results.Skip, exp, "-", "-", "no capabilities"}},
	})
}

func TestIOUring(t *testing.T) {
	const (
		present = "offered or disabled"
		cfgY    = "CONFIG_FUSE_IO_URING=y"
		cfgN    = "CONFIG_FUSE_IO_URING is not set"
		cfgNone = "no CONFIG_FUSE_IO_URING in the kernel's config (CONFIG_FUSE_FS=y)"
		v612    = "version 6.12 < 6.14 (FUSE over io_uring arrived in 6.14), config unknown"
		v73     = "version 7.3 >= 6.14, config unknown"
	)
	y := cfg("CONFIG_FUSE_FS", "y", "CONFIG_FUSE_IO_URING", "y")
	n := cfg("CONFIG_FUSE_FS", "y", "CONFIG_FUSE_IO_URING", "n")
	absent := cfg("CONFIG_FUSE_FS", "y", "CONFIG_IO_URING", "y")
	obs := func(v string) []results.Result { return []results.Result{features("io_uring", v)} }
	checkRule(t, "expect/io-uring", []ruleCase{
		{"config y, offered", fab{rel73, y, upstream, obs("offered")}, outcome{results.Pass, present, "offered", cfgY, ""}},
		{"config y, disabled", fab{rel73, y, upstream, obs("disabled")}, outcome{results.Pass, present, "disabled", cfgY, ""}},
		{"config y, absent", fab{rel73, y, upstream, obs("absent")}, outcome{results.Fail, present, "absent", cfgY, "expected offered or disabled, observed absent"}},
		{"config n, absent", fab{rel73, n, upstream, obs("absent")}, outcome{results.Pass, "absent", "absent", cfgN, ""}},
		{"config n, offered", fab{rel73, n, upstream, obs("offered")}, outcome{results.Fail, "absent", "offered", cfgN, "observed offered"}},
		{"option absent, absent", fab{rel612, absent, upstream, obs("absent")}, outcome{results.Pass, "absent", "absent", cfgNone, ""}},
		{"option absent, disabled", fab{rel612, absent, upstream, obs("disabled")}, outcome{results.Fail, "absent", "disabled", cfgNone, "observed disabled"}},
		{"old version, absent", fab{rel612, nil, upstream, obs("absent")}, outcome{results.Pass, "absent", "absent", v612, ""}},
		{"old version, offered", fab{rel612, nil, upstream, obs("offered")}, outcome{results.Fail, "absent", "offered", v612, "observed offered"}},
		{"new version, disabled", fab{rel73, nil, upstream, obs("disabled")}, outcome{results.Pass, present + " unless configured out", "disabled", v73, ""}},
		{"new version, absent", fab{rel73, nil, upstream, obs("absent")}, outcome{results.Skip, present + " unless configured out", "absent", v73, "cannot be told from a broken one"}},
		{"probe missing", fab{rel73, y, upstream, nil}, outcome{results.Skip, present, "-", cfgY, "the fuse-features probe did not run"}},
		{"probe errored", fab{rel73, y, upstream, []results.Result{{ID: "fuse-features", Kind: results.Probe, Status: results.Error, Reason: "read /sys: EIO"}}},
			outcome{results.Skip, present, "-", cfgY, "fuse-features reported no io_uring (status error: read /sys: EIO)"}},
		{"unknown value", fab{rel73, y, upstream, obs("sometimes")}, outcome{results.Skip, present, "-", cfgY, `io_uring "sometimes"`}},
	})
}

func TestIOUringWorks(t *testing.T) {
	const (
		cfgY    = "CONFIG_FUSE_IO_URING=y"
		cfgNone = "no CONFIG_FUSE_IO_URING in the kernel's config (CONFIG_FUSE_FS=y)"
		works   = "works once enabled"
		v612    = "version 6.12 < 6.14 (FUSE over io_uring arrived in 6.14), config unknown"
		v73     = "version 7.3 >= 6.14, config unknown"
	)
	y := cfg("CONFIG_FUSE_FS", "y", "CONFIG_FUSE_IO_URING", "y")
	absent := cfg("CONFIG_FUSE_FS", "y", "CONFIG_IO_URING", "y")
	obs := func(v string) []results.Result {
		return []results.Result{{ID: "io-uring", Kind: results.Probe, Status: results.Pass, Facts: map[string]string{"transport": v}}}
	}
	checkRule(t, "expect/io-uring-works", []ruleCase{
		{"config y, works", fab{rel73, y, upstream, obs("works")}, outcome{results.Pass, works, "works", cfgY, ""}},
		{"config y, fails", fab{rel73, y, upstream, obs("fails")}, outcome{results.Fail, works, "fails", cfgY, "expected works once enabled, observed fails"}},
		{"config y, absent", fab{rel73, y, upstream, obs("absent")}, outcome{results.Fail, works, "absent", cfgY, "observed absent"}},
		{"option absent, absent", fab{rel612, absent, upstream, obs("absent")}, outcome{results.Pass, "absent", "absent", cfgNone, ""}},
		{"old version, absent", fab{rel612, nil, upstream, obs("absent")}, outcome{results.Pass, "absent", "absent", v612, ""}},
		{"new version, works", fab{rel73, nil, upstream, obs("works")}, outcome{results.Pass, works + " unless configured out", "works", v73, ""}},
		{"probe missing", fab{rel73, y, upstream, nil}, outcome{results.Skip, works, "-", cfgY, "the io-uring probe did not run"}},
		{"io_uring refused", fab{rel73, y, upstream, obs("no io_uring")}, outcome{results.Skip, works, "-", cfgY, `io-uring reported transport "no io_uring"`}},
	})
}

func TestVirtiofs(t *testing.T) {
	const (
		cfgY    = "CONFIG_VIRTIO_FS=y"
		cfgM    = "CONFIG_VIRTIO_FS=m"
		cfgN    = "CONFIG_VIRTIO_FS is not set"
		cfgNone = "no CONFIG_VIRTIO_FS in the kernel's config (CONFIG_FUSE_FS=y)"
		module  = "yes once its module is loaded"
	)
	conf := func(v string) map[string]string { return cfg("CONFIG_FUSE_FS", "y", "CONFIG_VIRTIO_FS", v) }
	obs := func(v string) []results.Result { return []results.Result{features("virtiofs", v)} }
	checkRule(t, "expect/virtiofs", []ruleCase{
		{"built in, present", fab{rel612, conf("y"), upstream, obs("yes")}, outcome{results.Pass, "yes", "yes", cfgY, ""}},
		{"built in, missing", fab{rel612, conf("y"), upstream, obs("no")}, outcome{results.Fail, "yes", "no", cfgY, "expected yes, observed no"}},
		{"module not loaded", fab{rel61, conf("m"), none, obs("no")}, outcome{results.Skip, module, "no", cfgM, "module the guest does not load"}},
		{"module loaded", fab{rel61, conf("m"), none, obs("yes")}, outcome{results.Pass, module, "yes", cfgM, ""}},
		{"not set, missing", fab{rel612, conf("n"), upstream, obs("no")}, outcome{results.Pass, "no", "no", cfgN, ""}},
		{"not set, present", fab{rel612, conf("n"), upstream, obs("yes")}, outcome{results.Fail, "no", "yes", cfgN, "observed yes"}},
		{"option absent, missing", fab{rel612, cfg("CONFIG_FUSE_FS", "y"), upstream, obs("no")}, outcome{results.Pass, "no", "no", cfgNone, ""}},
		{"older than virtiofs, present", fab{"4.19.0-27-amd64", nil, none, obs("yes")},
			outcome{results.Fail, "no", "yes", "version 4.19 < 5.4 (virtiofs arrived in 5.4), config unknown", "observed yes"}},
		{"new enough, config unknown, missing", fab{rel61, nil, none, obs("no")},
			outcome{results.Skip, "yes unless configured out", "no", "version 6.1 >= 5.4, config unknown", "cannot be told from a broken one"}},
		{"probe missing", fab{rel612, conf("y"), upstream, nil}, outcome{results.Skip, "yes", "-", cfgY, "did not run"}},
		{"unknown value", fab{rel612, conf("y"), upstream, obs("perhaps")}, outcome{results.Skip, "yes", "-", cfgY, `virtiofs "perhaps"`}},
	})
}

func TestEvaluate(t *testing.T) {
	k := fab{rel612, nil, upstream, nil}.kernel()
	rs := Evaluate(k)
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
		assert.Check(t, r.Kind == results.Expectation, r.ID)
		for _, f := range []contract.Fact{contract.FactExpected, contract.FactObserved, contract.FactBasis} {
			assert.Check(t, f.Of(&r) != "", "%s: fact %s empty", r.ID, f)
		}
		assert.Check(t, strings.HasPrefix(r.ID, contract.ExpectPrefix))
	}
	assert.DeepEqual(t, ids, []string{"expect/passthrough-offered", "expect/passthrough-works", "expect/io-uring", "expect/io-uring-works", "expect/virtiofs"})

	// A kernel that did not run to completion has nothing to compare.
	k.Status = results.Error
	assert.Check(t, is.Len(Evaluate(k), 0))
	assert.Check(t, is.Len(Evaluate(nil), 0))
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		release string
		want    version
		ok      bool
	}{
		{"6.1.0-56-cloud-amd64", version{6, 1}, true},
		{"6.12.117+deb12-cloud-amd64", version{6, 12}, true},
		{"7.3.4+deb13-cloud-amd64", version{7, 3}, true},
		{"6.10-rc1", version{6, 10}, true},
		{"6.9", version{6, 9}, true},
		{"5.4.0", version{5, 4}, true},
		{"", version{}, false},
		{"linux", version{}, false},
		{"6", version{}, false},
		{"6.x", version{}, false},
		{"v6.1", version{}, false},
		{"0.9.1", version{}, false},
	} {
		t.Run(tc.release, func(t *testing.T) {
			got, ok := parseVersion(tc.release)
			assert.Equal(t, ok, tc.ok)
			assert.Equal(t, got, tc.want)
		})
	}
	for _, tc := range []struct {
		a, b version
		less bool
	}{
		{version{6, 1}, version{6, 9}, true},
		{version{6, 9}, version{6, 9}, false},
		{version{6, 12}, version{6, 9}, false},
		{version{5, 19}, version{6, 0}, true},
		{version{7, 0}, version{6, 14}, false},
	} {
		assert.Check(t, tc.a.less(tc.b) == tc.less, "%s < %s", tc.a, tc.b)
	}
}
