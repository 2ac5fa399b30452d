// Package harness runs the fusematrix matrix on the host: it resolves
// kernels, builds the guest initramfs, boots one QEMU guest per kernel
// (KVM when it works, TCG otherwise), collects each guest's result stream
// and writes the run summary as results arrive, so an interrupted or
// partly failed run still leaves everything it learned on disk. It also
// turns a user's daemon, as described (daemonspec), into what the guests
// run and the files that carry it there (NewDaemon).
//
// It imports kernels, results and its own subpackages (qemu, initramfs,
// elfdeps, daemonspec, debdaemon, inert, expect); never scenarios/ nor
// go-fuse, nor harness/report: the reports written next to results.json
// are its caller's (Options.Reports), so that harness and bisect link no
// plotting.
package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fusematrix/fusematrix/harness/expect"
	"github.com/fusematrix/fusematrix/harness/initramfs"
	"github.com/fusematrix/fusematrix/harness/qemu"
	"github.com/fusematrix/fusematrix/kernels"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// Options configures a run. The zero value of every field but Kernels and
// SourceDir is a sane default.
type Options struct {
	// Kernels are selectors or paths; nil means kernels.DefaultMatrix.
	Kernels []string
	// OutDir receives results.json, the Reports and console logs.
	OutDir string
	// Reports are files rewritten next to results.json whenever it is
	// (junit.xml: report.JUnit), by name. The caller chooses them, so
	// that the harness, and bisect through it, links no renderer and
	// none of the report's plotting.
	Reports map[string]func(io.Writer, *results.Run) error
	// Jobs is how many guests run at once.
	Jobs int
	// Accel is "auto" (KVM if it works, else TCG), "kvm" or "tcg".
	Accel string
	// Timeout bounds one kernel's whole boot and run.
	Timeout time.Duration
	// KVMHelloTimeout bounds the wait for hello under KVM before falling
	// back to TCG; HelloTimeout bounds it under TCG.
	KVMHelloTimeout time.Duration
	HelloTimeout    time.Duration
	// Params are what every guest's agent is told on its kernel command
	// line: which checks to run (Run, "" for all), how often (Count; the
	// guest reports one result per check, flaky when the runs disagree),
	// the benchmark file's size and runs (0 leaves the agent's defaults),
	// and whether to profile the benchmark servers.
	contract.Params
	// Append is added to every guest's kernel command line.
	Append string
	// Daemons are users' FUSE daemons every guest also runs checks
	// against (daemon/<name>/…), one after the other in one boot.
	Daemons []*Daemon
	// Peer is the host path of the C NOOP peer (make peer), which every
	// guest then gets at contract.PeerPath; "" puts none in.
	Peer string
	// SourceDir is the fusematrix checkout the agent is built from.
	SourceDir string
	QEMU      string
	MemoryMiB int
	CPUs      int
	Kernel    kernels.Options
	CacheDir  string // initramfs cache; "" = <user cache>/fusematrix/initramfs
	Logf      func(format string, args ...any)
}

func (o *Options) defaults() {
	if len(o.Kernels) == 0 {
		o.Kernels = kernels.DefaultMatrix
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join("out", "matrix")
	}
	if o.Jobs <= 0 {
		o.Jobs = 1
	}
	if o.Accel == "" {
		o.Accel = "auto"
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.KVMHelloTimeout == 0 {
		o.KVMHelloTimeout = 15 * time.Second
	}
	if o.HelloTimeout == 0 {
		o.HelloTimeout = 2 * time.Minute
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Kernel.Logf == nil {
		o.Kernel.Logf = o.Logf
	}
}

// Run runs every kernel and returns the summary, which is also written to
// OutDir. The error is non-nil when the run could not start at all (no
// QEMU, no agent build); a kernel that failed is reported in the summary,
// and the other kernels still run.
func Run(ctx context.Context, o Options) (*results.Run, error) {
	o.defaults()
	switch o.Accel {
	case "auto", "kvm", "tcg":
	default:
		return nil, fmt.Errorf("accelerator %q: want auto, kvm or tcg", o.Accel)
	}
	if err := o.Params.Check(); err != nil {
		return nil, err
	}
	var err error
	if o.Params.Daemons, err = daemonNames(o.Daemons); err != nil {
		return nil, err
	}
	checks, err := Selected(o.Run, o.Params.Daemons...)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("results folder: %w", err)
	}
	qemuVersion, err := qemu.Version(ctx, o.QEMU)
	if err != nil {
		return nil, fmt.Errorf("%w: install Debian's qemu-system-x86 package (make deps)", err)
	}
	w := &writer{dir: o.OutDir, reports: o.Reports, run: &results.Run{
		Schema:  results.SchemaVersion,
		Started: time.Now().UTC(),
		Host:    results.Host{QEMU: qemuVersion, CPUs: runtime.NumCPU(), Jobs: o.Jobs, Accel: o.Accel, CPUModel: hostCPUModel()},
		Kernels: make([]results.Kernel, len(o.Kernels)),
	}}
	for i, name := range o.Kernels {
		w.run.Kernels[i] = results.Kernel{Name: name, Status: results.Error, Error: "not run"}
	}
	// On disk from the start: even a run killed outright says what it meant to do.
	w.flush()
	if w.err != nil {
		return nil, fmt.Errorf("results folder: %w", w.err)
	}

	base, err := initramfs.Base(ctx, initramfs.Options{
		ModuleDir: o.SourceDir,
		CacheDir:  o.CacheDir,
		Logf:      o.Logf,
	})
	if err != nil {
		err = fmt.Errorf("build guest initramfs: %w", err)
		for i := range w.run.Kernels {
			w.run.Kernels[i].Error = err.Error()
		}
		return w.finish(), err
	}

	// Kernels start in the order given, Jobs at a time.
	sem := make(chan struct{}, o.Jobs)
	var wg sync.WaitGroup
	for i, name := range o.Kernels {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			w.set(i, results.Kernel{Name: name, Status: results.Error, Error: "interrupted before it ran"})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			w.set(i, runKernel(ctx, i, name, base, checks, o))
		}()
	}
	wg.Wait()
	run := w.finish()
	return run, w.err
}

// runKernel resolves, prepares and boots one kernel; every failure ends up
// in the returned Kernel.
func runKernel(ctx context.Context, index int, name string, base string, checks []contract.Check, o Options) results.Kernel {
	start := time.Now()
	var k *kernels.Kernel
	fail := func(err error) results.Kernel {
		o.Logf("%s: error: %v", name, err)
		kr := results.Kernel{Name: name, Status: results.Error, Error: err.Error(), Seconds: time.Since(start).Seconds()}
		if k != nil {
			kr.Unverified, kr.Missing = k.Unverified, k.Missing
		}
		return kr
	}
	// Held until the guest is done, so that `kernels prune` leaves the
	// cache entry alone meanwhile.
	k, release, err := kernels.ResolveHeld(ctx, name, o.Kernel)
	if err != nil {
		return fail(err)
	}
	defer release()
	if k.Unverified != "" {
		o.Logf("%s: warning: unverified: %s", name, k.Unverified)
	}
	runDir, err := shortRunDir()
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(runDir)
	initrd := filepath.Join(runDir, "initrd.cpio")
	if err := writeInitrd(ctx, base, initrd, k, o.Peer, o.Daemons); err != nil {
		return fail(fmt.Errorf("initramfs for %s: %w", k.Release, err))
	}

	cfg := qemu.Config{
		Binary: o.QEMU, Kernel: k.Image, Initrd: initrd,
		Append:    agentArgs(o),
		MemoryMiB: o.MemoryMiB, CPUs: o.CPUs,
		RunDir:       runDir,
		StreamSocket: filepath.Join(runDir, "stream.sock"),
		PortName:     contract.PortName,
	}
	g := &guest{
		name: name, cfg: cfg, limits: results.DefaultLimits,
		timeout: o.Timeout, helloTimeout: o.HelloTimeout, logf: o.Logf,
		checks: checks, runs: o.Count, grace: resultGrace,
	}
	var note string
	plan := accelPlan(o.Accel, &note)
	if o.Accel == "auto" {
		g.kvmHelloTimeout = o.KVMHelloTimeout
	}
	o.Logf("%s: %s", name, k.Source)
	out, fallback, retried := bootKernel(ctx, g, plan, func(a qemu.Accel) string {
		return filepath.Join(o.OutDir, consoleName(index, name, a, a == plan[len(plan)-1]))
	})
	if fallback != "" {
		note = fallback
	}
	kr := out.kernel
	recordKernel(&kr, name, k)
	kr.Accel, kr.AccelNote, kr.Retried = string(out.accel), note, retried
	kr.ConsoleLog = filepath.Base(out.console)
	kr.Seconds = time.Since(start).Seconds()
	kr.Status = results.Pass
	if out.err != nil {
		kr.Status = results.Error
		kr.Error = fmt.Sprintf("%v (console: %s)", out.err, kr.ConsoleLog)
		kr.ConsoleTail = qemu.ConsoleTail(out.console, 20)
		o.Logf("%s: error: %s", name, kr.Error)
		for _, l := range kr.ConsoleTail[max(0, len(kr.ConsoleTail)-5):] {
			o.Logf("%s:   | %s", name, l)
		}
	}
	if kr.Config, err = k.ConfigOptions(); err != nil {
		o.Logf("%s: warning: %v; expectations fall back on the version", name, err)
	}
	// Expectations on a kernel that did not run would only be noise.
	if kr.Status == results.Pass {
		kr.Results = append(kr.Results, expect.Evaluate(&kr)...)
	}
	return kr
}

// recordKernel puts what the host knows of kernel k, asked for as name,
// into its result: the guest says its release, when it got that far.
func recordKernel(kr *results.Kernel, name string, k *kernels.Kernel) {
	kr.Name, kr.Source, kr.Unverified, kr.Missing = name, k.Source, k.Unverified, k.Missing
	if kr.Release == "" {
		kr.Release = k.Release
	}
}

// resultGrace is what a guest gets beyond a check's own time limit to
// report it: the agent abandons a check that overran after aborting its
// FUSE connections and waiting up to 10 s for it, and a TCG guest is slow.
const resultGrace = 30 * time.Second

// ErrSelection is returned (wrapped) by Run and Selected when a pattern
// selects nothing or does not compile: a usage error, found before
// anything boots.
var ErrSelection = errors.New("bad selection")

// Selected returns the checks a -run pattern selects, which every guest
// must then report, with those of each daemon named after them, daemon
// after daemon. A pattern that does not compile, or matches no check at all
// (the probes always run, but a pattern that names none of them nor
// anything else is a mistake), is an error.
func Selected(pattern string, daemons ...string) ([]contract.Check, error) {
	checks, err := contract.Select(pattern)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSelection, err)
	}
	re := regexp.MustCompile(pattern) // Select compiled it
	matched := slices.ContainsFunc(contract.Checks(), func(c contract.Check) bool { return re.MatchString(string(c.ID)) })
	for _, daemon := range daemons {
		dc, err := contract.DaemonChecks(daemon, pattern)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSelection, err)
		}
		checks = append(checks, dc...)
		matched = matched || len(dc) > 0
	}
	if pattern != "" && !matched {
		return nil, fmt.Errorf("%w: scenario pattern %q matches no check (-list prints what a pattern selects)", ErrSelection, pattern)
	}
	return checks, nil
}

// accelPlan lists the accelerators to try in order.
func accelPlan(accel string, note *string) []qemu.Accel {
	switch accel {
	case "kvm":
		return []qemu.Accel{qemu.KVM}
	case "tcg":
		return []qemu.Accel{qemu.TCG}
	}
	if ok, why := qemu.KVMUsable(); !ok {
		*note = "kvm not usable (" + why + "); ran under tcg"
		return []qemu.Accel{qemu.TCG}
	}
	return []qemu.Accel{qemu.KVM, qemu.TCG}
}

// agentArgs passes run options to the agent on the kernel command line.
// The user's arguments come last so that they can override ours.
func agentArgs(o Options) string {
	return strings.TrimSpace(o.Params.Cmdline() + " " + o.Append)
}

// writeInitrd appends the kernel's modules and their load order, the C
// NOOP peer if there is one, and the daemons with their descriptions, to
// the shared base image.
func writeInitrd(ctx context.Context, base, dst string, k *kernels.Kernel, peer string, daemons []*Daemon) error {
	load, _, err := k.Modules(kernels.GuestModules...)
	if err != nil {
		return err
	}
	var files []initramfs.File
	var order strings.Builder
	for _, m := range load {
		guestPath := contract.ModulePath(k.Release, m.Name)
		files = append(files, initramfs.File{Path: guestPath, Mode: 0o644, Open: m.Open})
		order.WriteString(guestPath + "\n")
	}
	files = append(files, initramfs.BytesFile(contract.ModuleList, []byte(order.String()), 0o644))
	if peer != "" {
		// Checked here: the overlay would only open it halfway through.
		if _, err := os.Stat(peer); err != nil {
			return fmt.Errorf("C NOOP peer: %w", err)
		}
		files = append(files, initramfs.HostFile(contract.PeerPath, peer, 0o755))
	}
	dfiles, err := allDaemonFiles(daemons)
	if err != nil {
		return err
	}
	return initramfs.Overlay(ctx, base, dst, append(files, dfiles...))
}

// daemonNames checks each daemon and returns their names, which must
// differ: each daemon's results are under daemon/NAME/.
func daemonNames(daemons []*Daemon) ([]string, error) {
	var names []string
	for _, d := range daemons {
		if err := d.Check(); err != nil {
			return nil, err
		}
		if slices.Contains(names, d.Name) {
			return nil, fmt.Errorf("two daemons are called %s: their results would share daemon/%s/ (name one with -daemon-name or name =)", d.Name, d.Name)
		}
		names = append(names, d.Name)
	}
	return names, nil
}

// allDaemonFiles are the files of every daemon, with each one's description:
// an entry that two daemons share (a library both link, a root both run
// in) goes in once, and two different files at one guest path are an
// error naming both daemons.
func allDaemonFiles(daemons []*Daemon) ([]initramfs.File, error) {
	var out []initramfs.File
	owner := map[string]int{} // guest path → index in out
	whose := map[string]string{}
	for _, d := range daemons {
		spec, err := json.Marshal(d.DaemonSpec)
		if err != nil {
			return nil, err
		}
		for _, f := range append(slices.Clip(d.Files), initramfs.BytesFile(contract.DaemonSpecFile(d.Name), spec, 0o644)) {
			if i, ok := owner[f.Path]; ok {
				if out[i].Same(f) {
					continue
				}
				return nil, fmt.Errorf("daemons %s and %s both need %s in the guest, as different files", whose[f.Path], d.Name, f.Path)
			}
			owner[f.Path], whose[f.Path] = len(out), d.Name
			out = append(out, f)
		}
	}
	return out, nil
}

// writer keeps the run summary on disk up to date as kernels finish.
type writer struct {
	mu      sync.Mutex
	dir     string
	reports map[string]func(io.Writer, *results.Run) error
	run     *results.Run
	err     error
}

func (w *writer) set(i int, k results.Kernel) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.run.Kernels[i] = k
	w.flush()
}

func (w *writer) finish() *results.Run {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.run.Finished = time.Now().UTC()
	w.flush()
	return w.run
}

// flush rewrites the summary files; each is replaced atomically so a
// reader never sees half a file.
func (w *writer) flush() {
	errs := []error{WriteFile(filepath.Join(w.dir, "results.json"), func(f io.Writer) error { return results.WriteJSON(f, w.run) })}
	for _, name := range slices.Sorted(maps.Keys(w.reports)) {
		errs = append(errs, WriteFile(filepath.Join(w.dir, name), func(f io.Writer) error { return w.reports[name](f, w.run) }))
	}
	w.err = errors.Join(errs...)
}

// WriteFile replaces path with what write writes, through a temporary
// file in the same directory and a rename, so that a reader (a browser, a
// CI step, a second fusematrix) never sees half a file.
func WriteFile(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// hostCPUModel is the first "model name" of /proc/cpuinfo, "" where there
// is none (another OS, an architecture that names it otherwise).
func hostCPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	return cpuModel(io.LimitReader(f, 1<<20))
}

// cpuModel reads the first "model name" line of a /proc/cpuinfo.
func cpuModel(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// Checks are the checks o selects: its -run pattern's and its daemons'
// (Selected).
func (o *Options) Checks() ([]contract.Check, error) {
	var names []string
	for _, d := range o.Daemons {
		names = append(names, d.Name)
	}
	return Selected(o.Run, names...)
}

// CheckBench says why o's selection is no benchmark: it selects no
// benchmark cell, since cells are selected only by a pattern that names
// them. A selection that fails is Run's to report, as for every command.
func (o *Options) CheckBench() error {
	checks, err := o.Checks()
	if err != nil || slices.ContainsFunc(checks, func(c contract.Check) bool { return c.Kind == results.Benchmark }) {
		return nil
	}
	return fmt.Errorf("-run %q selects no benchmark cell: cells are selected only by a pattern that names them, one that starts with bench (^bench/ selects every mode's cells, a daemon's too) or names daemon/NAME/bench/ (-list prints what a pattern selects)", o.Run)
}

// NeedsPeer says whether o selects a cell that measures the C NOOP peer.
func (o *Options) NeedsPeer() bool {
	checks, _ := o.Checks()
	return slices.ContainsFunc(checks, func(c contract.Check) bool {
		cell, ok := contract.ParseCell(c.ID)
		return ok && cell.Mode == contract.LibfuseNoop
	})
}

// DefaultSource sets SourceDir, when empty, to the checkout FindSource
// finds.
func (o *Options) DefaultSource() error {
	if o.SourceDir != "" {
		return nil
	}
	dir, err := FindSource()
	o.SourceDir = dir
	return err
}

// FindSource walks up from the working directory to the fusematrix
// module, whose source the guest agent is compiled from.
func FindSource() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/fusematrix/fusematrix\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no fusematrix source above %s: the guest agent is built from source, so run fusematrix inside its checkout or pass -src", dir)
		}
	}
}

// DefaultPeer is where `make peer` leaves the C NOOP peer, in the source
// checkout.
const DefaultPeer = "bin/fusematrix-nullfs"

// FindPeer returns the absolute path of the C NOOP peer for the guests,
// or "" for none, and a note saying which. The default binary (peer not
// explicit) is optional and looked for in the source checkout (src, else
// the one above the working directory); one named explicitly must exist.
func FindPeer(peer string, explicit bool, src string) (path, note string, err error) {
	if !explicit && !filepath.IsAbs(peer) {
		if src == "" {
			src, _ = FindSource()
		}
		if src != "" {
			peer = filepath.Join(src, peer)
		}
	}
	if peer == "" {
		return "", "no C NOOP peer (-peer is empty); the libfuse NOOP cells skip", nil
	}
	if _, err := os.Stat(peer); err != nil {
		if explicit {
			return "", "", err
		}
		return "", fmt.Sprintf("no C NOOP peer: %s is absent (make peer builds it); the libfuse NOOP cells skip", peer), nil
	}
	abs, err := filepath.Abs(peer)
	if err != nil {
		return "", "", err
	}
	return abs, fmt.Sprintf("C NOOP peer %s goes into each guest", peer), nil
}
