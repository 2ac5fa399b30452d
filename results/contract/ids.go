package contract

import (
	"fmt"
	"regexp"
	"strings"
	"time"

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
	IOUring          ID = "io-uring"

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
	ClassicKilled    ID = "classic/kill-mid-request"

	SeqRead ID = "seq-read"
)

// URingPrefix starts the id of a check run over FUSE's io_uring
// transport (scenarios.OverURing): "uring/pt/integrity".
const URingPrefix = "uring/"

// URingTransport proves, from the kernel's accounting, that our server
// over io_uring serves every request without read(2) or write(2).
const URingTransport ID = URingPrefix + "transport"

// ExpectPrefix starts the id of every expectation, which only the host
// produces.
const ExpectPrefix = "expect/"

// The expectations, in the order the host evaluates them.
const (
	ExpectPassthroughOffered ID = ExpectPrefix + "passthrough-offered"
	ExpectPassthroughWorks   ID = ExpectPrefix + "passthrough-works"
	ExpectIOUring            ID = ExpectPrefix + "io-uring"
	ExpectIOUringWorks       ID = ExpectPrefix + "io-uring-works"
	ExpectVirtiofs           ID = ExpectPrefix + "virtiofs"
)

// Expectations lists the expectation ids in evaluation order.
var Expectations = []ID{ExpectPassthroughOffered, ExpectPassthroughWorks, ExpectIOUring, ExpectIOUringWorks, ExpectVirtiofs}

// Check is one entry of the catalogue of what the agent can run.
type Check struct {
	ID   ID
	Kind results.Kind
	// Timeout bounds one run of the check in the guest. The host gives a
	// guest that long (per run, plus a grace) for each result it awaits,
	// so that a stalled agent costs one check's time, not the guest's.
	Timeout time.Duration
}

// checks are the agent's checks in run order, the benchmark cells after
// them: probes first, since later checks read what probes found.
var checks = []Check{
	{FuseInit, results.Probe, 30 * time.Second},
	// Four small mounts and a dozen ioctls: a wide margin even under TCG.
	{PassthroughIoctl, results.Probe, 60 * time.Second},
	{FuseFeatures, results.Probe, 10 * time.Second},
	// A few hundred requests over four mounts; a few seconds under TCG.
	{Requests, results.Probe, 60 * time.Second},
	// A dozen small mounts and rings, each command given a moment to fail.
	{IOUring, results.Probe, 60 * time.Second},
	{PassthroughRead, results.Scenario, 60 * time.Second},
	{PtIntegrity, results.Scenario, 90 * time.Second},
	{PtSizeAfterWrite, results.Scenario, 60 * time.Second},
	{PtMmapShared, results.Scenario, 60 * time.Second},
	{PtFsync, results.Scenario, 60 * time.Second},
	{PtOpenTwice, results.Scenario, 60 * time.Second},
	{PtDirectIO, results.Scenario, 60 * time.Second},
	{PtCloseBacking, results.Scenario, 60 * time.Second},
	{PtUnmountOpen, results.Scenario, 60 * time.Second},
	{PtAbortOpen, results.Scenario, 60 * time.Second},
	{ClassicFallback, results.Scenario, 60 * time.Second},
	{ClassicBasics, results.Scenario, 60 * time.Second},
	{ClassicKilled, results.Scenario, 60 * time.Second},
	// Over FUSE's io_uring transport, where the kernel has it.
	{URingTransport, results.Scenario, 60 * time.Second},
	{URingPrefix + PtIntegrity, results.Scenario, 90 * time.Second},
	{URingPrefix + PtSizeAfterWrite, results.Scenario, 60 * time.Second},
	{URingPrefix + PtMmapShared, results.Scenario, 60 * time.Second},
	{URingPrefix + PtFsync, results.Scenario, 60 * time.Second},
	{URingPrefix + PtOpenTwice, results.Scenario, 60 * time.Second},
	{URingPrefix + PtUnmountOpen, results.Scenario, 60 * time.Second},
	{URingPrefix + PtAbortOpen, results.Scenario, 60 * time.Second},
	{URingPrefix + ClassicBasics, results.Scenario, 60 * time.Second},
	{URingPrefix + ClassicKilled, results.Scenario, 60 * time.Second},
	// Four passes over the file plus the setup, with a wide margin for a
	// slow TCG guest.
	{SeqRead, results.Benchmark, 180 * time.Second},
}

// cellTimeout bounds one benchmark cell: all its runs and their mounts.
const cellTimeout = 120 * time.Second

// daemonCellTimeout bounds a cell of a user's daemon, which may be far
// slower than fusematrix's servers (an encrypted store under TCG) and,
// without a backing directory, writes its file through the mount before
// each read run.
const daemonCellTimeout = 300 * time.Second

// Checks returns everything the agent can run, in run order.
func Checks() []Check {
	out := append([]Check(nil), checks...)
	for _, c := range Cells() {
		out = append(out, Check{c.ID(), results.Benchmark, cellTimeout})
	}
	return out
}

// ProbesOnly is a pattern that selects the probes and nothing else.
const ProbesOnly = "^(" + string(FuseInit) + "|" + string(PassthroughIoctl) + "|" + string(FuseFeatures) + "|" + string(Requests) + "|" + string(IOUring) + ")$"

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
