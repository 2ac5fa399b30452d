package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
	"github.com/fusematrix/fusematrix/scenarios/yield"
	"golang.org/x/sys/unix"
)

var seqRead = scenarios.Scenario{
	ID:          contract.SeqRead,
	Description: "sequential read throughput: tmpfs, NOOP FUSE, classic FUSE loopback and passthrough loopback",
	Run: func(ctx context.Context, env *scenarios.Env) results.Result {
		return seqReadWith(ctx, env, seqReadModes())
	},
}

// seqReadModes are the modes of the quick single-pass figure: the four
// the issue names, without optional peers, which belong to the bench.
func seqReadModes() []seqMode {
	var out []seqMode
	for _, m := range modesFor(seqModes(), "read") {
		if m.unavailable == nil {
			out = append(out, m)
		}
	}
	return out
}

// modeIndex returns the index of the mode called name in ms, or -1.
func modeIndex(ms []seqMode, name string) int {
	return slices.IndexFunc(ms, func(m seqMode) bool { return m.name == name })
}

// seqMode is one way of reaching the benchmark file: a name and how to
// mount it. A nil mount uses the backing file itself.
type seqMode struct {
	name string
	// mount starts the file system and returns the daemon serving it and
	// the name of the file to use in it.
	mount func(ctx context.Context, env *scenarios.Env, req mountRequest) (scenarios.Mounted, string, error)
	// passthrough marks the modes whose figure is only meaningful when the
	// daemon confirms passthrough.
	passthrough bool
	// ops lists the operations the mode is measured for; nil is all.
	ops []string
	// profiled marks the modes whose server writes a CPU profile when
	// Env.Profile asks for one.
	profiled bool
	// facts describe the settings behind the mode's figures.
	facts func(env *scenarios.Env) map[string]string
	// unavailable, when set, says why the mode cannot run in this guest
	// ("" when it can); its cells then skip with that reason.
	unavailable func() string
	// bases are the modes, measured earlier in the same run, that the
	// mode's median is divided by besides native (metric ratio_<base>).
	bases []string
	// pairs are the modes that run once right before each of this mode's
	// runs, with the same size and block. Their ratio_<pair> is the median
	// of the per-run ratios instead of a ratio of medians taken seconds
	// apart: a TCG guest's speed drifts with the host's load, and a pair
	// run back to back sees the same drift.
	pairs []string
}

// mountRequest is what a mode's mount is asked for.
type mountRequest struct {
	// mnt is the mount point, backing the directory holding the
	// benchmark file, size the file's size.
	mnt, backing string
	size         int64
	// op is what the run does with the file: "read" or "write" ("" is
	// read).
	op string
	// profile, when set, is where the server writes its CPU profile.
	profile string
	// cpus, when set, are the only CPUs the server may run on.
	cpus []int
}

func (m seqMode) measures(op string) bool { return m.ops == nil || slices.Contains(m.ops, op) }

// launchedMode serves spec with the benchmark's backing directory and
// size as a process of its own (Env.Server), so that the benchmark loop
// and the server never share a Go runtime, and the server can be profiled
// alone.
func launchedMode(spec loopback.Spec, file string) func(ctx context.Context, env *scenarios.Env, req mountRequest) (scenarios.Mounted, string, error) {
	return func(ctx context.Context, env *scenarios.Env, req mountRequest) (scenarios.Mounted, string, error) {
		s := spec
		s.Backing, s.Size, s.Profile, s.CPUs = req.backing, req.size, req.profile, req.cpus
		p, err := env.Server.Start(ctx, s, req.mnt)
		if err != nil {
			return nil, "", err
		}
		return p, file, nil
	}
}

// goFuseFacts are the settings of fusematrix's go-fuse servers. splices
// says whether the server answers READ from a file, which go-fuse then
// splices when the kernel's protocol allows it (7.13 and later); the NOOP
// server answers from memory and never does.
func goFuseFacts(splices bool) func(env *scenarios.Env) map[string]string {
	return func(env *scenarios.Env) map[string]string {
		f := map[string]string{
			"server":    "go-fuse",
			"threads":   "go-fuse Server: reader goroutines answer inline, at least two wait in read(2)",
			"max_write": strconv.Itoa(wire.MaxWrite),
			"max_pages": strconv.Itoa(wire.MaxWrite / os.Getpagesize()),
			"splice":    "off",
		}
		if splices {
			switch c := env.Capabilities; {
			case c == nil:
				f["splice"] = "unknown: the kernel's protocol version was not probed"
			case c.FuseMinor >= 13:
				f["splice"] = "on"
			}
		}
		return f
	}
}

// noopFacts are the NOOP server's settings: go-fuse's, served by a loop
// of its own instead of go-fuse's Server (server.Noop).
func noopFacts(env *scenarios.Env) map[string]string {
	f := goFuseFacts(false)(env)
	f["threads"] = "one goroutine on one thread over go-fuse's ProtocolServer, WRITE and GETXATTR decoded by the loop"
	return f
}

// seqModes are the benchmark's modes in the order they run: native first
// and noop before passthrough, whose figures the others are divided by.
func seqModes() []seqMode {
	return []seqMode{
		{name: "native"},
		// The C peer runs before the Go NOOP server so that the latter can
		// be given as a ratio to it: it is the reference for "the NOOP
		// server is not the bottleneck of the NOOP figure".
		{name: "libfuse-noop", mount: peerMode, facts: peerFacts, unavailable: peerUnavailable,
			pairs: []string{"native"}},
		{name: "noop", mount: launchedMode(loopback.Spec{Kind: loopback.KindNoop}, wire.NoopName),
			profiled: true, facts: noopFacts, pairs: []string{"native", "libfuse-noop"}},
		{name: "classic", mount: launchedMode(loopback.Spec{Kind: loopback.KindClassic}, seqFile),
			profiled: true, facts: goFuseFacts(true), pairs: []string{"native"}},
		{name: "passthrough", mount: launchedMode(loopback.Spec{Kind: loopback.KindLoopback}, seqFile),
			passthrough: true, facts: goFuseFacts(true), bases: []string{"noop"}, pairs: []string{"native"}},
		// Reads never ask for xattrs; writes ask before each write(2)
		// unless the server refuses xattrs altogether (Options.NoXattr).
		{name: "passthrough-noxattr", mount: launchedMode(loopback.Spec{Kind: loopback.KindLoopback, NoXattr: true}, seqFile),
			passthrough: true, ops: []string{"write"}, facts: goFuseFacts(true), bases: []string{"noop", "passthrough"},
			pairs: []string{"native"}},
		// The same servers over FUSE's io_uring transport.
		{name: "noop-uring", mount: uringMode(launchedMode(loopback.Spec{Kind: loopback.KindNoop, URing: true}, wire.NoopName)),
			unavailable: scenarios.URingMissing, profiled: true, facts: uringFacts(noopFacts), bases: []string{"noop"},
			pairs: []string{"native"}},
		{name: "passthrough-uring", mount: uringMode(launchedMode(loopback.Spec{Kind: loopback.KindLoopback, URing: true}, seqFile)),
			unavailable: scenarios.URingMissing, passthrough: true, facts: uringFacts(goFuseFacts(true)),
			bases: []string{"noop", "passthrough"}, pairs: []string{"native"}},
	}
}

// uringMode mounts with fuse.enable_uring on for the mount alone: a
// connection that negotiated io_uring keeps it (scenarios.URingOn).
func uringMode(mount func(ctx context.Context, env *scenarios.Env, req mountRequest) (scenarios.Mounted, string, error)) func(ctx context.Context, env *scenarios.Env, req mountRequest) (scenarios.Mounted, string, error) {
	return func(ctx context.Context, env *scenarios.Env, req mountRequest) (scenarios.Mounted, string, error) {
		restore, err := scenarios.URingOn()
		if err != nil {
			return nil, "", err
		}
		m, file, err := mount(ctx, env, req)
		if rerr := restore(); rerr != nil && err == nil {
			if m != nil {
				_, _ = m.Stop()
			}
			return nil, "", rerr
		}
		return m, file, err
	}
}

// uringFacts are facts's, served over io_uring.
func uringFacts(facts func(env *scenarios.Env) map[string]string) func(env *scenarios.Env) map[string]string {
	return func(env *scenarios.Env) map[string]string {
		f := facts(env)
		f["transport"] = "io_uring: one thread, two ring entries per CPU, go-fuse's ProtocolServer"
		return f
	}
}

// peerMode serves the benchmark file from the C NOOP peer the harness put
// into the initramfs (contract.PeerPath). It answers like the Go NOOP
// server, xattr requests included, so the kernel sends both the same
// requests and the figures differ only by the server.
func peerMode(ctx context.Context, env *scenarios.Env, req mountRequest) (scenarios.Mounted, string, error) {
	p, err := server.StartPeer(ctx, server.PeerSpec{Mountpoint: req.mnt, Name: wire.NoopName, Size: req.size, Count: true, CPUs: req.cpus})
	if err != nil {
		return nil, "", err
	}
	return p, wire.NoopName, nil
}

func peerUnavailable() string {
	_, why := server.PeerAvailable()
	return why
}

func peerFacts(env *scenarios.Env) map[string]string {
	f := map[string]string{
		"server":    "libfuse",
		"threads":   "multi",
		"max_write": strconv.Itoa(wire.MaxWrite),
		"max_pages": strconv.Itoa(wire.MaxWrite / os.Getpagesize()),
		"splice":    "off",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if v, err := server.PeerVersion(ctx, contract.PeerPath); err == nil {
		f["server"] = v
	}
	return f
}

// modesFor returns the modes of ms measured for op.
func modesFor(ms []seqMode, op string) []seqMode {
	var out []seqMode
	for _, m := range ms {
		if m.measures(op) {
			out = append(out, m)
		}
	}
	return out
}

const seqFile = "data"

// mountMode mounts mode's file system under env.Dir at mnt-<name> and
// returns its daemon (nil for native) and the path of the file to use.
func mountMode(ctx context.Context, env *scenarios.Env, mode seqMode, req mountRequest) (scenarios.Mounted, string, error) {
	if mode.mount == nil {
		return nil, filepath.Join(req.backing, seqFile), nil
	}
	req.mnt = filepath.Join(env.Dir, "mnt-"+mode.name)
	if err := os.MkdirAll(req.mnt, 0o755); err != nil {
		return nil, "", err
	}
	d, name, err := mode.mount(ctx, env, req)
	if err != nil {
		return nil, "", err
	}
	return d, filepath.Join(req.mnt, name), nil
}

func seqReadWith(ctx context.Context, env *scenarios.Env, modes []seqMode) results.Result {
	size, block := env.BenchBytes, env.BlockSize
	if size <= 0 {
		size = scenarios.DefaultBenchBytes
	}
	if block <= 0 {
		block = scenarios.DefaultBlockSize
	}
	r := results.Result{
		Status:  results.Pass,
		Metrics: map[string]float64{},
		Facts: map[string]string{
			"block_size":         fmt.Sprint(block),
			"bytes":              fmt.Sprint(size),
			"passthrough_active": "false",
		},
	}
	backing := filepath.Join(env.Dir, "backing")
	if err := os.Mkdir(backing, 0o755); err != nil {
		return withError(r, "scratch directory: %v", err)
	}
	if err := writePattern(ctx, filepath.Join(backing, seqFile), size); err != nil {
		return withError(r, "benchmark file: %v", err)
	}
	buf := make([]byte, block)
	// The first read of freshly written tmpfs pages is markedly slower
	// than later ones, which would
	// charge it to whichever mode reads the backing file first. One
	// untimed pass puts native and passthrough on the same footing.
	if _, _, err := timedRead(ctx, filepath.Join(backing, seqFile), buf, size); err != nil {
		return withError(r, "warm-up: %v", err)
	}
	var problems []string
	for _, mode := range modes {
		if mode.passthrough {
			if why := scenarios.PassthroughMissing(env.Capabilities); why != "" {
				r.Facts["passthrough_absent"] = why
				continue
			}
		}
		env.Printf("measuring %s", mode.name)
		mbps, obs, err := measure(ctx, env, mode, backing, size, buf)
		if err != nil {
			return withError(r, "%s: %v", mode.name, err)
		}
		if obs != nil {
			r.Facts[mode.name+"_read_requests"] = fmt.Sprint(obs.Reads)
		}
		if mode.passthrough {
			if p := passthroughProblems(obs); len(p) > 0 {
				// The figure would describe classic FUSE under the
				// passthrough label: keep it out of the metrics.
				problems = append(problems, mode.name+": "+strings.Join(p, "; "))
				continue
			}
			r.Facts["passthrough_active"] = "true"
		}
		r.Metrics[mode.name+"_mbps"] = mbps
	}
	if native, ok := r.Metrics["native_mbps"]; ok && native > 0 {
		for _, mode := range modes {
			if v, ok := r.Metrics[mode.name+"_mbps"]; ok && mode.name != "native" {
				r.Metrics[mode.name+"_ratio"] = v / native
			}
		}
	}
	if len(problems) > 0 {
		r.Status = results.Fail
		r.Reason = strings.Join(problems, "; ")
	}
	return r
}

// passthroughProblems says why a figure measured on a mount whose daemon
// reported st is not a passthrough figure: an OPEN that did not ask for
// passthrough, or data requests that reached the daemon.
func passthroughProblems(st *wire.Stats) []string {
	if st == nil {
		return []string{"nothing observed: the mode uses no FUSE mount"}
	}
	p := scenarios.OpenProblems(st.Opens, st.Registrations)
	if st.Reads > 0 {
		p = append(p, fmt.Sprintf("%d READ requests reached the daemon", st.Reads))
	}
	if st.Writes > 0 {
		p = append(p, fmt.Sprintf("%d WRITE requests reached the daemon", st.Writes))
	}
	return p
}

// measure reads the mode's file once on a fresh mount and returns MB/s
// (1e6 bytes per second) and what the daemon observed (nil for native).
func measure(ctx context.Context, env *scenarios.Env, mode seqMode, backing string, size int64, buf []byte) (float64, *wire.Stats, error) {
	d, path, err := mountMode(ctx, env, mode, mountRequest{backing: backing, size: size})
	if err != nil {
		return 0, nil, err
	}
	if d != nil {
		// See settle: a server fresh from its start would share the
		// vCPUs with the timed loop. One that never goes quiet is measured
		// anyway; the bench's cells say so, this single pass does not.
		if _, _, err := settle(ctx, d.Pid()); ctx.Err() != nil {
			_, _ = d.Stop()
			return 0, nil, fmt.Errorf("settle: %w", err)
		}
	}
	elapsed, n, readErr := timedRead(ctx, path, buf, size)
	var st *wire.Stats
	var stopErr error
	if d != nil {
		var s wire.Stats
		s, stopErr = d.Stop()
		st = &s
	}
	if err := errors.Join(readErr, stopErr); err != nil {
		return 0, st, err
	}
	if n != size {
		return 0, st, fmt.Errorf("read %d bytes, want %d", n, size)
	}
	return float64(n) / 1e6 / elapsed.Seconds(), st, nil
}

// timedRead reads path through buf up to its end or limit bytes, which
// comes first. The loop makes plain read(2) calls and allocates nothing, so
// that the clock measures the kernel and the file system, not Go.
func timedRead(ctx context.Context, path string, buf []byte, limit int64) (time.Duration, int64, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	var total int64
	// As in timedWrite: FUSE reads block, and the runtime must see the
	// loop yield now and then (package yield).
	var pace yield.Pacer
	start := time.Now()
	for i := 0; total < limit; i++ {
		if i%64 == 0 && ctx.Err() != nil {
			return 0, total, fmt.Errorf("read %s: %w", path, ctx.Err())
		}
		pace.Tick()
		n, err := unix.Read(fd, buf[:min(int64(len(buf)), limit-total)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, total, fmt.Errorf("read %s at %d: %w", path, total, err)
		}
		if n == 0 {
			break
		}
		total += int64(n)
	}
	return time.Since(start), total, nil
}

// writePattern fills path with size bytes of a repeated random MiB: the
// content does not matter to a read benchmark, and generating 256 MiB of
// fresh randomness would dominate setup in a TCG guest.
func writePattern(ctx context.Context, path string, size int64) error {
	chunk := make([]byte, 1<<20)
	_, _ = rand.NewChaCha8([32]byte{'s', 'r'}).Read(chunk)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	for left := size; left > 0; {
		if err := ctx.Err(); err != nil {
			f.Close()
			return err
		}
		n := min(left, int64(len(chunk)))
		if _, err := f.Write(chunk[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	return f.Close()
}

func withError(r results.Result, format string, args ...any) results.Result {
	r.Status = results.Error
	r.Reason = fmt.Sprintf(format, args...)
	return r
}
