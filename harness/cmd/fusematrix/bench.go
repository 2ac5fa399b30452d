package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/harness/cli"
	"github.com/fusematrix/fusematrix/harness/report"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// benchRenderers are the bench -format values.
var benchRenderers = map[string]func(io.Writer, *results.Run) error{
	"table":    report.Bench,
	"markdown": report.BenchMarkdown,
}

// bench is matrix restricted to the benchmark cells, with their table,
// chart and HTML report.
func bench(args []string) error {
	fs := newFlagSet("bench", "")
	o := harness.Options{}
	quiet := cli.BootFlags(fs, &o, filepath.Join("out", "bench"))
	matrixName := cli.MatrixFlags(fs)
	fs.IntVar(&o.BenchRuns, "runs", contract.DefaultBenchRuns, "times each cell measures; the table shows the median")
	fs.BoolVar(&o.Profile, "profile", false, "profile the NOOP and classic servers in the guest; each cell's log gets the top functions")
	fs.IntVar(&o.BenchMiB, "bench-mib", 0, "cap on the bytes one run moves, in `MiB` (default: scaled by block size and runs)")
	peer := fs.String("peer", harness.DefaultPeer, "C NOOP peer `binary` (make peer builds it) put into each guest as the reference for the Go NOOP server; empty for none")
	format := fs.String("format", "table", "output: table or markdown")
	from := fs.String("from", "", "render this `results.json` of an earlier run instead of booting kernels; the chart and report land next to it unless -out is given")
	daemon := cli.DaemonFlags(fs)
	list := cli.ListFlag(fs)
	if err := fs.Parse(args); err != nil {
		return cli.Status(2)
	}
	render, ok := benchRenderers[*format]
	if !ok {
		return cli.Usagef("-format %q: want table or markdown", *format)
	}
	// The paths of the files written go where they do not spoil
	// Markdown meant for a step summary.
	info := io.Writer(os.Stdout)
	if *format != "table" {
		info = os.Stderr
	}
	if *from != "" {
		run, err := cli.ReadFrom(fs, *from, "from", "format", "q", "out")
		if err != nil {
			return err
		}
		dir := filepath.Dir(*from)
		if cli.IsSet(fs, "out") {
			dir = o.OutDir
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("bench: %w", err)
			}
		}
		if err := render(os.Stdout, run); err != nil {
			return err
		}
		return cli.WriteBenchReports(dir, run, info)
	}
	if o.Run == "" {
		o.Run = "^" + contract.BenchPrefix
	}
	var err error
	if err = daemon.ResolveInto(fs, &o, matrixName.Catalog, *quiet); err != nil {
		return err
	}
	if err := o.CheckBench(); err != nil {
		return cli.Usagef("%v", err)
	}
	if *list {
		return cli.ListChecks(os.Stdout, o)
	}
	if o.Kernels, _, err = matrixName.Select(fs.Args(), &o.Kernel); err != nil {
		return err
	}
	// The C peer only matters to the cells that measure it.
	if o.NeedsPeer() || cli.IsSet(fs, "peer") {
		if o.Peer, err = benchPeer(fs, *peer, o.SourceDir, *quiet); err != nil {
			return err
		}
	}
	return cli.Boot(o, *quiet, func(run *results.Run) error {
		if *format == "table" {
			fmt.Println()
		}
		if err := render(os.Stdout, run); err != nil {
			return err
		}
		return cli.WriteBenchReports(o.OutDir, run, info)
	}, info)
}

// benchPeer returns the absolute path of the C NOOP peer for the guests,
// or "" for none, and says which on stderr unless quiet
// (harness.FindPeer).
func benchPeer(fs *flag.FlagSet, peer, src string, quiet bool) (string, error) {
	path, note, err := harness.FindPeer(peer, cli.IsSet(fs, "peer"), src)
	if err != nil {
		return "", fmt.Errorf("-peer: %w", err)
	}
	if !quiet {
		fmt.Fprintf(os.Stderr, "bench: %s\n", note)
	}
	return path, nil
}
