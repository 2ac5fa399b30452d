package main

import (
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

// capsRenderers are the -format values.
var capsRenderers = map[string]func(io.Writer, *results.Run) error{
	"table":    report.Caps,
	"json":     report.CapsJSON,
	"markdown": report.CapsMarkdown,
}

func caps(args []string) error {
	fs := newFlagSet("caps", "")
	o := harness.Options{}
	quiet := cli.BootFlags(fs, &o, filepath.Join("out", "caps"))
	matrixName := cli.MatrixFlags(fs)
	format := fs.String("format", "table", "output: table, json or markdown")
	from := fs.String("from", "", "render this `results.json` of an earlier run instead of booting kernels")
	if err := fs.Parse(args); err != nil {
		return cli.Status(2)
	}
	render, ok := capsRenderers[*format]
	if !ok {
		return cli.Usagef("-format %q: want table, json or markdown", *format)
	}
	if *from != "" {
		run, err := cli.ReadFrom(fs, *from, "from", "format", "q")
		if err != nil {
			return err
		}
		return render(os.Stdout, run)
	}
	if o.Run != "" {
		return cli.Usagef("runs the probes only; -run selects scenarios, which caps never runs (use fusematrix matrix -run)")
	}
	var err error
	if o.Kernels, _, err = matrixName.Select(fs.Args(), &o.Kernel); err != nil {
		return err
	}
	// Probes always run; a pattern no scenario id matches leaves only them.
	o.Run = contract.ProbesOnly
	info := io.Writer(os.Stderr)
	if *format == "table" {
		info = os.Stdout
	}
	return cli.Boot(o, *quiet, func(run *results.Run) error {
		if *format == "table" {
			fmt.Println()
		}
		return render(os.Stdout, run)
	}, info)
}
