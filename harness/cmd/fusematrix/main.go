// Command fusematrix boots a matrix of Linux kernels in QEMU and reports
// what FUSE, and FUSE passthrough in particular, does on each. It holds
// flags and printing; the work is done by the packages under harness/,
// kernels/ and results/.
//
//	fusematrix matrix [flags] [kernel …]
//	fusematrix bench [flags] [kernel …]
//	fusematrix bench -from results.json
//	fusematrix caps [flags] [kernel …]
//	fusematrix caps -from results.json
//	fusematrix kernels list|fetch|prune|matrices [flags] [kernel …]
//	fusematrix kernels build [-base B] [-j N] -src DIR
//	fusematrix bisect -good KERNEL -bad KERNEL [-repeat N] [-out DIR] PREDICATE
//	fusematrix bisect run -kernel KERNEL PREDICATE
//	fusematrix compare [-format F] [-threshold F] OLD NEW
//	fusematrix merge [-out DIR] RUN…
//	fusematrix shell [flags] KERNEL
//
// Exit status: 0 done, 1 a kernel or a check failed (compare: a
// regression), 2 bad input (flags, arguments, files no fusematrix wrote),
// 130 interrupted; bisect run speaks git bisect run's codes.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/harness/cli"
	"github.com/fusematrix/fusematrix/harness/report"
	"github.com/fusematrix/fusematrix/results"
)

const usage = `usage: fusematrix <command> [flags]

commands:
  matrix [flags] [kernel …]   boot each kernel, run probes, scenarios and benchmarks, write reports
  bench [flags] [kernel …]    boot each kernel, run the throughput cells (bench/<op>/<mode>/<block>),
                              print MB/s and the ratio to native per kernel, write bench.svg, bench.png
                              and report.html next to results.json
  bench -from results.json    the same table, chart and report from an earlier run, without booting
  caps [flags] [kernel …]     boot each kernel, run the probes only, print the kernel × FUSE capability
                              table with the expectations derived from each kernel's config or version
  caps -from results.json     print the capability table of an earlier run without booting anything
  kernels list|fetch|prune    the kernel catalog and cache: what names resolve to, pre-fetch, clean up
  kernels build -src DIR      build a kernel from a source tree with the project's config fragment
  bisect -good K -bad K PRED  find the first packaged kernel whose results show PRED
                              ('fusematrix bisect -h'); 'bisect run' serves git bisect run
  compare OLD NEW             what changed between two runs (results.json or their folders): status
                              regressions and fixes, capabilities, probe facts, throughput beyond the
                              noise; exit 1 when anything regressed ('fusematrix compare -h')
  shell KERNEL                boot one guest and give you its console: a shell, the loopback mounted
                              at /mnt/fuse, 'fusematrix-agent run ID' for one check ('fusematrix shell -h')
  merge [-out DIR] RUN…       join runs made on different machines (a nightly's shards) into one
                              results.json, junit.xml and report.html ('fusematrix merge -h')

Kernels are selectors such as debian:6.12/cloud or paths to a kernel image
(./bzImage[,modules=DIR][,config=FILE]) or source trees built on the way
(src:DIR[,base=defconfig|tinyconfig|FILE]); without any, the catalog's matrix
-matrix names runs: default (Debian 12's newest 6.1 and 6.12 cloud kernels)
or wide (every series Debian carries). 'fusematrix kernels matrices' lists them.
A catalog of your own (-catalog FILE, $FUSEMATRIX_CATALOG or
~/.config/fusematrix/catalog.conf) adds or replaces matrices and named kernels.
Run 'fusematrix matrix -h' or 'fusematrix caps -h' for the flags.
`

// commands are fusematrix's commands.
var commands = map[string]func([]string) error{
	"matrix":  matrix,
	"run":     matrix,
	"bench":   bench,
	"caps":    caps,
	"kernels": kernelsCmd,
	"bisect":  bisectCmd,
	"compare": compareCmd,
	"merge":   mergeCmd,
	"shell":   shellCmd,
}

// docPages name the page of docs/ that explains each command (and the
// subcommands whose page is not their command's), which its -h names last.
var docPages = map[string]string{
	"matrix":        "docs/checks.md",
	"run":           "docs/checks.md",
	"bench":         "docs/bench.md",
	"caps":          "docs/checks.md#the-capability-map-caps",
	"kernels":       "docs/kernels.md",
	"kernels build": "docs/kernels.md#kernels-from-a-source-tree",
	"bisect":        "docs/bisect.md",
	"bisect run":    "docs/bisect.md#let-git-bisect-drive-bisect-run",
	"compare":       "docs/compare.md",
	"merge":         "docs/compare.md#merge-shards",
	"shell":         "docs/shell.md",
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	name := os.Args[1]
	switch name {
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "fusematrix: unknown command %q\n\n%s", name, usage)
		os.Exit(2)
	}
	os.Exit(cli.Exit(os.Stderr, commandName(os.Args[1:]), cmd(os.Args[2:])))
}

// commandName is the command args (os.Args[1:]) run, with its
// subcommand where it has them: "kernels list", "bisect run".
func commandName(args []string) string {
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
		switch {
		case args[0] == "kernels", args[0] == "bisect" && args[1] == "run":
			return args[0] + " " + args[1]
		}
	}
	return args[0]
}

// newFlagSet returns the flag set of the command name ("matrix", "kernels
// list") whose -h ends with the page of docs/ that explains it
// (cli.NewFlagSet).
func newFlagSet(name, text string, hidden ...string) *flag.FlagSet {
	return cli.NewFlagSet(name, text, docLine(name), hidden...)
}

// docLine names the page of docs/ that explains the command name.
func docLine(name string) string {
	page, ok := docPages[name]
	if !ok {
		first, _, _ := strings.Cut(name, " ")
		page = docPages[first]
	}
	return "\nExplained in " + page + " (fusematrix's source tree)."
}

func matrix(args []string) error {
	fs := newFlagSet("matrix", "")
	o := harness.Options{}
	quiet := cli.BootFlags(fs, &o, filepath.Join("out", "matrix"))
	matrixName := cli.MatrixFlags(fs)
	daemon := cli.DaemonFlags(fs)
	fs.IntVar(&o.BenchMiB, "bench-mib", 256, "size of the file benchmarks read, in MiB")
	list := cli.ListFlag(fs)
	if err := fs.Parse(args); err != nil {
		return cli.Status(2)
	}
	var err error
	if err = daemon.ResolveInto(fs, &o, matrixName.Catalog, *quiet); err != nil {
		return err
	}
	if *list {
		return cli.ListChecks(os.Stdout, o)
	}
	if o.Kernels, _, err = matrixName.Select(fs.Args(), &o.Kernel); err != nil {
		return err
	}
	return cli.Boot(o, *quiet, func(run *results.Run) error {
		fmt.Println()
		// Several daemons: their table instead of their columns.
		if err := report.TableWith(os.Stdout, run, report.Options{DaemonsApart: len(o.Daemons) > 1}); err != nil {
			return err
		}
		fmt.Println()
		if len(o.Daemons) > 0 {
			if err := report.Clients(os.Stdout, run); err != nil {
				return err
			}
			fmt.Println()
		}
		return cli.WriteHTMLReport(o.OutDir, run, os.Stdout)
	}, os.Stdout)
}
