package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/harness/bisect"
	"github.com/fusematrix/fusematrix/harness/cli"
	"github.com/fusematrix/fusematrix/kernels"
)

const bisectUsage = `usage:
  fusematrix bisect -good KERNEL -bad KERNEL [-repeat N] [-out DIR] [-resume] PREDICATE
  fusematrix bisect -src DIR -good REV -bad REV [-base tinyconfig] [-repeat N] [-out DIR] PREDICATE
  fusematrix bisect run [-repeat N] -kernel KERNEL PREDICATE   (for git bisect run)

Finds the first packaged kernel from -good to -bad (every build of that
flavour the suites carry, in Debian version order), or with -src the first
commit of a Linux git tree (the first-parent line from -good to -bad, each
built with the project's config fragment in a worktree fusematrix owns,
incrementally, and cached by commit), whose results show the new behaviour
PREDICATE names; a commit that does not build or boot is skipped:

  ID=STATUS               pt/integrity=fail, passthrough-read!=pass
  ID.FACT OP VALUE        passthrough-ioctl.o_path=ok, fuse-init.protocol>=7.41,
                          fuse-init.fuse_minor>=41, fuse-init.flag.passthrough=offered
  ID:METRIC OP NUMBER     bench/read/passthrough/131072:ratio_native<0.8

OP is one of = != < <= > >=. Both ends are checked first. Each step boots
one kernel and runs only the check PREDICATE reads (and the probes).
-out (default out/bisect) receives bisect.json and bisect.md after every
step; -resume continues an interrupted bisection from them, judging each
logged step again from the results it stored (a log that does not match
them, or this bisection, is refused).

Exit status: 0 a first kernel was found, 1 the ends do not bracket a
change, or they or every candidate between them could not be judged, 2
bad input (a refused -resume log too), 130 interrupted. 'bisect run'
speaks git bisect run's protocol instead: 0 old (good), 1 new (bad), 125
cannot say (skip), 128 cannot run at all.
`

// What bisect reaches beyond this process: the Debian mirror for the
// candidates and QEMU for each step. Variables only so that the tests'
// binary (bisect_test.go, fakeBisect) can stand in for both and run the
// command end to end; nothing else sets them.
var (
	packagedHistory               = kernels.History
	stepRunner      bisect.Runner = harness.Run
)

func bisectCmd(args []string) error {
	if len(args) > 0 && args[0] == "run" {
		return bisectRun(args[1:])
	}
	fs := newFlagSet("bisect", bisectUsage)
	o := harness.Options{}
	quiet := cli.StepFlags(fs, &o)
	good := fs.String("good", "", "the last kernel known to lack the new behaviour (a selector, e.g. debian:6.1/cloud@bookworm)")
	bad := fs.String("bad", "", "a kernel known to show it")
	repeat := fs.Int("repeat", 1, "boots per step; docs/bisect.md#verdict-rules says how runs that disagree decide")
	resume := fs.Bool("resume", false, "continue the bisection recorded in -out, judging no step twice")
	src := fs.String("src", "", "a Linux git `tree`: bisect its commits; -good and -bad are then revisions")
	base := fs.String("base", "tinyconfig", "with -src: the config each commit is built from before the fragment (defconfig, tinyconfig or a file)")
	catalog := ""
	cli.CatalogFlag(fs, &catalog)
	pred, err := cli.ParsePredicate(fs, args, bisectUsage)
	if err != nil {
		return err
	}
	if *good == "" || *bad == "" || *repeat < 1 || *repeat > bisect.MaxRepeat {
		return cli.Usagef("-good and -bad are required, -repeat from 1 to %d\n\n%s", bisect.MaxRepeat, bisectUsage)
	}
	c, err := kernels.UserCatalog(catalog)
	if err != nil {
		return err
	}
	o.Kernel.Catalog = c
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cli.StepSetup(&o, *quiet); err != nil {
		return err
	}
	setup, err := bisect.Plan(ctx, *src, *good, *bad, *base, pred, o.Kernel, packagedHistory)
	if errors.Is(err, bisect.ErrInput) {
		return cli.Usagef("%v", err)
	}
	if err != nil {
		return err
	}
	o.Logf("bisect: %s", setup.Summary)
	r, err := bisect.Bisect(ctx, bisect.Options{
		Predicate: pred, Good: *good, Bad: *bad, Candidates: setup.Candidates,
		Repeat: *repeat, Dir: o.OutDir, Resume: *resume,
		Judge:   bisect.BootWith(stepRunner, o, pred, setup.Kernel),
		Command: setup.Command,
		Logf:    o.Logf,
	})
	if errors.Is(err, bisect.ErrInput) {
		return cli.Usagef("%v", err)
	}
	if r != nil {
		bisect.Summary(os.Stdout, r, o.OutDir)
	}
	if err != nil {
		if ctx.Err() != nil {
			return cli.Failf(130, "interrupted; resume with -resume -out %s", o.OutDir)
		}
		return err
	}
	if r.Outcome != "found" {
		return cli.Status(1)
	}
	return nil
}

// bisectRun judges one kernel for git bisect run: 0 old, 1 new, 125
// cannot say, 128 cannot run at all.
func bisectRun(args []string) error {
	fs := newFlagSet("bisect run", bisectUsage)
	o := harness.Options{}
	quiet := cli.StepFlags(fs, &o)
	kernel := fs.String("kernel", "", "the kernel to judge (a selector, a path, or src:DIR for the tree git bisect checked out)")
	repeat := fs.Int("repeat", 1, "boots; docs/bisect.md#verdict-rules says how runs that disagree decide")
	pred, err := cli.ParsePredicate(fs, args, bisectUsage)
	if err != nil {
		// git bisect run takes 2 for a verdict: anything it cannot use is 128.
		var ce cli.Error
		if errors.As(err, &ce) {
			ce.Code = 128
			return ce
		}
		return cli.Status(128)
	}
	if *kernel == "" || *repeat < 1 || *repeat > bisect.MaxRepeat {
		return cli.Failf(128, "-kernel is required, -repeat from 1 to %d", bisect.MaxRepeat)
	}
	if err := cli.StepSetup(&o, *quiet); err != nil {
		return cli.Failf(128, "%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := bisect.Judged(ctx, bisect.Options{Predicate: pred, Repeat: *repeat, Judge: bisect.BootWith(stepRunner, o, pred, bisect.PackagedKernel)},
		bisect.Candidate{Selector: *kernel})
	if err != nil {
		return cli.Failf(128, "%v", err)
	}
	fmt.Printf("%s: %s: %s\n", *kernel, st.Verdict, strings.Join(st.Evidences(), "; "))
	if s := st.Verdict.GitStatus(); s != 0 {
		return cli.Status(s)
	}
	return nil
}
