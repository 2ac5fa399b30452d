package report

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// The daemons' table: one row per daemon under test and kernel, what a
// user who runs that FUSE file system asks first (does it mount, is it
// correct, does the kernel pass its files through, how fast is it) read
// from the daemon's results alone, so that a run of the whole catalog
// (-daemon clients) reads as one table.

// clientHeads are the table's columns.
var clientHeads = []string{"daemon", "kernel", "mounts", "own checks", "data checks", "passthrough", "read 128K", "write 128K", "read calls/GiB"}

// clientLegend explains the columns.
const clientLegend = "own checks: those that need no reference (mount, read-all, write, unmount), passed of run; " +
	"data checks: those that compare the mount with its backing directory, passed of run (skip: it shows none); " +
	"passthrough: from daemon/NAME/passthrough, whether the kernel passed the daemon's reads through (used), " +
	"the daemon served them itself (not used), the kernel offers none (not offered), or there was nothing to read (not measured), " +
	"\"claimed\" when its description says it uses passthrough; " +
	"read/write 128K: its bench cell's median over native's (bench -daemon); " +
	"read calls/GiB: its threads' read calls per GiB read through the mount, about 8,192 when it serves every 128 KiB request, next to none when passed through"

// clientRow is one daemon on one kernel.
type clientRow struct {
	daemon, kernel string
	cells          []htmlCell // after the daemon and kernel columns
}

// daemonNames are the daemons with results in run, in the order they
// first appear.
func daemonNames(run *results.Run) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range run.Kernels {
		for _, r := range k.Results {
			rest, ok := strings.CutPrefix(r.ID, contract.DaemonPrefix)
			if !ok {
				continue
			}
			name, _, ok := strings.Cut(rest, "/")
			if ok && !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	return out
}

// clientRows are the table's rows, daemon by daemon, each on every kernel
// in run's order; none when no daemon ran.
func clientRows(run *results.Run) []clientRow {
	var out []clientRow
	for _, name := range daemonNames(run) {
		for i := range run.Kernels {
			k := &run.Kernels[i]
			out = append(out, clientRow{daemon: name, kernel: k.Name, cells: clientCells(k, name)})
		}
	}
	return out
}

// clientCells are the columns after the daemon and kernel.
func clientCells(k *results.Kernel, name string) []htmlCell {
	prefix := contract.DaemonPrefix + name + "/"
	mount := k.Result(prefix + string(contract.DaemonMounted))
	var own, data []*results.Result
	var ownIDs []string
	for i := range k.Results {
		r := &k.Results[i]
		id, ok := strings.CutPrefix(r.ID, prefix)
		if !ok {
			continue
		}
		switch {
		case isOwnCheck(id):
			own, ownIDs = append(own, r), append(ownIDs, id)
		case id == string(contract.DaemonPassthrough), id == string(contract.DaemonIOUring):
		case strings.HasPrefix(id, contract.BenchPrefix):
		default:
			data = append(data, r)
		}
	}
	return []htmlCell{
		mountCell(mount),
		tallyCell(own, ownIDs),
		tallyCell(data, nil),
		daemonPassthroughCell(k, k.Result(prefix+string(contract.DaemonPassthrough))),
		ratioCell(k.Result(prefix + string(contract.DaemonCellID(contract.Read, 128<<10)))),
		ratioCell(k.Result(prefix + string(contract.DaemonCellID(contract.Write, 128<<10)))),
		callsCell(k, prefix),
	}
}

func isOwnCheck(id string) bool {
	for _, c := range contract.DaemonOwnChecks {
		if string(c.ID) == id {
			return true
		}
	}
	return false
}

// mountCell says whether the daemon mounted.
func mountCell(r *results.Result) htmlCell {
	switch {
	case r == nil:
		return htmlCell{Text: "-"}
	case r.Status == results.Pass:
		return htmlCell{Text: "yes", Class: string(results.Pass)}
	case r.Status == results.Skip:
		return htmlCell{Text: "skip", Class: string(results.Skip)}
	}
	return htmlCell{Text: "NO", Class: statusClass(r.Status)}
}

// tallyCell is "passed/run", run counting every result that did not skip,
// with what did not pass named by id when ids are given, else the
// failures and errors counted; "skip" when all skipped, "-" when there
// were none.
func tallyCell(rs []*results.Result, ids []string) htmlCell {
	if len(rs) == 0 {
		return htmlCell{Text: "-"}
	}
	var pass, ran int
	var others []string
	counts := map[results.Status]int{}
	worst := results.Pass
	for i, r := range rs {
		if r.Status != results.Skip {
			ran++
		}
		if r.Status == results.Pass {
			pass++
			continue
		}
		counts[r.Status]++
		if ids != nil {
			others = append(others, ids[i]+" "+statusWord(r.Status))
		}
		if r.Status == results.Fail || (r.Status == results.Error && worst != results.Fail) {
			worst = r.Status
		}
	}
	if ran == 0 {
		return htmlCell{Text: "skip", Class: string(results.Skip)}
	}
	if ids == nil {
		// Counted, the skips would only repeat the checks that need
		// fusematrix's own server, which every daemon skips.
		for _, s := range []results.Status{results.Fail, results.Error} {
			if counts[s] > 0 {
				others = append(others, fmt.Sprintf("%d %s", counts[s], statusWord(s)))
			}
		}
	}
	text := fmt.Sprintf("%d/%d", pass, ran)
	if len(others) > 0 {
		text += " (" + inert.OneLine(strings.Join(others, ", ")) + ")"
	}
	return htmlCell{Text: text, Class: statusClass(worst)}
}

// daemonPassthroughCell reads daemon/NAME/passthrough: what the kernel's
// accounting of the daemon's threads showed, or why there was none.
func daemonPassthroughCell(k *results.Kernel, r *results.Result) htmlCell {
	if r == nil {
		return htmlCell{Text: "-"}
	}
	claimed := r.Facts["claimed"] == "true"
	var text string
	switch r.Facts["passthrough"] {
	case "true":
		text = "used"
	case "false":
		text = "not used"
	default:
		switch {
		case r.Status == results.Error:
			text = "ERROR"
		case k.Capabilities != nil && !k.Capabilities.Passthrough:
			text = "not offered"
		default:
			text = "not measured"
		}
	}
	if claimed {
		text += " (claimed)"
	}
	class := ""
	if r.Status == results.Fail || r.Status == results.Error {
		class = statusClass(r.Status)
	}
	return htmlCell{Text: text, Class: class}
}

// ratioCell is a bench cell's median over native's, "-" without one.
func ratioCell(r *results.Result) htmlCell {
	if r == nil {
		return htmlCell{Text: "-"}
	}
	if r.Status != results.Pass {
		return htmlCell{Text: statusWord(r.Status), Class: statusClass(r.Status)}
	}
	v, ok := contract.MetricRatioNative.Of(r)
	if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
		return htmlCell{Text: "-"}
	}
	return htmlCell{Text: strconv.FormatFloat(v, 'f', 2, 64)}
}

// callsCell is the daemon's read calls per GiB read through its mount:
// from its 128 KiB read cell when it ran, else from the passthrough check.
func callsCell(k *results.Kernel, prefix string) htmlCell {
	if r := k.Result(prefix + string(contract.DaemonCellID(contract.Read, 128<<10))); r != nil && r.Status == results.Pass {
		if v, ok := r.Metrics[daemonCallsMetric]; ok && !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 {
			return htmlCell{Text: groupThousands(int64(math.Round(v)))}
		}
	}
	r := k.Result(prefix + string(contract.DaemonPassthrough))
	if r == nil {
		return htmlCell{Text: "-"}
	}
	v, err := strconv.ParseFloat(r.Facts[contract.FactDaemonReadCallsPerGiB], 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return htmlCell{Text: "-"}
	}
	return htmlCell{Text: groupThousands(int64(math.Round(v)))}
}

// groupThousands writes n with commas between groups of three digits.
func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Clients writes the daemons' table for a terminal, nothing when no
// daemon ran: one row per daemon and kernel (clientHeads), then the
// legend.
func Clients(w io.Writer, run *results.Run) error {
	if run == nil {
		return errors.New("render daemons: no run")
	}
	rows := clientRows(run)
	if len(rows) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(clientHeads, "\t"))
	for _, row := range rows {
		cells := []string{inert.OneLine(row.daemon), inert.OneLine(row.kernel)}
		for _, c := range row.cells {
			cells = append(cells, c.Text)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write daemons: %w", err)
	}
	if _, err := fmt.Fprintf(w, "\n%s\n", strings.Join(wrap(clientLegend, 100, 20), "\n")); err != nil {
		return fmt.Errorf("write daemons: %w", err)
	}
	return nil
}

// clientTable is clientRows as an HTML table.
func clientTable(run *results.Run) htmlTable {
	t := htmlTable{Head: clientHeads}
	for _, row := range clientRows(run) {
		t.Rows = append(t.Rows, append([]htmlCell{{Text: inert.OneLine(row.daemon)}, {Text: inert.OneLine(row.kernel)}}, row.cells...))
	}
	return t
}
