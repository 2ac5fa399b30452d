package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// MaxFileBytes bounds a run summary read back from disk. Such a file may
// come from another machine (a shard, a nightly's baseline), so it is
// untrusted; no run fusematrix writes comes near this size.
const MaxFileBytes = 64 << 20

// ReadFile reads the run summary at path, or the results.json in the
// folder path names, as every reader of earlier runs does (compare, merge,
// caps -from, bench -from, bisect's stored steps): bounded in size,
// refused unless it is a regular file, and checked by Decode.
func ReadFile(path string) (*Run, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "results.json")
	}
	// A FIFO or a device would block open(2) or read(2) for ever: look
	// before opening, and open without blocking in case the file was
	// swapped between the two.
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read run: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read run %s: not a regular file (%s)", path, kindOf(st.Mode()))
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read run: %w", err)
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("read run %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read run %s: not a regular file (%s)", path, kindOf(st.Mode()))
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read run %s: %w", path, err)
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("read run %s: larger than %d MiB, which no fusematrix run is", path, MaxFileBytes>>20)
	}
	run, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("read run %s: %w", path, err)
	}
	return run, nil
}

// WriteJSON writes run as results.json holds it: indented JSON, which
// ReadFile and Decode read back. encoding/json sorts map keys, so the same
// run always gives the same bytes and files diff cleanly.
func WriteJSON(w io.Writer, run *Run) error {
	if run == nil {
		return errors.New("write json: no run")
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// Reasons often quote shell redirections and paths with < and >;
	// escaping them for HTML would only make the file harder to read.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(run); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// Decode parses a run summary and refuses one that no fusematrix of this
// schema wrote: another schema, a kernel without a name, an unknown
// status, a result without an id, one id twice in a kernel, or a metric
// no measurement gives (BadMetrics: negative MB/s, a minimum above its
// maximum). The live stream refuses a repeated id (harness); a file must
// too, or a pass followed by a fail of the same check would let a reader
// pick either. A reader handed an impossible figure would judge it, or
// quietly leave it out: neither is a verdict on the kernel.
func Decode(b []byte) (*Run, error) {
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
	if *head.Schema != SchemaVersion {
		return nil, fmt.Errorf("fusematrix run of schema %d; this fusematrix reads schema %d", *head.Schema, SchemaVersion)
	}
	var run Run
	if err := json.Unmarshal(b, &run); err != nil {
		return nil, fmt.Errorf("not a fusematrix run of schema %d: %w", SchemaVersion, err)
	}
	for i, k := range run.Kernels {
		if k.Name == "" {
			return nil, fmt.Errorf("kernel %d has no name", i)
		}
		if !k.Status.valid() {
			return nil, fmt.Errorf("kernel %.64q: unknown status %.16q", k.Name, k.Status)
		}
		seen := make(map[string]bool, len(k.Results))
		for j, r := range k.Results {
			if r.ID == "" {
				return nil, fmt.Errorf("kernel %.64q, result %d: no id", k.Name, j)
			}
			if !r.Status.valid() {
				return nil, fmt.Errorf("kernel %.64q, result %.64q: unknown status %.16q", k.Name, r.ID, r.Status)
			}
			if seen[r.ID] {
				return nil, fmt.Errorf("kernel %.64q: result %.64q appears more than once", k.Name, r.ID)
			}
			seen[r.ID] = true
			if bad := BadMetrics(r.Metrics); bad != nil {
				name := slices.Min(slices.Collect(maps.Keys(bad)))
				return nil, fmt.Errorf("kernel %.64q, result %.64q: metric %.64q: %s: no measurement gives that", k.Name, r.ID, name, bad[name])
			}
		}
	}
	return &run, nil
}

// kindOf names a file type for an error.
func kindOf(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}
