package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// DefaultWidth is the line width the table keeps within when Options
// names none: a CI log or a split terminal, not a full screen.
const DefaultWidth = 120

// Options tune the terminal table.
type Options struct {
	// Color adds ANSI colours; set it from WantColor or a command-line
	// flag, never by default, since the table often ends up in logs.
	Color bool
	// Width is the line width to stay within; 0 means DefaultWidth.
	// Result columns that do not fit continue in a further block.
	Width int
	// ConsoleLines bounds the console tail shown for a kernel that did
	// not complete; 0 means 10.
	ConsoleLines int
	// DaemonsApart leaves the daemons' results (daemon/NAME/…) out of
	// the grid, for a caller that prints the daemons' table (Clients)
	// instead: a dozen checks of each of a catalog's daemons would bury
	// fusematrix's own. What did not pass still goes in the notes.
	DaemonsApart bool
}

// Table writes the plain-text summary printed at the end of a run.
func Table(w io.Writer, run *results.Run) error {
	return TableWith(w, run, Options{})
}

// TableWith writes the summary with the given options: a headline, one row
// per kernel with a column per result id, the benchmark figures, notes for
// everything that did not pass, and a verdict line.
func TableWith(w io.Writer, run *results.Run, o Options) error {
	if run == nil {
		return errors.New("render table: no run")
	}
	if o.Width <= 0 {
		o.Width = DefaultWidth
	}
	if o.ConsoleLines <= 0 {
		o.ConsoleLines = 10
	}
	p := painter(o.Color)
	var b bytes.Buffer
	for _, l := range joinWrapped("", headline(run), o.Width, 2) {
		fmt.Fprintln(&b, l)
	}
	fmt.Fprintln(&b)
	if len(run.Kernels) == 0 {
		fmt.Fprintln(&b, "no kernels ran")
	} else if err := writeGrid(&b, run, o, p); err != nil {
		return err
	}
	if fs := figures(run); len(fs) > 0 {
		fmt.Fprintln(&b)
		fmt.Fprintln(&b, "Figures")
		writeFigures(&b, fs, o.Width)
	}
	if ns := notes(run); len(ns) > 0 {
		fmt.Fprintln(&b)
		fmt.Fprintln(&b, "Notes")
		writeNotes(&b, ns, o, p)
	}
	fmt.Fprintln(&b)
	for _, l := range joinWrapped("", verdict(run), o.Width, 2) {
		fmt.Fprintln(&b, l)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// ANSI SGR sequences. Tabwriter counts escape bytes as width, so in colour
// mode every cell of the grid carries exactly one 5-byte sequence and one
// reset: the invisible overhead is then the same in every cell of a
// column and the columns still line up.
const (
	sgrNone   = "\x1b[39m" // default colour: padding for uncoloured cells
	sgrHeader = "\x1b[01m"
	sgrPass   = "\x1b[32m"
	sgrSkip   = "\x1b[33m"
	sgrFail   = "\x1b[31m"
	sgrDim    = "\x1b[02m"
	sgrReset  = "\x1b[0m"
)

type painter bool

func (p painter) paint(sgr, s string) string {
	if !p {
		return s
	}
	return sgr + s + sgrReset
}

func statusSGR(s results.Status) string {
	switch s {
	case results.Pass:
		return sgrPass
	case results.Skip:
		return sgrSkip
	case results.Fail, results.Error:
		return sgrFail
	}
	return sgrNone
}

type cell struct {
	text, sgr string
}

// writeGrid writes the kernel rows, splitting result columns into blocks
// that fit width; every block after the first repeats the kernel name.
func writeGrid(b *bytes.Buffer, run *results.Run, o Options, p painter) error {
	width := o.Width
	ids := resultIDs(run)
	if o.DaemonsApart {
		ids = slices.DeleteFunc(ids, func(id string) bool { return strings.HasPrefix(id, contract.DaemonPrefix) })
	}
	fixedHead := []string{"kernel", "release", "accel", "fuse", "passthrough"}
	head := make([]cell, 0, len(fixedHead)+len(ids))
	for _, h := range fixedHead {
		head = append(head, cell{h, sgrHeader})
	}
	for _, id := range ids {
		head = append(head, cell{inert.OneLine(id), sgrHeader})
	}
	rows := [][]cell{head}
	var trailers []string
	for _, k := range run.Kernels {
		proto, pt := fuseCells(&k)
		row := []cell{
			{inert.Truncate(inert.OneLine(k.Name), 40), sgrNone},
			{inert.Truncate(inert.OneLine(orDash(k.Release)), 40), sgrNone},
			{inert.Truncate(inert.OneLine(orDash(k.Accel)), 8), sgrNone},
			{proto, sgrNone},
			{pt, sgrNone},
		}
		at := k.Index() // every id is looked up: by index, not by scanning
		for _, id := range ids {
			r := at.Result(id)
			if r == nil {
				row = append(row, cell{"-", sgrDim})
				continue
			}
			row = append(row, cell{statusWord(r.Status), statusSGR(r.Status)})
		}
		rows = append(rows, row)
		trailer := ""
		if !completed(&k) {
			trailer = "error: " + inert.OneLine(bootError(&k))
		}
		trailers = append(trailers, trailer)
	}
	return writeBlocks(b, rows, len(fixedHead), trailers, width, p)
}

// writeBlocks lays out rows (the first is the header) as aligned columns,
// continuing columns past the first nfixed in further blocks where they
// do not fit width; every block after the first repeats column 0.
// trailers[i] is shown after (or under) data row i in the first block.
func writeBlocks(b *bytes.Buffer, rows [][]cell, nfixed int, trailers []string, width int, p painter) error {
	head := rows[0]
	widths := make([]int, len(head))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
		}
	}
	const pad = 2
	// Each block holds at least one result column, even one wider than
	// width, so that every id is shown.
	var blocks [][]int
	cur, used, base := []int{}, -pad, nfixed
	for i := range nfixed {
		cur = append(cur, i)
		used += widths[i] + pad
	}
	firstWidth := used
	for i := nfixed; i < len(head); i++ {
		if used+pad+widths[i] > width && len(cur) > base {
			blocks = append(blocks, cur)
			cur, used, base = []int{0}, widths[0], 1
		}
		cur = append(cur, i)
		used += pad + widths[i]
		if len(blocks) == 0 {
			firstWidth = used
		}
	}
	blocks = append(blocks, cur)
	// A kernel that did not complete has its error after its row, or
	// under it when too little of the line is left.
	const minRoom = 40
	room := width - firstWidth - pad

	for bi, cols := range blocks {
		if bi > 0 {
			fmt.Fprintln(b)
		}
		var grid bytes.Buffer
		tw := tabwriter.NewWriter(&grid, 0, 0, pad, ' ', 0)
		for ri, row := range rows {
			for _, ci := range cols {
				fmt.Fprint(tw, p.paint(row[ci].sgr, row[ci].text), "\t")
			}
			if bi == 0 && ri > 0 && trailers[ri-1] != "" && room >= minRoom {
				fmt.Fprint(tw, p.paint(sgrFail, inert.Truncate(trailers[ri-1], room)))
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("lay out table: %w", err)
		}
		ri := 0
		for line := range strings.Lines(grid.String()) {
			b.WriteString(strings.TrimRight(line, " \n"))
			b.WriteByte('\n')
			if bi == 0 && ri > 0 && trailers[ri-1] != "" && room < minRoom {
				// No room at the end of the row: the error goes on a line
				// of its own, under the row, after tabwriter has aligned
				// the columns.
				indent := widths[0] + pad
				fmt.Fprintf(b, "%s%s\n", strings.Repeat(" ", indent), p.paint(sgrFail, inert.Truncate(trailers[ri-1], width-indent)))
			}
			ri++
		}
	}
	return nil
}

// writeFigures writes the figures of each kernel under its name, one line
// per benchmark, wrapping at the separators to stay within width.
func writeFigures(b *bytes.Buffer, fs []figure, width int) {
	iw := 0
	for _, f := range fs {
		iw = max(iw, utf8.RuneCountInString(f.id))
	}
	indent := 4 + iw + 2
	if indent > width/2 {
		indent = 6
	}
	for i, f := range fs {
		if i == 0 || fs[i-1].kernel != f.kernel {
			b.WriteString("  " + f.kernel + "\n")
		}
		lead := "    " + padRight(f.id, iw) + "  "
		if utf8.RuneCountInString(lead) > indent {
			// ids too long to align: figures go on the next line
			b.WriteString("    " + f.id + "\n")
			lead = strings.Repeat(" ", indent)
		}
		for _, l := range joinWrapped(lead, f.parts, width, indent) {
			b.WriteString(l + "\n")
		}
	}
}

// joinWrapped joins parts with " · " after lead, starting a new line
// indented by indent wherever the next part would cross width. A part
// longer than a line stays whole.
func joinWrapped(lead string, parts []string, width, indent int) []string {
	var lines []string
	line, fresh := lead, true
	for i, part := range parts {
		if i > 0 {
			part = "· " + part
		}
		if !fresh && utf8.RuneCountInString(line)+1+utf8.RuneCountInString(part) > width {
			lines = append(lines, line)
			line, fresh = strings.Repeat(" ", indent), true
		}
		if !fresh {
			line += " "
		}
		line += part
		fresh = false
	}
	return append(lines, line)
}

func padRight(s string, n int) string {
	return s + strings.Repeat(" ", max(n-utf8.RuneCountInString(s), 0))
}

// writeNotes writes "kernel / id: status: reason" for every note, wrapping
// long reasons over a few lines, and the console tail of kernels that did
// not complete.
func writeNotes(b *bytes.Buffer, ns []note, o Options, p painter) {
	for _, n := range ns {
		lead := n.kernel + " / " + n.id + ": " + n.word + ":"
		lines := wrap(lead+" "+n.text, o.Width-4, 4)
		if bool(p) && strings.HasPrefix(lines[0], lead) {
			sgr := sgrNone
			if n.status != "" {
				sgr = statusSGR(n.status)
			}
			lines[0] = n.kernel + " / " + n.id + ": " + p.paint(sgr, n.word) + ":" + lines[0][len(lead):]
		}
		for i, l := range lines {
			if i == 0 {
				b.WriteString("  " + l + "\n")
			} else {
				b.WriteString("    " + l + "\n")
			}
		}
		writeConsole(b, n, o)
	}
}

func writeConsole(b *bytes.Buffer, n note, o Options) {
	if len(n.console) == 0 {
		if n.consoleLog != "" {
			fmt.Fprintf(b, "    console log: %s\n", n.consoleLog)
		}
		return
	}
	tail := n.console
	if len(tail) > o.ConsoleLines {
		tail = tail[len(tail)-o.ConsoleLines:]
	}
	what := "console"
	if n.consoleLog != "" {
		what += " " + n.consoleLog
	}
	fmt.Fprintf(b, "    %s, last %s:\n", what, plural(len(tail), "line"))
	for _, l := range tail {
		b.WriteString(strings.TrimRight("    | "+inert.Truncate(inert.ConsoleLine(l), o.Width-6), " ") + "\n")
	}
}
