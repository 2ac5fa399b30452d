package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/fusematrix/fusematrix/harness/cli"
	"github.com/fusematrix/fusematrix/harness/merge"
	"github.com/fusematrix/fusematrix/results"
)

const mergeUsage = `usage: fusematrix merge [-out DIR] RUN…

Joins runs made on different machines (the shards of a nightly, one
kernel each) into one: RUN is a results.json, or the folder of matrix, caps
or bench that holds one. DIR receives results.json, junit.xml, report.html
and each shard's console logs, as if one run had booted every kernel. Two
runs with the same kernel, or of different schemas, are errors. DIR must
not exist yet or be empty: nothing is written unless every run was read,
and an interrupted merge (SIGINT, SIGTERM) leaves nothing behind. The exit
status is 0 when the runs were merged, 2 on bad input, 130 when
interrupted.

Flags:
`

// mergeCmd is fusematrix merge.
func mergeCmd(args []string) error {
	fs := newFlagSet("merge", mergeUsage)
	out := fs.String("out", "out/merged", "write the merged run into this `folder`")
	paths, err := cli.ParseAround(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return cli.WithUsage(fs, cli.Usagef("no runs given"))
	}
	// A merge stopped half way must not leave its staging folder behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := mergeRuns(ctx, *out, paths, os.Stdout); err != nil {
		if ctx.Err() != nil {
			return cli.Failf(130, "interrupted; nothing written")
		}
		return cli.Usagef("%v", err)
	}
	return nil
}

// mergeRuns merges the runs at paths into out (merge.Files) and says
// what it merged on info.
func mergeRuns(ctx context.Context, out string, paths []string, info io.Writer) error {
	warn := func(s string) { fmt.Fprintf(os.Stderr, "fusematrix merge: %s\n", s) }
	merged, err := merge.Files(ctx, out, paths, warn)
	if err != nil {
		return err
	}
	c := results.Counts{}
	for _, k := range merged.Kernels {
		for _, r := range k.Results {
			c.Add(r.Status)
		}
	}
	fmt.Fprintf(info, "merged %d runs: %d kernels, %d results (%d pass, %d fail, %d skip, %d error)\nresults: %s\n",
		len(paths), len(merged.Kernels), c.Results, c.Pass, c.Fail, c.Skip, c.Error, filepath.Join(out, "results.json"))
	return nil
}
