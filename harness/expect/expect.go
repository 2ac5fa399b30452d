// Package expect turns a kernel's observed FUSE capabilities into verdicts.
//
// A probe only reports what a kernel did: "FUSE_PASSTHROUGH not offered" is
// right for 6.1 and a defect for a 6.12 built with CONFIG_FUSE_PASSTHROUGH=y.
// Probes cannot tell the two apart, so a matrix of probe facts would pass
// on a kernel that silently lacks what it was built with. Expectations
// close that gap on the host: each rule derives what the kernel must do
// from the kernel's own config when fusematrix has it, otherwise from its
// version, compares that with what the guest observed, and stores
// expected, observed and basis side by side so that a reader sees why.
//
// A rule fails only when the kernel contradicts its own config or version.
// Whatever the harness cannot tell (no config and a version that allows
// both answers, a probe that errored, a module the guest never loads) is a
// skip with the reason, never a failure.
package expect

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// rule is one expectation: judge looks at a kernel that ran to completion
// and says what it expected, what it saw and on what basis.
type rule struct {
	id    contract.ID
	judge func(k *results.Kernel) verdict
}

// rules are evaluated in this order, which is also the order of the
// results and so of the report's columns. All but passthrough-works hold
// a feature to what the kernel's config or version promises of it.
var rules = []rule{
	{contract.ExpectPassthroughOffered, passthroughFeature.check},
	{contract.ExpectPassthroughWorks, passthroughWorks},
	{contract.ExpectIOUring, ioUringFeature.check},
	{contract.ExpectIOUringWorks, ioUringWorksFeature.check},
	{contract.ExpectVirtiofs, virtiofsFeature.check},
}

// verdict is one rule's outcome. reason is needed for any status but
// pass; expected, observed and basis are always filled.
type verdict struct {
	status                    results.Status
	expected, observed, basis string
	reason                    string
}

// Evaluate applies every rule to k and returns one Expectation result per
// rule, ids "expect/<name>". A kernel that did not run to completion gets
// none: its missing observations would only produce noise.
func Evaluate(k *results.Kernel) []results.Result {
	if k == nil || k.Status != results.Pass {
		return nil
	}
	out := make([]results.Result, 0, len(rules))
	for _, r := range rules {
		v := r.judge(k)
		out = append(out, results.Result{
			ID:     string(r.id),
			Kind:   results.Expectation,
			Status: v.status,
			Reason: v.reason,
			Facts: map[string]string{
				string(contract.FactExpected): v.expected,
				string(contract.FactObserved): v.observed,
				string(contract.FactBasis):    v.basis,
			},
		})
	}
	return out
}

// want is what a config or version promises about a feature.
type want int

const (
	wantUnknown want = iota // no basis at all
	wantPresent             // built in: must be there
	wantAbsent              // not built, or older than the feature
	wantAllowed             // the version has it upstream, config unknown
	wantModule              // built as a module the guest may not load
)

// feature is a kernel feature behind a config option, with the upstream
// release that introduced it and where the guest reports it.
type feature struct {
	option string
	since  version
	what   string // for the basis, e.g. "upstream FUSE passthrough"
	// present and absent spell the observation this feature expects.
	present, absent string
	// observe says whether the guest found the feature and how it spells
	// what it saw; or, when it reported nothing usable, why.
	observe func(k *results.Kernel) (present bool, observed, why string)
}

// check judges f on k: what k's config or version promises against what
// the guest observed.
func (f feature) check(k *results.Kernel) verdict {
	w, basis := f.promise(k)
	present, observed, why := f.observe(k)
	if why != "" {
		return missing(f.expected(w), basis, why)
	}
	return f.judge(w, basis, present, observed)
}

// promise says what k's config, or failing that its version, says about
// f, and why.
func (f feature) promise(k *results.Kernel) (want, string) {
	if fs, ok := k.Config["CONFIG_FUSE_FS"]; ok {
		v, set := k.Config[f.option]
		switch {
		case !set:
			return wantAbsent, fmt.Sprintf("no %s in the kernel's config (CONFIG_FUSE_FS=%s)", f.option, fs)
		case v == "y":
			return wantPresent, f.option + "=y"
		case v == "m":
			return wantModule, f.option + "=m"
		case v == "n":
			return wantAbsent, f.option + " is not set"
		}
		return wantUnknown, fmt.Sprintf("%s=%s is neither y, m nor n", f.option, v)
	}
	v, ok := parseVersion(k.Release)
	switch {
	case !ok:
		return wantUnknown, fmt.Sprintf("config unknown and release %q names no version", k.Release)
	case v.less(f.since):
		// A vendor backport would fail here; with the kernel's config
		// (which any packaged kernel has) the config decides instead.
		return wantAbsent, fmt.Sprintf("version %s < %s (%s arrived in %s), config unknown", v, f.since, f.what, f.since)
	}
	return wantAllowed, fmt.Sprintf("version %s >= %s, config unknown", v, f.since)
}

// expected spells what w promises.
func (f feature) expected(w want) string {
	switch w {
	case wantPresent:
		return f.present
	case wantAbsent:
		return f.absent
	case wantAllowed:
		return f.present + " unless configured out"
	case wantModule:
		return f.present + " once its module is loaded"
	}
	return "unknown"
}

// judge compares a promise with whether the feature was observed.
func (f feature) judge(w want, basis string, present bool, observed string) verdict {
	v := verdict{expected: f.expected(w), observed: observed, basis: basis, status: results.Pass}
	switch w {
	case wantPresent:
		if !present {
			v.status = results.Fail
		}
	case wantAbsent:
		if present {
			v.status = results.Fail
		}
	case wantAllowed:
		if !present {
			v.status = results.Skip
			v.reason = fmt.Sprintf("without the kernel's config, a kernel built without %s cannot be told from a broken one", f.what)
		}
	case wantModule:
		if !present {
			v.status = results.Skip
			v.reason = fmt.Sprintf("%s=m: a module the guest does not load (it loads only what fusematrix needs), so its absence says nothing", f.option)
		}
	default:
		v.status = results.Skip
		v.reason = "no basis: " + basis
	}
	if v.status == results.Fail {
		v.reason = fmt.Sprintf("expected %s, observed %s (%s)", v.expected, v.observed, v.basis)
	}
	return v
}

// missing is the verdict of a rule whose observation is not there.
func missing(expected, basis, why string) verdict {
	return verdict{status: results.Skip, expected: expected, observed: "-", basis: basis, reason: why}
}

// passthroughFeature is the upstream FUSE_PASSTHROUGH INIT flag. The
// Android ABI is a different flag: such a kernel offers passthrough, just
// not the upstream one, and the observation says so.
var passthroughFeature = feature{
	option:  "CONFIG_FUSE_PASSTHROUGH",
	since:   version{6, 9},
	what:    "upstream FUSE passthrough",
	present: "offered",
	absent:  "not offered",
	observe: func(k *results.Kernel) (bool, string, string) {
		if k.Capabilities == nil {
			return false, "", "fuse-init reported no capabilities"
		}
		return k.Capabilities.Passthrough, passthroughObserved(k.Capabilities), ""
	},
}

func passthroughObserved(c *results.Capabilities) string {
	switch {
	case c.Passthrough:
		return "offered"
	case c.PassthroughABI == "android":
		return "android passthrough ABI offered, upstream not offered"
	}
	return "not offered"
}

// passthroughWorks checks that an offered passthrough can be used: as
// root, BACKING_OPEN of a regular file must succeed, and a passthrough
// read must pass where it ran. Whether passthrough should be offered at
// all is passthrough-offered's question; here offering it is the promise.
func passthroughWorks(k *results.Kernel) verdict {
	const expected = "BACKING_OPEN ok as root"
	c := k.Capabilities
	if c == nil {
		return missing(expected, "-", "fuse-init reported no capabilities")
	}
	if !c.Passthrough {
		v := missing(expected, "upstream passthrough not offered", "nothing to use: the kernel does not offer upstream passthrough")
		v.observed = passthroughObserved(c)
		if c.PassthroughABI == "android" {
			v.reason = "the kernel offers the Android passthrough ABI, whose ioctl fusematrix does not exercise"
		}
		return v
	}
	basis := "the kernel offers FUSE_PASSTHROUGH"
	if v, ok := k.Config[passthroughFeature.option]; ok {
		basis += ", " + passthroughFeature.option + "=" + v
	}
	p := contract.PassthroughIoctl.In(k)
	if p == nil {
		return missing(expected, basis, "the passthrough-ioctl probe did not run")
	}
	open := contract.FactBackingOpen.Of(p)
	if open == "" {
		return missing(expected, basis, fmt.Sprintf("passthrough-ioctl reported no backing_open (%s)", describe(p)))
	}
	v := verdict{status: results.Pass, expected: expected, basis: basis, observed: "BACKING_OPEN " + open}
	if n := contract.FactNegotiated.Of(p); n != "" && n != "yes" {
		v.observed += ", negotiated " + n
	}
	if open != "ok" {
		v.status = results.Fail
	}
	if s := contract.PassthroughRead.In(k); s != nil {
		v.expected += ", passthrough-read passes"
		v.observed += "; passthrough-read " + string(s.Status)
		switch s.Status {
		case results.Fail:
			v.status = results.Fail
		case results.Pass:
		default:
			v.observed += " (not counted)"
		}
	}
	if v.status == results.Fail {
		v.reason = fmt.Sprintf("expected %s, observed %s (%s)", v.expected, v.observed, v.basis)
	}
	return v
}

// describe says in a few words why a probe has no fact.
func describe(r *results.Result) string {
	if r.Reason == "" {
		return "status " + string(r.Status)
	}
	return fmt.Sprintf("status %s: %s", r.Status, inert.Truncate(r.Reason, 200))
}

// ioUringFeature is the FUSE io_uring transport. "disabled" (the
// enable_uring parameter exists but is off) counts as present: the
// feature is built, and switching it on is the administrator's choice.
var ioUringFeature = feature{
	option:  "CONFIG_FUSE_IO_URING",
	since:   version{6, 14},
	what:    "FUSE over io_uring",
	present: "offered or disabled",
	absent:  "absent",
	observe: featuresFact{
		key:    contract.FactIOUring,
		values: map[string]bool{"offered": true, "disabled": true, "absent": false},
		known:  "none of offered, disabled, absent",
	}.observe,
}

// ioUringWorksFeature is FUSE over io_uring in use: with the
// enable_uring parameter turned on (the io-uring probe does it for
// itself), a server registers its ring and a request is served over it.
// CONFIG_FUSE_IO_URING=y promises that much; whether the kernel turns it
// on by default is the administrator's choice and no promise.
var ioUringWorksFeature = feature{
	option:  "CONFIG_FUSE_IO_URING",
	since:   version{6, 14},
	what:    "FUSE over io_uring",
	present: "works once enabled",
	absent:  "absent",
	observe: featuresFact{
		probe:  contract.IOUring,
		key:    contract.FactURingTransport,
		values: map[string]bool{"works": true, "fails": false, "absent": false},
		known:  "none of works, fails, absent",
	}.observe,
}

// virtiofsFeature is the virtiofs file system, there when built in. Built
// as a module it is only there when loaded, and the guest loads only what
// fusematrix needs: then only a "yes" means something (judge's
// wantModule).
var virtiofsFeature = feature{
	option:  "CONFIG_VIRTIO_FS",
	since:   version{5, 4},
	what:    "virtiofs",
	present: "yes",
	absent:  "no",
	observe: featuresFact{
		key:    contract.FactVirtiofs,
		values: map[string]bool{"yes": true, "no": false},
		known:  "neither yes nor no",
	}.observe,
}

// featuresFact is a feature as the fuse-features probe reports it: fact
// key, whose values say whether the feature is there. A value it does not
// know is no observation: a newer probe's word, or a broken one's.
type featuresFact struct {
	// probe reports the fact; "" is fuse-features.
	probe  contract.ID
	key    contract.Fact
	values map[string]bool
	// known spells values for the reason of a skip.
	known string
}

func (f featuresFact) observe(k *results.Kernel) (bool, string, string) {
	probe := f.probe
	if probe == "" {
		probe = contract.FuseFeatures
	}
	obs, why := fact(k, probe, f.key)
	if obs == "" {
		return false, "", why
	}
	present, ok := f.values[obs]
	if !ok {
		return false, "", fmt.Sprintf("%s reported %s %q, which is %s", probe, f.key, inert.Truncate(obs, 40), f.known)
	}
	return present, obs, ""
}

// fact returns a probe's fact, or "" and why it is missing.
func fact(k *results.Kernel, probe contract.ID, key contract.Fact) (string, string) {
	r := probe.In(k)
	if r == nil {
		return "", fmt.Sprintf("the %s probe did not run", probe)
	}
	v := key.Of(r)
	if v == "" {
		return "", fmt.Sprintf("%s reported no %s (%s)", probe, key, describe(r))
	}
	return v, ""
}

// version is a kernel's upstream major.minor.
type version struct{ major, minor int }

func (v version) String() string { return fmt.Sprintf("%d.%d", v.major, v.minor) }

func (v version) less(o version) bool {
	return v.major < o.major || v.major == o.major && v.minor < o.minor
}

// parseVersion reads the upstream version at the start of a release such
// as "6.1.0-56-cloud-amd64", "6.12.117+deb12-cloud-amd64" or
// "7.3.4+deb13-cloud-amd64". Distribution suffixes say nothing about the
// upstream version and are ignored.
func parseVersion(release string) (version, bool) {
	end := strings.IndexFunc(release, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if end < 0 {
		end = len(release)
	}
	parts := strings.Split(release[:end], ".")
	if len(parts) < 2 {
		return version{}, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || major <= 0 || major > 99 || minor > 999 {
		return version{}, false
	}
	return version{major, minor}, true
}
