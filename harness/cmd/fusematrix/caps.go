package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/results/report"
)

// maxRunFile bounds a results.json read with -from: it may come from
// another machine, and an honest run of many kernels is a few MiB.
const maxRunFile = 64 << 20

// capsRenderers are the -format values.
var capsRenderers = map[string]func(io.Writer, *results.Run) error{
	"table":    report.Caps,
	"json":     report.CapsJSON,
	"markdown": report.CapsMarkdown,
}

func caps(args []string) error {
	fs := flag.NewFlagSet("caps", flag.ContinueOnError)
	o := harness.Options{}
	quiet := bootFlags(fs, &o, filepath.Join("out", "caps"))
	matrixName := matrixFlag(fs)
	format := fs.String("format", "table", "output: table, json or markdown")
	from := fs.String("from", "", "render this `results.json` of an earlier run instead of booting kernels")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	render, ok := capsRenderers[*format]
	if !ok {
		fmt.Fprintf(os.Stderr, "fusematrix caps: -format %q: want table, json or markdown\n", *format)
		return exitError(2)
	}
	if *from != "" {
		if err := onlyFlags(fs, "from", "format", "q"); err != nil {
			return err
		}
		run, err := readRunFile(*from)
		if err != nil {
			return err
		}
		return render(os.Stdout, run)
	}
	if o.Run != "" {
		fmt.Fprintln(os.Stderr, "fusematrix caps: runs the probes only; -run selects scenarios, which caps never runs (use fusematrix matrix -run)")
		return exitError(2)
	}
	var err error
	if o.Kernels, err = selectKernels(matrixName, fs.Args(), &o.Kernel); err != nil {
		return err
	}
	// Probes always run; a pattern no scenario id matches leaves only them.
	o.Run = contract.ProbesOnly
	info := io.Writer(os.Stderr)
	if *format == "table" {
		info = os.Stdout
	}
	return boot(o, *quiet, func(run *results.Run) error {
		if *format == "table" {
			fmt.Println()
		}
		return render(os.Stdout, run)
	}, info)
}

// readRunFile reads a run summary that may come from elsewhere: bounded in
// size, and refused unless it is a fusematrix run of the schema this
// build understands.
func readRunFile(path string) (*results.Run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read run: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read run: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read run %s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRunFile+1))
	if err != nil {
		return nil, fmt.Errorf("read run %s: %w", path, err)
	}
	if len(b) > maxRunFile {
		return nil, fmt.Errorf("read run %s: larger than %d MiB, which no fusematrix run is", path, maxRunFile>>20)
	}
	run, err := decodeRun(b)
	if err != nil {
		return nil, fmt.Errorf("read run %s: %w", path, err)
	}
	return run, nil
}

// decodeRun parses and checks a run summary.
func decodeRun(b []byte) (*results.Run, error) {
	var head struct {
		Schema  *int            `json:"schema"`
		Kernels json.RawMessage `json:"kernels"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("not a fusematrix run: %w", err)
	}
	if head.Schema == nil || head.Kernels == nil {
		return nil, errors.New("not a fusematrix run: no schema or no kernels")
	}
	if *head.Schema != results.SchemaVersion {
		return nil, fmt.Errorf("fusematrix run of schema %d; this fusematrix reads schema %d", *head.Schema, results.SchemaVersion)
	}
	var run results.Run
	if err := json.Unmarshal(b, &run); err != nil {
		return nil, fmt.Errorf("not a fusematrix run of schema %d: %w", results.SchemaVersion, err)
	}
	for i, k := range run.Kernels {
		if k.Name == "" {
			return nil, fmt.Errorf("kernel %d has no name", i)
		}
		if !knownStatus(k.Status) {
			return nil, fmt.Errorf("kernel %.64q: unknown status %.16q", k.Name, k.Status)
		}
		for _, r := range k.Results {
			if !knownStatus(r.Status) {
				return nil, fmt.Errorf("kernel %.64q, result %.64q: unknown status %.16q", k.Name, r.ID, r.Status)
			}
		}
	}
	return &run, nil
}

func knownStatus(s results.Status) bool {
	switch s {
	case results.Pass, results.Fail, results.Skip, results.Error:
		return true
	}
	return false
}

// onlyFlags fails with a usage error when flags other than allowed, or
// arguments, were given with -from: everything else configures a boot,
// and accepting it silently would let a reader believe it had an effect.
func onlyFlags(fs *flag.FlagSet, allowed ...string) error {
	var unused []string
	fs.Visit(func(f *flag.Flag) {
		if !slices.Contains(allowed, f.Name) {
			unused = append(unused, "-"+f.Name)
		}
	})
	unused = append(unused, fs.Args()...)
	if len(unused) > 0 {
		fmt.Fprintf(os.Stderr, "fusematrix %s: -from renders an earlier run; %s would have no effect\n", fs.Name(), strings.Join(unused, " "))
		return exitError(2)
	}
	return nil
}
