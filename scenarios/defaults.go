package scenarios

// Benchmark defaults, used when Env leaves the sizes zero. Check ids and
// bench cell names are package contract's, which the host shares.
const (
	DefaultBenchBytes = 256 << 20
	DefaultBlockSize  = 1 << 20
)
