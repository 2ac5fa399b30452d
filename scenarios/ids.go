package scenarios

// Result ids of the probes and scenarios, and the benchmark's constants:
// each is defined here once, and the host and the guest refer to them.

// Probe ids.
const (
	IDFuseInit         = "fuse-init"
	IDPassthroughIoctl = "passthrough-ioctl"
	IDFuseFeatures     = "fuse-features"
)

// Correctness scenario ids.
const (
	IDPassthroughRead = "passthrough-read"
	IDPTIntegrity     = "pt/integrity"
	IDPTSizeAfter     = "pt/size-after-write"
	IDPTMmapShared    = "pt/mmap-shared"
	IDPTFsync         = "pt/fsync"
	IDPTOpenTwice     = "pt/open-twice"
	IDPTDirectIO      = "pt/direct-io"
	IDPTCloseBacking  = "pt/close-backing"
	IDPTUnmountOpen   = "pt/unmount-open"
	IDPTAbortOpen     = "pt/abort-open"
	IDClassicFallback = "classic/fallback"
	IDClassicBasics   = "classic/basics"
)

// IDSeqRead is the single-pass read benchmark.
const IDSeqRead = "seq-read"

// BenchPrefix starts the id of every benchmark cell,
// bench/<op>/<mode>/<block>. Selection leaves the cells out unless the
// pattern names them: they take minutes, not seconds.
const BenchPrefix = "bench/"

// DefaultBenchRuns is how many times a cell measures when Env says nothing.
const DefaultBenchRuns = 5

// Benchmark defaults, used when Env leaves the sizes zero.
const (
	DefaultBenchBytes = 256 << 20
	DefaultBlockSize  = 1 << 20
)
