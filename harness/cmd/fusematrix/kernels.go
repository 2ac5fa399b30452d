package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fusematrix/fusematrix/harness/bisect"
	"github.com/fusematrix/fusematrix/harness/cli"
	"github.com/fusematrix/fusematrix/harness/daemonspec"
	"github.com/fusematrix/fusematrix/kernels"
)

const kernelsUsage = `usage: fusematrix kernels <command> [flags]

commands:
  list [-matrix NAME] [kernel …]    what each kernel name resolves to, whether it is cached, its size;
                                    -format json for programs (one object per kernel with a cache_key)
  list -history KERNEL [KERNEL]     every packaged build of KERNEL's series (or from the first kernel
                                    to the second) the suites carry, in Debian version order
  fetch [-matrix NAME] [kernel …]   download and unpack kernels now; cached ones are checked file by file
  prune [-all]                      remove cached kernels no matrix of the catalog uses (all with -all)
                                    and files left by interrupted runs
  matrices                          the catalog's matrices, named kernels and daemons, and the file of each
  build [-base B] [-j N] -src DIR   build the kernel of a Linux source tree with kernels/fuse.config
                                    applied (base defconfig, tinyconfig or a file), cached by source
                                    state, fragment and base; boot it as src:DIR[,base=B]

Kernel names are given as arguments or taken from a matrix of the catalog
(kernels/catalog.conf; -matrix all is every kernel of every matrix). A
catalog file of your own (-catalog FILE, else $FUSEMATRIX_CATALOG, else
fusematrix/catalog.conf in the user's config directory) is layered over the
built-in one: its matrices and named kernels replace those of the same name.
`

func kernelsCmd(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := errors.New("which one? list, fetch, prune, matrices or build")
	if len(args) > 0 {
		switch args[0] {
		case "list", "ls":
			return kernelsList(ctx, args[1:], os.Stdout)
		case "fetch":
			return kernelsFetch(ctx, args[1:], os.Stdout)
		case "prune":
			return kernelsPrune(ctx, args[1:], os.Stdout)
		case "matrices":
			return kernelsMatrices(args[1:], os.Stdout)
		case "build":
			return kernelsBuild(ctx, args[1:], os.Stdout)
		case "-h", "-help", "--help", "help":
			fmt.Print(kernelsUsage)
			fmt.Println(docLine("kernels"))
			return nil
		}
		err = fmt.Errorf("unknown command %q", args[0])
	}
	return cli.Error{Code: 2, Err: err, More: "\n" + kernelsUsage + docLine("kernels") + "\n"}
}

func kernelsList(ctx context.Context, args []string, out io.Writer) error {
	var history bool
	var format string
	fs := newFlagSet("kernels list", "")
	fs.BoolVar(&history, "history", false, "list every packaged build of the kernel's series, or from the first kernel to the second, in version order")
	fs.StringVar(&format, "format", "table", "output: table, or json (one object per kernel with its cache_key, for CI job matrices)")
	names, o, source, err := cli.SelectKernels(fs, args)
	if err != nil {
		return err
	}
	switch {
	case format != "table" && format != "json":
		return cli.Usagef("-format %q: want table or json", format)
	case history && format != "table":
		return cli.Usagef("-history prints a table only")
	case history:
		return kernelsHistory(ctx, names, source, o, out)
	case format == "json":
		return kernelsListJSON(ctx, names, source, o, out)
	}
	if source != "" {
		fmt.Fprintf(out, "%s\n\n", source)
	}
	l, errs := kernels.ListAll(ctx, source, names, o)
	if err := l.WriteTable(out, errs); err != nil {
		return err
	}
	if errs != nil {
		return cli.Status(1)
	}
	return nil
}

// kernelsListJSON writes the kernels as a kernels.List, or, when any of
// them does not resolve, nothing on out and every error on stderr.
func kernelsListJSON(ctx context.Context, names []string, source string, o kernels.Options, out io.Writer) error {
	l, errs := kernels.ListAll(ctx, source, names, o)
	if ctx.Err() != nil {
		return cli.Failf(130, "interrupted")
	}
	return l.WriteJSON(out, errs)
}

func kernelsFetch(ctx context.Context, args []string, out io.Writer) error {
	names, o, _, err := cli.SelectKernels(newFlagSet("kernels fetch", ""), args)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		start := time.Now()
		k, err := kernels.Fetch(ctx, name, o)
		if err != nil {
			fmt.Fprintf(out, "%s: error: %v\n", name, err)
			errs = append(errs, err)
			if ctx.Err() != nil {
				return cli.Status(130)
			}
			continue
		}
		fmt.Fprintf(out, "%s: %s, release %s (%.1fs)\n", name, k.Source, k.Release, time.Since(start).Seconds())
	}
	if len(errs) > 0 {
		return cli.Status(1)
	}
	return nil
}

func kernelsPrune(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("kernels prune", "usage: fusematrix kernels prune [flags]\n\nFlags:\n")
	all := fs.Bool("all", false, "remove every cached kernel, not only those no matrix uses, and built kernels and unpacked sources")
	var o kernels.Options
	quiet := cli.SourceFlags(fs, &o)
	var catalog string
	cli.CatalogFlag(fs, &catalog)
	if err := fs.Parse(args); err != nil {
		return cli.Status(2)
	}
	c, err := kernels.UserCatalog(catalog)
	if err != nil {
		return err
	}
	o.Catalog = c
	if fs.NArg() > 0 {
		return cli.Usagef("takes no kernel names (it keeps every kernel of the catalog)")
	}
	o.Logf = cli.Progress(*quiet)
	pruned, err := kernels.Prune(ctx, append(c.Selectors(), c.Kernels()...), *all, o)
	var total int64
	for _, p := range pruned {
		total += p.Bytes
		fmt.Fprintf(out, "removed %s (%s, %s)\n", p.Path, kernels.Megabytes(p.Bytes), p.Why)
	}
	fmt.Fprintf(out, "freed %s\n", kernels.Megabytes(total))
	return err
}

func kernelsMatrices(args []string, out io.Writer) error {
	fs := newFlagSet("kernels matrices", "usage: fusematrix kernels matrices\n")
	var catalog string
	cli.CatalogFlag(fs, &catalog)
	if err := fs.Parse(args); err != nil {
		return cli.Status(2)
	}
	if fs.NArg() > 0 {
		return cli.Usagef("takes no arguments")
	}
	c, err := kernels.UserCatalog(catalog)
	if err != nil {
		return err
	}
	return c.WriteSummary(out, daemonspec.Program)
}

// kernelsHistory lists the builds a packaged bisection would step through.
func kernelsHistory(ctx context.Context, names []string, source string, o kernels.Options, out io.Writer) error {
	if source != "" || len(names) > 2 {
		return cli.Usagef("-history: give one kernel (its series) or two (good and bad)")
	}
	to := ""
	if len(names) == 2 {
		to = names[1]
	}
	builds, err := kernels.History(ctx, names[0], to, o)
	if err != nil {
		return err
	}
	if err := kernels.WriteHistory(out, builds); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%d builds; a bisection over them boots about %d\n", len(builds), bisect.Boots(len(builds)))
	return nil
}
