// Package agent is the fusematrix guest agent: it runs as u-root's uinit
// inside a guest, loads the kernel modules the host lists, runs the
// selected probes, scenarios and benchmarks, and streams their results to
// the host as JSON lines over a virtio-serial port; then it powers the
// guest off. It also runs on a host, writing to a file or stdout, which is
// how it is tested.
package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/suite"
)

// Version identifies the agent in hello; a VCS revision is appended when
// the build recorded one.
const Version = "0.1.0"

// abortGrace is how long a timed-out scenario gets to return once its
// FUSE connections are aborted.
const abortGrace = 10 * time.Second

// Run configures the system, runs the scenarios cfg selects and streams
// the events. With cfg.PowerOff it ends the machine whatever happened, so
// it returns only when not powering off.
func Run(ctx context.Context, cfg Config) error {
	console := cfg.Console
	if console == nil {
		console = os.Stderr
	}
	if cfg.PowerOff {
		defer powerOff(console)
	}
	a := &agent{cfg: cfg, console: console}
	notes := slices.Clone(cfg.Notes)
	notes = append(notes, loadModules(cfg.Modules)...)
	if err := ensureFusectl(); err != nil {
		notes = append(notes, err.Error())
	}
	for _, n := range notes {
		a.say("note: %s", n)
	}

	out, closeOut, err := a.output(ctx)
	if err != nil {
		a.say("no channel to the host: %v", err)
		return err
	}
	defer closeOut()
	a.enc = results.NewEncoder(out)

	a.emit(results.Event{Type: results.HelloEvent, Hello: hello()})
	for _, n := range notes {
		a.log(n)
	}
	a.runAll(ctx)
	a.emit(results.Event{Type: results.DoneEvent})
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.writeErr
}

type agent struct {
	cfg     Config
	console io.Writer
	enc     *results.Encoder

	// mu serialises emit: a scenario logs from its own goroutine, and one
	// abandoned after a timeout may still do so.
	mu       sync.Mutex
	writeErr error
}

// output opens the channel to the host.
func (a *agent) output(ctx context.Context) (io.Writer, func(), error) {
	switch {
	case a.cfg.Output != nil:
		return a.cfg.Output, func() {}, nil
	case a.cfg.Out == "-":
		return os.Stdout, func() {}, nil
	case a.cfg.Out != "":
		f, err := os.Create(a.cfg.Out)
		if err != nil {
			return nil, nil, err
		}
		return f, func() { f.Close() }, nil
	}
	path, err := findPort(ctx, "/sys", "/dev", a.cfg.Port, a.cfg.PortWait)
	if err != nil {
		return nil, nil, err
	}
	f, err := openPort(path)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

func (a *agent) runAll(ctx context.Context) {
	st := suite.New()
	selected := a.cfg.Scenarios
	if selected == nil {
		var err error
		if selected, err = st.Select(a.cfg.Run); err != nil {
			a.log(err.Error())
			return
		}
	}
	root, notes, err := scratchRoot(a.cfg.Dir)
	for _, n := range notes {
		a.log(n)
	}
	base := scenarios.Env{BenchBytes: int64(a.cfg.BenchMiB) << 20, BlockSize: a.cfg.BlockSize, BenchRuns: a.cfg.BenchRuns, Server: a.cfg.Server, Profile: a.cfg.Profile}
	for _, s := range selected {
		r := a.runCounted(ctx, s, &base, root, err)
		r.ID, r.Kind = string(s.ID), s.Kind
		a.emit(results.Event{Type: results.ResultEvent, Result: fit(r)})
	}
	// One daemon after the other, each with all its checks: a daemon's
	// checks start and stop it, so no two are mounted at once.
	for _, name := range a.cfg.Daemons {
		a.runDaemon(ctx, st, name, &base, root, err)
	}
}

// runDaemon runs the checks of the user's daemon called name, under its
// ids (daemon/<name>/…), with the daemon as the server under test.
func (a *agent) runDaemon(ctx context.Context, st *suite.Suite, name string, base *scenarios.Env, root string, rootErr error) {
	checks, err := contract.DaemonChecks(name, a.cfg.Run)
	if err != nil {
		a.log(err.Error())
		return
	}
	spec, specErr := readDaemon(a.cfg.daemonSpecPath(name), name)
	byID := map[contract.ID]scenarios.Scenario{}
	for _, s := range st.ForDaemon() {
		byID[s.ID] = s
	}
	env := *base
	if specErr == nil {
		env.Subject = scenarios.DaemonSubject{Spec: spec}
		if spec.Root != "" && rootErr == nil {
			// A daemon in a root of its own can reach only what is in
			// it: its checks keep their scratch directories there.
			root, rootErr = daemonScratch(spec.Root)
		}
	}
	for _, c := range checks {
		s, ok := byID[contract.ID(strings.TrimPrefix(string(c.ID), contract.DaemonPrefix+name+"/"))]
		var r results.Result
		switch {
		case !ok:
			r = results.Result{Status: results.Error, Reason: "in the contract but not in the suite"}
		case specErr != nil:
			r = results.Result{Status: results.Error, Reason: specErr.Error()}
		default:
			// Under its own id, in logs and scratch directories too.
			s.ID = c.ID
			r = a.runCounted(ctx, s, &env, root, rootErr)
		}
		r.ID, r.Kind = string(c.ID), c.Kind
		a.emit(results.Event{Type: results.ResultEvent, Result: fit(r)})
	}
	base.Capabilities = env.Capabilities
}

// readDaemon reads the daemon description the host wrote at path, which
// must name the daemon the command line does.
func readDaemon(path, name string) (*contract.DaemonSpec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("daemon description: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("daemon description: %w", err)
	}
	d, err := contract.ParseDaemonSpec(b)
	if err != nil {
		return nil, err
	}
	if d.Name != name {
		return nil, fmt.Errorf("daemon description names %q, the command line %q", d.Name, name)
	}
	return d, nil
}

// runCounted runs s Count times (probes once) and aggregates the runs.
func (a *agent) runCounted(ctx context.Context, s scenarios.Scenario, base *scenarios.Env, root string, rootErr error) results.Result {
	runs := 1
	if s.Kind != results.Probe && a.cfg.Count > 1 {
		runs = a.cfg.Count
	}
	var rs []results.Result
	for range runs {
		var r results.Result
		switch {
		case rootErr != nil:
			r = results.Result{Status: results.Error, Reason: fmt.Sprintf("scratch root: %v", rootErr)}
		case ctx.Err() != nil:
			r = results.Result{Status: results.Error, Reason: fmt.Sprintf("not run: %v", ctx.Err())}
		default:
			r = a.runOne(ctx, s, base, root)
		}
		rs = append(rs, r)
	}
	return aggregate(rs)
}

// runOne runs s in a fresh scratch directory, bounded by its timeout, and
// shares what a probe found with the scenarios after it.
func (a *agent) runOne(ctx context.Context, s scenarios.Scenario, base *scenarios.Env, root string) results.Result {
	dir := filepath.Join(root, strings.ReplaceAll(string(s.ID), "/", "_"))
	if err := clearDir(dir); err != nil {
		return results.Result{Status: results.Error, Reason: fmt.Sprintf("scratch directory: %v", err)}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return results.Result{Status: results.Error, Reason: fmt.Sprintf("scratch directory: %v", err)}
	}
	defer func() {
		if err := clearDir(dir); err != nil {
			a.log(fmt.Sprintf("%s: clean up: %v", s.ID, err))
		}
	}()
	env := *base
	env.Dir = dir
	env.Logf = func(format string, args ...any) {
		a.log(string(s.ID) + ": " + fmt.Sprintf(format, args...))
	}

	// The kernel's own account of a failure is in its log: keep what it
	// writes while the scenario runs.
	open := a.cfg.openKmsg
	if open == nil {
		open = openKmsg
	}
	klog, klogErr := open(a.cfg.kmsgPath())
	if klog != nil {
		defer klog.close()
	}

	sctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	done := make(chan results.Result, 1)
	start := time.Now()
	go func() {
		defer func() {
			if v := recover(); v != nil {
				a.say("%s panicked: %v\n%s", s.ID, v, debug.Stack())
				done <- results.Result{Status: results.Error, Reason: fmt.Sprintf("panic: %v", v)}
			}
		}()
		done <- scenarios.Run(sctx, s, &env)
	}()

	var r results.Result
	select {
	case r = <-done:
		// Only now is env no longer shared with the scenario.
		if env.Capabilities != nil && env.Capabilities != base.Capabilities {
			base.Capabilities = env.Capabilities
			a.emit(results.Event{Type: results.CapabilitiesEvent, Capabilities: env.Capabilities})
		}
	case <-sctx.Done():
		reason := fmt.Sprintf("timed out after %s", s.Timeout)
		if ctx.Err() != nil {
			reason = fmt.Sprintf("interrupted: %v", ctx.Err())
		}
		r = results.Result{Status: results.Error, Reason: reason}
		for _, n := range abortFUSE(dir) {
			a.log(string(s.ID) + ": " + n)
		}
		select {
		case <-done:
		case <-time.After(abortGrace):
			a.log(fmt.Sprintf("%s: still running %s after its FUSE connections were aborted; continuing", s.ID, abortGrace))
		}
	}
	r.Seconds = time.Since(start).Seconds()
	var lines []string
	if klog != nil {
		var reports []string
		lines, reports = klog.read()
		r = kernelReported(r, reports)
	} else {
		lines = []string{klogErr.Error()}
	}
	if r.Status == results.Fail || r.Status == results.Error {
		r.Log = append(r.Log, lines...)
	}
	return r
}

// kernelReported fails r when the kernel reported a bug (an oops, a
// warning, a hung task…) while it ran, whatever r concluded: a check that
// passed or skipped while the kernel warned has not shown the kernel
// right. The reports lead its log, since the kernel log after them may
// be cut.
func kernelReported(r results.Result, reports []string) results.Result {
	if len(reports) == 0 {
		return r
	}
	was := string(r.Status)
	if r.Reason != "" {
		was += ": " + r.Reason
	}
	r.Status = results.Fail
	r.Reason = fmt.Sprintf("the kernel reported %q while it ran (the check itself: %s)", strings.TrimPrefix(reports[0], "kmsg: "), was)
	r.Facts = maps.Clone(r.Facts)
	if r.Facts == nil {
		r.Facts = map[string]string{}
	}
	r.Facts[string(contract.FactKernelReport)] = reports[0]
	r.Log = append(slices.Clone(reports), r.Log...)
	return r
}

// emit streams e and echoes it on the console. A broken channel is
// remembered and the run goes on: the console log still tells the story.
func (a *agent) emit(e results.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.enc.Encode(&e); err != nil {
		a.say("%v", err)
		if a.writeErr == nil {
			a.writeErr = err
		}
	}
	a.say("%s", human(e))
}

func (a *agent) log(line string) {
	a.emit(results.Event{Type: results.LogEvent, Log: clip(line)})
}

func (a *agent) say(format string, args ...any) {
	fmt.Fprintf(a.console, "fusematrix: "+format+"\n", args...)
}

func hello() *results.Hello {
	h := &results.Hello{AgentVersion: version()}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		h.Release = unix.ByteSliceToString(u.Release[:])
	}
	if data, err := os.ReadFile("/proc/uptime"); err == nil {
		if f := strings.Fields(string(data)); len(f) > 0 {
			h.Uptime, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return h
}

func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return Version
	}
	return fmt.Sprintf("%s+%.12s%s", Version, rev, dirty)
}

// fit keeps a result within what the host's decoder accepts, so that one
// verbose scenario cannot cost the whole stream: long text is clipped and
// numbers JSON cannot carry, or no measurement gives, are dropped, with a
// fact saying so.
func fit(r results.Result) *results.Result {
	r.Reason = clip(r.Reason)
	for k, v := range r.Facts {
		r.Facts[k] = clip(v)
	}
	// A figure the host's reader refuses (results.BadMetrics: not finite,
	// a negative rate, a minimum above its maximum) would make the whole
	// run unreadable to compare and merge: drop it, and say so.
	bad := results.BadMetrics(r.Metrics)
	var dropped []string
	for _, k := range slices.Sorted(maps.Keys(bad)) {
		dropped = append(dropped, k+": "+bad[k])
		delete(r.Metrics, k)
	}
	if len(r.Log) > maxLogLines {
		r.Log = append(r.Log[:maxLogLines-1:maxLogLines-1], fmt.Sprintf("[%d more lines not kept]", len(r.Log)-maxLogLines+1))
	}
	for i, l := range r.Log {
		r.Log[i] = clip(l)
	}
	if len(dropped) > 0 {
		if r.Facts == nil {
			r.Facts = map[string]string{}
		}
		r.Facts["dropped_metrics"] = clip("not measurements: " + strings.Join(dropped, "; "))
	}
	fitEntries(&r)
	fitLine(&r)
	return &r
}

// fitEntries keeps the facts within the decoder's count of entries: the
// metrics first, then facts in name order, and a fact saying how many
// were not kept.
func fitEntries(r *results.Result) {
	room := results.DefaultLimits.Entries - len(r.Metrics) - 1
	if len(r.Metrics)+len(r.Facts) <= results.DefaultLimits.Entries || room < 0 {
		return
	}
	names := slices.Sorted(maps.Keys(r.Facts))
	kept := make(map[string]string, room+1)
	for _, k := range names[:room] {
		kept[k] = r.Facts[k]
	}
	kept["dropped_facts"] = fmt.Sprintf("%d facts not kept, from %s on: more than the host reads", len(names)-room, names[room])
	r.Facts = kept
}

// lineRoom is the encoded size a result may take: the host's line limit
// less the event around it.
var lineRoom = results.DefaultLimits.LineBytes - 1024

// fitLine keeps the encoded result within one line the host reads: it
// halves the log, keeping its first lines (the kernel's reports and the
// server's first words), until the result fits, and then, if it must,
// cuts every text shorter and shorter (JSON escapes a control character
// six-fold, so bytes are not the measure).
func fitLine(r *results.Result) {
	size := func() int {
		b, _ := json.Marshal(r)
		return len(b)
	}
	lines, dropped := r.Log, 0
	for len(lines) > 1 && size() > lineRoom {
		keep := len(lines) / 2
		dropped += len(lines) - keep
		lines = lines[:keep:keep]
		r.Log = append(lines, fmt.Sprintf("[%d more lines not kept: the result would not fit the host's line]", dropped))
	}
	for short := 1024; short >= 32 && size() > lineRoom; short /= 2 {
		r.Reason = clipTo(r.Reason, short)
		for k, v := range r.Facts {
			r.Facts[k] = clipTo(v, short)
		}
		for i, l := range r.Log {
			r.Log[i] = clipTo(l, short)
		}
	}
}

// maxLogLines bounds Result.Log: the server's stderr tail plus at most
// kmsgLines kernel log lines fit, and the host's decoder accepts it.
const maxLogLines = 200

func clip(s string) string { return clipTo(s, results.DefaultLimits.TextBytes) }

func clipTo(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	const mark = "…[clipped]"
	cut := limit - len(mark)
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

func utf8Start(b byte) bool { return b&0xc0 != 0x80 }

// human renders an event as one console line.
func human(e results.Event) string {
	switch e.Type {
	case results.HelloEvent:
		return fmt.Sprintf("hello: kernel %s, agent %s, uptime %.2fs", e.Hello.Release, e.Hello.AgentVersion, e.Hello.Uptime)
	case results.CapabilitiesEvent:
		c := e.Capabilities
		return fmt.Sprintf("capabilities: FUSE %d.%d, passthrough %t, max_readahead %d, flags %s",
			c.FuseMajor, c.FuseMinor, c.Passthrough, c.MaxReadahead, strings.Join(c.InitFlags, ","))
	case results.ResultEvent:
		r := e.Result
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s: %s (%.2fs)", r.Kind, r.ID, r.Status, r.Seconds)
		if r.Reason != "" {
			fmt.Fprintf(&b, ": %s", r.Reason)
		}
		for _, k := range slices.Sorted(maps.Keys(r.Metrics)) {
			fmt.Fprintf(&b, " %s=%.3g", k, r.Metrics[k])
		}
		return b.String()
	case results.LogEvent:
		return "log: " + e.Log
	case results.DoneEvent:
		d := e.Done
		return fmt.Sprintf("done: %d events, %d results: %d pass, %d fail, %d skip, %d error",
			d.Events, d.Results, d.Pass, d.Fail, d.Skip, d.Error)
	}
	return string(e.Type)
}
