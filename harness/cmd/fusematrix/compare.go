package main

import (
	"os"

	"github.com/fusematrix/fusematrix/harness/cli"
	"github.com/fusematrix/fusematrix/harness/compare"
	"github.com/fusematrix/fusematrix/results"
)

const compareUsage = `usage: fusematrix compare [-format table|markdown|json] [-threshold F] OLD NEW

Compares two runs: OLD and NEW are results.json files, or the folders of
matrix, caps or bench that hold one. Kernels are matched by selector. The
exit status is 1 when anything regressed, 0 when nothing did, 2 when an
input cannot be read.

Flags:
`

// compareCmd is fusematrix compare.
func compareCmd(args []string) error {
	fs := newFlagSet("compare", compareUsage)
	format := fs.String("format", "table", "output: table, markdown (for a GitHub step summary) or json")
	threshold := fs.Float64("threshold", compare.DefaultThreshold,
		"relative drop of a cell's paired ratio to native (ratio_native) that counts as a regression, when its range also lies wholly below the old one")
	paths, err := cli.ParseAround(fs, args)
	if err != nil {
		return err
	}
	render, ok := compare.Renderers[*format]
	if !ok {
		return cli.Usagef("-format %q: want table, markdown or json", *format)
	}
	if !(*threshold > 0 && *threshold < 1) {
		return cli.Usagef("-threshold %v: want a fraction between 0 and 1, such as 0.15", *threshold)
	}
	if len(paths) != 2 {
		return cli.WithUsage(fs, cli.Usagef("want two runs, OLD and NEW; got %d", len(paths)))
	}
	old, err := results.ReadFile(paths[0])
	if err != nil {
		return cli.Usagef("old: %v", err)
	}
	new, err := results.ReadFile(paths[1])
	if err != nil {
		return cli.Usagef("new: %v", err)
	}
	r := compare.Compare(old, new, compare.Options{Threshold: *threshold, OldPath: paths[0], NewPath: paths[1]})
	if err := render(os.Stdout, r); err != nil {
		return err
	}
	if r.Regressed {
		return cli.Status(1)
	}
	return nil
}
