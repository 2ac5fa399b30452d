// Package report renders a results.Run for people and for CI: the table
// printed at the end of a run, the same table as GitHub Markdown, JUnit XML
// for CI test views, and the HTML report with its chart (the one part that
// plots: gonum/plot). results.json itself is results.WriteJSON's.
//
// Every renderer is driven by the data alone: result ids become columns in
// the order kernels first reported them, so new scenarios and benchmarks
// show up without changes here. The HTML report turns that table around
// into a grid (grid.go): results down, grouped by kind, and kernels
// across in version order, so that a wide matrix reads like a
// compatibility table. Only well-known metric suffixes (_mbps,
// _ratio) get special formatting. The capability view (Caps, CapsMarkdown,
// CapsJSON) is the exception: its columns are named probe facts, since a
// reader compares kernels capability by capability. Text that came from a
// guest is treated as hostile and made inert for the medium it lands in.
package report

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/results"
)

// resultIDs returns the union of result ids over all kernels, in the order
// they were first seen, so that columns follow the agent's run order.
func resultIDs(run *results.Run) []string {
	seen := map[string]bool{}
	var ids []string
	for _, k := range run.Kernels {
		for _, r := range k.Results {
			if !seen[r.ID] {
				seen[r.ID] = true
				ids = append(ids, r.ID)
			}
		}
	}
	return ids
}

// completed reports whether the guest ran to its done event; anything
// else counts as a boot (or run) failure that CI must show.
func completed(k *results.Kernel) bool {
	return k.Status == results.Pass
}

// bootError is what a kernel that did not complete has to say for itself.
func bootError(k *results.Kernel) string {
	if k.Error != "" {
		return k.Error
	}
	return "kernel did not run to completion"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fuseCells returns the protocol version and whether passthrough was
// offered, or dashes when the kernel reported no capabilities.
func fuseCells(k *results.Kernel) (proto, passthrough string) {
	c := k.Capabilities
	if c == nil {
		return "-", "-"
	}
	proto = fmt.Sprintf("%d.%d", c.FuseMajor, c.FuseMinor)
	if c.Passthrough {
		return proto, "yes"
	}
	return proto, "no"
}

// statusWord spells a status for the tables; failures are upper case so
// that they stand out without colour.
func statusWord(s results.Status) string {
	switch s {
	case results.Pass, results.Skip:
		return string(s)
	case results.Fail, results.Error:
		return strings.ToUpper(string(s))
	}
	return inert.Truncate(inert.OneLine(string(s)), 8)
}

// figure is the rendered metrics of one benchmark on one kernel.
type figure struct {
	kernel, id string
	parts      []string
}

// figures lists the benchmark results of every kernel that carry metrics.
func figures(run *results.Run) []figure {
	var fs []figure
	for _, k := range run.Kernels {
		for _, r := range k.Results {
			if r.Kind != results.Benchmark || len(r.Metrics) == 0 {
				continue
			}
			fs = append(fs, figure{kernel: inert.OneLine(k.Name), id: inert.OneLine(r.ID), parts: metricParts(r.Metrics)})
		}
	}
	return fs
}

// metricParts renders metrics as "name value" phrases. Each x_mbps is
// shown with its x_ratio when there is one; throughputs without a ratio
// (the native baseline) come first, since the ratios are relative to it.
// Any other metric follows under its own name.
func metricParts(m map[string]float64) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	used := map[string]bool{}
	var base, paired []string
	for _, n := range names {
		mode, ok := strings.CutSuffix(n, "_mbps")
		if !ok {
			continue
		}
		used[n] = true
		s := inert.OneLine(mode) + " " + mbps(m[n])
		if r, ok := m[mode+"_ratio"]; ok {
			used[mode+"_ratio"] = true
			paired = append(paired, s+" ("+ratio(r)+")")
		} else {
			base = append(base, s)
		}
	}
	parts := append(base, paired...)
	for _, n := range names {
		if used[n] {
			continue
		}
		if mode, ok := strings.CutSuffix(n, "_ratio"); ok {
			parts = append(parts, inert.OneLine(mode)+" "+ratio(m[n]))
			continue
		}
		parts = append(parts, inert.OneLine(n)+" "+plainNumber(m[n]))
	}
	return parts
}

// note is one line of the notes under a table: a result that did not
// pass, a kernel that did not complete, or why another accelerator ran.
type note struct {
	kernel, id string
	status     results.Status // empty for notes that are not results
	word       string         // what stands where the status would
	text       string
	console    []string // console tail, for kernels that did not complete
	consoleLog string
}

func notes(run *results.Run) []note {
	var ns []note
	for _, k := range run.Kernels {
		name := inert.OneLine(k.Name)
		if !completed(&k) {
			ns = append(ns, note{kernel: name, id: "boot", status: results.Error, word: "error",
				text: inert.OneLine(bootError(&k)), console: k.ConsoleTail, consoleLog: inert.OneLine(k.ConsoleLog)})
		}
		if k.AccelNote != "" {
			ns = append(ns, note{kernel: name, id: "accel", word: inert.OneLine(orDash(k.Accel)), text: inert.OneLine(k.AccelNote)})
		}
		if k.Retried != "" {
			ns = append(ns, note{kernel: name, id: "boot", word: "retried", text: inert.OneLine(k.Retried)})
		}
		if len(k.Missing) > 0 {
			ns = append(ns, note{kernel: name, id: "packages", word: "missing",
				text: inert.OneLine("not in the archive, booted without: " + strings.Join(k.Missing, ", "))})
		}
		for _, r := range k.Results {
			if r.Status == results.Pass {
				continue
			}
			text := inert.OneLine(r.Reason)
			if text == "" {
				text = "(no reason given)"
			}
			ns = append(ns, note{kernel: name, id: inert.OneLine(r.ID), status: r.Status, word: inert.OneLine(string(r.Status)), text: text})
		}
	}
	return ns
}

// headline describes the run as a whole: when, how long, on what, as
// phrases to be joined with " · ".
func headline(run *results.Run) []string {
	parts := []string{"fusematrix"}
	if !run.Started.IsZero() {
		parts = append(parts, "started "+run.Started.UTC().Format("2006-01-02 15:04:05 UTC"))
		if d := run.Finished.Sub(run.Started); !run.Finished.IsZero() && d >= 0 {
			parts = append(parts, "took "+d.Round(100*time.Millisecond).String())
		}
	}
	var host []string
	if run.Host.QEMU != "" {
		host = append(host, "qemu "+inert.OneLine(run.Host.QEMU))
	}
	if run.Host.CPUs > 0 {
		host = append(host, fmt.Sprintf("%d CPUs", run.Host.CPUs))
	}
	if run.Host.Jobs > 0 {
		host = append(host, fmt.Sprintf("%d jobs", run.Host.Jobs))
	}
	if run.Host.Accel != "" {
		host = append(host, "accel "+inert.OneLine(run.Host.Accel))
	}
	if len(host) > 0 {
		parts = append(parts, "host: "+strings.Join(host, ", "))
	}
	return parts
}

// verdict summarises the run for the line CI logs end with: "ok" or
// "FAILED" first, so that a glance (or grep) is enough.
func verdict(run *results.Run) []string {
	var c results.Counts
	ok, incomplete := true, 0
	for _, k := range run.Kernels {
		for _, r := range k.Results {
			c.Add(r.Status)
		}
		if !completed(&k) {
			incomplete++
		}
		if !k.OK() {
			ok = false
		}
	}
	word := "ok"
	if !ok {
		word = "FAILED"
	}
	kernels := plural(len(run.Kernels), "kernel")
	if incomplete > 0 {
		kernels += fmt.Sprintf(" (%d did not complete)", incomplete)
	}
	return []string{word, kernels, fmt.Sprintf("%s: %d pass, %d fail, %d skip, %d error",
		plural(c.Results, "result"), c.Pass, c.Fail, c.Skip, c.Error)}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
