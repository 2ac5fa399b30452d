package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/fusematrix/fusematrix/results"
)

// benchModes are the columns of the bench table, in order; a mode the
// results name but this list does not is appended.
var benchModes = []string{"native", "noop", "classic", "passthrough"}

// benchID splits a cell id bench/<op>/<mode>/<block>.
func benchID(id string) (op, mode string, block int, ok bool) {
	parts := strings.Split(id, "/")
	if len(parts) != 4 || parts[0] != "bench" {
		return "", "", 0, false
	}
	block, err := strconv.Atoi(parts[3])
	if err != nil {
		return "", "", 0, false
	}
	return parts[1], parts[2], block, true
}

// Bench writes, per kernel, the throughput cells as a table: one row per
// op and block size, one column per mode, each cell the median MB/s with
// the ratio to native in brackets; cells that did not pass say why below.
func Bench(w io.Writer, run *results.Run) error {
	if run == nil {
		return errors.New("render bench table: no run")
	}
	var b bytes.Buffer
	for i, k := range run.Kernels {
		if i > 0 {
			fmt.Fprintln(&b)
		}
		benchKernel(&b, &k)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write bench table: %w", err)
	}
	return nil
}

func benchKernel(b *bytes.Buffer, k *results.Kernel) {
	head := k.Name
	if k.Release != "" {
		head += " (" + k.Release
		if k.Accel != "" {
			head += ", " + k.Accel
		}
		head += ")"
	}
	fmt.Fprintln(b, head)
	if k.Status != results.Pass {
		fmt.Fprintf(b, "  did not run: %s\n", oneLine(k.Error))
	}
	type row struct {
		op    string
		block int
	}
	var rows []row
	modes := slices.Clone(benchModes)
	cells := map[row]map[string]*results.Result{}
	// Cells that did not pass for the same reason (every passthrough
	// cell on a kernel without it) share one note.
	type note struct {
		status results.Status
		reason string
	}
	var notes []note
	noted := map[note][]string{}
	for i := range k.Results {
		r := &k.Results[i]
		op, mode, block, ok := benchID(r.ID)
		if !ok {
			continue
		}
		key := row{op, block}
		if cells[key] == nil {
			cells[key] = map[string]*results.Result{}
			rows = append(rows, key)
		}
		cells[key][mode] = r
		if !slices.Contains(modes, mode) {
			modes = append(modes, mode)
		}
		if r.Status != results.Pass {
			n := note{r.Status, oneLine(r.Reason)}
			if noted[n] == nil {
				notes = append(notes, n)
			}
			noted[n] = append(noted[n], r.ID)
		}
	}
	if len(rows) == 0 {
		fmt.Fprintln(b, "  no benchmark cells")
		return
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "  op\tblock\t")
	for _, m := range modes {
		fmt.Fprintf(tw, "%s\t", m)
	}
	fmt.Fprintln(tw)
	for _, key := range rows {
		fmt.Fprintf(tw, "  %s\t%s\t", key.op, blockLabel(key.block))
		for _, m := range modes {
			fmt.Fprintf(tw, "%s\t", benchCell(cells[key][m]))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(b, "  MB/s, median of the runs (ratio to native)")
	for _, n := range notes {
		ids := noted[n]
		which := ids[0]
		if len(ids) > 1 {
			which = fmt.Sprintf("%s and %d more", ids[0], len(ids)-1)
		}
		fmt.Fprintf(b, "  %s: %s: %s\n", which, n.status, n.reason)
	}
}

func benchCell(r *results.Result) string {
	switch {
	case r == nil:
		return "-"
	case r.Status == results.Skip:
		return "skip"
	case r.Status != results.Pass:
		return strings.ToUpper(string(r.Status))
	}
	med, ok := r.Metrics["mbps_median"]
	if !ok {
		return "?"
	}
	s := strconv.FormatFloat(med, 'f', 0, 64)
	if ratio, ok := r.Metrics["ratio_native"]; ok {
		s += fmt.Sprintf(" (%.2f)", ratio)
	}
	return s
}

func blockLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return strconv.Itoa(n)
}
