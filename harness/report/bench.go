package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// benchModes are the columns every bench table shows, in order, even when
// a kernel measured none of a mode (the passthrough column of a kernel
// without it reads "skip", which is the point).
var benchModes = []contract.Mode{contract.Native, contract.Noop, contract.Classic, contract.Passthrough}

// benchModeOrder places modes next to their relatives in tables and chart
// legends. A mode it does not name comes after all of these, in the order
// the guest reported it, so a new mode shows up without a change here.
var benchModeOrder = []contract.Mode{contract.Native, contract.Noop, contract.LibfuseNoop, contract.Classic,
	contract.Passthrough, contract.PassthroughNoXattr}

// ratioNoopHead heads the passthrough/noop column: the claim this project
// measures is about that ratio.
const ratioNoopHead = "pt/noop"

// sortModes orders modes by benchModeOrder, the rest after them in their
// given order, as every bench view shows them.
func sortModes(modes []contract.Mode) {
	rank := func(m contract.Mode) int {
		if i := slices.Index(benchModeOrder, m); i >= 0 {
			return i
		}
		return len(benchModeOrder)
	}
	slices.SortStableFunc(modes, func(a, b contract.Mode) int { return rank(a) - rank(b) })
}

// benchRow is one op at one block size, its cells by mode.
type benchRow struct {
	op    contract.Op
	block int
	cells map[contract.Mode]*results.Result
}

// benchNote is the reason shared by every cell that did not pass for it
// (every passthrough cell on a kernel without passthrough), so that a
// table carries it once.
type benchNote struct {
	status results.Status
	reason string
	ids    []string
}

// benchGrid is one kernel's cells as the bench views show them.
type benchGrid struct {
	modes []contract.Mode
	rows  []benchRow
	notes []benchNote
}

func newBenchGrid(k *results.Kernel) benchGrid {
	g := benchGrid{modes: slices.Clone(benchModes)}
	at := map[[2]string]int{}
	noted := map[[2]string]int{}
	for i := range k.Results {
		r := &k.Results[i]
		c, ok := contract.ParseCell(contract.ID(r.ID))
		if !ok {
			continue
		}
		key := [2]string{string(c.Op), strconv.Itoa(c.Block)}
		j, seen := at[key]
		if !seen {
			j = len(g.rows)
			at[key] = j
			g.rows = append(g.rows, benchRow{op: c.Op, block: c.Block, cells: map[contract.Mode]*results.Result{}})
		}
		g.rows[j].cells[c.Mode] = r
		if !slices.Contains(g.modes, c.Mode) {
			g.modes = append(g.modes, c.Mode)
		}
		if r.Status != results.Pass {
			n := [2]string{string(r.Status), inert.OneLine(r.Reason)}
			j, seen := noted[n]
			if !seen {
				j = len(g.notes)
				noted[n] = j
				g.notes = append(g.notes, benchNote{status: r.Status, reason: n[1]})
			}
			g.notes[j].ids = append(g.notes[j].ids, r.ID)
		}
	}
	sortModes(g.modes)
	return g
}

// which names the cells of a note: the first, and how many more.
func (n benchNote) which() string {
	if len(n.ids) > 1 {
		return fmt.Sprintf("%s and %d more", n.ids[0], len(n.ids)-1)
	}
	return n.ids[0]
}

// median is a passing cell's median MB/s.
func median(r *results.Result) (float64, bool) {
	if r == nil || r.Status != results.Pass {
		return 0, false
	}
	v, ok := contract.MetricMedian.Of(r)
	return v, ok && !math.IsNaN(v) && !math.IsInf(v, 0)
}

// ratioNoop is passthrough's median over noop's at the same op and block:
// the guest's ratio_noop when it sent one, else computed from the two
// cells, so that runs of agents that did not send it render too. There is
// none when either cell did not pass or noop measured nothing.
func ratioNoop(passthrough, noop *results.Result) (float64, bool) {
	pt, ok := median(passthrough)
	if !ok {
		return 0, false
	}
	if v, ok := contract.MetricRatioNoop.Of(passthrough); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
		return v, true
	}
	n, ok := median(noop)
	if !ok || n <= 0 {
		return 0, false
	}
	return pt / n, true
}

// benchLegend explains the figures of every bench table.
var benchLegend = fmt.Sprintf("MB/s, median of the runs (ratio to the native run made right before each, median of those); %s: passthrough median / noop median; %s: Go NOOP server / C NOOP server",
	ratioNoopHead, goCHead)

// goCHead heads the column that says whether the Go NOOP server limits
// the NOOP figure: its throughput over the C peer's.
const goCHead = "go/C noop"

// ratioGoC is the Go NOOP cell over the C one: the guest's paired
// ratio_libfuse_noop when it sent one, else the ratio of the medians.
func ratioGoC(goNoop, cNoop *results.Result) (float64, bool) {
	g, ok := median(goNoop)
	if !ok {
		return 0, false
	}
	if v, ok := contract.MetricRatioLibfuseNoop.Of(goNoop); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
		return v, true
	}
	c, ok := median(cNoop)
	if !ok || c <= 0 {
		return 0, false
	}
	return g / c, true
}

func (row benchRow) goCCell() string {
	if v, ok := ratioGoC(row.cells[contract.Noop], row.cells[contract.LibfuseNoop]); ok {
		return fmt.Sprintf("%.2f", v)
	}
	return "-"
}

func (row benchRow) ratioNoopCell() string { return row.overNoop(contract.Passthrough) }

// overNoop is the median of mode m over noop's, as ratioNoop finds it.
func (row benchRow) overNoop(m contract.Mode) string {
	if v, ok := ratioNoop(row.cells[m], row.cells[contract.Noop]); ok {
		return fmt.Sprintf("%.2f", v)
	}
	return "-"
}

// A user's daemon (a mode contract.DaemonMode) gets a column of its own
// beside pt/noop: its median over noop's, how close it comes to the
// fastest any FUSE daemon can be on that kernel.
func daemonNoopHead(m contract.Mode) string {
	name, _ := m.Daemon()
	return name + "/noop"
}

// extraHeads are the ratio columns after the modes.
func (g *benchGrid) extraHeads() []string {
	heads := []string{ratioNoopHead, goCHead}
	for _, m := range g.daemons() {
		heads = append(heads, inert.OneLine(daemonNoopHead(m)))
	}
	return heads
}

// extraCells are row's values of extraHeads.
func (g *benchGrid) extraCells(row benchRow) []string {
	cells := []string{row.ratioNoopCell(), row.goCCell()}
	for _, m := range g.daemons() {
		cells = append(cells, row.overNoop(m))
	}
	return cells
}

// daemons are the modes of g that are a user's daemon.
func (g *benchGrid) daemons() []contract.Mode {
	var out []contract.Mode
	for _, m := range g.modes {
		if _, ok := m.Daemon(); ok {
			out = append(out, m)
		}
	}
	return out
}

// daemonCalls says, per daemon of g, the kernel's count of its read calls
// per GiB in each cell that has one (daemon_read_calls_per_gib): what
// tells a daemon's author whether its reads were passed through.
func (g *benchGrid) daemonCalls() []string {
	var out []string
	for _, m := range g.daemons() {
		var parts []string
		for _, row := range g.rows {
			if r := row.cells[m]; r != nil && r.Status == results.Pass {
				if v, ok := r.Metrics[daemonCallsMetric]; ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
					parts = append(parts, fmt.Sprintf("%s %s %.0f", inert.OneLine(string(row.op)), blockLabel(row.block), v))
				}
			}
		}
		if len(parts) > 0 {
			name, _ := m.Daemon()
			out = append(out, fmt.Sprintf("%s: its read calls per GiB (one per request or more when it serves them, next to none when passed through): %s",
				inert.OneLine(name), strings.Join(parts, ", ")))
		}
	}
	return out
}

// daemonCallsMetric is the metric daemonCalls shows.
const daemonCallsMetric = "daemon_read_calls_per_gib"

// legend is benchLegend, with the daemons' columns explained.
func (g *benchGrid) legend() string {
	l := benchLegend
	for _, m := range g.daemons() {
		name, _ := m.Daemon()
		l += fmt.Sprintf("; %s: daemon %s median / noop median", daemonNoopHead(m), name)
	}
	return inert.OneLine(l)
}

// Bench writes, per kernel, the throughput cells as a table: one row per
// op and block size, one column per mode, each cell the median MB/s with
// the ratio to native in brackets, then passthrough over noop; cells that
// did not pass say why below.
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

// benchHead names a kernel with its release and accelerator, which the
// figures mean nothing without.
func benchHead(k *results.Kernel) string {
	head := inert.OneLine(k.Name)
	if k.Release != "" {
		head += " (" + inert.OneLine(k.Release)
		if k.Accel != "" {
			head += ", " + inert.OneLine(k.Accel)
		}
		head += ")"
	}
	return head
}

func benchKernel(b *bytes.Buffer, k *results.Kernel) {
	fmt.Fprintln(b, benchHead(k))
	if k.Status != results.Pass {
		fmt.Fprintf(b, "  did not run: %s\n", inert.OneLine(k.Error))
	}
	g := newBenchGrid(k)
	if len(g.rows) == 0 {
		fmt.Fprintln(b, "  no benchmark cells")
		return
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "  op\tblock\t")
	for _, m := range g.modes {
		fmt.Fprintf(tw, "%s\t", inert.OneLine(string(m)))
	}
	fmt.Fprintf(tw, "%s\t\n", strings.Join(g.extraHeads(), "\t"))
	for _, row := range g.rows {
		fmt.Fprintf(tw, "  %s\t%s\t", inert.OneLine(string(row.op)), blockLabel(row.block))
		for _, m := range g.modes {
			fmt.Fprintf(tw, "%s\t", benchCell(row.cells[m]))
		}
		fmt.Fprintf(tw, "%s\t\n", strings.Join(g.extraCells(row), "\t"))
	}
	tw.Flush()
	fmt.Fprintf(b, "  %s\n", g.legend())
	for _, l := range g.daemonCalls() {
		fmt.Fprintf(b, "  %s\n", l)
	}
	if g.anyDisturbed() {
		fmt.Fprintf(b, "  %s\n", disturbedLegend)
	}
	for _, n := range g.notes {
		fmt.Fprintf(b, "  %s: %s: %s\n", inert.OneLine(n.which()), n.status, n.reason)
	}
}

// BenchMarkdown writes the bench tables as GitHub Markdown, one per
// kernel, with the same columns as Bench.
func BenchMarkdown(w io.Writer, run *results.Run) error {
	if run == nil {
		return errors.New("render bench markdown: no run")
	}
	var b bytes.Buffer
	if markdownHeading(&b, "fusematrix bench", run) {
		for _, k := range run.Kernels {
			fmt.Fprintf(&b, "**%s**\n\n", markdownText(benchHead(&k)))
			if k.Status != results.Pass {
				fmt.Fprintf(&b, "**did not run:** %s\n\n", markdownText(inert.Truncate(inert.OneLine(bootError(&k)), markdownReason)))
			}
			g := newBenchGrid(&k)
			if len(g.rows) == 0 {
				b.WriteString("No benchmark cells.\n\n")
				continue
			}
			head := []string{"op", "block"}
			for _, m := range g.modes {
				head = append(head, markdownText(inert.OneLine(string(m))))
			}
			for _, h := range g.extraHeads() {
				head = append(head, markdownText(h))
			}
			writeMarkdownRow(&b, head)
			rule := []string{"---", "---:"}
			for range len(head) - 2 {
				rule = append(rule, "---:")
			}
			writeMarkdownRow(&b, rule)
			for _, row := range g.rows {
				cells := []string{markdownText(inert.OneLine(string(row.op))), blockLabel(row.block)}
				for _, m := range g.modes {
					c := markdownText(benchCell(row.cells[m]))
					if r := row.cells[m]; r != nil && (r.Status == results.Fail || r.Status == results.Error) {
						c = "**" + c + "**"
					}
					cells = append(cells, c)
				}
				writeMarkdownRow(&b, append(cells, g.extraCells(row)...))
			}
			fmt.Fprintf(&b, "\n%s\n", markdownText(g.legend()))
			for _, l := range g.daemonCalls() {
				fmt.Fprintf(&b, "\n%s\n", markdownText(l))
			}
			if g.anyDisturbed() {
				fmt.Fprintf(&b, "\n%s\n", markdownText(disturbedLegend))
			}
			if len(g.notes) > 0 {
				b.WriteString("\n")
			}
			for _, n := range g.notes {
				fmt.Fprintf(&b, "- %s: %s: %s\n", markdownText(inert.OneLine(n.which())), markdownText(string(n.status)),
					markdownText(inert.Truncate(n.reason, markdownReason)))
			}
			b.WriteString("\n")
		}
	}
	writeMarkdownClients(&b, run)
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write bench markdown: %w", err)
	}
	return nil
}

func benchCell(r *results.Result) string {
	switch {
	case r == nil:
		return "-"
	case r.Status == results.Skip:
		return "skip"
	case r.Status != results.Pass:
		return statusWord(r.Status)
	}
	med, ok := contract.MetricMedian.Of(r)
	if !ok {
		return "?"
	}
	s := strconv.FormatFloat(med, 'f', 0, 64)
	if ratio, ok := contract.MetricRatioNative.Of(r); ok {
		mark := ""
		if disturbed(r) {
			mark = disturbedMark
		}
		s += fmt.Sprintf(" (%.2f%s)", ratio, mark)
	}
	return s
}

// A cell whose paired native runs were disturbed (the guest's fact
// ratio_native_noisy) has its ratio marked, and the table says what the
// mark means.
const (
	disturbedMark   = "?"
	disturbedLegend = disturbedMark + ": the native runs paired with the cell were disturbed (fact ratio_native_noisy); measure again before trusting the ratio"
)

func disturbed(r *results.Result) bool { return contract.FactRatioNoisy.Of(r) != "" }

// anyDisturbed reports whether a cell of g carries the mark.
func (g *benchGrid) anyDisturbed() bool {
	for _, row := range g.rows {
		for _, r := range row.cells {
			if disturbed(r) && r.Status == results.Pass {
				return true
			}
		}
	}
	return false
}

// blockLabel writes a block size as the views show it: 4K, 128K, 1M.
func blockLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return strconv.Itoa(n)
}
