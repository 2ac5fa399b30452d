package merge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/fusematrix/fusematrix/harness/report"
	"github.com/fusematrix/fusematrix/results"
)

// MaxConsoleBytes bounds each console log Write copies: a shard's files
// came from another machine.
const MaxConsoleBytes = 64 << 20

// copyChunk is how much of a console log is copied between looks at the
// context, so that a signal need not wait for 64 MiB.
const copyChunk = 4 << 20

// nameMax is the longest file name Linux file systems hold.
const nameMax = 255

// Files merges the runs at paths, each a results.json or the folder that
// holds one, into the folder out: CheckOut first, since a folder in the
// way is the likelier mistake and reading shards can take a while, then
// every run read (results.ReadFile, every error told), merged and written.
func Files(ctx context.Context, out string, paths []string, warn func(string)) (*results.Run, error) {
	if err := CheckOut(out); err != nil {
		return nil, err
	}
	shards := make([]Shard, 0, len(paths))
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
		shards = append(shards, Shard{Path: file, Run: run})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	merged, err := Merge(shards)
	if err != nil {
		return nil, err
	}
	return merged, Write(ctx, out, shards, merged, warn)
}

// CheckOut refuses an output folder that holds anything: merging into an
// earlier merge would mix two runs' console logs.
func CheckOut(dir string) error {
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

// Write writes merged, the Merge of shards, into the folder out as one
// run would have: results.json, junit.xml, report.html, and every
// shard's console logs (each *.console.log that is a plain file beside
// its results.json, at most MaxConsoleBytes of it), a name another shard
// already used given a free one, the kernel's console_log following it.
// It sets merged's console_log fields to the names in out.
//
// Everything is written into a staging folder beside out, renamed into
// place once complete, so that a failure leaves no half-merged folder.
// When ctx ends (the command's SIGINT or SIGTERM) the staging folder is
// removed at once, even while a copy or a warning is stuck, and Write
// returns ctx's error, unless out was already complete. warn hears what
// was left out: a console log not copied, or cut.
func Write(ctx context.Context, out string, shards []Shard, merged *results.Run, warn func(string)) error {
	if err := CheckOut(out); err != nil {
		return err
	}
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("folder of -out: %w", err)
	}
	stage, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".merge-")
	if err != nil {
		return fmt.Errorf("staging folder: %w", err)
	}
	// gone guards the staging folder: removed by a signal, or renamed
	// into place, never both at once (a rename of a folder half removed
	// would pass for a complete merge).
	var gone sync.Mutex
	remove := func() {
		gone.Lock()
		defer gone.Unlock()
		os.RemoveAll(stage)
	}
	stop := context.AfterFunc(ctx, remove)
	defer stop()
	defer remove()

	if err := copyConsoles(ctx, stage, shards, merged, warn); err != nil {
		return err
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{
		{"results.json", func(w io.Writer) error { return results.WriteJSON(w, merged) }},
		{"junit.xml", func(w io.Writer) error { return report.JUnit(w, merged) }},
		{"report.html", func(w io.Writer) error { return report.HTML(w, merged) }},
	} {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(stage, f.name), f.write); err != nil {
			return err
		}
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		return fmt.Errorf("staging folder: %w", err)
	}
	gone.Lock()
	defer gone.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	// out is absent or empty (checked above); an empty folder gives way.
	if err := os.Remove(out); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("-out: %w", err)
	}
	if err := os.Rename(stage, out); err != nil {
		return fmt.Errorf("move the merged folder into place: %w", err)
	}
	return nil
}

// writeFile writes a file of the staging folder, which is renamed into
// place whole: the file needs no staging of its own.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	err = write(f)
	if err == nil {
		err = f.Chmod(0o644) // as a run writes them, whatever the umask
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// copyConsoles copies each shard's console logs (every regular
// *.console.log beside its results.json: the final boot's, and those of
// accelerators given up or boots retried) into stage, and points each
// kernel's console_log at its copy.
func copyConsoles(ctx context.Context, stage string, shards []Shard, merged *results.Run, warn func(string)) error {
	taken := map[string]bool{}
	// renamed maps shard file → its name in stage, per shard.
	renamed := make([]map[string]string, len(shards))
	for i, s := range shards {
		renamed[i] = map[string]string{}
		dir := filepath.Dir(s.Path)
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("console logs of %s: %w", s.Path, err)
		}
		for _, e := range entries {
			name, ok := ConsoleName(e.Name())
			if !ok || !strings.HasSuffix(name, ".console.log") || !e.Type().IsRegular() {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			to := freeName(taken, i, name)
			cut, err := copyBounded(ctx, filepath.Join(dir, name), filepath.Join(stage, to))
			if err != nil {
				return err
			}
			if cut {
				warn(fmt.Sprintf("%s: cut at %d MiB", filepath.Join(dir, name), MaxConsoleBytes>>20))
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
			if k == nil || k.ConsoleLog == "" {
				continue
			}
			name, ok := ConsoleName(k.ConsoleLog)
			if to := renamed[i][name]; ok && to != "" {
				k.ConsoleLog = to
				continue
			}
			warn(fmt.Sprintf("kernel %.80q: console log %.80q is not a plain file beside %s: not copied", k.Name, k.ConsoleLog, s.Path))
			k.ConsoleLog = ""
		}
	}
	return nil
}

// freeName is a name in the merged folder for console log name of shard
// i (counted from 0) that no other log took: name itself when free, else
// shardN-name, shardN-2-name, … A shard's own files may hold any of these
// names, so each is looked up, never assumed free.
func freeName(taken map[string]bool, i int, name string) string {
	to := name
	for n := 1; taken[to]; n++ {
		prefix := fmt.Sprintf("shard%d-", i+1)
		if n > 1 {
			prefix = fmt.Sprintf("shard%d-%d-", i+1, n)
		}
		to = prefix + name
		if len(to) > nameMax {
			to = prefix + "console.log" // still names its shard; the kernel's console_log follows
		}
	}
	return to
}

// copyBounded copies the regular file from to a new file to, at most
// MaxConsoleBytes of it, says so at the end of the copy when it cut, and
// stops when ctx ends.
func copyBounded(ctx context.Context, from, to string) (cut bool, err error) {
	// A shard's symbolic link could point anywhere on this machine.
	src, err := os.OpenFile(from, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false, fmt.Errorf("console log: %w", err)
	}
	defer src.Close()
	if st, err := src.Stat(); err != nil || !st.Mode().IsRegular() {
		return false, fmt.Errorf("console log %s: not a regular file", from)
	}
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return false, fmt.Errorf("copy of console log %s: %w", from, err)
	}
	defer func() {
		if cerr := dst.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("copy %s: %w", from, cerr)
		}
	}()
	for left := int64(MaxConsoleBytes); left > 0; {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		n, err := io.CopyN(dst, src, min(left, copyChunk))
		left -= n
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("copy %s: %w", from, err)
		}
	}
	if n, _ := src.Read(make([]byte, 1)); n == 0 {
		return false, nil
	}
	if _, err := fmt.Fprintf(dst, "\n[fusematrix merge: cut at %d MiB]\n", MaxConsoleBytes>>20); err != nil {
		return false, fmt.Errorf("copy %s: %w", from, err)
	}
	return true, nil
}
