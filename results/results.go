// Package results is the one schema fusematrix speaks: the events a guest
// agent streams to the host while it works, and the run summary the host
// writes once every kernel has finished. Guest and host both import it and
// nothing else of each other, so a change here is a change of the wire
// protocol: bump SchemaVersion when a field changes meaning. With
// results/contract (ids, facts, metrics, boot parameters) it is all the
// two sides share; the tools that render, compare, merge and judge runs
// are the host's, in harness/.
//
// It imports only the standard library.
package results

import (
	"sync/atomic"
	"time"
)

// SchemaVersion is written into every run summary so that later tools
// (compare, bisect) can refuse files they do not understand.
const SchemaVersion = 1

// Status is the outcome of one probe, scenario or benchmark.
type Status string

const (
	Pass Status = "pass"
	Fail Status = "fail"
	// Skip means the kernel lacks what the check needs; Reason says what.
	Skip Status = "skip"
	// Error means the check itself could not run (setup failed, timeout),
	// which says nothing about the kernel's behaviour.
	Error Status = "error"
)

func (s Status) valid() bool {
	switch s {
	case Pass, Fail, Skip, Error:
		return true
	}
	return false
}

// Kind says what a result measures.
type Kind string

const (
	Probe     Kind = "probe"     // a fact about the kernel
	Scenario  Kind = "scenario"  // a correctness check
	Benchmark Kind = "benchmark" // a measurement
	// Expectation compares an observed capability with what the kernel's
	// config or version says it must be. The host derives these; facts
	// "expected", "observed" and "basis" say why.
	Expectation Kind = "expectation"
)

func (k Kind) valid() bool {
	switch k {
	case Probe, Scenario, Benchmark, Expectation:
		return true
	}
	return false
}

// Result is the outcome of one probe, scenario or benchmark in one guest.
type Result struct {
	ID     string `json:"id"`
	Kind   Kind   `json:"kind"`
	Status Status `json:"status"`
	// Reason explains any status but pass, and may annotate a pass.
	Reason string `json:"reason,omitempty"`
	// Metrics holds numbers (throughput, ratios); Facts holds observed
	// values that are not numbers (errnos, modes).
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Facts   map[string]string  `json:"facts,omitempty"`
	Seconds float64            `json:"seconds"`
	// Log holds what explains a failure: kernel log lines written while the
	// check ran and the FUSE server's stderr, oldest first.
	Log []string `json:"log,omitempty"`
}

// Capabilities is what the kernel offered in FUSE_INIT.
type Capabilities struct {
	FuseMajor uint32 `json:"fuse_major"`
	FuseMinor uint32 `json:"fuse_minor"`
	// Passthrough is true when the kernel offered FUSE_PASSTHROUGH.
	Passthrough bool `json:"passthrough"`
	// PassthroughABI is "upstream" (6.9+ FUSE_PASSTHROUGH, backing ids),
	// "android" (the out-of-tree Android variant, a different INIT bit and
	// ioctl), or "" when the kernel offers neither.
	PassthroughABI string `json:"passthrough_abi,omitempty"`
	// InitFlags names every bit of flags and flags2 the kernel set; bits
	// without a name appear as "bit N", never dropped.
	InitFlags []string `json:"init_flags"`
	// Flags is the raw 64-bit value (flags | flags2<<32) behind InitFlags.
	Flags        uint64 `json:"flags"`
	MaxReadahead uint32 `json:"max_readahead"`
	// MaxPagesLimit is fs.fuse.max_pages_limit, 0 where the sysctl does
	// not exist.
	MaxPagesLimit uint32 `json:"max_pages_limit,omitempty"`
}

// Kernel is everything one guest produced, plus what the host observed
// about booting it.
type Kernel struct {
	// Name is how the user asked for the kernel (a selector or a path).
	Name string `json:"name"`
	// Source identifies the exact artefact booted, e.g. the Debian package
	// name and version.
	Source string `json:"source,omitempty"`
	// Unverified says why the kernel's packages were not verified against
	// the archive's signed InRelease (fusematrix -insecure-unsigned with
	// no keyring); absent when they were, or the kernel is a local file
	// or a source build.
	Unverified string `json:"unverified,omitempty"`
	// Missing names the packages of the kernel the archive lacks
	// (linux-modules-…, linux-base-…): the guest booted without them.
	Missing []string `json:"missing,omitempty"`
	Release string   `json:"release,omitempty"`
	// Accel is the accelerator that produced the results ("kvm" or "tcg");
	// AccelNote says why it is not the first one tried.
	Accel     string `json:"accel,omitempty"`
	AccelNote string `json:"accel_note,omitempty"`
	// Host is the machine that ran this kernel when it is not the run's
	// (a run merged from shards made on several machines).
	Host *Host `json:"host,omitempty"`
	// Retried says why the kernel was booted a second time (it panicked
	// before the agent started) and where the first console log is: the
	// results are the second boot's.
	Retried string `json:"retried,omitempty"`
	// Status is Pass when the guest ran to its done event with consistent
	// counts, Error otherwise; Error explains.
	Status Status `json:"status"`
	Error  string `json:"error,omitempty"`
	// HelloSeconds is the time from QEMU start to the agent's hello.
	HelloSeconds float64 `json:"hello_seconds,omitempty"`
	Seconds      float64 `json:"seconds"`
	// ConsoleLog is the guest console file, relative to the results file.
	ConsoleLog string `json:"console_log,omitempty"`
	// ConsoleTail holds the last console lines when the run failed.
	ConsoleTail  []string `json:"console_tail,omitempty"`
	AgentVersion string   `json:"agent_version,omitempty"`
	// Config holds the FUSE-related options of the kernel's own config
	// (CONFIG_FUSE_FS=m …) when the kernel came with one.
	Config       map[string]string `json:"config,omitempty"`
	Capabilities *Capabilities     `json:"capabilities,omitempty"`
	Results      []Result          `json:"results"`
}

// Run is the summary of one fusematrix invocation: results.json.
type Run struct {
	Schema   int       `json:"schema"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Host     Host      `json:"host"`
	Kernels  []Kernel  `json:"kernels"`
}

// Host describes the machine that ran the guests, since throughput figures
// mean little without it.
type Host struct {
	QEMU  string `json:"qemu,omitempty"`
	CPUs  int    `json:"cpus"`
	Jobs  int    `json:"jobs"`
	Accel string `json:"accel"` // what was asked for: auto, kvm, tcg
	// CPUModel is the host CPU's "model name" from /proc/cpuinfo, empty
	// where it is unknown: throughput is compared only between hosts of
	// the same model.
	CPUModel string `json:"cpu_model,omitempty"`
}

// HostOf is the machine that ran k, a kernel of r.
func (r *Run) HostOf(k *Kernel) Host {
	if k.Host != nil {
		return *k.Host
	}
	return r.Host
}

// Counts tallies results by status.
type Counts struct {
	Results int `json:"results"`
	Pass    int `json:"pass"`
	Fail    int `json:"fail"`
	Skip    int `json:"skip"`
	Error   int `json:"error"`
}

// Add counts one more result.
func (c *Counts) Add(s Status) {
	c.Results++
	switch s {
	case Pass:
		c.Pass++
	case Fail:
		c.Fail++
	case Skip:
		c.Skip++
	case Error:
		c.Error++
	}
}

// Count tallies rs.
func Count(rs []Result) Counts {
	var c Counts
	for _, r := range rs {
		c.Add(r.Status)
	}
	return c
}

// OK reports whether the kernel ran to completion and nothing failed.
func (k *Kernel) OK() bool {
	if k.Status != Pass {
		return false
	}
	c := Count(k.Results)
	return c.Fail == 0 && c.Error == 0
}

// Result returns the result with the given id, or nil. It scans, which
// suits a lookup or two (a probe by its id); a reader that looks up every
// result of a kernel uses an Index, or its work grows with the square of
// the results.
func (k *Kernel) Result(id string) *Result {
	for i := range k.Results {
		if k.Results[i].ID == id {
			scanned.Add(uint64(i + 1))
			return &k.Results[i]
		}
	}
	scanned.Add(uint64(len(k.Results)))
	return nil
}

// scanned counts the results Kernel.Result has stepped over.
var scanned atomic.Uint64

// Scanned is how many results Kernel.Result has stepped over in this
// process. Its only use is in tests: a reader of every result that
// scans for each shows there as a count that grows with the square of
// the results, which no timing on a shared machine shows reliably.
func Scanned() uint64 { return scanned.Load() }

// Index finds a kernel's results by id in constant time.
type Index struct {
	k  *Kernel
	at map[string]int
}

// Index indexes k's results by id. The index sees k.Results as they are
// now: results appended later are not in it. Should an id repeat (a run
// ReadFile refused, built in memory), the first result of that id is
// found, as with Kernel.Result.
func (k *Kernel) Index() Index {
	at := make(map[string]int, len(k.Results))
	for i := range k.Results {
		if _, dup := at[k.Results[i].ID]; !dup {
			at[k.Results[i].ID] = i
		}
	}
	return Index{k: k, at: at}
}

// Result returns the result with the given id, or nil.
func (x Index) Result(id string) *Result {
	if i, ok := x.at[id]; ok {
		return &x.k.Results[i]
	}
	return nil
}

// Position returns the position of the result with the given id in the
// kernel's results, -1 when there is none.
func (x Index) Position(id string) int {
	if i, ok := x.at[id]; ok {
		return i
	}
	return -1
}
