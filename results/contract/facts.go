package contract

import (
	"strings"

	"github.com/fusematrix/fusematrix/results"
)

// Fact names an entry of Result.Facts that the host reads.
type Fact string

// Of returns the fact in r, "" when r is nil or lacks it.
func (f Fact) Of(r *results.Result) string {
	if r == nil {
		return ""
	}
	return r.Facts[string(f)]
}

// Facts of fuse-init.
const (
	FactProtocol       Fact = "protocol"
	FactPassthrough    Fact = "passthrough"
	FactPassthroughABI Fact = "passthrough_abi"
	FactInitFlags      Fact = "init_flags"
	FactMaxReadahead   Fact = "max_readahead"
	FactMaxPagesLimit  Fact = "max_pages_limit"
)

// Facts of passthrough-ioctl: whether passthrough was negotiated, the
// errno names of BACKING_OPEN and BACKING_CLOSE on a regular file, and
// whether passthrough survived a request for writeback cache.
const (
	FactNegotiated     Fact = "negotiated"
	FactBackingOpen    Fact = "backing_open"
	FactBackingID      Fact = "backing_id"
	FactBackingClose   Fact = "backing_close"
	FactWritebackCache Fact = "writeback_cache"
)

// MisuseCases are the passthrough-ioctl facts that record the errno of a
// BACKING_OPEN or BACKING_CLOSE the kernel should refuse (or, for some,
// may accept): facts about the kernel, not verdicts.
var MisuseCases = []Fact{
	"not_negotiated", "bad_fd", "flags_nonzero", "padding_nonzero", "directory",
	"o_path", "stacked_too_deep", "close_unknown", "close_zero",
}

// Facts of fuse-init that come from the kernel's INIT request itself
// (results.Capabilities) rather than the probe's facts: FactFuseMinor
// "41", and FactFlagPrefix+name, "offered" or "absent", for every INIT
// flag fusematrix names.
const (
	FactFuseMajor  Fact = "fuse_major"
	FactFuseMinor  Fact = "fuse_minor"
	FactFlagPrefix      = "flag."
)

// Facts of fuse-features.
const (
	FactIOUring        Fact = "io_uring"
	FactRequestTimeout Fact = "request_timeout"
	FactVirtiofs       Fact = "virtiofs"
	FactCUSE           Fact = "cuse"
	FactFusectl        Fact = "fusectl"
)

// Prefixes of fuse-features' facts read from the kernel: module
// parameters (/sys/module/fuse/parameters) and sysctls (/proc/sys/fs/fuse).
const (
	FactParamPrefix  = "param."
	FactSysctlPrefix = "sysctl."
)

// ProbeFacts are the facts each probe reports, by the names the reports
// use; a fuse-features fact may also be any FactParamPrefix or
// FactSysctlPrefix name, a fuse-init one any FactFlagPrefix name.
var ProbeFacts = map[ID][]Fact{
	FuseInit: {FactProtocol, FactPassthrough, FactPassthroughABI, FactInitFlags, FactMaxReadahead, FactMaxPagesLimit,
		FactFuseMajor, FactFuseMinor},
	PassthroughIoctl: append([]Fact{FactNegotiated, FactBackingOpen, FactBackingID, FactBackingClose, FactWritebackCache},
		MisuseCases...),
	FuseFeatures: {FactIOUring, FactRequestTimeout, FactVirtiofs, FactCUSE, FactFusectl},
	Requests:     RequestFacts(),
	IOUring: append([]Fact{FactURingParamDefault, FactURingParamSet, FactURingOfferedOff, FactURingOfferedOn,
		FactURingQueues, FactURingRegister, FactURingServes, FactURingTransport}, URingMisuseCases...),
}

// Facts of classic/kill-mid-request and its io_uring twin: how the
// kernel answered each operation once the server was dead. Unlike a
// scenario's counters, each is the kernel's behaviour ("ok", or an errno
// as scenarios.ErrnoText writes it), so compare and bisect may use them.
const (
	FactHeldRead       Fact = "held_read"
	FactStatPath       Fact = "stat_path"
	FactOpenPath       Fact = "open_path"
	FactReaddir        Fact = "readdir"
	FactPreadOpenFile  Fact = "pread_open_file"
	FactMmapRead       Fact = "mmap_read"
	FactCloseHeld      Fact = "close_held"
	FactUmount         Fact = "umount"
	FactConnectionGone Fact = "connection_gone"
)

// KilledFacts are the facts of classic/kill-mid-request.
var KilledFacts = []Fact{FactHeldRead, FactStatPath, FactOpenPath, FactReaddir, FactPreadOpenFile, FactMmapRead,
	FactCloseHeld, FactUmount, FactConnectionGone}

// ScenarioFacts are the facts of the scenarios that report the kernel's
// answers as facts, by id. compare reports a change in one without
// calling it a regression: the scenario's status judges.
var ScenarioFacts = map[ID][]Fact{
	ClassicKilled:               KilledFacts,
	URingPrefix + ClassicKilled: KilledFacts,
}

// Facts of every expectation: what the rule expected, what the guest
// showed, and what the expectation rests on (the config or the version).
const (
	FactExpected Fact = "expected"
	FactObserved Fact = "observed"
	FactBasis    Fact = "basis"
)

// Facts of io-uring: the enable_uring parameter's default and what the
// probe set it to for itself, whether INIT offered FUSE_OVER_IO_URING
// with the parameter off and on, the ring's queue count, whether
// REGISTER was accepted and a request served over the ring, and the
// transport's verdict: "absent", "works" or "fails".
const (
	FactURingParamDefault Fact = "param_default"
	FactURingParamSet     Fact = "param_set"
	FactURingOfferedOff   Fact = "offered_param_off"
	FactURingOfferedOn    Fact = "offered_param_on"
	FactURingQueues       Fact = "queues"
	FactURingRegister     Fact = "register"
	FactURingServes       Fact = "serves"
	FactURingTransport    Fact = "transport"
	FactURingParamOff     Fact = "param_off"
)

// FactTransport is set on a check run over FUSE's io_uring transport
// (uring/*): "io_uring".
const FactTransport Fact = "transport"

// URingMisuseCases are the io-uring facts that record what the kernel
// answers a REGISTER or COMMIT_AND_FETCH it should refuse (or may
// accept): "ok" or the errno name of the command's completion.
var URingMisuseCases = []Fact{
	FactURingParamOff, "before_init", "not_negotiated", "no_sqe128", "qid_out_of_range",
	"header_short", "payload_short", "register_twice", "commit_unknown",
}

// Facts of the results the agent aggregates over -count runs.
const (
	FactRuns   Fact = "runs"
	FactPassed Fact = "passed"
	FactFlaky  Fact = "flaky"
)

// FactKernelReport is set on a check during which the kernel reported a
// bug (an oops, a warning, a hung task: KernelReport), which fails it.
const FactKernelReport Fact = "kernel_report"

// FactRatioNoisy marks a benchmark cell whose paired runs were disturbed.
const FactRatioNoisy Fact = "ratio_native_noisy"

// Metric names an entry of Result.Metrics that the host reads.
type Metric string

// Of returns the metric in r and whether r has it.
func (m Metric) Of(r *results.Result) (float64, bool) {
	if r == nil {
		return 0, false
	}
	v, ok := r.Metrics[string(m)]
	return v, ok
}

// Metrics of a benchmark cell: MB/s over its runs, and ratios of paired
// runs to the modes it is compared with.
const (
	MetricMedian           Metric = "mbps_median"
	MetricMin              Metric = "mbps_min"
	MetricMax              Metric = "mbps_max"
	MetricRatioNative      Metric = "ratio_native"
	MetricRatioNativeMin   Metric = "ratio_native_min"
	MetricRatioNativeMax   Metric = "ratio_native_max"
	MetricRatioNoop        Metric = "ratio_noop"
	MetricRatioLibfuseNoop Metric = "ratio_libfuse_noop"
)

// What else a benchmark cell's runs cost per GiB moved: guest-wide busy
// CPU and context switches, and for a FUSE mode the server's CPU, the
// daemon's read(2) calls and context switches (when the kernel accounts
// them) and the requests it served (when it counts them).
const (
	MetricCPU             Metric = "cpu_s_per_gib"
	MetricCtxsw           Metric = "ctxsw_per_gib"
	MetricServerCPU       Metric = "server_cpu_s_per_gib"
	MetricDaemonReadCalls Metric = "daemon_read_calls_per_gib"
	MetricDaemonCtxsw     Metric = "daemon_ctxsw_per_gib"
	MetricDaemonRequests  Metric = "daemon_requests_per_gib"
)

// RatioTo is a cell's ratio to the same op and block size through m:
// for a pair mode the median of the run-by-run ratios (with RatioTo(m)
// plus "_min" and "_max" their spread), for a base the ratio of the
// medians.
func RatioTo(m Mode) Metric { return Metric("ratio_" + strings.ReplaceAll(string(m), "-", "_")) }

// Compared says what a cell of mode m is given as a ratio to: pairs, the
// modes that run right before each of its runs, and bases, modes measured
// earlier in the same run. scenarios/bench measures by its own table of
// modes; its TestMetricsInContract holds the two together, since a
// predicate may name only what this package lists (Metrics).
func (m Mode) Compared() (pairs, bases []Mode) {
	if _, ok := m.Daemon(); ok {
		return []Mode{Native}, []Mode{Noop, Passthrough}
	}
	switch m {
	case LibfuseNoop, Classic:
		return []Mode{Native}, nil
	case Noop:
		return []Mode{Native, LibfuseNoop}, nil
	case Passthrough:
		return []Mode{Native}, []Mode{Noop}
	case PassthroughNoXattr:
		return []Mode{Native}, []Mode{Noop, Passthrough}
	case NoopURing:
		return []Mode{Native}, []Mode{Noop}
	case PassthroughURing:
		return []Mode{Native}, []Mode{Noop, Passthrough}
	}
	return nil, nil
}

// MBPS is seq-read's metric for one mode: MB/s through it.
func MBPS(m Mode) Metric { return Metric(string(m) + "_mbps") }

// SeqReadRatio is seq-read's metric for a mode other than native: its
// MB/s over native's.
func SeqReadRatio(m Mode) Metric { return Metric(string(m) + "_ratio") }

// SeqReadModes are the modes seq-read measures (MBPS, SeqReadRatio).
var SeqReadModes = []Mode{Native, Noop, Classic, Passthrough}

// Metrics lists the metrics check id can report: what a predicate may
// compare (bisect refuses any other before it boots). A check that
// reports none has none.
func Metrics(id ID) []Metric {
	if id == SeqRead {
		var out []Metric
		for _, m := range SeqReadModes {
			out = append(out, MBPS(m))
			if m != Native {
				out = append(out, SeqReadRatio(m))
			}
		}
		return out
	}
	c, ok := ParseCell(id)
	if !ok {
		return nil
	}
	out := []Metric{MetricMedian, MetricMin, MetricMax, MetricCPU, MetricCtxsw}
	if c.Mode == Native {
		// Its own ratio, 1 by definition, from no pair.
		return append(out, RatioTo(Native))
	}
	out = append(out, MetricServerCPU, MetricDaemonReadCalls, MetricDaemonCtxsw, MetricDaemonRequests)
	pairs, bases := c.Mode.Compared()
	for _, p := range pairs {
		out = append(out, RatioTo(p), RatioTo(p)+"_min", RatioTo(p)+"_max")
	}
	for _, b := range bases {
		out = append(out, RatioTo(b))
	}
	return out
}
