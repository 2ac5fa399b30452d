package report

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"io"
	"strings"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/results"
)

// markdownReason bounds a reason in Markdown: a step summary is read on a
// web page, and the full text is in results.json and the JUnit file.
const markdownReason = 500

// Markdown writes the table, figures and notes as GitHub Markdown, for a
// CI step summary. Cells are escaped, so guest text cannot end a cell or
// inject HTML.
func Markdown(w io.Writer, run *results.Run) error {
	if run == nil {
		return errors.New("render markdown: no run")
	}
	var b bytes.Buffer
	if markdownHeading(&b, "fusematrix", run) {
		writeMarkdownGrid(&b, run)
	}
	writeMarkdownClients(&b, run)
	if fs := figures(run); len(fs) > 0 {
		b.WriteString("\n**Figures**\n\n")
		for _, f := range fs {
			fmt.Fprintf(&b, "- %s / %s: %s\n", markdownText(f.kernel), markdownText(f.id), markdownText(strings.Join(f.parts, " · ")))
		}
	}
	if ns := notes(run); len(ns) > 0 {
		b.WriteString("\n**Notes**\n\n")
		for _, n := range ns {
			word := markdownText(n.word)
			if n.status == results.Fail || n.status == results.Error {
				word = "**" + word + "**"
			}
			fmt.Fprintf(&b, "- %s / %s: %s: %s\n", markdownText(n.kernel), markdownText(n.id), word,
				markdownText(inert.Truncate(n.text, markdownReason)))
		}
		for _, n := range ns {
			writeMarkdownConsole(&b, n)
		}
	}
	fmt.Fprintf(&b, "\n%s\n", markdownText(strings.Join(verdict(run), " · ")))
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write markdown: %w", err)
	}
	return nil
}

func writeMarkdownGrid(b *bytes.Buffer, run *results.Run) {
	ids := resultIDs(run)
	head := []string{"kernel", "release", "accel", "fuse", "passthrough"}
	for _, id := range ids {
		head = append(head, markdownText(id))
	}
	// A notes column only when some kernel needs it, to keep the usual
	// table narrow.
	withNotes := false
	for _, k := range run.Kernels {
		withNotes = withNotes || !completed(&k)
	}
	if withNotes {
		head = append(head, "notes")
	}
	writeMarkdownRow(b, head)
	rule := make([]string, len(head))
	for i := range rule {
		rule[i] = "---"
	}
	writeMarkdownRow(b, rule)
	for _, k := range run.Kernels {
		proto, pt := fuseCells(&k)
		row := []string{markdownText(k.Name), markdownText(orDash(k.Release)), markdownText(orDash(k.Accel)), proto, pt}
		at := k.Index() // every id is looked up: by index, not by scanning
		for _, id := range ids {
			r := at.Result(id)
			switch {
			case r == nil:
				row = append(row, "-")
			case r.Status == results.Fail || r.Status == results.Error:
				row = append(row, "**"+markdownText(statusWord(r.Status))+"**")
			default:
				row = append(row, markdownText(statusWord(r.Status)))
			}
		}
		if withNotes {
			note := ""
			if !completed(&k) {
				note = "**error:** " + markdownText(inert.Truncate(inert.OneLine(bootError(&k)), 200))
			}
			row = append(row, note)
		}
		writeMarkdownRow(b, row)
	}
}

// writeMarkdownClients writes the daemons' table (clients.go), when a
// daemon ran.
func writeMarkdownClients(b *bytes.Buffer, run *results.Run) {
	rows := clientRows(run)
	if len(rows) == 0 {
		return
	}
	b.WriteString("\n**Daemons**\n\n")
	writeMarkdownRow(b, clientHeads)
	rule := make([]string, len(clientHeads))
	for i := range rule {
		rule[i] = "---"
	}
	writeMarkdownRow(b, rule)
	for _, row := range rows {
		cells := []string{markdownText(row.daemon), markdownText(row.kernel)}
		for _, c := range row.cells {
			text := markdownText(c.Text)
			if c.Class == string(results.Fail) || c.Class == string(results.Error) {
				text = "**" + text + "**"
			}
			cells = append(cells, text)
		}
		writeMarkdownRow(b, cells)
	}
	fmt.Fprintf(b, "\n%s\n", markdownText(clientLegend))
}

func writeMarkdownRow(b *bytes.Buffer, cells []string) {
	b.WriteString("|")
	for _, c := range cells {
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n")
}

// writeMarkdownConsole puts a console tail in a collapsed block: it helps
// when a kernel failed but would drown the summary if always open.
func writeMarkdownConsole(b *bytes.Buffer, n note) {
	if len(n.console) == 0 {
		return
	}
	lines := make([]string, len(n.console))
	longest := 0
	for i, l := range n.console {
		lines[i] = inert.ConsoleLine(l)
		longest = max(longest, longestRun(lines[i], '`'))
	}
	// A fence longer than any backtick run inside cannot be closed early.
	fence := strings.Repeat("`", max(3, longest+1))
	// The summary sits in raw HTML, where Markdown escapes do not apply.
	summary := html.EscapeString(n.kernel) + ": console tail"
	if n.consoleLog != "" {
		summary += " (" + html.EscapeString(n.consoleLog) + ")"
	}
	fmt.Fprintf(b, "\n<details><summary>%s</summary>\n\n%stext\n", summary, fence)
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(b, "%s\n\n</details>\n", fence)
}

func longestRun(s string, c rune) int {
	best, n := 0, 0
	for _, r := range s {
		if r == c {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}

// markdownHeading writes a view's title and the run's headline, and
// reports whether any kernel ran (otherwise it says so).
func markdownHeading(b *bytes.Buffer, title string, run *results.Run) bool {
	fmt.Fprintf(b, "### %s\n\n", title)
	if h := headline(run)[1:]; len(h) > 0 {
		fmt.Fprintf(b, "%s\n\n", markdownText(strings.Join(h, " · ")))
	}
	if len(run.Kernels) == 0 {
		b.WriteString("No kernels ran.\n")
		return false
	}
	return true
}
