package bisect

import (
	"fmt"
	"io"
	"strings"

	"github.com/fusematrix/fusematrix/harness/inert"
)

// Markdown writes the report for a person: the answer, how sure it is,
// and every step with its evidence and the command that reproduces it.
func Markdown(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# fusematrix bisect: `%s`\n\n", md(r.Predicate))
	fmt.Fprintf(&b, "From `%s` (good) to `%s` (bad): %d candidates, %d steps, %d boots each.\n\n",
		md(r.Good), md(r.Bad), len(r.Candidates), len(r.Steps), r.Repeat)
	switch r.Outcome {
	case "found":
		fmt.Fprintf(&b, "**First with the new behaviour:** %s\n\n**Last without:** %s\n\nCertainty: %s.\n\n",
			pointLine(r.FirstNew), pointLine(r.LastOld), md(r.Certainty))
	case "":
		b.WriteString("**Not finished** (interrupted): resume with `-resume`.\n\n")
	default:
		fmt.Fprintf(&b, "**No answer (%s):** %s\n\n", r.Outcome, md(r.Message))
	}
	b.WriteString("| # | candidate | verdict | evidence | seconds |\n|---|---|---|---|---|\n")
	for i, st := range r.Steps {
		fmt.Fprintf(&b, "| %d | `%s` | %s | %s | %.1f |\n", i+1, md(st.Candidate.Selector), st.Verdict, md(evidence(&st)), st.Seconds)
	}
	for i, st := range r.Steps {
		if st.Command != "" && i == 0 {
			fmt.Fprintf(&b, "\nOne step by hand: `%s`\n", md(st.Command))
		}
		for _, run := range st.Runs {
			if len(run.ConsoleTail) > 0 {
				fmt.Fprintf(&b, "\n<details><summary>%s: console tail</summary>\n\n```\n%s\n```\n</details>\n",
					md(st.Candidate.Selector), strings.ReplaceAll(strings.Join(run.ConsoleTail, "\n"), "```", "'''"))
				break
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func pointLine(p *Point) string {
	if p == nil {
		return "-"
	}
	s := "`" + md(p.Selector) + "`"
	if p.Commit != "" {
		s = fmt.Sprintf("`%.12s` %s (%s)", md(p.Commit), md(p.Subject), md(p.Date))
	}
	if p.Release != "" {
		s += ", release " + md(p.Release)
	}
	return s
}

// md makes guest or user text inert in a table cell.
func md(s string) string {
	s = inert.Truncate(inert.OneLine(s), 300)
	return strings.NewReplacer("|", `\|`, "`", "'", "<", "&lt;", ">", "&gt;").Replace(s)
}
