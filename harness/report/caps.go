package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// The capability view answers "what does this kernel's FUSE offer, and
// does it work?": one row per kernel built from the probe facts, the
// passthrough ioctl's answers to misuse, and the expectations that judge
// them. Probe ids and fact keys are package contract's; a fact a guest did
// not report shows as "-", so an older agent's results still render.

// capsFactWidth bounds a fact's cell: an honest fact is a word or an
// errno name, and a guest must not be able to stretch the table.
const capsFactWidth = 16

// capsColumn is one column of the capability table after kernel and
// release; value returns "" for a fact that is missing.
type capsColumn struct {
	head  string
	value func(k *results.Kernel) string
}

var capsColumns = []capsColumn{
	{"fuse", protocolCell},
	{"passthrough", passthroughCell},
	{"negotiated", factOf(contract.PassthroughIoctl, contract.FactNegotiated)},
	{"backing_open", factOf(contract.PassthroughIoctl, contract.FactBackingOpen)},
	// Does passthrough survive FUSE_WRITEBACK_CACHE being asked for too?
	{"writeback+passthrough", factOf(contract.PassthroughIoctl, contract.FactWritebackCache)},
	{"max_pages_limit", maxPagesCell},
	{"io_uring", ioURingCell},
	{"request_timeout", factOf(contract.FuseFeatures, contract.FactRequestTimeout)},
	{"virtiofs", factOf(contract.FuseFeatures, contract.FactVirtiofs)},
	{"CONFIG_FUSE_PASSTHROUGH", configCell("CONFIG_FUSE_PASSTHROUGH")},
}

func protocolCell(k *results.Kernel) string {
	if k.Capabilities == nil {
		return ""
	}
	proto, _ := fuseCells(k)
	return proto
}

func factOf(probe contract.ID, key contract.Fact) func(*results.Kernel) string {
	return func(k *results.Kernel) string { return key.Of(probe.In(k)) }
}

// passthroughCell names the passthrough ABI the kernel offers. An Android
// kernel offers passthrough, just not the upstream kind, so it is never
// shown as "no".
func passthroughCell(k *results.Kernel) string {
	c := k.Capabilities
	switch {
	case c == nil:
		return ""
	case c.Passthrough || c.PassthroughABI == "upstream":
		return "upstream"
	case c.PassthroughABI != "":
		return c.PassthroughABI
	}
	return "no"
}

// ioURingCell says what FUSE over io_uring does: "works" or "fails" as
// the io-uring probe found with the parameter turned on, else what
// fuse-features saw of the kernel's default ("offered", "disabled",
// "absent").
func ioURingCell(k *results.Kernel) string {
	switch t := contract.FactURingTransport.Of(contract.IOUring.In(k)); t {
	case "works", "fails", "absent":
		return t
	}
	return contract.FactIOUring.Of(contract.FuseFeatures.In(k))
}

// maxPagesCell prefers the guest's fact, which can say the sysctl is
// absent; the capability field cannot tell absent from not reported.
func maxPagesCell(k *results.Kernel) string {
	switch f := contract.FactMaxPagesLimit.Of(contract.FuseInit.In(k)); {
	case f == "0":
		return "absent"
	case f != "":
		return f
	}
	if c := k.Capabilities; c != nil && c.MaxPagesLimit > 0 {
		return fmt.Sprint(c.MaxPagesLimit)
	}
	return ""
}

// configCell shows a config option: "-" when the config is unknown,
// "absent" when the config does not have the option at all.
func configCell(option string) func(*results.Kernel) string {
	return func(k *results.Kernel) string {
		if len(k.Config) == 0 {
			return ""
		}
		if v, ok := k.Config[option]; ok {
			return v
		}
		return "absent"
	}
}

func expectationsOf(k *results.Kernel) []results.Result {
	var rs []results.Result
	for _, r := range k.Results {
		if r.Kind == results.Expectation {
			rs = append(rs, r)
		}
	}
	return rs
}

// expectSummary condenses a kernel's expectations into one cell, and the
// status its colour follows.
func expectSummary(k *results.Kernel) (string, results.Status) {
	rs := expectationsOf(k)
	if len(rs) == 0 {
		return "-", ""
	}
	c := results.Count(rs)
	if bad := c.Fail + c.Error; bad > 0 {
		return fmt.Sprintf("%d FAIL", bad), results.Fail
	}
	s := fmt.Sprintf("%d/%d ok", c.Pass, c.Results)
	if c.Skip > 0 {
		s += fmt.Sprintf(", %d skip", c.Skip)
	}
	return s, results.Pass
}

// capsNotes lists what a reader of the capability table must know: kernels
// that did not complete, probes that did not pass, and every expectation
// that did not pass with what it expected, saw and relied on.
func capsNotes(run *results.Run) []note {
	var ns []note
	for _, k := range run.Kernels {
		name := inert.OneLine(k.Name)
		if !completed(&k) {
			ns = append(ns, note{kernel: name, id: "boot", status: results.Error, word: "error",
				text: inert.OneLine(bootError(&k)), consoleLog: inert.OneLine(k.ConsoleLog)})
		}
		for _, r := range k.Results {
			switch {
			case r.Kind == results.Probe && (r.Status == results.Fail || r.Status == results.Error):
				ns = append(ns, note{kernel: name, id: inert.OneLine(r.ID), status: r.Status, word: inert.OneLine(string(r.Status)),
					text: inert.OneLine(orDash(r.Reason))})
			case r.Kind == results.Expectation && r.Status != results.Pass:
				ns = append(ns, note{kernel: name, id: inert.OneLine(r.ID), status: r.Status, word: inert.OneLine(string(r.Status)),
					text: inert.OneLine(expectationText(r))})
			}
		}
	}
	return ns
}

// expectationText is a failure's expected/observed/basis, or a skip's
// reason followed by them.
func expectationText(r results.Result) string {
	t := fmt.Sprintf("expected %s, observed %s, basis: %s",
		orDash(contract.FactExpected.Of(&r)), orDash(contract.FactObserved.Of(&r)), orDash(contract.FactBasis.Of(&r)))
	if r.Status == results.Fail || r.Reason == "" {
		return t
	}
	return r.Reason + "; " + t
}

// capsVerdict ends the capability view like the run table ends: "ok" or
// "FAILED" first, then the expectation counts.
func capsVerdict(run *results.Run) []string {
	var c results.Counts
	ok := true
	for _, k := range run.Kernels {
		for _, r := range expectationsOf(&k) {
			c.Add(r.Status)
		}
		ok = ok && k.OK()
	}
	word := "ok"
	if !ok {
		word = "FAILED"
	}
	return []string{word, plural(len(run.Kernels), "kernel"),
		fmt.Sprintf("%s: %d pass, %d fail, %d skip", plural(c.Results, "expectation"), c.Pass, c.Fail+c.Error, c.Skip)}
}

// capsRows returns the capability table as raw text: header first, then
// one row per kernel; "" marks a missing value. status holds each row's
// expectation status for colouring the last column.
func capsRows(run *results.Run) (rows [][]string, status []results.Status) {
	head := []string{"kernel", "release"}
	for _, c := range capsColumns {
		head = append(head, c.head)
	}
	rows = append(rows, append(head, "expectations"))
	status = append(status, "")
	for _, k := range run.Kernels {
		row := []string{k.Name, k.Release}
		for _, c := range capsColumns {
			row = append(row, c.value(&k))
		}
		sum, st := expectSummary(&k)
		rows = append(rows, append(row, sum))
		status = append(status, st)
	}
	return rows, status
}

// misuseRows returns the misuse table as raw text, header first.
func misuseRows(run *results.Run) [][]string {
	head := []string{"kernel"}
	for _, m := range contract.MisuseCases {
		head = append(head, string(m))
	}
	rows := [][]string{head}
	for _, k := range run.Kernels {
		row := []string{k.Name}
		for _, m := range contract.MisuseCases {
			row = append(row, m.Of(contract.PassthroughIoctl.In(&k)))
		}
		rows = append(rows, row)
	}
	return rows
}

// uringMisuseRows returns the io_uring command misuse table as raw text,
// header first, or nil when no kernel ran the io-uring probe's commands
// (a run of older agents, or of kernels without it).
func uringMisuseRows(run *results.Run) [][]string {
	head := []string{"kernel"}
	for _, m := range contract.URingMisuseCases {
		head = append(head, string(m))
	}
	rows := [][]string{head}
	seen := false
	for _, k := range run.Kernels {
		row := []string{k.Name}
		for _, m := range contract.URingMisuseCases {
			v := m.Of(contract.IOUring.In(&k))
			seen = seen || v != ""
			row = append(row, v)
		}
		rows = append(rows, row)
	}
	if !seen {
		return nil
	}
	return rows
}

// uringMisuseTitle heads the io_uring misuse table.
const uringMisuseTitle = "FUSE io_uring command misuse (errno, \"ok\" when accepted)"

// Caps writes the kernel × capability table for a terminal.
func Caps(w io.Writer, run *results.Run) error {
	return CapsWith(w, run, Options{})
}

// CapsWith writes the capability view with the given options: a headline,
// the capability table, the passthrough ioctl misuse table, notes on
// every probe and expectation that did not pass, and a verdict line.
func CapsWith(w io.Writer, run *results.Run, o Options) error {
	if run == nil {
		return errors.New("render caps: no run")
	}
	if o.Width <= 0 {
		o.Width = DefaultWidth
	}
	p := painter(o.Color)
	var b bytes.Buffer
	for _, l := range joinWrapped("", headline(run), o.Width, 2) {
		fmt.Fprintln(&b, l)
	}
	fmt.Fprintln(&b)
	if len(run.Kernels) == 0 {
		fmt.Fprintln(&b, "no kernels ran")
	} else {
		raw, status := capsRows(run)
		var trailers []string
		for _, k := range run.Kernels {
			t := ""
			if !completed(&k) {
				t = "error: " + inert.OneLine(bootError(&k))
			}
			trailers = append(trailers, t)
		}
		rows := cellRows(raw, 2)
		last := len(raw[0]) - 1
		for i := 1; i < len(rows); i++ {
			if status[i] != "" {
				rows[i][last].sgr = statusSGR(status[i])
			}
		}
		if err := writeBlocks(&b, rows, 2, trailers, o.Width, p); err != nil {
			return err
		}
		fmt.Fprintln(&b)
		fmt.Fprintln(&b, "Passthrough ioctl misuse (errno, \"ok\" when accepted)")
		if err := writeBlocks(&b, cellRows(misuseRows(run), 1), 1, make([]string, len(run.Kernels)), o.Width, p); err != nil {
			return err
		}
		if rows := uringMisuseRows(run); rows != nil {
			fmt.Fprintln(&b)
			fmt.Fprintln(&b, uringMisuseTitle)
			if err := writeBlocks(&b, cellRows(rows, 1), 1, make([]string, len(run.Kernels)), o.Width, p); err != nil {
				return err
			}
		}
	}
	if ns := capsNotes(run); len(ns) > 0 {
		fmt.Fprintln(&b)
		fmt.Fprintln(&b, "Notes")
		writeNotes(&b, ns, o, p)
	}
	fmt.Fprintln(&b)
	for _, l := range joinWrapped("", capsVerdict(run), o.Width, 2) {
		fmt.Fprintln(&b, l)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write caps: %w", err)
	}
	return nil
}

// cellRows makes raw rows inert and bounded for the terminal: the first
// names columns (kernel, release) may be up to 40 runes, facts from the
// guest capsFactWidth. Missing values become a dimmed "-".
func cellRows(raw [][]string, names int) [][]cell {
	rows := make([][]cell, len(raw))
	for i, r := range raw {
		for j, s := range r {
			c := cell{text: inert.OneLine(s), sgr: sgrNone}
			switch {
			case i == 0:
				c.sgr = sgrHeader
			case s == "":
				c = cell{"-", sgrDim}
			case j < names:
				c.text = inert.Truncate(c.text, 40)
			default:
				c.text = inert.Truncate(c.text, capsFactWidth)
			}
			rows[i] = append(rows[i], c)
		}
	}
	return rows
}

// CapsMarkdown writes the capability view as GitHub Markdown.
func CapsMarkdown(w io.Writer, run *results.Run) error {
	if run == nil {
		return errors.New("render caps markdown: no run")
	}
	var b bytes.Buffer
	if markdownHeading(&b, "fusematrix caps", run) {
		raw, status := capsRows(run)
		writeMarkdownTable(&b, raw, 2, func(row, col int, s string) string {
			if col == len(raw[0])-1 && status[row] == results.Fail {
				return "**" + s + "**"
			}
			return s
		})
		b.WriteString("\n**Passthrough ioctl misuse** (errno, \"ok\" when accepted)\n\n")
		writeMarkdownTable(&b, misuseRows(run), 1, nil)
		if rows := uringMisuseRows(run); rows != nil {
			b.WriteString("\n**FUSE io_uring command misuse** (errno, \"ok\" when accepted)\n\n")
			writeMarkdownTable(&b, rows, 1, nil)
		}
	}
	writeMarkdownClients(&b, run)
	if ns := capsNotes(run); len(ns) > 0 {
		b.WriteString("\n**Notes**\n\n")
		for _, n := range ns {
			word := markdownText(n.word)
			if n.status == results.Fail || n.status == results.Error {
				word = "**" + word + "**"
			}
			fmt.Fprintf(&b, "- %s / %s: %s: %s\n", markdownText(n.kernel), markdownText(n.id), word,
				markdownText(inert.Truncate(n.text, markdownReason)))
		}
	}
	fmt.Fprintf(&b, "\n%s\n", markdownText(strings.Join(capsVerdict(run), " · ")))
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write caps markdown: %w", err)
	}
	return nil
}

// writeMarkdownTable writes raw rows (header first) as a Markdown table,
// escaping every cell and bounding it like cellRows does; decorate, when
// set, may wrap an escaped data cell.
func writeMarkdownTable(b *bytes.Buffer, raw [][]string, names int, decorate func(row, col int, s string) string) {
	for i, r := range raw {
		cells := make([]string, len(r))
		for j, s := range r {
			switch {
			case i > 0 && s == "":
				cells[j] = "-"
			case i > 0 && j >= names:
				cells[j] = markdownText(inert.Truncate(inert.OneLine(s), capsFactWidth))
			default:
				cells[j] = markdownText(inert.Truncate(inert.OneLine(s), 40))
			}
			if i > 0 && decorate != nil {
				cells[j] = decorate(i, j, cells[j])
			}
		}
		writeMarkdownRow(b, cells)
		if i == 0 {
			rule := make([]string, len(r))
			for j := range rule {
				rule[j] = "---"
			}
			writeMarkdownRow(b, rule)
		}
	}
}

// capsDocument is what CapsJSON writes: per kernel, what the capability
// view shows, unabridged.
type capsDocument struct {
	Schema  int          `json:"schema"`
	Kernels []capsKernel `json:"kernels"`
}

type capsKernel struct {
	Name    string         `json:"name"`
	Release string         `json:"release,omitempty"`
	Accel   string         `json:"accel,omitempty"`
	Status  results.Status `json:"status"`
	Error   string         `json:"error,omitempty"`
	// Capabilities and Config are null when unknown.
	Capabilities *results.Capabilities `json:"capabilities"`
	Config       map[string]string     `json:"config"`
	// Facts holds each probe's facts by probe id; Probes says how each
	// probe ended, since a probe that errored has few facts to show.
	Facts        map[string]map[string]string `json:"facts"`
	Probes       map[string]capsProbe         `json:"probes"`
	Expectations []capsExpectation            `json:"expectations"`
}

type capsProbe struct {
	Status results.Status `json:"status"`
	Reason string         `json:"reason,omitempty"`
}

type capsExpectation struct {
	ID       string         `json:"id"`
	Status   results.Status `json:"status"`
	Reason   string         `json:"reason,omitempty"`
	Expected string         `json:"expected"`
	Observed string         `json:"observed"`
	Basis    string         `json:"basis"`
}

// CapsJSON writes the capability view as indented JSON: one entry per
// kernel with its capabilities, config options, probe facts by probe id
// and expectations.
func CapsJSON(w io.Writer, run *results.Run) error {
	if run == nil {
		return errors.New("write caps json: no run")
	}
	doc := capsDocument{Schema: run.Schema, Kernels: make([]capsKernel, 0, len(run.Kernels))}
	for _, k := range run.Kernels {
		ck := capsKernel{
			Name: k.Name, Release: k.Release, Accel: k.Accel, Status: k.Status, Error: k.Error,
			Capabilities: k.Capabilities, Config: k.Config,
			Facts:        map[string]map[string]string{},
			Probes:       map[string]capsProbe{},
			Expectations: []capsExpectation{},
		}
		for _, r := range k.Results {
			switch r.Kind {
			case results.Probe:
				ck.Probes[r.ID] = capsProbe{Status: r.Status, Reason: r.Reason}
				if len(r.Facts) > 0 {
					ck.Facts[r.ID] = r.Facts
				}
			case results.Expectation:
				ck.Expectations = append(ck.Expectations, capsExpectation{
					ID: r.ID, Status: r.Status, Reason: r.Reason,
					Expected: contract.FactExpected.Of(&r), Observed: contract.FactObserved.Of(&r), Basis: contract.FactBasis.Of(&r),
				})
			}
		}
		doc.Kernels = append(doc.Kernels, ck)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write caps json: %w", err)
	}
	return nil
}
