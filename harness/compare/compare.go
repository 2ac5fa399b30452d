// Package compare tells what changed between two fusematrix runs: status
// regressions and fixes, capabilities offered or withdrawn, probe facts
// that changed, throughput that dropped beyond the noise both runs
// measured, and flaky results. Compare builds a Report, a stable struct
// that is also the JSON format; the renderers print it as a terminal
// table or as Markdown for a GitHub step summary.
//
// Everything in a run came from a guest or another machine, so every text
// a Report carries has been made inert with inert.OneLine and bounded
// with inert.Truncate.
package compare

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// FormatVersion is written into every Report: bump it when a field of
// the JSON changes meaning.
const FormatVersion = 1

// DefaultThreshold is how far, relative to the old value, a paired ratio
// to native must fall before the drop can count (its range must also lie
// wholly below the old one).
const DefaultThreshold = 0.15

// Options configures Compare.
type Options struct {
	// Threshold is the relative drop of ratio_native that can count as a
	// regression; 0 means DefaultThreshold.
	Threshold float64
	// OldPath and NewPath name the runs in the output.
	OldPath, NewPath string
}

// Verdict classifies one finding.
type Verdict string

const (
	// Regression is something worse than before: it makes compare exit 1.
	Regression Verdict = "regression"
	// Fix is a result that failed before and passes now.
	Fix Verdict = "fix"
	// Change is a behaviour that changed without being worse: a flag
	// offered, an errno that changed, a cell that got faster.
	Change Verdict = "change"
	// Info says what was not compared and why, or what a reader must know
	// (a kernel upgraded, a new kernel, a flaky result).
	Info Verdict = "info"
)

// Aspect says what a finding is about.
type Aspect string

const (
	AspectKernel     Aspect = "kernel"     // a kernel gone, new, upgraded, or its boot status
	AspectStatus     Aspect = "status"     // a result's status
	AspectCapability Aspect = "capability" // what the kernel offered in FUSE_INIT
	AspectFact       Aspect = "fact"       // a probe's fact
	AspectThroughput Aspect = "throughput" // a benchmark cell
	AspectFlaky      Aspect = "flaky"      // a result whose runs disagreed
)

// Finding is one row of the comparison.
type Finding struct {
	Verdict Verdict `json:"verdict"`
	Aspect  Aspect  `json:"aspect"`
	// ID is the result's id, "" for the kernel itself.
	ID string `json:"id,omitempty"`
	// What names the status, capability (fuse_minor, flag.NAME,
	// passthrough), fact or metric that changed.
	What string `json:"what"`
	Old  string `json:"old"`
	New  string `json:"new"`
	Note string `json:"note,omitempty"`
}

// Presence says in which runs a kernel is.
type Presence string

const (
	Both Presence = "both"
	Gone Presence = "gone" // only in the old run: a regression
	New  Presence = "new"  // only in the new run
)

// Kernel is what changed for one kernel selector.
type Kernel struct {
	Name     string   `json:"name"`
	Presence Presence `json:"presence"`
	// OldSource and NewSource are the packages the selector resolved to;
	// Upgraded says they differ.
	OldSource string `json:"old_source,omitempty"`
	NewSource string `json:"new_source,omitempty"`
	Upgraded  bool   `json:"upgraded,omitempty"`
	OldAccel  string `json:"old_accel,omitempty"`
	NewAccel  string `json:"new_accel,omitempty"`
	// Findings are in order: the kernel, its capabilities, then its
	// results in run order.
	Findings []Finding `json:"findings"`
	// Cells counts the benchmark cells judged for throughput, and Within
	// those that moved no further than the noise.
	Cells  int `json:"cells_compared"`
	Within int `json:"cells_within_noise"`
}

// Side describes one of the two runs.
type Side struct {
	Path     string    `json:"path"`
	Started  time.Time `json:"started"`
	CPUModel string    `json:"cpu_model,omitempty"`
	CPUs     int       `json:"cpus"`
	Kernels  int       `json:"kernels"`
}

// Counts tallies the findings by verdict, flaky results apart.
type Counts struct {
	Regressions int `json:"regressions"`
	Fixes       int `json:"fixes"`
	Changes     int `json:"changes"`
	Flaky       int `json:"flaky"`
}

// Report is the comparison of two runs, and compare's JSON output.
type Report struct {
	Format    int     `json:"format"`
	Old       Side    `json:"old"`
	New       Side    `json:"new"`
	Threshold float64 `json:"threshold"`
	// Regressed is true when any finding is a Regression: exit 1.
	Regressed bool     `json:"regressed"`
	Counts    Counts   `json:"counts"`
	Kernels   []Kernel `json:"kernels"`
	// Notes apply to the whole comparison: what was left out, and why.
	Notes []string `json:"notes,omitempty"`
}

// Bounds on text from a run, in runes.
const (
	nameWidth  = 80
	valueWidth = 64
	noteWidth  = 160
)

// shown makes s, which came from a guest or another machine, one inert
// line of at most n runes.
func shown(s string, n int) string { return inert.Truncate(inert.OneLine(s), n) }

// Compare compares the run new with the run old.
func Compare(old, new *results.Run, o Options) *Report {
	if o.Threshold <= 0 {
		o.Threshold = DefaultThreshold
	}
	r := &Report{
		Format:    FormatVersion,
		Old:       sideOf(old, o.OldPath),
		New:       sideOf(new, o.NewPath),
		Threshold: o.Threshold,
	}
	c := comparer{threshold: o.Threshold, old: old, new: new, hostsSaid: map[string]bool{}}
	oldModel, newModel := r.Old.CPUModel, r.New.CPUModel

	// Kernels are matched by selector, the n-th of a name with the n-th.
	newByName := map[string][]int{}
	for i, k := range new.Kernels {
		newByName[k.Name] = append(newByName[k.Name], i)
	}
	used := make([]bool, len(new.Kernels))
	for i := range old.Kernels {
		ok := &old.Kernels[i]
		if idx := newByName[ok.Name]; len(idx) > 0 {
			newByName[ok.Name] = idx[1:]
			used[idx[0]] = true
			r.Kernels = append(r.Kernels, c.kernel(ok, &new.Kernels[idx[0]]))
			continue
		}
		r.Kernels = append(r.Kernels, Kernel{
			Name: shown(ok.Name, nameWidth), Presence: Gone,
			OldSource: shown(ok.Source, noteWidth), OldAccel: shown(ok.Accel, valueWidth),
			Findings: []Finding{{Verdict: Regression, Aspect: AspectKernel, What: "kernel",
				Old: string(ok.Status), New: "missing", Note: "only in the old run"}},
		})
	}
	for i := range new.Kernels {
		if used[i] {
			continue
		}
		nk := &new.Kernels[i]
		r.Kernels = append(r.Kernels, Kernel{
			Name: shown(nk.Name, nameWidth), Presence: New,
			NewSource: shown(nk.Source, noteWidth), NewAccel: shown(nk.Accel, valueWidth),
			Findings: []Finding{{Verdict: Info, Aspect: AspectKernel, What: "kernel",
				Old: "missing", New: string(nk.Status), Note: "only in the new run: nothing to compare with"}},
		})
	}

	cells := false
	for _, k := range r.Kernels {
		cells = cells || k.Cells > 0
		for _, f := range k.Findings {
			switch {
			case f.Aspect == AspectFlaky:
				r.Counts.Flaky++
			case f.Verdict == Regression:
				r.Counts.Regressions++
			case f.Verdict == Fix:
				r.Counts.Fixes++
			case f.Verdict == Change:
				r.Counts.Changes++
			}
		}
	}
	r.Regressed = r.Counts.Regressions > 0
	if c.seqRead {
		r.Notes = append(r.Notes, string(contract.SeqRead)+" is left out of the throughput comparison: it is one unpaired run per mode, so its figures swing with the host's load")
	}
	if cells && len(c.hostsDiffer) == 0 && (oldModel == "" || newModel == "") {
		r.Notes = append(r.Notes, fmt.Sprintf("the host CPU model of %s is unknown: throughput was compared by accelerator only", which(oldModel == "", newModel == "")))
	}
	for _, why := range c.hostsDiffer {
		r.Notes = append(r.Notes, "throughput is not compared: "+why)
	}
	return r
}

func sideOf(run *results.Run, path string) Side {
	return Side{
		Path: shown(path, noteWidth), Started: run.Started,
		CPUModel: shown(run.Host.CPUModel, valueWidth), CPUs: run.Host.CPUs, Kernels: len(run.Kernels),
	}
}

type comparer struct {
	threshold float64
	old, new  *results.Run
	// hostsDiffer says, once per pair of hosts, why cells were not
	// compared: their hosts' CPU models differ. hostsSaid holds the same.
	hostsDiffer []string
	hostsSaid   map[string]bool
	// seqRead is set when a kernel had seq-read in both runs.
	seqRead bool
}

// kernel compares one kernel present in both runs.
func (c *comparer) kernel(o, n *results.Kernel) Kernel {
	k := Kernel{
		Name: shown(o.Name, nameWidth), Presence: Both,
		OldSource: shown(o.Source, noteWidth), NewSource: shown(n.Source, noteWidth),
		Upgraded: o.Source != n.Source && o.Source != "" && n.Source != "",
		OldAccel: shown(o.Accel, valueWidth), NewAccel: shown(n.Accel, valueWidth),
	}
	add := func(f Finding) { k.Findings = append(k.Findings, f) }
	if k.Upgraded {
		add(Finding{Verdict: Info, Aspect: AspectKernel, What: "package", Old: k.OldSource, New: k.NewSource,
			Note: "the selector now resolves to another package"})
	}
	switch {
	case o.Status == results.Pass && n.Status != results.Pass:
		add(Finding{Verdict: Regression, Aspect: AspectKernel, What: "run", Old: string(o.Status), New: string(n.Status),
			Note: shown(n.Error, noteWidth)})
	case o.Status != results.Pass && n.Status == results.Pass:
		add(Finding{Verdict: Fix, Aspect: AspectKernel, What: "run", Old: string(o.Status), New: string(n.Status),
			Note: shown(o.Error, noteWidth)})
	}
	for _, f := range capabilities(o.Capabilities, n.Capabilities) {
		add(f)
	}
	// Every result of one run is looked up in the other: by index, or
	// comparing would take time growing with the square of the results.
	oi, ni := o.Index(), n.Index()
	skip, hosts := c.cellsSkipped(o, n)
	if skip != "" && cellsInBoth(o, ni) {
		if hosts {
			if !c.hostsSaid[skip] {
				c.hostsSaid[skip] = true // said once for the run
				c.hostsDiffer = append(c.hostsDiffer, skip)
			}
		} else {
			add(Finding{Verdict: Info, Aspect: AspectThroughput, What: "not compared", Old: orDash(k.OldAccel), New: orDash(k.NewAccel),
				Note: "throughput not compared: " + skip})
		}
	}

	// Results in the old run's order, then those only in the new run.
	var missing []string
	for i := range o.Results {
		or := &o.Results[i]
		nr := ni.Result(or.ID)
		if nr == nil {
			missing = append(missing, or.ID)
			continue
		}
		for _, f := range c.result(&k, skip, o.Capabilities != nil && n.Capabilities != nil, or, nr) {
			add(f)
		}
	}
	switch {
	case len(missing) == 0:
	case n.Status != results.Pass && len(missing) > 1:
		// The run ended early: one finding, not one per check.
		ids := make([]string, len(missing))
		for i, id := range missing {
			ids[i] = inert.OneLine(id)
		}
		add(Finding{Verdict: Regression, Aspect: AspectStatus, What: "results", Old: strconv.Itoa(len(missing)), New: "missing",
			Note: shown(strings.Join(ids, ", "), noteWidth)})
	default:
		for _, id := range missing {
			f := Finding{Verdict: Regression, Aspect: AspectStatus, ID: shown(id, nameWidth), What: "status",
				Old: string(oi.Result(id).Status), New: "missing", Note: "not in the new run"}
			add(f)
		}
	}
	for i := range n.Results {
		nr := &n.Results[i]
		if oi.Result(nr.ID) != nil {
			continue
		}
		f := Finding{Verdict: Info, Aspect: AspectStatus, ID: shown(nr.ID, nameWidth), What: "status",
			Old: "missing", New: string(nr.Status), Note: "not in the old run"}
		if failed(nr.Status) {
			f.Verdict = Regression
			if nr.Reason != "" {
				f.Note = shown(f.Note+"; "+nr.Reason, noteWidth)
			}
		}
		add(f)
		if flaky(nr) {
			add(Finding{Verdict: Info, Aspect: AspectFlaky, ID: f.ID, What: "flaky", Old: "-", New: "yes",
				Note: shown(nr.Reason, noteWidth)})
		}
	}
	return k
}

func failed(s results.Status) bool { return s == results.Fail || s == results.Error }

func flaky(r *results.Result) bool { return contract.FactFlaky.Of(r) == "true" }

// result compares one result present in both runs of a kernel.
func (c *comparer) result(k *Kernel, skip string, caps bool, o, n *results.Result) []Finding {
	var out []Finding
	id := shown(o.ID, nameWidth)
	if f, changed := status(o, n); changed {
		f.ID = id
		out = append(out, f)
	}
	if flaky(o) || flaky(n) {
		f := Finding{Verdict: Info, Aspect: AspectFlaky, ID: id, What: "flaky", Old: yesNo(flaky(o)), New: yesNo(flaky(n))}
		switch {
		case flaky(o) && flaky(n):
			f.Note = shown("in both runs; now "+n.Reason, noteWidth)
		case flaky(n):
			f.Note = shown("in the new run: "+n.Reason, noteWidth)
		default:
			f.Note = shown("in the old run: "+o.Reason, noteWidth)
		}
		out = append(out, f)
	}
	if _, isProbe := contract.ProbeFacts[contract.ID(o.ID)]; isProbe {
		covered := caps && contract.ID(o.ID) == contract.FuseInit
		for _, f := range facts(contract.ID(o.ID), o, n, covered) {
			f.ID = id
			out = append(out, f)
		}
	}
	for _, f := range scenarioFacts(contract.ID(o.ID), o, n) {
		f.ID = id
		out = append(out, f)
	}
	if contract.ID(o.ID) == contract.SeqRead && o.Status == results.Pass && n.Status == results.Pass {
		c.seqRead = true
	}
	if _, cell := contract.ParseCell(contract.ID(o.ID)); cell && o.Status == results.Pass && n.Status == results.Pass {
		// A figure the cell gave before and not now is lost whatever the
		// hosts: the run measured less, or nothing, and said pass.
		lost := lostMetrics(o, n)
		for _, f := range lost {
			f.ID = id
			out = append(out, f)
		}
		if skip == "" {
			if f, judged := c.throughput(k, o, n, len(lost) > 0); f != nil {
				f.ID = id
				out = append(out, *f)
			} else if judged {
				k.Within++
			}
		}
	}
	return out
}

// lostMetrics finds the metrics a cell that passed in both runs gave in
// the old run and not in the new, or gave as no measurement does (a run
// built in memory; ReadFile refuses such a file): each is a regression.
// A cell whose every metric is gone is one finding.
func lostMetrics(o, n *results.Result) []Finding {
	bad, wasBad := results.BadMetrics(n.Metrics), results.BadMetrics(o.Metrics)
	var out []Finding
	var gone []string
	for _, name := range slices.Sorted(maps.Keys(o.Metrics)) {
		ov := o.Metrics[name]
		if wasBad[name] != "" {
			continue // nothing was measured to lose
		}
		f := Finding{Verdict: Regression, Aspect: AspectThroughput, What: shown(name, valueWidth), Old: figure(ov)}
		nv, ok := n.Metrics[name]
		switch {
		case !ok:
			f.New, f.Note = "missing", "the cell passed, but gave no "+shown(name, valueWidth)
			if why := n.Facts[name]; why != "" {
				// The agent says why a ratio is missing in a fact of its name.
				f.Note = shown("the cell passed, but: "+why, noteWidth)
			}
			gone = append(gone, shown(name, valueWidth))
		case bad[name] != "":
			f.New, f.Note = figure(nv), shown("not a measurement: "+bad[name], noteWidth)
		default:
			continue
		}
		out = append(out, f)
	}
	if len(gone) > 1 && len(n.Metrics) == 0 {
		return []Finding{{Verdict: Regression, Aspect: AspectThroughput, What: "metrics", Old: strconv.Itoa(len(gone)), New: "missing",
			Note: shown("the cell passed, but gave no figure: "+strings.Join(gone, ", "), noteWidth)}}
	}
	return out
}

// figure is a metric's value as a finding shows it: whole MB/s and
// counts, three digits of a ratio.
func figure(v float64) string {
	if math.Abs(v) >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// status classifies a change of status: worse is a regression (anything
// to fail or error, pass to skip), fail or error to pass is a fix, any
// other move (skip to pass, fail to error) a change.
func status(o, n *results.Result) (Finding, bool) {
	if o.Status == n.Status {
		return Finding{}, false
	}
	f := Finding{Aspect: AspectStatus, What: "status", Old: string(o.Status), New: string(n.Status)}
	switch {
	case failed(n.Status) && !failed(o.Status), o.Status == results.Pass && n.Status == results.Skip:
		f.Verdict, f.Note = Regression, shown(n.Reason, noteWidth)
	case failed(o.Status) && n.Status == results.Pass:
		f.Verdict, f.Note = Fix, shown("was: "+o.Reason, noteWidth)
	default:
		f.Verdict, f.Note = Change, shown(n.Reason, noteWidth)
	}
	return f, true
}

// passthroughOf names the passthrough ABI a kernel offers, "no" for none.
func passthroughOf(c *results.Capabilities) string {
	switch {
	case c.Passthrough || c.PassthroughABI == "upstream":
		return "upstream"
	case c.PassthroughABI != "":
		return shown(c.PassthroughABI, valueWidth)
	}
	return "no"
}

// capabilities compares what two kernels offered in FUSE_INIT: the
// protocol version, passthrough, and every INIT flag. Withdrawing
// passthrough or a flag is a regression; the rest are changes.
func capabilities(o, n *results.Capabilities) []Finding {
	if o == nil || n == nil {
		return nil
	}
	var out []Finding
	id := string(contract.FuseInit)
	if o.FuseMajor != n.FuseMajor {
		out = append(out, Finding{Verdict: Change, Aspect: AspectCapability, ID: id, What: string(contract.FactFuseMajor),
			Old: strconv.Itoa(int(o.FuseMajor)), New: strconv.Itoa(int(n.FuseMajor))})
	}
	if o.FuseMinor != n.FuseMinor {
		out = append(out, Finding{Verdict: Change, Aspect: AspectCapability, ID: id, What: string(contract.FactFuseMinor),
			Old: strconv.Itoa(int(o.FuseMinor)), New: strconv.Itoa(int(n.FuseMinor))})
	}
	if op, np := passthroughOf(o), passthroughOf(n); op != np {
		f := Finding{Verdict: Change, Aspect: AspectCapability, ID: id, What: "passthrough", Old: op, New: np}
		if np == "no" {
			f.Verdict, f.Note = Regression, "passthrough withdrawn"
		}
		out = append(out, f)
	}
	// A run from another machine may list any number of flags: sets, not
	// a search of one list for each entry of the other.
	oldFlags, newFlags := set(o.InitFlags), set(n.InitFlags)
	for _, flag := range o.InitFlags {
		if !newFlags[flag] {
			out = append(out, Finding{Verdict: Regression, Aspect: AspectCapability, ID: id,
				What: contract.FactFlagPrefix + shown(flag, valueWidth), Old: "offered", New: "absent", Note: "flag withdrawn"})
		}
	}
	for _, flag := range n.InitFlags {
		if !oldFlags[flag] {
			out = append(out, Finding{Verdict: Change, Aspect: AspectCapability, ID: id,
				What: contract.FactFlagPrefix + shown(flag, valueWidth), Old: "absent", New: "offered", Note: "flag offered"})
		}
	}
	return out
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// capabilityFacts are fuse-init's facts that repeat the capabilities,
// compared there when both kernels have them.
var capabilityFacts = []contract.Fact{contract.FactProtocol, contract.FactPassthrough, contract.FactPassthroughABI,
	contract.FactInitFlags, contract.FactFuseMajor, contract.FactFuseMinor}

// errno matches a fact that is an errno name, alone or followed by its
// text: "EPERM", "EIO (input/output error)".
var errno = regexp.MustCompile(`^E[A-Z0-9]+(\s|$)`)

// facts compares a probe's facts: those the contract names for it and
// any other either run reports. A changed fact is a change; one that was
// "ok" and is now an errno is a regression.
func facts(probe contract.ID, o, n *results.Result, covered bool) []Finding {
	keys := map[string]bool{}
	var order []string
	addKey := func(k string) {
		if !keys[k] {
			keys[k] = true
			order = append(order, k)
		}
	}
	for _, f := range contract.ProbeFacts[probe] {
		addKey(string(f))
	}
	var extra []string
	for k := range o.Facts {
		extra = append(extra, k)
	}
	for k := range n.Facts {
		extra = append(extra, k)
	}
	slices.Sort(extra)
	for _, k := range extra {
		addKey(k)
	}
	var out []Finding
	for _, key := range order {
		if covered && slices.Contains(capabilityFacts, contract.Fact(key)) {
			continue
		}
		ov, nv := o.Facts[key], n.Facts[key]
		if ov == nv {
			continue
		}
		f := Finding{Verdict: Change, Aspect: AspectFact, What: shown(key, valueWidth), Old: orDash(shown(ov, valueWidth)), New: orDash(shown(nv, valueWidth))}
		if ov == "ok" && errno.MatchString(nv) {
			f.Verdict, f.Note = Regression, "was ok, now fails"
		}
		out = append(out, f)
	}
	return out
}

// scenarioFacts compares the facts contract.ScenarioFacts names for a
// scenario: each change is a change, never a regression, as the
// scenario's status says whether the kernel's new answer is acceptable.
func scenarioFacts(id contract.ID, o, n *results.Result) []Finding {
	var out []Finding
	for _, key := range contract.ScenarioFacts[id] {
		ov, nv := key.Of(o), key.Of(n)
		if ov == nv {
			continue
		}
		out = append(out, Finding{Verdict: Change, Aspect: AspectFact, What: shown(string(key), valueWidth),
			Old: orDash(shown(ov, valueWidth)), New: orDash(shown(nv, valueWidth))})
	}
	return out
}

func orDash(s string) string { return cmp.Or(s, "-") }

// which names the runs a statement is about: "the old run", "the new
// run", or "both runs".
func which(old, new bool) string {
	switch {
	case old && new:
		return "both runs"
	case old:
		return "the old run"
	}
	return "the new run"
}
