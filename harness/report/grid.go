package report

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// The HTML report opens on one grid, like caniuse's tables: results
// down, kernels across in version order, one coloured cell per result
// and kernel, and the capability map under it in the same columns, so
// that a reader follows one kernel down a single column and one feature
// across a single row. Every cell carries its reason as a tooltip; every
// column head links to the kernel's section further down. The columns
// are narrow and their heads upright-rotated, so that a wide matrix
// (eleven kernels and more) fits a laptop's screen without scrolling
// sideways.

// gridNameWidth bounds a kernel's name in its rotated column head, and
// gridIDWidth a result id in its row head; both carry the whole text in
// their tooltip. gridTitleWidth bounds one tooltip's reason.
const (
	gridNameWidth  = 34
	gridIDWidth    = 40
	gridTitleWidth = 400
)

type htmlGrid struct {
	Columns []htmlColumn
	Groups  []htmlGroup
	// Span is the grid's width in cells, a row head and one per kernel;
	// HeadWidth is the longest row head in runes, which the row heads'
	// column is sized by.
	Span, HeadWidth int
}

// htmlColumn is one kernel: Anchor is its section's id, Label its name
// as the rotated head shows it, Version the short version under it.
type htmlColumn struct {
	Anchor                string
	Label, Title          string
	Version, VersionTitle string
}

// htmlGroup is a run of rows under one heading ("" for none); Caps
// marks the capability map's groups, whose cells hold values rather
// than statuses.
type htmlGroup struct {
	Name, Note string
	Caps       bool
	Rows       []htmlRow
}

type htmlRow struct {
	Head, Title string
	Cells       []htmlGridCell
}

// htmlGridCell is one cell of the grid: Class colours it (a status, or
// a value's class), Href, when set, is the id of the result's row in
// its kernel's section.
type htmlGridCell struct {
	Text, Class, Title, Href string
}

// versionPattern finds a kernel version in a release, name or package
// string: "6.12.118" in "6.12.118+deb12-cloud-amd64", "6.1.0-57" in
// "6.1.0-57-cloud-amd64" (Debian's ABI number orders its uploads).
var versionPattern = regexp.MustCompile(`\d+(\.\d+)+(-\d+)?`)

// kernelVersion is the version a kernel sorts by, and the short text its
// column shows: from its release when it said hello, else from its name
// (debian:7.3/cloud), else from the package it came from. nil when none
// of them has one.
func kernelVersion(k *results.Kernel) (key []int, text string) {
	for _, s := range []string{k.Release, k.Name, k.Source} {
		if m := versionPattern.FindString(s); m != "" {
			for _, part := range strings.FieldsFunc(m, func(r rune) bool { return r == '.' || r == '-' }) {
				n, err := strconv.Atoi(part)
				if err != nil { // too many digits: compare what was read
					break
				}
				key = append(key, n)
			}
			return key, m
		}
	}
	return nil, ""
}

// byVersion returns the kernels in version order, oldest first. Kernels
// of equal version (6.12.118 from two suites) are ordered by release,
// then name, so that shards merged in any order give the same page;
// kernels without any version come last, in the run's order.
func byVersion(ks []results.Kernel) []results.Kernel {
	sorted := slices.Clone(ks)
	slices.SortStableFunc(sorted, func(a, b results.Kernel) int {
		ka, _ := kernelVersion(&a)
		kb, _ := kernelVersion(&b)
		switch {
		case ka == nil && kb == nil:
			return 0
		case ka == nil:
			return 1
		case kb == nil:
			return -1
		}
		return cmp.Or(slices.Compare(ka, kb), strings.Compare(a.Release, b.Release), strings.Compare(a.Name, b.Name))
	})
	return sorted
}

// kernelAnchor is the id of a kernel's section: its position on the
// page, never its name, which the guest's side chose.
func kernelAnchor(i int) string { return "k" + strconv.Itoa(i+1) }

func resultAnchor(kernel, result int) string {
	return kernelAnchor(kernel) + "-r" + strconv.Itoa(result+1)
}

// kindGroups orders the result rows: by kind, in the order a check runs
// (probes, scenarios, benchmarks, then the host's expectations), and
// within a kind as first reported.
var kindGroups = []struct {
	kind results.Kind
	name string
}{
	{results.Probe, "probes"},
	{results.Scenario, "scenarios"},
	{results.Benchmark, "benchmarks"},
	{results.Expectation, "expectations"},
	{"", "other"},
}

// groupKind is the kind a result is grouped under: its own, or "" for
// one the schema does not know.
func groupKind(k results.Kind) results.Kind {
	switch k {
	case results.Probe, results.Scenario, results.Benchmark, results.Expectation:
		return k
	}
	return ""
}

// gridOf builds the grid of run, whose kernels are already in the
// page's order.
func gridOf(run *results.Run) htmlGrid {
	var g htmlGrid
	for i := range run.Kernels {
		g.Columns = append(g.Columns, columnOf(i, &run.Kernels[i]))
	}

	boot := htmlRow{Head: "boot", Title: "did the guest run to its end? (its error otherwise)"}
	for i := range run.Kernels {
		k := &run.Kernels[i]
		c := htmlGridCell{Text: "ok", Class: "pass", Title: inert.OneLine(k.Name) + "\nboot: ok", Href: kernelAnchor(i)}
		if !completed(k) {
			c = htmlGridCell{Text: "error", Class: "error", Href: kernelAnchor(i),
				Title: inert.OneLine(k.Name) + "\nboot: error: " + inert.Truncate(inert.OneLine(bootError(k)), gridTitleWidth)}
		}
		boot.Cells = append(boot.Cells, c)
	}
	g.Groups = append(g.Groups, htmlGroup{Rows: []htmlRow{boot}})

	kinds := map[string]results.Kind{}
	for _, k := range run.Kernels {
		for _, r := range k.Results {
			if _, ok := kinds[r.ID]; !ok {
				kinds[r.ID] = r.Kind
			}
		}
	}
	ids := resultIDs(run)
	// Every id is looked up in every kernel: by index, or the grid would
	// take time growing with the square of the results.
	at := make([]results.Index, len(run.Kernels))
	for i := range run.Kernels {
		at[i] = run.Kernels[i].Index()
	}
	for _, kg := range kindGroups {
		group := htmlGroup{Name: kg.name}
		var these []string
		for _, id := range ids {
			if groupKind(kinds[id]) == kg.kind {
				these = append(these, id)
			}
		}
		if kg.kind == results.Benchmark {
			sortCells(these)
		}
		for _, id := range these {
			group.Rows = append(group.Rows, resultRow(run, at, id))
		}
		if len(group.Rows) > 0 {
			g.Groups = append(g.Groups, group)
		}
	}
	g.Groups = append(g.Groups, capsGroups(run)...)
	g.Span = len(g.Columns) + 1
	for _, gr := range g.Groups {
		for _, r := range gr.Rows {
			g.HeadWidth = max(g.HeadWidth, utf8.RuneCountInString(r.Head))
		}
	}
	return g
}

// sortCells orders bench cells as the bench tables do: by op as first
// reported, then block size, then mode, so that a kernel that reported
// a mode late does not scatter the rows. Benchmarks that are not cells
// (seq-read) come first, as reported.
func sortCells(ids []string) {
	var ops []contract.Op
	for _, id := range ids {
		if c, ok := contract.ParseCell(contract.ID(id)); ok && !slices.Contains(ops, c.Op) {
			ops = append(ops, c.Op)
		}
	}
	modeRank := func(m contract.Mode) int {
		if i := slices.Index(benchModeOrder, m); i >= 0 {
			return i
		}
		return len(benchModeOrder)
	}
	slices.SortStableFunc(ids, func(a, b string) int {
		ca, okA := contract.ParseCell(contract.ID(a))
		cb, okB := contract.ParseCell(contract.ID(b))
		switch {
		case !okA || !okB:
			return cmp.Compare(boolRank(okA), boolRank(okB))
		case ca.Op != cb.Op:
			return cmp.Compare(slices.Index(ops, ca.Op), slices.Index(ops, cb.Op))
		case ca.Block != cb.Block:
			return cmp.Compare(ca.Block, cb.Block)
		}
		return cmp.Compare(modeRank(ca.Mode), modeRank(cb.Mode))
	})
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func columnOf(i int, k *results.Kernel) htmlColumn {
	c := htmlColumn{Anchor: kernelAnchor(i), Label: inert.Truncate(inert.OneLine(k.Name), gridNameWidth)}
	lines := []string{inert.OneLine(k.Name)}
	if k.Release != "" {
		lines = append(lines, "release: "+inert.OneLine(k.Release))
	}
	if k.Source != "" {
		lines = append(lines, "source: "+inert.OneLine(k.Source))
	}
	if k.Accel != "" {
		lines = append(lines, "accelerator: "+inert.OneLine(k.Accel))
	}
	if !completed(k) {
		lines = append(lines, "boot: error: "+inert.Truncate(inert.OneLine(bootError(k)), gridTitleWidth))
	}
	c.Title = strings.Join(lines, "\n")
	_, v := kernelVersion(k)
	c.Version = orDash(inert.Truncate(inert.OneLine(v), 10))
	switch {
	case k.Release != "":
		c.VersionTitle = "release " + inert.OneLine(k.Release)
	case v != "":
		c.VersionTitle = "no release (the guest never said hello): version from " + inert.OneLine(k.Name)
	default:
		c.VersionTitle = "no release: the guest never said hello"
	}
	return c
}

// resultRow is one result id across the kernels; a kernel that did not
// report it gets "—", saying why.
func resultRow(run *results.Run, at []results.Index, id string) htmlRow {
	row := htmlRow{Head: inert.Truncate(inert.OneLine(id), gridIDWidth), Title: inert.OneLine(id)}
	for i := range run.Kernels {
		k := &run.Kernels[i]
		where := inert.OneLine(id) + " on " + inert.OneLine(k.Name)
		j := at[i].Position(id)
		if j < 0 {
			why := "not reported by this kernel"
			if !completed(k) {
				why = "not reported: the kernel did not complete: " + inert.Truncate(inert.OneLine(bootError(k)), gridTitleWidth)
			}
			row.Cells = append(row.Cells, htmlGridCell{Text: "—", Class: "absent", Title: where + "\n" + why})
			continue
		}
		r := &k.Results[j]
		class := statusClass(r.Status)
		title := where + "\n" + class
		if reason := inert.OneLine(r.Reason); reason != "" {
			title += ": " + inert.Truncate(reason, gridTitleWidth)
		}
		if r.Kind == results.Benchmark && len(r.Metrics) > 0 {
			title += "\n" + inert.Truncate(strings.Join(metricParts(r.Metrics), " · "), gridTitleWidth)
		}
		row.Cells = append(row.Cells, htmlGridCell{Text: class, Class: class, Title: title, Href: resultAnchor(i, j)})
	}
	return row
}

// capsGroups is the capability map in the grid's columns: the capability
// table's columns as rows, the INIT flags that not every kernel offers,
// the passthrough ioctl's answers to misuse, and the request facts that
// differ between kernels. A value that differs
// from the kernel to its left is marked, since that is where a reader
// looks for what a version changed.
func capsGroups(run *results.Run) []htmlGroup {
	if len(run.Kernels) == 0 {
		return nil
	}
	caps := htmlGroup{Name: "capabilities", Caps: true}
	accel := func(k *results.Kernel) string { return k.Accel }
	caps.Rows = appendValueRow(caps.Rows, run, "accelerator", accel)
	for _, c := range capsColumns {
		caps.Rows = appendValueRow(caps.Rows, run, c.head, c.value)
	}
	flags := htmlGroup{Name: "INIT flags", Note: "those not every kernel offers", Caps: true, Rows: flagRows(run)}
	misuse := htmlGroup{Name: "passthrough ioctl misuse", Note: "errno of each call the kernel should refuse, \"ok\" when it accepted it", Caps: true}
	for _, m := range contract.MisuseCases {
		misuse.Rows = appendValueRow(misuse.Rows, run, string(m), func(k *results.Kernel) string {
			return m.Of(contract.PassthroughIoctl.In(k))
		})
	}
	uringMisuse := htmlGroup{Name: "io_uring command misuse", Note: "errno of each FUSE ring command the kernel should refuse, \"ok\" when it accepted it", Caps: true}
	for _, m := range contract.URingMisuseCases {
		uringMisuse.Rows = appendValueRow(uringMisuse.Rows, run, string(m), func(k *results.Kernel) string {
			return m.Of(contract.IOUring.In(k))
		})
	}
	var groups []htmlGroup
	for _, g := range []htmlGroup{caps, flags, misuse, requestGroup(run), uringMisuse} {
		if len(g.Rows) > 0 {
			groups = append(groups, g)
		}
	}
	return groups
}

// appendValueRow appends the row of one capability unless no kernel
// reported it (an older agent's run, a run of kernels that all lack
// passthrough): a row of dashes says nothing the details would not.
func appendValueRow(rows []htmlRow, run *results.Run, head string, value func(*results.Kernel) string) []htmlRow {
	for i := range run.Kernels {
		if value(&run.Kernels[i]) != "" {
			return append(rows, valueRow(run, head, value))
		}
	}
	return rows
}

// valueRow is one capability across the kernels: "—" where a kernel did
// not report it, class "chg" where the value differs from the previous
// kernel's.
func valueRow(run *results.Run, head string, value func(*results.Kernel) string) htmlRow {
	return valueRowWidth(run, head, value, capsFactWidth)
}

// valueRowWidth is valueRow with cells of up to width characters.
func valueRowWidth(run *results.Run, head string, value func(*results.Kernel) string, width int) htmlRow {
	row := htmlRow{Head: inert.Truncate(inert.OneLine(head), gridIDWidth), Title: inert.OneLine(head)}
	prev := ""
	for i := range run.Kernels {
		k := &run.Kernels[i]
		v := inert.OneLine(value(k))
		c := htmlGridCell{Text: inert.Truncate(v, width), Class: "val", Title: inert.OneLine(head) + " on " + inert.OneLine(k.Name) + ": " + inert.Truncate(v, gridTitleWidth)}
		switch {
		case v == "":
			c = htmlGridCell{Text: "—", Class: "absent", Title: inert.OneLine(head) + " on " + inert.OneLine(k.Name) + ": not reported"}
		case i > 0 && prev != "" && v != prev:
			c.Class = "val chg"
			c.Title += " (was " + inert.Truncate(prev, gridTitleWidth) + ")"
		}
		if v != "" {
			prev = v
		}
		row.Cells = append(row.Cells, c)
	}
	return row
}

// flagRows lists the INIT flags some kernels offer and others do not,
// in the order the kernels name them; a flag every kernel offers tells
// nothing apart.
func flagRows(run *results.Run) []htmlRow {
	var names []string
	count := map[string]int{}
	withCaps := 0
	for _, k := range run.Kernels {
		if k.Capabilities == nil {
			continue
		}
		withCaps++
		seen := map[string]bool{}
		for _, f := range k.Capabilities.InitFlags {
			if seen[f] {
				continue
			}
			seen[f] = true
			if count[f] == 0 {
				names = append(names, f)
			}
			count[f]++
		}
	}
	var rows []htmlRow
	for _, f := range names {
		if count[f] == withCaps {
			continue
		}
		row := htmlRow{Head: inert.Truncate(inert.OneLine(f), gridIDWidth), Title: "INIT flag " + inert.OneLine(f)}
		for _, k := range run.Kernels {
			where := "INIT flag " + inert.OneLine(f) + " on " + inert.OneLine(k.Name)
			switch {
			case k.Capabilities == nil:
				row.Cells = append(row.Cells, htmlGridCell{Text: "—", Class: "absent", Title: where + ": not reported"})
			case slices.Contains(k.Capabilities.InitFlags, f):
				row.Cells = append(row.Cells, htmlGridCell{Text: "yes", Class: "have", Title: where + ": offered"})
			default:
				row.Cells = append(row.Cells, htmlGridCell{Text: "no", Class: "lack", Title: where + ": not offered"})
			}
		}
		rows = append(rows, row)
	}
	return rows
}
