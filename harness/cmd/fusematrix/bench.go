package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/report"
	"github.com/fusematrix/fusematrix/scenarios"
)

// bench is matrix restricted to the benchmark cells, with their table.
func bench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	o := harness.Options{}
	quiet := bootFlags(fs, &o, filepath.Join("out", "bench"))
	matrixName := matrixFlag(fs)
	fs.IntVar(&o.BenchRuns, "runs", scenarios.DefaultBenchRuns, "times each cell measures; the table shows the median")
	fs.IntVar(&o.BenchMiB, "bench-mib", 0, "cap on the bytes one run moves, in `MiB` (default: scaled by block size and runs)")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if o.Run == "" {
		o.Run = "^" + scenarios.BenchPrefix
	}
	var err error
	if o.Kernels, err = selectKernels(*matrixName, fs.Args()); err != nil {
		return err
	}
	return boot(o, *quiet, func(run *results.Run) error {
		fmt.Println()
		return report.Bench(os.Stdout, run)
	}, os.Stdout)
}
