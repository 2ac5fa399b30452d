// Package cli holds the flags fusematrix's commands share and what they
// fill in: a run of the harness (harness.Options: where results go, the
// accelerator, QEMU, the guests, the checks selected, a bisection step's
// boots), where kernels come from (kernels.Options: the mirror, the
// keyring policy, the catalog, -matrix and the kernels it selects), users'
// daemons (daemon.go: -daemon, clients, the -daemon-* flags over a
// description), and the progress log that -q silences. Each subcommand of
// harness/cmd/fusematrix registers them on its own flag set, so that one
// flag means one thing, spelled once, in every command that takes it.
//
// What those flags lead to is here too: a booting command's run and the
// reports beside its results.json (boot.go), flag sets whose -h ends with
// a page of docs/ and the parsing commands share (flagset.go), and the
// errors every command ends with, printed once with one rule for the exit
// status (exit.go).
//
// It imports harness, harness/daemonspec, harness/debdaemon,
// harness/predicate, harness/report, kernels, kernels/debian (what a
// network error is), results and results/contract; nothing imports it
// but the command.
package cli

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/kernels"
)

// BootFlags registers the flags of every command that boots kernels, out
// the default of -out, and returns the -q flag.
func BootFlags(fs *flag.FlagSet, o *harness.Options, out string) *bool {
	fs.StringVar(&o.OutDir, "out", out, "results `folder`")
	fs.IntVar(&o.Jobs, "j", 1, "guests to run at once (benchmarks are noisier when guests share cores)")
	fs.StringVar(&o.Accel, "accel", "auto", "accelerator: auto (KVM when a guest proves it works, else TCG), kvm or tcg")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "limit for one kernel's boot and run")
	mirrorFlag(fs, &o.Kernel)
	insecureFlag(fs, &o.Kernel)
	fs.StringVar(&o.QEMU, "qemu", "", "QEMU `binary` (default qemu-system-x86_64)")
	fs.StringVar(&o.SourceDir, "src", "", "fusematrix source `folder` the guest agent is built from (default: found from the working directory)")
	fs.IntVar(&o.MemoryMiB, "memory", 2048, "guest memory in `MiB`")
	fs.IntVar(&o.CPUs, "cpus", 2, "guest vCPUs")
	appendFlag(fs, o, "extra kernel command line `args` for every guest (repeatable: the values are joined)")
	fs.IntVar(&o.Count, "count", 1, "run each scenario `N` times; disagreeing runs are reported as flaky (probes run once)")
	fs.StringVar(&o.Run, "run", "", "run only scenarios whose id matches this `regexp` (probes always run)")
	fs.Func("scenario", "alias of -run: run only scenarios whose id matches this `regexp`", func(s string) error {
		o.Run = s
		return nil
	})
	return quietFlag(fs)
}

// StepFlags registers what a bisection step's boots need and returns the
// -q flag.
func StepFlags(fs *flag.FlagSet, o *harness.Options) *bool {
	fs.StringVar(&o.OutDir, "out", filepath.Join("out", "bisect"), "`folder` for bisect.json, bisect.md and each step's results")
	fs.StringVar(&o.Accel, "accel", "auto", "accelerator: auto, kvm or tcg")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "limit for one step's boot and run")
	mirrorFlag(fs, &o.Kernel)
	fs.StringVar(&o.QEMU, "qemu", "", "QEMU `binary` (default qemu-system-x86_64)")
	fs.StringVar(&o.SourceDir, "src-agent", "", "fusematrix source `folder` the guest agent is built from (default: found from the working directory)")
	appendFlag(fs, o, "extra kernel command line `args` for every guest (repeatable)")
	return quietFlag(fs)
}

// StepSetup fills in what a bisection step's boots need beyond the flags
// (StepFlags), as Boot does for a command's run.
func StepSetup(o *harness.Options, quiet bool) error {
	o.Reports = Reports
	o.Logf = Progress(quiet)
	o.Kernel.Logf = o.Logf
	return o.DefaultSource()
}

// appendFlag registers -append. Repeatable, because a second -append
// silently replacing the first loses a setting without a word.
func appendFlag(fs *flag.FlagSet, o *harness.Options, usage string) {
	fs.Func("append", usage, func(s string) error {
		o.Append = strings.TrimSpace(o.Append + " " + s)
		return nil
	})
}

// ListFlag registers -list, which prints the checks a run would report.
func ListFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("list", false, "print the ids of the checks this selection (-run, -daemon) runs on each kernel, and boot nothing")
}

// SourceFlags registers the flags that say where kernels come from, and
// returns the -q flag.
func SourceFlags(fs *flag.FlagSet, o *kernels.Options) *bool {
	mirrorFlag(fs, o)
	insecureFlag(fs, o)
	return quietFlag(fs)
}

func mirrorFlag(fs *flag.FlagSet, o *kernels.Options) {
	fs.StringVar(&o.Mirror, "mirror", "", "Debian mirror `URL` (default: $FUSEMATRIX_MIRROR, else the machine's apt sources)")
}

// insecureFlag registers -insecure-unsigned, the one way to fetch kernels
// without the Debian archive keyring.
func insecureFlag(fs *flag.FlagSet, o *kernels.Options) {
	fs.BoolVar(&o.InsecureUnsigned, "insecure-unsigned", false, "without a Debian archive keyring (debian-archive-keyring), use the archive's indexes "+
		"unsigned instead of failing; each kernel's result then says it is unverified")
}

func quietFlag(fs *flag.FlagSet) *bool { return fs.Bool("q", false, "no progress lines") }

// Kernels is what -matrix and -catalog choose.
type Kernels struct {
	Matrix, Catalog string
}

// MatrixFlags registers -matrix and -catalog on a command that takes
// kernel names.
func MatrixFlags(fs *flag.FlagSet) *Kernels {
	k := &Kernels{}
	fs.StringVar(&k.Matrix, "matrix", "default", "run this `matrix` of the catalog (kernel names given as arguments replace it)")
	CatalogFlag(fs, &k.Catalog)
	return k
}

// CatalogFlag registers -catalog.
func CatalogFlag(fs *flag.FlagSet, file *string) {
	fs.StringVar(file, "catalog", "", "catalog `file` layered over the built-in one (default: $"+kernels.CatalogEnv+
		", else fusematrix/catalog.conf in the user's config directory when it exists)")
}

// Select returns the kernels named as arguments, else those of k's
// matrix, and where they come from (kernels.Catalog.Select); it sets
// o.Catalog to the catalog in effect, whose named kernels either may use.
func (k *Kernels) Select(args []string, o *kernels.Options) ([]string, string, error) {
	c, err := kernels.UserCatalog(k.Catalog)
	if err != nil {
		return nil, "", err
	}
	o.Catalog = c
	return c.Select(k.Matrix, args)
}

// SelectKernels registers on fs the flags of a command that takes kernel
// names (-matrix, -catalog, where kernels come from, -q), parses args,
// and returns the kernels they name, from a matrix or the arguments, the
// options that fetch them, and where they come from (Kernels.Select).
func SelectKernels(fs *flag.FlagSet, args []string) ([]string, kernels.Options, string, error) {
	matrix := MatrixFlags(fs)
	var o kernels.Options
	quiet := SourceFlags(fs, &o)
	if err := fs.Parse(args); err != nil {
		return nil, o, "", Status(2)
	}
	names, source, err := matrix.Select(fs.Args(), &o)
	if err != nil {
		return nil, o, "", err
	}
	o.Logf = Progress(*quiet)
	return names, o, source, nil
}

// Progress is a command's progress log: lines on stderr stamped with the
// time since it began, safe to call from every guest's goroutine; nothing
// when quiet.
func Progress(quiet bool) func(string, ...any) {
	if quiet {
		return func(string, ...any) {}
	}
	var mu sync.Mutex
	start := time.Now()
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stderr, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
}

// IsSet says whether the flag name was given.
func IsSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}
