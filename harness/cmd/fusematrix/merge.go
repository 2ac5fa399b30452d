package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/merge"
	"github.com/fusematrix/fusematrix/results/report"
)

const mergeUsage = `usage: fusematrix merge [-out DIR] RUN…

Joins runs made on different machines (the shards of a nightly, one
kernel each) into one: RUN is a results.json, or the folder of matrix, caps
or bench that holds one. DIR receives results.json, junit.xml, report.html
and each shard's console logs, as if one run had booted every kernel. Two
runs with the same kernel, or of different schemas, are errors. DIR must
not exist yet or be empty: nothing is written unless every run was read.
The exit status is 0 when the runs were merged, 2 on bad input.

Flags:
`

// maxConsoleCopy bounds each console log merge copies: a shard's files
// came from another machine.
const maxConsoleCopy = 64 << 20

// mergeCmd is fusematrix merge.
func mergeCmd(args []string) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), mergeUsage)
		fs.PrintDefaults()
	}
	out := fs.String("out", "out/merged", "write the merged run into this `folder`")
	paths, err := parseAround(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		fmt.Fprintln(os.Stderr, "fusematrix merge: no runs given")
		fs.Usage()
		return exitError(2)
	}
	if err := mergeRuns(*out, paths, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "fusematrix merge: %v\n", err)
		return exitError(2)
	}
	return nil
}

// mergeRuns reads every run at paths, merges them and writes the merged
// folder at out through a staging folder beside it, renamed into place
// once complete, so that a failure leaves no half-merged folder.
func mergeRuns(out string, paths []string, info io.Writer) error {
	if err := emptyOrAbsent(out); err != nil {
		return err
	}
	shards := make([]merge.Shard, 0, len(paths))
	dirs := make([]string, 0, len(paths))
	var errs []error
	for _, p := range paths {
		file := p
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			file = filepath.Join(p, "results.json")
		}
		run, err := results.ReadFile(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		shards = append(shards, merge.Shard{Path: file, Run: run})
		dirs = append(dirs, filepath.Dir(file))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	merged, err := merge.Merge(shards)
	if err != nil {
		return err
	}

	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	stage, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".merge-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	if err := copyConsoles(stage, shards, dirs, merged); err != nil {
		return err
	}
	for name, write := range map[string]func(io.Writer) error{
		"results.json": func(w io.Writer) error { return report.WriteJSON(w, merged) },
		"junit.xml":    func(w io.Writer) error { return report.JUnit(w, merged) },
		"report.html":  func(w io.Writer) error { return report.HTML(w, merged) },
	} {
		if err := harness.WriteFile(filepath.Join(stage, name), write); err != nil {
			return err
		}
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		return err
	}
	// out is absent or empty (checked above); an empty folder gives way.
	if err := os.Remove(out); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", out, err)
	}
	if err := os.Rename(stage, out); err != nil {
		return err
	}
	c := results.Counts{}
	for _, k := range merged.Kernels {
		for _, r := range k.Results {
			c.Add(r.Status)
		}
	}
	fmt.Fprintf(info, "merged %d runs: %d kernels, %d results (%d pass, %d fail, %d skip, %d error)\nresults: %s\n",
		len(shards), len(merged.Kernels), c.Results, c.Pass, c.Fail, c.Skip, c.Error, filepath.Join(out, "results.json"))
	return nil
}

// emptyOrAbsent refuses an output folder that holds anything: merging
// into an earlier merge would mix two runs' console logs.
func emptyOrAbsent(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("-out %s: %w", dir, err)
	case len(entries) > 0:
		return fmt.Errorf("-out %s is not empty: give a new folder", dir)
	}
	return nil
}

// copyConsoles copies each shard's console logs (every regular
// *.console.log beside its results.json: the final boot's, and those of
// accelerators given up or boots retried) into stage. A name another shard
// already used is prefixed with the shard's number, and the kernel's
// console_log follows it.
func copyConsoles(stage string, shards []merge.Shard, dirs []string, merged *results.Run) error {
	taken := map[string]bool{}
	// renamed maps shard file → its name in stage, per shard.
	renamed := make([]map[string]string, len(shards))
	for i, dir := range dirs {
		renamed[i] = map[string]string{}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			name, ok := merge.ConsoleName(e.Name())
			if !ok || !strings.HasSuffix(name, ".console.log") || !e.Type().IsRegular() {
				continue
			}
			to := name
			if taken[to] {
				to = fmt.Sprintf("shard%d-%s", i+1, name)
			}
			if err := copyBounded(filepath.Join(dir, name), filepath.Join(stage, to)); err != nil {
				return err
			}
			taken[to] = true
			renamed[i][name] = to
		}
	}
	// Kernels are found again by name (merge sorted them, and no two
	// shards share a kernel), through a map: a search of the merged
	// kernels for each shard's would grow with the square of the kernels.
	byName := make(map[string]*results.Kernel, len(merged.Kernels))
	for j := range merged.Kernels {
		byName[merged.Kernels[j].Name] = &merged.Kernels[j]
	}
	for i, s := range shards {
		for _, sk := range s.Run.Kernels {
			k := byName[sk.Name]
			if k == nil {
				continue
			}
			name, ok := merge.ConsoleName(k.ConsoleLog)
			switch {
			case !ok:
				k.ConsoleLog = ""
			case renamed[i][name] != "":
				k.ConsoleLog = renamed[i][name]
			default:
				k.ConsoleLog = "" // named, but not a file the shard had
			}
		}
	}
	return nil
}

// copyBounded copies the regular file from to a new file to, at most
// maxConsoleCopy bytes of it, and says so at the end when it cut.
func copyBounded(from, to string) error {
	// A shard's symbolic link could point anywhere on this machine.
	src, err := os.OpenFile(from, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer src.Close()
	if st, err := src.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", from)
	}
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, io.LimitReader(src, maxConsoleCopy))
	if err == nil {
		if n, _ := src.Read(make([]byte, 1)); n > 0 {
			_, err = fmt.Fprintf(dst, "\n[fusematrix merge: cut at %d MiB]\n", maxConsoleCopy>>20)
		}
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	return nil
}
