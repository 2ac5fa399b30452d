package scenarios

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios/server"
	"golang.org/x/sys/unix"
)

// Benchmark defaults, used when Env leaves the sizes zero.
const (
	DefaultBenchBytes = 256 << 20
	DefaultBlockSize  = 1 << 20
)

var seqRead = Scenario{
	ID:          "seq-read",
	Kind:        results.Benchmark,
	Description: "sequential read throughput: tmpfs, NOOP FUSE, classic FUSE loopback and passthrough loopback",
	// A TCG guest reads about 200 MB/s through FUSE; 4 × 256 MiB plus
	// the setup fits many times over.
	Timeout: 180 * time.Second,
	Run: func(ctx context.Context, env *Env) results.Result {
		return seqReadWith(ctx, env, seqModes(env))
	},
}

// seqMode is one way of reaching the benchmark file. A nil mount reads the
// backing file itself.
type seqMode struct {
	name string
	// mount returns the mount and the path of the file to read in it.
	mount func(ctx context.Context, mnt, backing string, size int64) (*server.Mount, string, error)
	// passthrough marks the mode whose figure is only meaningful when the
	// observer confirms passthrough.
	passthrough bool
}

func seqModes(env *Env) []seqMode {
	loopback := func(pt bool) func(ctx context.Context, mnt, backing string, size int64) (*server.Mount, string, error) {
		return func(ctx context.Context, mnt, backing string, size int64) (*server.Mount, string, error) {
			m, err := server.Loopback(ctx, mnt, backing, server.Options{Passthrough: pt, Logf: env.logf})
			return m, seqFile, err
		}
	}
	return []seqMode{
		{name: "native"},
		{name: "noop", mount: func(ctx context.Context, mnt, backing string, size int64) (*server.Mount, string, error) {
			m, err := server.Noop(ctx, mnt, size, server.Options{Logf: env.logf})
			return m, server.NoopName, err
		}},
		{name: "classic", mount: loopback(false)},
		{name: "passthrough", mount: loopback(true), passthrough: true},
	}
}

const seqFile = "data"

// mountMode mounts mode's file system under env.Dir at mnt-<name> and
// returns the mount (nil for native) and the path of the file to use.
func mountMode(ctx context.Context, env *Env, mode seqMode, backing string, size int64) (*server.Mount, string, error) {
	if mode.mount == nil {
		return nil, filepath.Join(backing, seqFile), nil
	}
	mnt := filepath.Join(env.Dir, "mnt-"+mode.name)
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return nil, "", err
	}
	m, name, err := mode.mount(ctx, mnt, backing, size)
	if err != nil {
		return nil, "", err
	}
	return m, filepath.Join(mnt, name), nil
}

func seqReadWith(ctx context.Context, env *Env, modes []seqMode) results.Result {
	size, block := env.BenchBytes, env.BlockSize
	if size <= 0 {
		size = DefaultBenchBytes
	}
	if block <= 0 {
		block = DefaultBlockSize
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
	// than later ones (about 20% on the development host), which would
	// charge it to whichever mode reads the backing file first. One
	// untimed pass puts native and passthrough on the same footing.
	if _, _, err := timedRead(ctx, filepath.Join(backing, seqFile), buf); err != nil {
		return withError(r, "warm-up: %v", err)
	}
	var problems []string
	for _, mode := range modes {
		if mode.passthrough {
			if why := passthroughMissing(env.Capabilities); why != "" {
				r.Facts["passthrough_absent"] = why
				continue
			}
		}
		env.logf("measuring %s", mode.name)
		mbps, obs, err := measure(ctx, env, mode, backing, size, buf)
		if err != nil {
			return withError(r, "%s: %v", mode.name, err)
		}
		if obs != nil {
			r.Facts[mode.name+"_read_requests"] = fmt.Sprint(obs.reads)
		}
		if mode.passthrough {
			if p := obs.passthroughProblems(); len(p) > 0 {
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

// observed is what a mount's observer saw during one measurement.
type observed struct {
	reads, writes int64
	opens         []server.OpenReply
	regs          []server.Registration
}

// observe takes what m's observer saw so far; nil for no mount.
func observe(m *server.Mount) *observed {
	if m == nil {
		return nil
	}
	st := m.Observer.Stats()
	return &observed{reads: st.Reads, writes: st.Writes, opens: st.Opens, regs: st.Registrations}
}

// passthroughProblems says why a figure measured on o is not a
// passthrough figure: an OPEN that did not ask for passthrough, or data
// requests that reached the daemon.
func (o *observed) passthroughProblems() []string {
	if o == nil {
		return []string{"nothing observed: the mode reads no FUSE mount"}
	}
	p := openProblems(o.opens, o.regs)
	if o.reads > 0 {
		p = append(p, fmt.Sprintf("%d READ requests reached the daemon", o.reads))
	}
	if o.writes > 0 {
		p = append(p, fmt.Sprintf("%d WRITE requests reached the daemon", o.writes))
	}
	return p
}

// measure reads the mode's file once on a fresh mount and returns MB/s
// (1e6 bytes per second).
func measure(ctx context.Context, env *Env, mode seqMode, backing string, size int64, buf []byte) (float64, *observed, error) {
	m, path, err := mountMode(ctx, env, mode, backing, size)
	if err != nil {
		return 0, nil, err
	}
	elapsed, n, readErr := timedRead(ctx, path, buf)
	obs := observe(m)
	var unmountErr error
	if m != nil {
		unmountErr = m.Unmount()
	}
	if err := errors.Join(readErr, unmountErr); err != nil {
		return 0, obs, err
	}
	if n != size {
		return 0, obs, fmt.Errorf("read %d bytes, want %d", n, size)
	}
	return float64(n) / 1e6 / elapsed.Seconds(), obs, nil
}

// timedRead reads path to its end through buf. The loop makes plain
// read(2) calls and allocates nothing, so that the clock measures the
// kernel and the file system, not Go.
func timedRead(ctx context.Context, path string, buf []byte) (time.Duration, int64, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	var total int64
	start := time.Now()
	for i := 0; ; i++ {
		if i%64 == 0 && ctx.Err() != nil {
			return 0, total, fmt.Errorf("read %s: %w", path, ctx.Err())
		}
		n, err := unix.Read(fd, buf)
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
