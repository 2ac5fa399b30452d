// Package predicate parses and judges the conditions fusematrix bisect and
// later tools ask of a kernel's results: a result's status
// (pt/integrity=fail), a fact a probe observed
// (passthrough-ioctl.o_path=ok, fuse-init.protocol>=7.41) or a metric
// against a threshold (bench/read/passthrough/131072:ratio_native<0.8).
// A predicate names the new behaviour; Judge says whether a kernel shows
// it.
//
// It is a host-side tool and imports only results and results/contract:
// ids, facts and metrics are the contract's, so a predicate naming
// something no check reports is an error when it is parsed, not a silent
// "no" on every kernel.
package predicate

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// Form says what a predicate looks at.
type Form int

const (
	Status Form = iota // ID=STATUS
	Fact               // ID.FACT OP VALUE
	Metric             // ID:METRIC OP NUMBER
)

// Op is a comparison.
type Op string

const (
	Eq Op = "="
	Ne Op = "!="
	Lt Op = "<"
	Le Op = "<="
	Gt Op = ">"
	Ge Op = ">="
)

// ops in the order the parser tries them: two-character ones first.
var ops = []Op{Ne, Le, Ge, Eq, Lt, Gt}

// opChars are the characters ops are made of; no value starts with one.
const opChars = "=!<>"

// Predicate is one parsed condition.
type Predicate struct {
	Text  string // as given
	Form  Form
	ID    contract.ID
	Kind  results.Kind
	Key   string // the fact or metric; "" for Status
	Op    Op
	Value string
	// num is a fact's Value as a dotted number ("7.41") for ordering ops.
	num []uint64
}

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("bad predicate")

// Parse reads a predicate, checking its id, fact or metric against what
// the checks report.
func Parse(text string) (*Predicate, error) {
	text = strings.TrimSpace(text)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrSyntax, text, fmt.Sprintf(format, args...))
	}
	p := &Predicate{Text: text}
	var left string
	for i := 0; i < len(text) && p.Op == ""; i++ {
		for _, op := range ops {
			if strings.HasPrefix(text[i:], string(op)) {
				p.Op, left, p.Value = op, strings.TrimSpace(text[:i]), strings.TrimSpace(text[i+len(op):])
				break
			}
		}
	}
	if p.Op == "" {
		return nil, bad("no comparison: want ID=STATUS, ID.FACT OP VALUE or ID:METRIC OP NUMBER, OP one of = != < <= > >=")
	}
	if left == "" || p.Value == "" {
		return nil, bad("nothing on one side of %s", p.Op)
	}
	// "fuse-init.protocol=>7.41" would read as = with the value ">7.41",
	// which no kernel reports: a silent "old" on every kernel instead of
	// the >= that was meant.
	if strings.ContainsAny(p.Value[:1], opChars) {
		return nil, bad("the value %q after %s starts with an operator character: write one comparison, one of = != < <= > >= (>= rather than =>)", p.Value, p.Op)
	}
	checks := known()
	switch id, metric, isMetric := strings.Cut(left, ":"); {
	case isMetric:
		p.Form, p.ID, p.Key = Metric, contract.ID(id), metric
	case checks[contract.ID(left)] != "":
		p.Form, p.ID = Status, contract.ID(left)
	default:
		i := strings.LastIndexByte(left, '.')
		if i < 0 {
			return nil, bad("no check has the id %q (fusematrix matrix -list lists them)", left)
		}
		// A fact name may hold a dot (param.max_user_bgreq): the id is
		// the longest known prefix.
		for i = len(left); i > 0; i-- {
			if left[i-1] == '.' && checks[contract.ID(left[:i-1])] != "" {
				break
			}
		}
		if i == 0 {
			return nil, bad("no check has the id %q", left[:strings.IndexByte(left, '.')])
		}
		p.Form, p.ID, p.Key = Fact, contract.ID(left[:i-1]), left[i:]
	}
	p.Kind = checks[p.ID]
	if p.Kind == "" {
		return nil, bad("no check has the id %q", p.ID)
	}
	switch p.Form {
	case Status:
		if !slices.Contains([]results.Status{results.Pass, results.Fail, results.Skip, results.Error}, results.Status(p.Value)) {
			return nil, bad("%q is not a status (pass, fail, skip, error)", p.Value)
		}
		if p.Op != Eq && p.Op != Ne {
			return nil, bad("a status compares only with = or !=")
		}
		return p, nil
	case Fact:
		if err := knownFact(p.ID, p.Key); err != nil {
			return nil, bad("%v", err)
		}
	case Metric:
		if p.Kind != results.Benchmark {
			return nil, bad("%s is a %s: only benchmarks report metrics", p.ID, p.Kind)
		}
		v, err := strconv.ParseFloat(p.Value, 64)
		if err != nil {
			return nil, bad("%q is not a number", p.Value)
		}
		// Every comparison with NaN is false, and none with an infinity
		// separates two kernels: either makes every kernel "old".
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, bad("%q is not a finite number", p.Value)
		}
		if err := knownMetric(p.ID, p.Key); err != nil {
			return nil, bad("%v", err)
		}
	}
	if p.Form == Fact && p.Op != Eq && p.Op != Ne {
		n, ok := dotted(p.Value)
		if !ok {
			return nil, bad("%s on a fact needs a whole number or a dotted version (like 7.41), not %q", p.Op, p.Value)
		}
		p.num = n
	}
	return p, nil
}

// known maps every id a predicate may name to its kind: the agent's
// checks and the host's expectations.
func known() map[contract.ID]results.Kind {
	m := map[contract.ID]results.Kind{}
	for _, c := range contract.Checks() {
		m[c.ID] = c.Kind
	}
	for _, id := range contract.Expectations {
		m[id] = results.Expectation
	}
	return m
}

// knownFact says why id reports no fact called key, or nil.
func knownFact(id contract.ID, key string) error {
	switch {
	case id == contract.FuseInit && strings.HasPrefix(key, contract.FactFlagPrefix) && len(key) > len(contract.FactFlagPrefix):
		return nil
	case id == contract.FuseFeatures && (strings.HasPrefix(key, contract.FactParamPrefix) || strings.HasPrefix(key, contract.FactSysctlPrefix)):
		return nil
	case slices.Contains([]contract.ID{contract.ExpectPassthroughOffered, contract.ExpectPassthroughWorks,
		contract.ExpectIOUring, contract.ExpectVirtiofs}, id):
		if slices.Contains([]contract.Fact{contract.FactExpected, contract.FactObserved, contract.FactBasis}, contract.Fact(key)) {
			return nil
		}
	}
	facts, ok := contract.ProbeFacts[id]
	if !ok {
		facts, ok = contract.ScenarioFacts[id]
	}
	if !ok {
		if _, isExpect := strings.CutPrefix(string(id), contract.ExpectPrefix); !isExpect {
			return fmt.Errorf("%s reports no facts a predicate can use; compare its status instead (%s=fail)", id, id)
		}
	}
	if slices.Contains(facts, contract.Fact(key)) {
		return nil
	}
	names := make([]string, len(facts))
	for i, f := range facts {
		names[i] = string(f)
	}
	return fmt.Errorf("%s reports no fact %q; it reports %s", id, key, strings.Join(names, ", "))
}

// knownMetric says why id reports no metric called key, or nil.
func knownMetric(id contract.ID, key string) error {
	ms := contract.Metrics(id)
	if slices.Contains(ms, contract.Metric(key)) {
		return nil
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = string(m)
	}
	return fmt.Errorf("%s reports no metric %q; it reports %s", id, key, strings.Join(names, ", "))
}

// errnoName is v, or only its errno's name when v is an errno as
// scenarios write them ("EIO (input/output error)") and want is a bare
// name: "held_read=EIO" then says what it means.
func errnoName(v, want string) string {
	name, _, ok := strings.Cut(v, " (")
	if ok && strings.HasSuffix(v, ")") && !strings.Contains(want, " ") && errnoWord.MatchString(name) {
		return name
	}
	return v
}

var errnoWord = regexp.MustCompile(`^E[A-Z0-9]+$`)

// dotted reads "7.41" or "256" as whole numbers to compare in order, the
// way versions compare: 7.41 comes after 7.5.
func dotted(s string) ([]uint64, bool) {
	var out []uint64
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.ParseUint(part, 10, 64)
		if err != nil {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

func compareDotted(a, b []uint64) int {
	for i := range max(len(a), len(b)) {
		var x, y uint64
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// holds applies op to the outcome of a comparison.
func (op Op) holds(c int) bool {
	switch op {
	case Eq:
		return c == 0
	case Ne:
		return c != 0
	case Lt:
		return c < 0
	case Le:
		return c <= 0
	case Gt:
		return c > 0
	case Ge:
		return c >= 0
	}
	return false
}

// Verdict is what a kernel's results say of a predicate.
type Verdict string

const (
	// New: the kernel shows the behaviour the predicate names.
	New Verdict = "new"
	// Old: it does not.
	Old Verdict = "old"
	// Unknown: its results cannot say (the kernel did not run, the check
	// reported nothing, or not what the predicate compares).
	Unknown Verdict = "unknown"
)

// Judge says whether k shows the new behaviour, and the evidence: what
// the kernel reported, or why it cannot say.
func (p *Predicate) Judge(k *results.Kernel) (Verdict, string) {
	if k == nil {
		return Unknown, "no kernel"
	}
	if k.Status != results.Pass {
		return Unknown, "the kernel did not run to completion: " + k.Error
	}
	r := p.ID.In(k)
	if r == nil {
		return Unknown, fmt.Sprintf("no result %s", p.ID)
	}
	verdict := func(ok bool) Verdict {
		if ok {
			return New
		}
		return Old
	}
	switch p.Form {
	case Status:
		ev := fmt.Sprintf("%s: %s", p.ID, r.Status)
		if r.Reason != "" {
			ev += " (" + r.Reason + ")"
		}
		// An error (a setup that timed out, a mount that failed) means the
		// check did not get as far as testing anything: it is no more
		// "not a pass" than it is a pass. Only a predicate about errors
		// themselves can read it.
		if r.Status == results.Error && p.Value != string(results.Error) {
			return Unknown, ev + ": an error says nothing of " + p.Text
		}
		return verdict(p.Op.holds(strings.Compare(string(r.Status), p.Value))), ev
	case Fact:
		v := p.fact(k, r)
		if v == "" {
			return Unknown, fmt.Sprintf("%s reported no %s (status %s: %s)", p.ID, p.Key, r.Status, r.Reason)
		}
		ev := fmt.Sprintf("%s.%s = %s", p.ID, p.Key, v)
		if p.num == nil {
			return verdict(p.Op.holds(strings.Compare(errnoName(v, p.Value), p.Value))), ev
		}
		n, ok := dotted(v)
		if !ok {
			return Unknown, ev + ", not a number"
		}
		return verdict(p.Op.holds(compareDotted(n, p.num))), ev
	}
	if r.Status != results.Pass {
		return Unknown, fmt.Sprintf("%s: %s (%s)", p.ID, r.Status, r.Reason)
	}
	v, ok := r.Metrics[p.Key]
	if !ok {
		return Unknown, fmt.Sprintf("%s reported no metric %s", p.ID, p.Key)
	}
	want, _ := strconv.ParseFloat(p.Value, 64)
	c := 0
	switch {
	case v < want:
		c = -1
	case v > want:
		c = 1
	}
	return verdict(p.Op.holds(c)), fmt.Sprintf("%s:%s = %g", p.ID, p.Key, v)
}

// fact reads the predicate's fact from r, or for fuse-init from what the
// kernel offered in INIT.
func (p *Predicate) fact(k *results.Kernel, r *results.Result) string {
	if v := r.Facts[p.Key]; v != "" {
		return v
	}
	c := k.Capabilities
	if p.ID != contract.FuseInit || c == nil {
		return ""
	}
	switch p.Key {
	case string(contract.FactFuseMajor):
		return strconv.FormatUint(uint64(c.FuseMajor), 10)
	case string(contract.FactFuseMinor):
		return strconv.FormatUint(uint64(c.FuseMinor), 10)
	}
	if flag, ok := strings.CutPrefix(p.Key, contract.FactFlagPrefix); ok {
		if slices.Contains(c.InitFlags, flag) {
			return "offered"
		}
		return "absent"
	}
	return ""
}

// RunPattern is the -run pattern that makes a guest report what p needs:
// its check (the probes always run, and the host derives expectations
// from them).
func (p *Predicate) RunPattern() string {
	if p.Kind == results.Expectation {
		return contract.ProbesOnly
	}
	return "^" + regexp.QuoteMeta(string(p.ID)) + "$"
}
