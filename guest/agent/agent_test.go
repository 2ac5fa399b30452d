package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// TestMain lets the test binary serve file systems for the scenarios, as
// the agent binary does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(server.Serve(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func needMount(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("mounts FUSE; skipped in -short mode")
	}
	if err := wire.CanMount(); err != nil {
		t.Skipf("cannot mount FUSE here: %v", err)
	}
}

// testConfig runs on the host: no modules, no power-off, small sizes.
func testConfig(t *testing.T) Config {
	// The agent's io_uring checks switch fuse.enable_uring on for
	// themselves: on a host they must not, so they find no parameter and
	// skip.
	old := scenarios.EnableURing
	scenarios.EnableURing = filepath.Join(t.TempDir(), "no-enable_uring")
	t.Cleanup(func() { scenarios.EnableURing = old })
	return Config{
		Params:    contract.Params{BenchMiB: 8, Port: contract.PortName},
		BlockSize: scenarios.DefaultBlockSize,
		PortWait:  100 * time.Millisecond,
		Dir:       t.TempDir(),
		Modules:   filepath.Join(t.TempDir(), "modules"),
		Console:   &bytes.Buffer{},
	}
}

// decodeStream decodes a whole stream the way the host does and checks
// its framing: hello first, done last with counts that match.
func decodeStream(t *testing.T, r io.Reader) []results.Event {
	t.Helper()
	d := results.NewDecoder(r, results.DefaultLimits)
	var events []results.Event
	for {
		e, err := d.Decode()
		if errors.Is(err, io.EOF) {
			break
		}
		assert.NilError(t, err)
		events = append(events, e)
	}
	assert.Assert(t, len(events) >= 2)
	assert.Equal(t, events[0].Type, results.HelloEvent)
	assert.Check(t, events[0].Hello.AgentVersion != "")
	last := events[len(events)-1]
	assert.Equal(t, last.Type, results.DoneEvent)
	assert.Check(t, is.Equal(last.Done.Events, len(events)-1))
	assert.Check(t, is.DeepEqual(last.Done.Counts, results.Count(resultsOf(events))))
	return events
}

func resultsOf(events []results.Event) []results.Result {
	var rs []results.Result
	for _, e := range events {
		if e.Type == results.ResultEvent {
			rs = append(rs, *e.Result)
		}
	}
	return rs
}

func eventTypes(events []results.Event) []results.EventType {
	var ts []results.EventType
	for _, e := range events {
		if e.Type != results.LogEvent {
			ts = append(ts, e.Type)
		}
	}
	return ts
}

func logs(events []results.Event) string {
	var b strings.Builder
	for _, e := range events {
		if e.Type == results.LogEvent {
			b.WriteString(e.Log + "\n")
		}
	}
	return b.String()
}

func TestRun(t *testing.T) {
	needMount(t)
	for _, tc := range []struct {
		name    string
		run     string
		wantIDs []string
	}{
		{name: "all", run: "", wantIDs: []string{
			"fuse-init", "passthrough-ioctl", "fuse-features", "requests", "io-uring", "passthrough-read",
			"pt/integrity", "pt/size-after-write", "pt/mmap-shared", "pt/fsync",
			"pt/open-twice", "pt/direct-io", "pt/close-backing", "pt/unmount-open", "pt/abort-open",
			"classic/fallback", "classic/basics", "classic/kill-mid-request",
			"uring/transport", "uring/pt/integrity", "uring/pt/size-after-write", "uring/pt/mmap-shared", "uring/pt/fsync",
			"uring/pt/open-twice", "uring/pt/unmount-open", "uring/pt/abort-open", "uring/classic/basics",
			"uring/classic/kill-mid-request", "seq-read",
		}},
		{name: "filtered", run: "^passthrough", wantIDs: []string{"fuse-init", "passthrough-ioctl", "fuse-features", "requests", "io-uring", "passthrough-read"}},
		{name: "suite", run: "^(pt|classic)/", wantIDs: []string{
			"fuse-init", "passthrough-ioctl", "fuse-features", "requests", "io-uring",
			"pt/integrity", "pt/size-after-write", "pt/mmap-shared", "pt/fsync",
			"pt/open-twice", "pt/direct-io", "pt/close-backing", "pt/unmount-open", "pt/abort-open",
			"classic/fallback", "classic/basics", "classic/kill-mid-request",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Run = tc.run
			cfg.Out = filepath.Join(t.TempDir(), "events.jsonl")
			console := cfg.Console.(*bytes.Buffer)
			assert.NilError(t, Run(context.Background(), cfg))

			f, err := os.Open(cfg.Out)
			assert.NilError(t, err)
			defer f.Close()
			events := decodeStream(t, f)
			want := []results.EventType{results.HelloEvent, results.CapabilitiesEvent}
			for range tc.wantIDs {
				want = append(want, results.ResultEvent)
			}
			assert.DeepEqual(t, eventTypes(events), append(want, results.DoneEvent))

			rs := resultsOf(events)
			var ids []string
			for _, r := range rs {
				ids = append(ids, r.ID)
				assert.Check(t, r.Status == results.Pass || r.Status == results.Skip, "%s: %s: %s", r.ID, r.Status, r.Reason)
				assert.Check(t, r.Seconds > 0, "%s: seconds not filled in", r.ID)
			}
			assert.DeepEqual(t, ids, tc.wantIDs)
			assert.Check(t, is.Equal(rs[0].Kind, results.Probe))
			assert.Check(t, is.Equal(events[1].Capabilities.FuseMajor, uint32(7)))

			entries, err := os.ReadDir(cfg.Dir)
			assert.NilError(t, err)
			assert.Check(t, is.Len(entries, 0), "scratch directories left behind")
			assert.Check(t, is.Contains(console.String(), "fusematrix: hello: kernel "))
			assert.Check(t, is.Contains(console.String(), "fusematrix: done: "))
		})
	}
}

// hangFile is a FUSE file whose reads never return until release closes.
type hangFile struct {
	fs.Inode
	release chan struct{}
}

func (f *hangFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *hangFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode, out.Size = syscall.S_IFREG|0o644, 4096
	return 0
}

func (f *hangFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	<-f.release
	return fuse.ReadResultData(nil), 0
}

type hangRoot struct {
	fs.Inode
	file *hangFile
}

func (r *hangRoot) OnAdd(ctx context.Context) {
	r.AddChild("hang", r.NewPersistentInode(ctx, r.file, fs.StableAttr{Mode: syscall.S_IFREG}), false)
}

// TestRunMisbehaving shows that a panic, a wedged FUSE server and a
// timeout each become an error result and the run goes on.
func TestRunMisbehaving(t *testing.T) {
	needMount(t)
	release := make(chan struct{})
	readErr := make(chan error, 1)
	finished := make(chan struct{})
	t.Cleanup(func() {
		// Should the abort not have worked, let the read end before the
		// test process exits: a close(2) on a FUSE file served by a dying
		// process never returns.
		close(release)
		select {
		case <-finished:
		case <-time.After(5 * time.Second):
		}
	})
	caps := &results.Capabilities{FuseMajor: 7, FuseMinor: 99}

	cfg := testConfig(t)
	var out bytes.Buffer
	cfg.Output = &out
	cfg.Scenarios = []scenarios.Scenario{
		{ID: "test/probe", Kind: results.Probe, Timeout: time.Minute, Run: func(ctx context.Context, env *scenarios.Env) results.Result {
			env.Capabilities = caps
			return results.Result{Status: results.Pass}
		}},
		{ID: "test/panic", Kind: results.Scenario, Timeout: time.Minute, Run: func(ctx context.Context, env *scenarios.Env) results.Result {
			panic("boom")
		}},
		// Long enough to mount on a loaded machine before the read that wedges.
		{ID: "test/wedged", Kind: results.Scenario, Timeout: time.Second, Run: func(ctx context.Context, env *scenarios.Env) results.Result {
			mnt := filepath.Join(env.Dir, "mnt")
			if err := os.Mkdir(mnt, 0o755); err != nil {
				return results.Result{Status: results.Error, Reason: err.Error()}
			}
			if _, err := loopback.Node(ctx, mnt, &hangRoot{file: &hangFile{release: release}}, wire.Options{}); err != nil {
				return results.Result{Status: results.Error, Reason: err.Error()}
			}
			_, err := os.ReadFile(filepath.Join(mnt, "hang")) // ignores ctx, as a stuck syscall does
			readErr <- err
			close(finished)
			return results.Result{Status: results.Pass}
		}},
		{ID: "test/slow", Kind: results.Benchmark, Timeout: 50 * time.Millisecond, Run: func(ctx context.Context, env *scenarios.Env) results.Result {
			<-ctx.Done()
			return results.Result{Status: results.Pass}
		}},
		{ID: "test/after", Kind: results.Scenario, Timeout: time.Minute, Run: func(ctx context.Context, env *scenarios.Env) results.Result {
			if env.Capabilities != caps {
				return results.Result{Status: results.Fail, Reason: "the probe's capabilities did not reach later scenarios"}
			}
			return results.Result{Status: results.Pass, Metrics: map[string]float64{"nan": math.NaN()}}
		}},
	}
	assert.NilError(t, Run(context.Background(), cfg))

	events := decodeStream(t, &out)
	assert.DeepEqual(t, eventTypes(events), []results.EventType{
		results.HelloEvent, results.CapabilitiesEvent,
		results.ResultEvent, results.ResultEvent, results.ResultEvent, results.ResultEvent, results.ResultEvent,
		results.DoneEvent,
	})
	assert.DeepEqual(t, events[1].Capabilities, caps)
	type brief struct {
		ID     string
		Status results.Status
		Reason string
	}
	var got []brief
	for _, r := range resultsOf(events) {
		got = append(got, brief{r.ID, r.Status, r.Reason})
	}
	assert.DeepEqual(t, got, []brief{
		{"test/probe", results.Pass, ""},
		{"test/panic", results.Error, "panic: boom"},
		{"test/wedged", results.Error, "timed out after 1s"},
		{"test/slow", results.Error, "timed out after 50ms"},
		{"test/after", results.Pass, ""},
	})
	assert.Check(t, is.DeepEqual(resultsOf(events)[4].Facts, map[string]string{"dropped_metrics": "not measurements: nan: not a finite number"}))
	assert.Check(t, is.Contains(logs(events), "test/wedged: aborted FUSE connection "))
	select {
	case err := <-readErr:
		assert.Check(t, errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOTCONN), "%v", err)
	default:
		t.Error("the wedged scenario was still blocked after its connection was aborted")
	}
}

func TestRunWithoutPort(t *testing.T) {
	cfg := testConfig(t)
	cfg.Port = "fusematrix.test-absent"
	err := Run(context.Background(), cfg)
	assert.ErrorContains(t, err, `no virtio port named "fusematrix.test-absent"`)
	assert.Check(t, is.Contains(cfg.Console.(*bytes.Buffer).String(), "fusematrix: no channel to the host: "))
}

func TestFit(t *testing.T) {
	long := strings.Repeat("é", results.DefaultLimits.TextBytes)
	r := fit(results.Result{
		ID: "x", Kind: results.Scenario, Status: results.Fail,
		Reason:  long,
		Facts:   map[string]string{"f": long},
		Metrics: map[string]float64{"ok": 1, "inf": math.Inf(1), "delta": -1, "mbps_median": -3},
	})
	e := results.Event{Type: results.ResultEvent, Result: r}
	assert.NilError(t, e.Validate(results.DefaultLimits))
	assert.Check(t, strings.HasSuffix(r.Reason, "…[clipped]"))
	// What the host's reader would refuse is dropped; a metric whose name
	// says nothing of its sign may be negative.
	assert.Check(t, is.DeepEqual(r.Metrics, map[string]float64{"ok": 1, "delta": -1}))
	assert.Check(t, is.Equal(r.Facts["dropped_metrics"],
		"not measurements: inf: not a finite number; mbps_median: -3 is negative, and a rate, ratio or count cannot be"))
}

// A result whose every part is within the text limits can still make a
// line longer than the host reads (many long log lines, text that JSON
// escapes six-fold, too many facts): fit trims it to what the host's
// decoder accepts, so that one verbose check does not cost the stream.
func TestFitLine(t *testing.T) {
	l := results.DefaultLimits
	long := strings.Repeat("x", l.TextBytes)
	ctrl := strings.Repeat("\x01", l.TextBytes) // \u0001 in JSON
	logs := make([]string, 300)
	for i := range logs {
		logs[i] = fmt.Sprintf("line %03d %s", i, long[:l.TextBytes-9])
	}
	facts := map[string]string{}
	for i := range 2 * l.Entries {
		facts[fmt.Sprintf("f%03d", i)] = ctrl
	}
	for name, r := range map[string]results.Result{
		"log":   {Log: logs},
		"facts": {Facts: facts, Metrics: map[string]float64{"m": 1}},
		"both":  {Reason: ctrl, Facts: facts, Log: logs},
	} {
		t.Run(name, func(t *testing.T) {
			r.ID, r.Kind, r.Status = "x", results.Scenario, results.Fail
			var buf bytes.Buffer
			enc := results.NewEncoder(&buf)
			assert.NilError(t, enc.Encode(&results.Event{Type: results.HelloEvent, Hello: &results.Hello{}}))
			assert.NilError(t, enc.Encode(&results.Event{Type: results.ResultEvent, Result: fit(r)}))
			dec := results.NewDecoder(&buf, l)
			_, err := dec.Decode()
			assert.NilError(t, err)
			ev, err := dec.Decode()
			assert.NilError(t, err, "the host refuses the line")
			if len(r.Log) > 0 {
				got := ev.Result.Log
				assert.Check(t, strings.HasPrefix(got[0], "line 000 "), "the first lines are kept")
				assert.Check(t, is.Contains(got[len(got)-1], "more lines not kept"))
			}
			if len(r.Facts) > l.Entries {
				assert.Check(t, is.Contains(ev.Result.Facts["dropped_facts"], "facts not kept"))
			}
		})
	}
}

// TestRunCount shows -count folding repeated runs into one result each:
// agreeing runs keep their status, disagreeing ones are flaky, probes run
// once.
func TestRunCount(t *testing.T) {
	calls := map[string]int{}
	seq := func(id string, statuses ...results.Status) scenarios.Scenario {
		return scenarios.Scenario{ID: contract.ID(id), Kind: results.Scenario, Timeout: time.Minute, Run: func(ctx context.Context, env *scenarios.Env) results.Result {
			st := statuses[calls[id]%len(statuses)]
			calls[id]++
			return results.Result{Status: st, Reason: fmt.Sprintf("run %d", calls[id])}
		}}
	}
	cfg := testConfig(t)
	cfg.Count = 3
	var out bytes.Buffer
	cfg.Output = &out
	cfg.Scenarios = []scenarios.Scenario{
		{ID: "test/probe", Kind: results.Probe, Timeout: time.Minute, Run: func(ctx context.Context, env *scenarios.Env) results.Result {
			calls["test/probe"]++
			return results.Result{Status: results.Pass}
		}},
		seq("test/steady", results.Pass),
		seq("test/broken", results.Fail),
		seq("test/flaky", results.Pass, results.Fail, results.Pass),
	}
	assert.NilError(t, Run(context.Background(), cfg))
	type brief struct {
		ID     string
		Status results.Status
		Reason string
		Facts  map[string]string
	}
	var got []brief
	for _, r := range resultsOf(decodeStream(t, &out)) {
		got = append(got, brief{r.ID, r.Status, r.Reason, r.Facts})
	}
	assert.DeepEqual(t, got, []brief{
		{"test/probe", results.Pass, "", nil},
		{"test/steady", results.Pass, "run 1", map[string]string{"runs": "3", "passed": "3"}},
		{"test/broken", results.Fail, "run 1", map[string]string{"runs": "3", "passed": "0"}},
		{"test/flaky", results.Fail, "flaky: 2/3 passed; first fail: run 2", map[string]string{"runs": "3", "passed": "2", "flaky": "true"}},
	})
	assert.DeepEqual(t, calls, map[string]int{"test/probe": 1, "test/steady": 3, "test/broken": 3, "test/flaky": 3})
}

// TestRunKernelLog shows the kernel log lines written during a failing
// scenario reaching its result, and none reaching a passing one.
func TestRunKernelLog(t *testing.T) {
	if fd, err := unix.Open("/dev/kmsg", unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
		t.Skipf("cannot read and write /dev/kmsg here: %v", err)
	} else {
		unix.Close(fd)
	}
	marker := fmt.Sprintf("fusematrix agent test %d", time.Now().UnixNano())
	logLine := func(text string) error {
		return os.WriteFile("/dev/kmsg", []byte(text+"\n"), 0)
	}
	cfg := testConfig(t)
	var out bytes.Buffer
	cfg.Output = &out
	cfg.Scenarios = []scenarios.Scenario{
		{ID: "test/fails", Kind: results.Scenario, Timeout: time.Minute, Run: func(ctx context.Context, env *scenarios.Env) results.Result {
			if err := logLine(marker + " during a failure"); err != nil {
				return results.Result{Status: results.Error, Reason: err.Error()}
			}
			return results.Result{Status: results.Fail, Reason: "on purpose", Log: []string{"server: said something"}}
		}},
		{ID: "test/passes", Kind: results.Scenario, Timeout: time.Minute, Run: func(ctx context.Context, env *scenarios.Env) results.Result {
			if err := logLine(marker + " during a pass"); err != nil {
				return results.Result{Status: results.Error, Reason: err.Error()}
			}
			return results.Result{Status: results.Pass}
		}},
	}
	assert.NilError(t, Run(context.Background(), cfg))
	rs := resultsOf(decodeStream(t, &out))
	assert.Assert(t, is.Len(rs, 2))
	assert.Equal(t, rs[0].Log[0], "server: said something")
	var found bool
	for _, l := range rs[0].Log[1:] {
		assert.Check(t, strings.HasPrefix(l, "kmsg: ["), l)
		found = found || strings.HasSuffix(l, marker+" during a failure")
	}
	assert.Check(t, found, "marker not in %q", rs[0].Log)
	assert.Check(t, is.Len(rs[1].Log, 0))
}

func TestKmsgRecord(t *testing.T) {
	for _, tc := range []struct {
		rec, want  string
		report, ok bool
	}{
		{rec: "6,1234,5000123,-;fuse: init (API version 7.41)\n", want: "kmsg: [5.000123] fuse: init (API version 7.41)", ok: true},
		{rec: "4,7,12,c;first\n SUBSYSTEM=fuse\n", want: "kmsg: [0.000012] first", ok: true},
		{rec: "garbage", ok: false},
		{rec: "6,1,1,-;" + strings.Repeat("x", 1000), want: "kmsg: [0.000001] " + strings.Repeat("x", kmsgLineBytes-len("kmsg: [0.000001] ")), ok: true},
		// The kernel's own warning is a report; the same words written by
		// a program to /dev/kmsg (facility LOG_USER, prio 12) are not.
		{rec: "4,88,2000000,-;WARNING: CPU: 0 PID: 70 at fs/fuse/iomode.c:101 fuse_file_io_release+0x5c/0x70\n",
			want: "kmsg: [2.000000] WARNING: CPU: 0 PID: 70 at fs/fuse/iomode.c:101 fuse_file_io_release+0x5c/0x70", report: true, ok: true},
		{rec: "1,89,2000001,-;Oops: 0000 [#1] PREEMPT SMP NOPTI\n", want: "kmsg: [2.000001] Oops: 0000 [#1] PREEMPT SMP NOPTI", report: true, ok: true},
		{rec: "12,90,2000002,-;WARNING: fake\n", want: "kmsg: [2.000002] WARNING: fake", report: false, ok: true},
	} {
		got, report, ok := kmsgRecord(tc.rec)
		assert.Check(t, is.Equal(ok, tc.ok), tc.rec)
		assert.Check(t, is.Equal(report, tc.report), tc.rec)
		assert.Check(t, is.Equal(got, tc.want))
	}
}

// fakeKernelLog plays a kernel log in which each scenario's run finds the
// records of its turn.
type fakeKernelLog struct {
	turns [][2][]string // lines and reports, one entry per scenario run
	n     *int
}

func (f fakeKernelLog) read() ([]string, []string) {
	t := f.turns[*f.n]
	*f.n++
	return t[0], t[1]
}

func (f fakeKernelLog) close() {}

// A kernel bug report while a check ran fails the check, whether it
// passed, skipped or failed itself, with the report first in its log;
// a check without one keeps its status and, when it passed, no log.
func TestRunKernelReport(t *testing.T) {
	warn := "kmsg: [2.000000] WARNING: CPU: 0 PID: 70 at fs/fuse/iomode.c:101 fuse_file_io_release+0x5c/0x70"
	cfg := testConfig(t)
	var out bytes.Buffer
	cfg.Output = &out
	n := 0
	cfg.openKmsg = func(string) (kernelLog, error) {
		return fakeKernelLog{n: &n, turns: [][2][]string{
			{{"kmsg: [1.0] fuse: init", warn}, {warn}},
			{{warn}, {warn}},
			{{"kmsg: [3.0] quiet"}, nil},
			{{warn}, {warn}},
		}}, nil
	}
	ret := func(st results.Status, reason string) func(context.Context, *scenarios.Env) results.Result {
		return func(context.Context, *scenarios.Env) results.Result {
			return results.Result{Status: st, Reason: reason}
		}
	}
	cfg.Scenarios = []scenarios.Scenario{
		{ID: "test/passes", Kind: results.Scenario, Timeout: time.Minute, Run: ret(results.Pass, "")},
		{ID: "test/skips", Kind: results.Scenario, Timeout: time.Minute, Run: ret(results.Skip, "no passthrough")},
		{ID: "test/quiet", Kind: results.Scenario, Timeout: time.Minute, Run: ret(results.Pass, "")},
		{ID: "test/fails", Kind: results.Scenario, Timeout: time.Minute, Run: ret(results.Fail, "bytes differ")},
	}
	assert.NilError(t, Run(context.Background(), cfg))
	rs := resultsOf(decodeStream(t, &out))
	assert.Assert(t, is.Len(rs, 4))
	for i, was := range []string{"pass", "skip: no passthrough", "", "fail: bytes differ"} {
		r := rs[i]
		if was == "" {
			assert.Check(t, is.Equal(r.Status, results.Pass), r.ID)
			assert.Check(t, is.Len(r.Log, 0), r.ID)
			continue
		}
		assert.Check(t, is.Equal(r.Status, results.Fail), r.ID)
		assert.Check(t, is.Contains(r.Reason, "the kernel reported \"[2.000000] WARNING: CPU: 0 PID: 70"), r.ID)
		assert.Check(t, is.Contains(r.Reason, "(the check itself: "+was+")"), r.ID)
		assert.Check(t, is.Equal(r.Facts["kernel_report"], warn), r.ID)
		assert.Assert(t, len(r.Log) > 0, r.ID)
		assert.Check(t, is.Equal(r.Log[0], warn), r.ID)
	}
}
