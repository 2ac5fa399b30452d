package compare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fusematrix/fusematrix/harness/inert"
)

// Renderers prints a Report by -format name.
var Renderers = map[string]func(io.Writer, *Report) error{
	"table":    Table,
	"markdown": Markdown,
	"json":     JSON,
}

// Widths of the terminal table's columns, in runes.
const (
	idWidth        = 32
	cellValueWidth = 28
	cellNoteWidth  = 110
)

// Headline is the verdict and its counts: "REGRESSED: 2 regressions, 1
// fix, 0 changes, 0 flaky" or "ok: no regression, …".
func (r *Report) Headline() string {
	word := "ok"
	if r.Regressed {
		word = "REGRESSED"
	}
	regs := "no regression"
	if r.Counts.Regressions > 0 {
		regs = plural(r.Counts.Regressions, "regression")
	}
	return fmt.Sprintf("%s: %s, %s, %s, %d flaky", word, regs,
		plural(r.Counts.Fixes, "fix"), plural(r.Counts.Changes, "change"), r.Counts.Flaky)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, "x") {
		return fmt.Sprintf("%d %ses", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func (s Side) describe() string {
	started := "start unknown"
	if !s.Started.IsZero() {
		started = "started " + s.Started.UTC().Format("2006-01-02 15:04 UTC")
	}
	model := s.CPUModel
	if model == "" {
		model = "CPU model unknown"
	}
	return fmt.Sprintf("%s, %s, host %s (%d CPUs)", started, plural(s.Kernels, "kernel"), model, s.CPUs)
}

// kernelHead is what a kernel's block or row starts with: where it is,
// its accelerator, and its package when that changed.
func (k *Kernel) head() string {
	switch k.Presence {
	case Gone:
		return "only in the old run"
	case New:
		return "only in the new run"
	}
	accel := k.NewAccel
	if k.OldAccel != k.NewAccel {
		accel = orDash(k.OldAccel) + " → " + orDash(k.NewAccel)
	}
	s := orDash(accel)
	if k.Upgraded {
		s += ", upgraded"
	}
	return s
}

// cellsLine sums up a kernel's throughput comparison, "" without cells.
func (k *Kernel) cellsLine() string {
	if k.Cells == 0 {
		return ""
	}
	return fmt.Sprintf("throughput: %s compared, %d within the noise", plural(k.Cells, "cell"), k.Within)
}

func idOf(f Finding) string {
	if f.ID == "" {
		return "(kernel)"
	}
	return f.ID
}

// unchanged lists the kernels that have no finding.
func (r *Report) unchanged() []string {
	var out []string
	for _, k := range r.Kernels {
		switch {
		case len(k.Findings) > 0:
		case k.Cells > 0:
			out = append(out, fmt.Sprintf("%s (%s compared, within the noise)", k.Name, plural(k.Cells, "cell")))
		default:
			out = append(out, k.Name)
		}
	}
	return out
}

// Table writes the report for a terminal: the verdict, the two runs, and
// one block per kernel that changed.
func Table(w io.Writer, r *Report) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "compare: %s\n", r.Headline())
	fmt.Fprintf(&b, "old: %s: %s\n", r.Old.Path, r.Old.describe())
	fmt.Fprintf(&b, "new: %s: %s\n", r.New.Path, r.New.describe())
	for _, k := range r.Kernels {
		if len(k.Findings) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s (%s)\n", k.Name, k.head())
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  VERDICT\tCHECK\tWHAT\tOLD\tNEW\tNOTE")
		for _, f := range k.Findings {
			verdict := string(f.Verdict)
			if f.Verdict == Regression {
				verdict = "REGRESSION"
			}
			if f.Aspect == AspectKernel && f.What == "package" {
				// The version tells packages apart; the note has room for both in full.
				f.Old, f.New = packageVersion(f.Old), packageVersion(f.New)
				f.Note = "the selector now resolves to " + k.NewSource
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", verdict, inert.Truncate(idOf(f), idWidth),
				inert.Truncate(f.What, idWidth), inert.Truncate(f.Old, cellValueWidth), inert.Truncate(f.New, cellValueWidth),
				inert.Truncate(f.Note, cellNoteWidth))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if line := k.cellsLine(); line != "" {
			fmt.Fprintf(&b, "  %s\n", line)
		}
	}
	if names := r.unchanged(); len(names) > 0 {
		fmt.Fprintf(&b, "\nno change: %s\n", strings.Join(names, ", "))
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "note: %s\n", n)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// md makes one-line text safe in a GitHub Markdown table cell or list
// item: what would end a cell, start emphasis, a link, code or HTML is
// escaped.
func md(s string) string {
	var b strings.Builder
	for _, r := range inert.OneLine(s) {
		if strings.ContainsRune("\\`*_[]<>|~&#", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Markdown writes the report for a GitHub step summary: the verdict, the
// two runs, one table of every finding, then the notes.
func Markdown(w io.Writer, r *Report) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "### fusematrix compare: %s\n\n", md(r.Headline()))
	fmt.Fprintf(&b, "- old: %s: %s\n", md(r.Old.Path), md(r.Old.describe()))
	fmt.Fprintf(&b, "- new: %s: %s\n", md(r.New.Path), md(r.New.describe()))
	rows := 0
	for _, k := range r.Kernels {
		rows += len(k.Findings)
	}
	if rows > 0 {
		b.WriteString("\n| kernel | verdict | check | what | old | new | note |\n|---|---|---|---|---|---|---|\n")
		for _, k := range r.Kernels {
			for _, f := range k.Findings {
				verdict := md(string(f.Verdict))
				if f.Verdict == Regression {
					verdict = "**" + verdict + "**"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", md(k.Name+" ("+k.head()+")"), verdict,
					md(idOf(f)), md(f.What), md(f.Old), md(f.New), md(f.Note))
			}
		}
	}
	var lines []string
	for _, k := range r.Kernels {
		if line := k.cellsLine(); line != "" && len(k.Findings) > 0 {
			lines = append(lines, md(k.Name)+": "+md(line))
		}
	}
	if names := r.unchanged(); len(names) > 0 {
		lines = append(lines, "no change: "+md(strings.Join(names, ", ")))
	}
	for _, n := range r.Notes {
		lines = append(lines, md(n))
	}
	if len(lines) > 0 {
		b.WriteString("\n")
		for _, l := range lines {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// JSON writes the report as indented JSON: the Report struct is the
// format, its version in Format.
func JSON(w io.Writer, r *Report) error {
	out := *r
	out.Kernels = append([]Kernel{}, r.Kernels...)
	for i := range out.Kernels {
		if out.Kernels[i].Findings == nil {
			out.Kernels[i].Findings = []Finding{}
		}
	}
	out.Old.Started, out.New.Started = out.Old.Started.UTC().Truncate(time.Second), out.New.Started.UTC().Truncate(time.Second)
	b, err := json.MarshalIndent(&out, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// packageVersion is the version in a Debian kernel's source, "PACKAGE
// VERSION (SUITE)", or the source itself when it is not of that form.
func packageVersion(source string) string {
	if f := strings.Fields(source); len(f) == 3 && strings.HasPrefix(f[2], "(") {
		return f[1]
	}
	return source
}
