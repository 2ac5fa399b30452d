package contract

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/fusematrix/fusematrix/results"
)

// ID names one check: a probe, scenario or benchmark the agent runs, or an
// expectation the host derives.
type ID string

// The checks the agent runs, other than the benchmark cells (see Cell).
const (
	FuseInit         ID = "fuse-init"
	PassthroughIoctl ID = "passthrough-ioctl"
	FuseFeatures     ID = "fuse-features"

	PassthroughRead  ID = "passthrough-read"
	PtIntegrity      ID = "pt/integrity"
	PtSizeAfterWrite ID = "pt/size-after-write"
	PtMmapShared     ID = "pt/mmap-shared"
	PtFsync          ID = "pt/fsync"
	PtOpenTwice      ID = "pt/open-twice"
	PtDirectIO       ID = "pt/direct-io"
	PtCloseBacking   ID = "pt/close-backing"
	PtUnmountOpen    ID = "pt/unmount-open"
	PtAbortOpen      ID = "pt/abort-open"
	ClassicFallback  ID = "classic/fallback"
	ClassicBasics    ID = "classic/basics"

	SeqRead ID = "seq-read"
)

// ExpectPrefix starts the id of every expectation, which only the host
// produces.
const ExpectPrefix = "expect/"

// The expectations, in the order the host evaluates them.
const (
	ExpectPassthroughOffered ID = ExpectPrefix + "passthrough-offered"
	ExpectPassthroughWorks   ID = ExpectPrefix + "passthrough-works"
	ExpectIOUring            ID = ExpectPrefix + "io-uring"
	ExpectVirtiofs           ID = ExpectPrefix + "virtiofs"
)

// Expectations lists the expectation ids in evaluation order.
var Expectations = []ID{ExpectPassthroughOffered, ExpectPassthroughWorks, ExpectIOUring, ExpectVirtiofs}

// Check is one entry of the catalogue of what the agent can run.
type Check struct {
	ID   ID
	Kind results.Kind
}

// checks are the agent's checks in run order, the benchmark cells after
// them: probes first, since later checks read what probes found.
var checks = []Check{
	{FuseInit, results.Probe},
	{PassthroughIoctl, results.Probe},
	{FuseFeatures, results.Probe},
	{PassthroughRead, results.Scenario},
	{PtIntegrity, results.Scenario},
	{PtSizeAfterWrite, results.Scenario},
	{PtMmapShared, results.Scenario},
	{PtFsync, results.Scenario},
	{PtOpenTwice, results.Scenario},
	{PtDirectIO, results.Scenario},
	{PtCloseBacking, results.Scenario},
	{PtUnmountOpen, results.Scenario},
	{PtAbortOpen, results.Scenario},
	{ClassicFallback, results.Scenario},
	{ClassicBasics, results.Scenario},
	{SeqRead, results.Benchmark},
}

// Checks returns everything the agent can run, in run order.
func Checks() []Check {
	out := append([]Check(nil), checks...)
	for _, c := range Cells() {
		out = append(out, Check{c.ID(), results.Benchmark})
	}
	return out
}

// Select returns the checks whose id matches pattern, in run order.
// Probes always run, because other checks depend on what they find. The
// benchmark cells take minutes and are selected only by a pattern that
// starts with "bench" or "^bench".
func Select(pattern string) ([]Check, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("scenario pattern %q: %w", pattern, err)
	}
	bench := strings.HasPrefix(strings.TrimPrefix(pattern, "^"), "bench")
	var out []Check
	for _, c := range Checks() {
		if !bench && strings.HasPrefix(string(c.ID), BenchPrefix) {
			continue
		}
		if c.Kind == results.Probe || re.MatchString(string(c.ID)) {
			out = append(out, c)
		}
	}
	return out, nil
}

// In returns k's result with this id, or nil.
func (id ID) In(k *results.Kernel) *results.Result {
	return k.Result(string(id))
}
