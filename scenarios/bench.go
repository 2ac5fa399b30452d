package scenarios

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios/server"
)

// BenchPrefix starts the id of every benchmark cell. Select leaves the
// cells out unless the pattern names them: they take minutes, not seconds.
const BenchPrefix = "bench/"

// DefaultBenchRuns is how many times a cell measures when Env says nothing.
const DefaultBenchRuns = 5

// Benchmark table: every op at every block size through every mode.
// Native comes first so that the others can be given as a ratio to it.
var (
	benchOps    = []string{"read", "write"}
	benchModes  = []string{"native", "noop", "classic", "passthrough"}
	benchBlocks = []int{4 << 10, 128 << 10, 1 << 20}
)

// benchTotal is what a cell moves over all its runs, by block size. Small
// blocks cost a FUSE round trip each and move far fewer bytes in the same
// time: in a TCG guest a 4 KiB write through FUSE makes 5–10 MB/s, a 1 MiB
// read 140. The figures keep every cell within about three seconds under
// TCG and the default bench of two kernels near a minute and a half.
func benchTotal(block int) int64 {
	switch {
	case block < 64<<10:
		return 32 << 20
	case block < 512<<10:
		return 96 << 20
	}
	return 192 << 20
}

// bytesPerRun splits the cell's total over runs, in whole blocks, never
// more than limit (when positive) and never less than one block.
func bytesPerRun(block, runs int, limit int64) int64 {
	if runs < 1 {
		runs = 1
	}
	n := benchTotal(block) / int64(runs)
	if limit > 0 {
		n = min(n, limit)
	}
	n -= n % int64(block)
	return max(n, int64(block))
}

// benchCell is one op at one block size through one mode.
type benchCell struct {
	op, mode string
	block    int
}

func (c benchCell) id() string {
	return fmt.Sprintf("%s%s/%s/%d", BenchPrefix, c.op, c.mode, c.block)
}

// nativeKey names the native figure a cell is compared with.
func (c benchCell) nativeKey() string { return fmt.Sprintf("%s/%d", c.op, c.block) }

// benchSet is the cells of one All call; they share the native medians
// that ratio_native divides by.
type benchSet struct {
	native map[string]float64
	// modes replaces seqModes in tests.
	modes func(env *Env) []seqMode
}

func benchScenarios() []Scenario {
	set := &benchSet{native: map[string]float64{}}
	var out []Scenario
	for _, op := range benchOps {
		for _, block := range benchBlocks {
			for _, mode := range benchModes {
				c := benchCell{op: op, mode: mode, block: block}
				out = append(out, Scenario{
					ID:          c.id(),
					Kind:        results.Benchmark,
					Description: fmt.Sprintf("sequential %s throughput at %d-byte blocks through %s", op, block, mode),
					Timeout:     120 * time.Second,
					Run: func(ctx context.Context, env *Env) results.Result {
						return set.run(ctx, env, c)
					},
				})
			}
		}
	}
	return out
}

// stats summarises the throughput of a cell's runs.
type stats struct {
	median, min, max float64
}

// summarize returns the median (the mean of the middle two for even n),
// minimum and maximum of xs; the zero stats for none.
func summarize(xs []float64) stats {
	if len(xs) == 0 {
		return stats{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return stats{median: med, min: s[0], max: s[n-1]}
}

// ratioTo returns v/native, and false when there is no native figure to
// divide by.
func ratioTo(v, native float64, ok bool) (float64, bool) {
	if !ok || native <= 0 {
		return 0, false
	}
	return v / native, true
}

// sample is one run of a cell.
type sample struct {
	bytes   int64
	elapsed time.Duration
	// busy is guest-wide busy CPU time, ctxsw context switches, both over
	// the timed loop.
	busy  time.Duration
	ctxsw uint64
}

func (set *benchSet) run(ctx context.Context, env *Env, c benchCell) results.Result {
	runs := env.BenchRuns
	if runs <= 0 {
		runs = DefaultBenchRuns
	}
	size := bytesPerRun(c.block, runs, env.BenchBytes)
	r := results.Result{
		Status:  results.Pass,
		Metrics: map[string]float64{},
		Facts: map[string]string{
			"op":            c.op,
			"mode":          c.mode,
			"block_size":    strconv.Itoa(c.block),
			"bytes_per_run": strconv.FormatInt(size, 10),
			"runs":          strconv.Itoa(runs),
		},
	}
	modes := seqModes
	if set.modes != nil {
		modes = set.modes
	}
	var mode seqMode
	for _, m := range modes(env) {
		if m.name == c.mode {
			mode = m
		}
	}
	if mode.passthrough {
		if why := passthroughMissing(env.Capabilities); why != "" {
			r.Status, r.Reason = results.Skip, why
			return r
		}
	}
	if mode.mount != nil {
		r.Facts["max_write"] = strconv.Itoa(server.MaxWrite)
		r.Facts["max_pages"] = strconv.Itoa(server.MaxWrite / os.Getpagesize())
	}
	backing := filepath.Join(env.Dir, "backing")
	if err := os.Mkdir(backing, 0o755); err != nil {
		return withError(r, "scratch directory: %v", err)
	}
	file := filepath.Join(backing, seqFile)
	buf := make([]byte, c.block)
	if c.op == "read" {
		if err := writePattern(ctx, file, size); err != nil {
			return withError(r, "benchmark file: %v", err)
		}
		// See seqReadWith: the first read of fresh tmpfs pages is slow.
		if _, _, err := timedRead(ctx, file, buf); err != nil {
			return withError(r, "warm-up: %v", err)
		}
	} else {
		for i := range buf {
			buf[i] = byte(i*7 + 1)
		}
		// The loopback then OPENs an existing file, the path passthrough
		// is proven on, instead of CREATE.
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			return withError(r, "benchmark file: %v", err)
		}
	}

	env.logf("%d runs of %d bytes", runs, size)
	mbps := make([]float64, 0, runs)
	var total sample
	for i := range runs {
		s, obs, splice, err := set.once(ctx, env, c, mode, backing, size, buf)
		if err != nil {
			return withError(r, "run %d: %v", i+1, err)
		}
		if splice != "" {
			r.Facts["splice"] = splice
		}
		if mode.passthrough {
			if p := obs.passthroughProblems(); len(p) > 0 {
				// The figure would describe classic FUSE under the
				// passthrough label: report no figure at all.
				r.Status = results.Fail
				r.Reason = "passthrough not in use: " + strings.Join(p, "; ")
				return r
			}
		}
		mbps = append(mbps, float64(s.bytes)/1e6/s.elapsed.Seconds())
		total.bytes += s.bytes
		total.busy += s.busy
		total.ctxsw += s.ctxsw
	}
	st := summarize(mbps)
	gib := float64(total.bytes) / (1 << 30)
	r.Metrics["mbps_median"] = st.median
	r.Metrics["mbps_min"] = st.min
	r.Metrics["mbps_max"] = st.max
	r.Metrics["cpu_s_per_gib"] = total.busy.Seconds() / gib
	r.Metrics["ctxsw_per_gib"] = float64(total.ctxsw) / gib
	if c.mode == "native" {
		set.native[c.nativeKey()] = st.median
	}
	native, ok := set.native[c.nativeKey()]
	if ratio, ok := ratioTo(st.median, native, ok); ok {
		r.Metrics["ratio_native"] = ratio
	} else {
		r.Facts["ratio_native"] = "native " + c.nativeKey() + " not measured in this run"
	}
	return r
}

// once measures one run on a fresh mount, so that no run reads pages an
// earlier one cached, and reports what go-fuse does about splice ("" for
// native).
func (set *benchSet) once(ctx context.Context, env *Env, c benchCell, mode seqMode, backing string, size int64, buf []byte) (sample, *observed, string, error) {
	m, path, err := mountMode(ctx, env, mode, backing, size)
	if err != nil {
		return sample{}, nil, "", err
	}
	splice := ""
	if m != nil {
		// go-fuse splices READ replies from files whenever the kernel's
		// protocol allows it (7.13 and later); the NOOP server answers
		// from memory and never does.
		splice = "off"
		if m.KernelSettings().Minor >= 13 && mode.name != "noop" {
			splice = "on"
		}
	}
	var s sample
	var runErr error
	before, err := readProcStat()
	if err == nil {
		if c.op == "read" {
			s.elapsed, s.bytes, runErr = timedRead(ctx, path, buf)
		} else {
			s.elapsed, s.bytes, runErr = timedWrite(ctx, path, buf, size)
		}
		var after procStat
		if after, err = readProcStat(); err == nil {
			s.busy, s.ctxsw = after.since(before)
		}
	}
	obs := observe(m)
	var unmountErr error
	if m != nil {
		unmountErr = m.Unmount()
	}
	if err := errors.Join(err, runErr, unmountErr); err != nil {
		return s, obs, splice, err
	}
	if s.bytes != size {
		return s, obs, splice, fmt.Errorf("moved %d bytes, want %d", s.bytes, size)
	}
	return s, obs, splice, nil
}

// timedWrite truncates path and writes size bytes of buf to it with plain
// write(2) calls; the close is timed too, since FUSE flushes there.
func timedWrite(ctx context.Context, path string, buf []byte, size int64) (time.Duration, int64, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("open %s: %w", path, err)
	}
	var total int64
	start := time.Now()
	for i := 0; total < size; i++ {
		if i%64 == 0 && ctx.Err() != nil {
			unix.Close(fd)
			return 0, total, fmt.Errorf("write %s: %w", path, ctx.Err())
		}
		n, err := unix.Write(fd, buf[:min(int64(len(buf)), size-total)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return 0, total, fmt.Errorf("write %s at %d: %w", path, total, err)
		}
		total += int64(n)
	}
	if err := unix.Close(fd); err != nil {
		return 0, total, fmt.Errorf("close %s: %w", path, err)
	}
	return time.Since(start), total, nil
}

// userHZ is the unit of the times in /proc/stat: USER_HZ, 100 on every
// Linux architecture fusematrix boots (sysconf(_SC_CLK_TCK); the test
// checks it against the auxiliary vector).
const userHZ = 100

// procStat is what /proc/stat says about the whole machine.
type procStat struct {
	// busy counts user, nice, system, irq, softirq and steal ticks.
	busy  uint64
	ctxsw uint64
}

// since returns the busy CPU time and context switches from p to q.
func (q procStat) since(p procStat) (time.Duration, uint64) {
	return time.Duration(q.busy-p.busy) * time.Second / userHZ, q.ctxsw - p.ctxsw
}

func readProcStat() (procStat, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(data)
}

// parseProcStat reads the aggregate "cpu" line and "ctxt" of /proc/stat.
func parseProcStat(data []byte) (procStat, error) {
	var p procStat
	var haveCPU, haveCtxt bool
	for line := range bytes.Lines(data) {
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "cpu":
			// user nice system idle iowait irq softirq steal …
			if len(f) < 9 {
				return p, fmt.Errorf("/proc/stat: cpu line has %d fields, want at least 9", len(f))
			}
			for _, i := range []int{1, 2, 3, 6, 7, 8} {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					return p, fmt.Errorf("/proc/stat: cpu field %d: %w", i, err)
				}
				p.busy += v
			}
			haveCPU = true
		case "ctxt":
			v, err := strconv.ParseUint(f[len(f)-1], 10, 64)
			if err != nil || len(f) != 2 {
				return p, fmt.Errorf("/proc/stat: ctxt line %q", strings.TrimSpace(string(line)))
			}
			p.ctxsw = v
			haveCtxt = true
		}
	}
	if !haveCPU || !haveCtxt {
		return p, errors.New("/proc/stat: no cpu or ctxt line")
	}
	return p, nil
}
