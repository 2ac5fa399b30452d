// Package bench holds the benchmarks: seq-read, a single pass of
// sequential reads through each mode (native tmpfs, the NOOP server,
// classic FUSE, passthrough), and the throughput cells
// bench/<op>/<mode>/<block>, each measured over several runs, paired with
// native runs and given as ratios; with their helpers (settling and
// pinning the server, CPU accounting, profile summaries).
//
// It imports the core package scenarios (and yield), never probe, correct
// or suite.
package bench

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
	"github.com/fusematrix/fusematrix/scenarios/yield"
)

// benchTotal is what a cell moves over all its runs, by op and block
// size. Small blocks cost a FUSE round trip each and move far fewer bytes
// in the same time (a 4 KiB write makes two, GETXATTR and WRITE, each a
// switch between address spaces, which TCG makes dear), so they move
// less, to keep most cells within a few seconds under TCG. A native or
// passthrough read run is short, which is why their ratio is taken run by
// run against a native run made just before (seqMode.pairs) rather than
// by moving more: more bytes cost the bench time and steadied the ratio
// less than pairing does.
func benchTotal(op string, block int) int64 {
	switch {
	case block < 64<<10 && op == "write":
		return 8 << 20
	case block < 64<<10:
		return 32 << 20
	case block < 512<<10:
		return 96 << 20
	}
	return 192 << 20
}

// bytesPerRun splits the cell's total over runs, in whole blocks, never
// more than limit (when positive) and never less than one block.
func bytesPerRun(op string, block, runs int, limit int64) int64 {
	if runs < 1 {
		runs = 1
	}
	n := benchTotal(op, block) / int64(runs)
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

func (c benchCell) id() contract.ID {
	return contract.Cell{Op: contract.Op(c.op), Mode: contract.Mode(c.mode), Block: c.block}.ID()
}

// in is the same op and block size through another mode.
func (c benchCell) in(mode string) benchCell { return benchCell{op: c.op, mode: mode, block: c.block} }

// benchSet is the cells of one All call; they share the medians that
// the ratios divide by.
type benchSet struct {
	// medians holds the median of every cell that gave one; missing says
	// why a cell that ran gave none.
	medians map[benchCell]float64
	missing map[benchCell]string
	// modes replaces seqModes in tests.
	modes func() []seqMode
}

func newBenchSet() *benchSet {
	return &benchSet{medians: map[benchCell]float64{}, missing: map[benchCell]string{}}
}

// Suite is the benchmarks of one run: seq-read, the contract's cells and
// a daemon's cells, which share the medians their ratios divide by (a
// daemon's cell is given as a ratio to the noop cell measured before it).
type Suite struct{ set *benchSet }

// NewSuite returns benchmarks whose cells share one set of medians.
func NewSuite() Suite { return Suite{set: newBenchSet()} }

// All returns seq-read and every cell; the suite runs them in the
// contract's order.
func (s Suite) All() []scenarios.Scenario {
	return append([]scenarios.Scenario{seqRead}, s.set.cells()...)
}

// ForDaemon returns the cells of a user's daemon (contract.DaemonCells),
// under their ids within the daemon. Each measures
// Env.Subject, and skips unless that is a daemon.
func (s Suite) ForDaemon() []scenarios.Scenario {
	var out []scenarios.Scenario
	for _, cell := range contract.DaemonCells("") {
		c := benchCell{op: string(cell.Op), mode: daemonModeName, block: cell.Block}
		out = append(out, scenarios.Scenario{
			ID:          contract.DaemonCellID(cell.Op, cell.Block),
			Description: fmt.Sprintf("sequential %s throughput at %d-byte blocks through the daemon under test", c.op, c.block),
			AnyServer:   true,
			OwnFiles:    true,
			Run: func(ctx context.Context, env *scenarios.Env) results.Result {
				return s.set.run(ctx, env, c)
			},
		})
	}
	return out
}

// All returns seq-read and every cell of a suite of their own.
func All() []scenarios.Scenario { return NewSuite().All() }

// cells are the contract's cells, in its order: every op at every
// block size through every mode that measures the op, native first and
// noop before passthrough so that the others can be given as a ratio to
// them. Each is measured by the mode of seqModes of the same name.
func (set *benchSet) cells() []scenarios.Scenario {
	var out []scenarios.Scenario
	for _, cell := range contract.Cells() {
		c := benchCell{op: string(cell.Op), mode: string(cell.Mode), block: cell.Block}
		out = append(out, scenarios.Scenario{
			ID:          cell.ID(),
			Description: fmt.Sprintf("sequential %s throughput at %d-byte blocks through %s", c.op, c.block, c.mode),
			Run: func(ctx context.Context, env *scenarios.Env) results.Result {
				return set.run(ctx, env, c)
			},
		})
	}
	return out
}

// stats are the median and range of a cell's figures: its runs'
// throughputs, or their ratios to the pair runs beside them.
type stats struct {
	median, min, max float64
}

// medianMinMax returns the median (the mean of the middle two for even
// n), minimum and maximum of xs; the zero stats for none.
func medianMinMax(xs []float64) stats {
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

// record keeps what cell c gave for the ratios of the cells after it.
func (set *benchSet) record(c benchCell, r results.Result) {
	if m := r.Metrics["mbps_median"]; r.Status == results.Pass && m > 0 {
		set.medians[c] = m
		return
	}
	why := string(r.Status)
	if r.Reason != "" {
		why += ": " + r.Reason
	}
	if len(why) > 160 {
		why = why[:160] + "…"
	}
	set.missing[c] = why
}

// ratio divides median by the median of base, the same op and block size
// through another mode, measured earlier in the same run. Without one it
// returns false and says why.
func (set *benchSet) ratio(median float64, base benchCell) (float64, bool, string) {
	if v, ok := set.medians[base]; ok && v > 0 {
		return median / v, true, ""
	}
	name := fmt.Sprintf("%s %s/%d", base.mode, base.op, base.block)
	if why, ok := set.missing[base]; ok {
		return 0, false, name + " gave no figure in this run (" + why + ")"
	}
	return 0, false, name + " not measured in this run"
}

// ratios adds to r, the result of cell c with the given median, its ratio
// to native, to each of the mode's other bases and to each mode it was
// paired with, or facts saying why not. paired holds the per-run ratios
// to each pair mode that ran beside every run; unpaired says why a pair
// mode gave none, and such a mode falls back to the ratio of medians.
func (set *benchSet) ratios(c benchCell, mode seqMode, median float64, paired map[string][]float64, unpaired map[string]string, r *results.Result) {
	var names []string
	for _, b := range slices.Concat([]string{"native"}, mode.bases, mode.pairs) {
		if !slices.Contains(names, b) {
			names = append(names, b)
		}
	}
	for _, b := range names {
		key := "ratio_" + strings.ReplaceAll(b, "-", "_")
		if xs := paired[b]; len(xs) > 0 {
			// The spread says how far to trust the median on a noisy
			// host.
			st := medianMinMax(xs)
			r.Metrics[key], r.Metrics[key+"_min"], r.Metrics[key+"_max"] = st.median, st.min, st.max
			switch {
			case b == "native" && st.median > implausibleNative:
				r.Facts[key+"_noisy"] = fmt.Sprintf("%.2f× the native runs beside it, more than FUSE over the same tmpfs should manage: the native runs were likely disturbed; measure again before trusting it", st.median)
			case st.min > 0 && st.max/st.min > noisySpread:
				r.Facts[key+"_noisy"] = fmt.Sprintf("run-by-run ratios span %.2f–%.2f: something disturbed this cell's runs; measure again before trusting the median", st.min, st.max)
			}
			continue
		}
		v, ok, why := set.ratio(median, c.in(b))
		if ok {
			r.Metrics[key] = v
			continue
		}
		if w := unpaired[b]; w != "" {
			why = w + "; " + why
		}
		r.Facts[key] = why
	}
}

// A paired ratio is flagged as disturbed (fact ratio_<mode>_noisy) when
// its run-by-run values span more than noisySpread (max/min), or when a
// FUSE mode beats the native runs beside it by more than
// implausibleNative. Under TCG on a small host run-by-run ratios spread
// widely as a matter of course, and a FUSE mode "beats" native when a
// single native run stalled: the thresholds flag the latter and the
// outliers, and leave the everyday noise alone.
const (
	noisySpread       = 2.5
	implausibleNative = 1.25
)

// pairRatios divides each run's figure by that of the pair run right
// before it.
func pairRatios(mbps, pair []float64) []float64 {
	if len(pair) != len(mbps) {
		return nil
	}
	out := make([]float64, 0, len(mbps))
	for i, v := range mbps {
		if pair[i] <= 0 {
			return nil
		}
		out = append(out, v/pair[i])
	}
	return out
}

func formatRatios(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 3, 64)
	}
	return strings.Join(parts, " ")
}

// sample is one run of a cell.
type sample struct {
	bytes   int64
	elapsed time.Duration
	// busy is guest-wide busy CPU time, ctxsw context switches, server the
	// CPU time of the server process, all over the timed loop.
	busy   time.Duration
	ctxsw  uint64
	server time.Duration
	// daemon is what the kernel accounts for a user's daemon's threads
	// over the timed loop, when accounted.
	daemon    server.TaskIO
	accounted bool
	// daemonExit and daemonLog say how a user's daemon ended and what it
	// printed, "" and nil for any other server.
	daemonExit string
	daemonLog  []string
	// settle says why the run began with its server not known to be
	// quiet; "" when it was, or when there is no server.
	settle string
}

// mbps is the run's throughput in MB/s; 0 for a run that took no time.
func (s sample) mbps() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.bytes) / 1e6 / s.elapsed.Seconds()
}

func (set *benchSet) run(ctx context.Context, env *scenarios.Env, c benchCell) results.Result {
	r := set.measureCell(ctx, env, c)
	set.record(c, r)
	return r
}

// measureCell prepares cell c, measures its runs and fills in its result
// from them. Each step leaves the result Pass to let the next one go on;
// a skip, an error or a failure ends the cell there.
func (set *benchSet) measureCell(ctx context.Context, env *scenarios.Env, c benchCell) results.Result {
	cell := set.prepare(ctx, env, c)
	if cell.r.Status == results.Pass {
		set.measure(ctx, env, cell)
	}
	if cell.r.Status == results.Pass {
		set.fillResult(cell)
	}
	return cell.r
}

// cellRun is one cell on its way: what prepare set up, what measure
// gathered, and the result fillResult completes.
type cellRun struct {
	c    benchCell
	mode seqMode
	// pairs are the pair modes that can run here.
	pairs   []seqMode
	runs    int
	size    int64
	backing string
	buf     []byte
	r       results.Result

	// mbps holds each run's figure, pairMbps each pair mode's run before
	// it; unpaired says why a pair mode gave none.
	mbps     []float64
	pairMbps map[string][]float64
	unpaired map[string]string
	total    sample
	// requests stays nil unless the daemon counts them by opcode.
	requests map[string]int64
	profiles []string
}

// prepare fills in the cell's facts, skips it where its mode cannot run,
// and lays out the benchmark file and the pair modes.
func (set *benchSet) prepare(ctx context.Context, env *scenarios.Env, c benchCell) *cellRun {
	runs := env.BenchRuns
	if runs <= 0 {
		runs = contract.DefaultBenchRuns
	}
	size := bytesPerRun(c.op, c.block, runs, env.BenchBytes)
	cell := &cellRun{c: c, runs: runs, size: size, pairMbps: map[string][]float64{}, unpaired: map[string]string{}}
	cell.r = results.Result{
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
	r := &cell.r
	modes := seqModes
	if set.modes != nil {
		modes = set.modes
	}
	all := append(modes(), daemonMode())
	i := modeIndex(all, c.mode)
	if i < 0 {
		*r = withError(*r, "no mode %q", c.mode)
		return cell
	}
	mode := all[i]
	cell.mode = mode
	// Not a Scenario.Needs: the skip keeps the cell's facts.
	if mode.passthrough {
		if why := scenarios.PassthroughMissing(env.Capabilities); why != "" {
			r.Status, r.Reason = results.Skip, why
			return cell
		}
	}
	if mode.unavailable != nil {
		if why := mode.unavailable(); why != "" {
			r.Status, r.Reason = results.Skip, why
			return cell
		}
	}
	if mode.name == daemonModeName {
		if _, why := daemonSubject(env); why != "" {
			r.Status, r.Reason = results.Skip, why
			return cell
		}
	}
	if mode.facts != nil {
		maps.Copy(r.Facts, mode.facts(env))
	}
	cell.backing = filepath.Join(env.Dir, "backing")
	if err := os.Mkdir(cell.backing, 0o755); err != nil {
		*r = withError(*r, "scratch directory: %v", err)
		return cell
	}
	file := filepath.Join(cell.backing, seqFile)
	cell.buf = make([]byte, c.block)
	if c.op == "read" {
		if err := writePattern(ctx, file, size); err != nil {
			*r = withError(*r, "benchmark file: %v", err)
			return cell
		}
		// See seqReadWith: the first read of fresh tmpfs pages is slow.
		if _, _, err := timedRead(ctx, file, cell.buf, size); err != nil {
			*r = withError(*r, "warm-up: %v", err)
			return cell
		}
	} else {
		for i := range cell.buf {
			cell.buf[i] = byte(i*7 + 1)
		}
		// The loopback then OPENs an existing file, the path passthrough
		// is proven on, instead of CREATE.
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			*r = withError(*r, "benchmark file: %v", err)
			return cell
		}
	}

	// Pair modes that cannot run here are left out: their ratio falls
	// back to the ratio of medians, which says why it has none.
	for _, name := range mode.pairs {
		j := modeIndex(all, name)
		if j < 0 {
			*r = withError(*r, "mode %q pairs with unknown mode %q", mode.name, name)
			return cell
		}
		pm := all[j]
		if pm.unavailable != nil && pm.unavailable() != "" {
			continue
		}
		cell.pairs = append(cell.pairs, pm)
	}
	return cell
}

// measure makes the cell's runs, each right after a run of every pair
// mode, and gathers their figures. A passthrough mode whose daemon saw
// READ or WRITE fails the cell: its figure would describe classic FUSE.
func (set *benchSet) measure(ctx context.Context, env *scenarios.Env, cell *cellRun) {
	c, mode, r := cell.c, cell.mode, &cell.r
	pl := benchPlacement()
	r.Facts["placement"] = pl.note
	env.Printf("%d runs of %d bytes", cell.runs, cell.size)
	cell.mbps = make([]float64, 0, cell.runs)
	for i := range cell.runs {
		profile := ""
		if env.Profile && mode.profiled {
			profile = filepath.Join(env.Dir, fmt.Sprintf("cpu-%d.pprof", i+1))
		}
		for _, pm := range cell.pairs {
			if cell.unpaired[pm.name] != "" {
				continue
			}
			ps, _, err := set.once(ctx, env, c.in(pm.name), pm, pl, cell.backing, cell.size, cell.buf, "")
			if err != nil {
				cell.unpaired[pm.name] = fmt.Sprintf("paired %s run %d: %v", pm.name, i+1, err)
				continue
			}
			cell.pairMbps[pm.name] = append(cell.pairMbps[pm.name], ps.mbps())
		}
		s, st, err := set.once(ctx, env, c, mode, pl, cell.backing, cell.size, cell.buf, profile)
		if s.daemonExit != "" {
			// The daemon is the user's to debug: how its last run ended
			// goes with the cell, and what it printed with a cell that
			// did not pass.
			r.Facts["daemon_exit"] = s.daemonExit
			if err != nil {
				for _, l := range s.daemonLog {
					r.Log = append(r.Log, "daemon: "+l)
				}
			}
		}
		if skip := (skipError{}); errors.As(err, &skip) {
			r.Status, r.Reason = results.Skip, skip.why
			return
		}
		if mode.name == daemonModeName && errors.Is(err, unix.ENOSPC) {
			// A user's daemon that fills up (an image smaller than a
			// run) says so of its arguments, not of the kernel.
			r.Status, r.Reason = results.Skip, fmt.Sprintf("run %d: its file system filled up before a run of %d bytes was through: %v", i+1, cell.size, err)
			return
		}
		if err != nil {
			*r = withError(*r, "run %d: %v", i+1, err)
			return
		}
		if profile != "" {
			cell.profiles = append(cell.profiles, profile)
		}
		if mode.passthrough {
			if p := passthroughProblems(st); len(p) > 0 {
				// The figure would describe classic FUSE under the
				// passthrough label: report no figure at all.
				r.Status = results.Fail
				r.Reason = "passthrough not in use: " + strings.Join(p, "; ")
				return
			}
		}
		if st != nil && st.Requests != nil {
			if cell.requests == nil {
				cell.requests = map[string]int64{}
			}
			for op, n := range st.Requests {
				cell.requests[op] += n
			}
		}
		cell.mbps = append(cell.mbps, s.mbps())
		cell.total.bytes += s.bytes
		cell.total.busy += s.busy
		cell.total.ctxsw += s.ctxsw
		cell.total.server += s.server
		cell.total.daemon.Syscr += s.daemon.Syscr
		cell.total.daemon.Switches += s.daemon.Switches
		cell.total.accounted = cell.total.accounted || s.accounted
		if s.settle != "" {
			r.Log = append(r.Log, fmt.Sprintf("run %d: %s", i+1, s.settle))
		}
	}
}

// fillResult turns the runs into the cell's metrics, request and profile
// summaries, and its ratios to native, to its bases and to its pairs.
func (set *benchSet) fillResult(cell *cellRun) {
	c, mode, r, total := cell.c, cell.mode, &cell.r, cell.total
	st := medianMinMax(cell.mbps)
	gib := float64(total.bytes) / (1 << 30)
	r.Metrics["mbps_median"] = st.median
	r.Metrics["mbps_min"] = st.min
	r.Metrics["mbps_max"] = st.max
	r.Metrics["cpu_s_per_gib"] = total.busy.Seconds() / gib
	r.Metrics["ctxsw_per_gib"] = float64(total.ctxsw) / gib
	if mode.mount != nil {
		r.Metrics["server_cpu_s_per_gib"] = total.server.Seconds() / gib
	}
	if mode.mount != nil && cell.requests == nil {
		r.Facts["requests"] = "not counted by this server"
	}
	if total.accounted {
		// A daemon that serves the data reads /dev/fuse once per
		// request; one whose files are passed through, hardly ever.
		r.Metrics["daemon_read_calls_per_gib"] = float64(total.daemon.Syscr) / gib
		r.Metrics["daemon_ctxsw_per_gib"] = float64(total.daemon.Switches) / gib
	}
	if cell.requests != nil {
		var n int64
		for _, v := range cell.requests {
			n += v
		}
		r.Metrics["daemon_requests_per_gib"] = float64(n) / gib
		r.Facts["requests"] = formatRequests(cell.requests, gib)
	}
	if len(cell.profiles) > 0 {
		lines, err := profileSummary(cell.profiles, profileTop)
		if err != nil {
			r.Facts["profile"] = err.Error()
		}
		r.Log = append(r.Log, lines...)
	}
	if c.mode == "native" {
		// Its own ratio is 1 by definition, even before it is recorded.
		set.medians[c] = st.median
	}
	paired := map[string][]float64{}
	var pairedWith []string
	for _, pm := range cell.pairs {
		xs := pairRatios(cell.mbps, cell.pairMbps[pm.name])
		if cell.unpaired[pm.name] != "" || xs == nil {
			continue
		}
		paired[pm.name] = xs
		pairedWith = append(pairedWith, pm.name)
		r.Log = append(r.Log, fmt.Sprintf("ratio to %s, run by run, each right after a %s run: %s", pm.name, pm.name, formatRatios(xs)))
	}
	if len(pairedWith) > 0 {
		r.Facts["paired_with"] = strings.Join(pairedWith, " ")
	}
	if len(cell.unpaired) > 0 {
		r.Facts["unpaired"] = strings.Join(slices.Sorted(maps.Values(cell.unpaired)), "; ")
	}
	set.ratios(c, mode, st.median, paired, cell.unpaired, r)
}

// maxRequestKinds bounds the opcodes the requests fact names.
const maxRequestKinds = 12

// formatRequests renders request counts per GiB moved as "OP=n …" sorted
// by opcode name: at most maxRequestKinds of them, the most frequent, the
// rest summed as OTHERS. "none" when no request reached the daemon.
func formatRequests(counts map[string]int64, gib float64) string {
	type kv struct {
		op string
		n  int64
	}
	var all []kv
	for op, n := range counts {
		if n > 0 {
			all = append(all, kv{op, n})
		}
	}
	if len(all) == 0 || gib <= 0 {
		return "none"
	}
	var others int64
	if len(all) > maxRequestKinds {
		slices.SortFunc(all, func(a, b kv) int { return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.op, b.op)) })
		for _, e := range all[maxRequestKinds-1:] {
			others += e.n
		}
		all = all[:maxRequestKinds-1]
	}
	slices.SortFunc(all, func(a, b kv) int { return strings.Compare(a.op, b.op) })
	var parts []string
	for _, e := range all {
		parts = append(parts, fmt.Sprintf("%s=%.0f", e.op, float64(e.n)/gib))
	}
	if others > 0 {
		parts = append(parts, fmt.Sprintf("OTHERS=%.0f", float64(others)/gib))
	}
	return strings.Join(parts, " ")
}

// once measures one run on a fresh mount, so that no run reads pages an
// earlier one cached, and returns what the daemon observed (nil for
// native). A non-empty profile is where the server writes its CPU profile.
func (set *benchSet) once(ctx context.Context, env *scenarios.Env, c benchCell, mode seqMode, pl placement, backing string, size int64, buf []byte, profile string) (sample, *wire.Stats, error) {
	d, path, err := mountMode(ctx, env, mode, mountRequest{backing: backing, size: size, profile: profile, cpus: pl.server, op: c.op})
	if err != nil {
		return sample{}, nil, err
	}
	var s sample
	var runErr, cpuErr error
	var serverBefore time.Duration
	// serverCPU is the finer scheduler figure where the kernel keeps
	// it, else clock ticks.
	serverCPU := threadsRuntime
	if d != nil {
		waited, quiet, err := settle(ctx, d.Pid())
		switch {
		case ctx.Err() != nil:
			_, _ = d.Stop()
			return s, nil, ctx.Err()
		case err != nil:
			s.settle = fmt.Sprintf("server CPU not watched: %v", err)
			serverCPU = taskCPU
		case !quiet:
			s.settle = fmt.Sprintf("server still busy after %s, measured anyway", waited.Round(time.Millisecond))
		}
		serverBefore, cpuErr = serverCPU(d.Pid())
	}
	accountBefore, accountErr := daemonAccount(d)
	before, err := readProcStat()
	if err == nil {
		if c.op == "read" {
			s.elapsed, s.bytes, runErr = timedRead(ctx, path, buf, size)
		} else {
			s.elapsed, s.bytes, runErr = timedWrite(ctx, path, buf, size)
		}
		var after procStat
		if after, err = readProcStat(); err == nil {
			s.busy, s.ctxsw = after.since(before)
		}
	}
	if accountBefore != nil && accountErr == nil {
		var after map[int]server.TaskIO
		if after, accountErr = daemonAccount(d); accountErr == nil {
			s.daemon, s.accounted = server.AccountSince(accountBefore, after), true
		}
	}
	if d != nil && cpuErr == nil {
		var serverAfter time.Duration
		if serverAfter, cpuErr = serverCPU(d.Pid()); cpuErr == nil {
			s.server = serverAfter - serverBefore
		}
	}
	var st *wire.Stats
	var stopErr error
	if d != nil {
		var stats wire.Stats
		stats, stopErr = d.Stop()
		st = &stats
		if e, ok := d.(interface{ ExitStatus() string }); ok {
			s.daemonExit, s.daemonLog = e.ExitStatus(), d.Stderr()
		}
	}
	if err := errors.Join(err, runErr, cpuErr, accountErr, stopErr); err != nil {
		return s, st, err
	}
	if s.bytes != size {
		return s, st, fmt.Errorf("moved %d bytes, want %d", s.bytes, size)
	}
	return s, st, nil
}

// timedWrite truncates path and writes size bytes of buf to it with plain
// write(2) calls; the close is timed too, since FUSE flushes there.
func timedWrite(ctx context.Context, path string, buf []byte, size int64) (time.Duration, int64, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("open %s: %w", path, err)
	}
	var total int64
	// See package yield: without it the runtime's monitor thread keeps
	// waking as FUSE write(2) calls block and competes for the vCPUs
	// measured.
	var pace yield.Pacer
	start := time.Now()
	for i := 0; total < size; i++ {
		if i%64 == 0 && ctx.Err() != nil {
			unix.Close(fd)
			return 0, total, fmt.Errorf("write %s: %w", path, ctx.Err())
		}
		pace.Tick()
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

// taskCPU returns the user and system CPU time of process pid, all its
// threads included, from /proc/<pid>/stat.
func taskCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseTaskStat(data)
}

// parseTaskStat reads utime and stime, fields 14 and 15 of
// /proc/<pid>/stat (proc(5)), counted after the command name, which is in
// parentheses and may hold spaces and parentheses itself.
func parseTaskStat(data []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("/proc/<pid>/stat: no command name")
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/<pid>/stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks uint64
	for _, n := range []int{14, 15} {
		v, err := strconv.ParseUint(f[n-3], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/<pid>/stat: field %d: %w", n, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
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
