package report

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// The HTML report is one file that opens anywhere without a network: CSS
// inline, the chart inline as SVG. Everything a guest sent goes through
// html/template's escaping, after oneLine or xmlText made control
// characters and bidi overrides visible. The one value the template takes
// as trusted markup is the chart, which is gonum's SVG, in which every
// text is escaped when drawn (vgsvg's FillString).

// htmlPage is what the template renders.
type htmlPage struct {
	Title    string
	Headline []string
	Verdict  string
	OK       bool
	Chart    template.HTML
	Bench    []htmlBench
	Grid     htmlGrid
	// Clients is the daemons' table (clients.go), ClientLegend its key.
	Clients      htmlTable
	ClientLegend string
	Kernels      []htmlKernel
}

type htmlTable struct {
	Head []string
	Rows [][]htmlCell
}

type htmlCell struct {
	Text  string
	Class string // a status, for the colour
}

type htmlBench struct {
	Head  string
	Error string
	Table htmlTable
	Notes []string
	// Legend explains the figures; Disturbed explains the mark on cells
	// whose paired runs were disturbed ("" when no cell has it).
	Legend, Disturbed string
}

type htmlKernel struct {
	Anchor       string
	Name, Status string
	Facts        []htmlFact
	Error        string
	AccelNote    string
	Console      string
	ConsoleLog   string
	Results      []htmlResult
}

type htmlFact struct{ Name, Value string }

type htmlResult struct {
	Anchor           string
	ID, Kind, Status string
	Seconds          string
	Detail           string
	Facts            []htmlFact
	Log              string
}

// In the style sheet, the grid's columns share the page's width, up to
// a bound (so that two kernels do not get half a screen each), under
// rotated kernel names; below a minimum width per kernel the grid
// scrolls inside its own box rather than widen the page. --n is the
// number of kernels and --head the longest row head in characters,
// which the grid's table sets. (html/template drops CSS comments, so
// this one lives here.)
var htmlTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", "Liberation Sans", sans-serif; margin: 1.5rem; color: #222; max-width: 90rem;
  overflow-wrap: anywhere; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 1rem; margin-bottom: .3rem; }
.headline { color: #555; margin-top: 0; }
.verdict { font-weight: bold; padding: .3rem .6rem; display: inline-block; border-radius: 3px; }
.verdict.ok { background: #dff3df; }
.verdict.failed { background: #f8d7d7; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .2rem .5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { background: #dff3df; }
.fail { background: #f8d7d7; font-weight: bold; }
.error { background: #fde4c8; font-weight: bold; }
.skip { background: #eeeeee; color: #555; }
.missing { color: #999; }
figure { margin: 0; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
pre { background: #f7f7f7; padding: .5rem; overflow-x: auto; font-size: .8rem; white-space: pre; }
details summary { cursor: pointer; color: #345; }
dl.facts { display: grid; grid-template-columns: max-content minmax(0, auto); gap: 0 1rem; margin: .3rem 0; }
dl.facts dt { color: #555; }
dl.facts dd { margin: 0; }
.note { color: #555; font-size: .9rem; margin: .2rem 0; }
.gridbox { overflow-x: auto; margin: 1rem 0 0; }
table.grid { table-layout: fixed; width: 100%; border-collapse: separate; border-spacing: 2px; margin: 0; font-size: .8rem;
  min-width: calc(var(--head) * .5rem + 1.5rem + var(--n) * 4.2rem);
  max-width: calc(var(--head) * .5rem + 1.5rem + var(--n) * 6.5rem); }
table.grid th, table.grid td { border: none; padding: 0; vertical-align: middle; overflow-wrap: normal; }
table.grid th { background: none; }
table.grid tbody th { font-family: ui-monospace, "DejaVu Sans Mono", "Liberation Mono", monospace; font-weight: normal;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; padding-right: .6rem; text-align: right; color: #333; }
table.grid td { text-align: center; border-radius: 2px; }
table.grid td > a, table.grid td > span { display: block; padding: .12rem .2rem;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; color: inherit; text-decoration: none; }
table.grid td > a:hover { outline: 2px solid #345; }
table.grid th.corner { width: calc(var(--head) * 1ch + .6rem); font-family: ui-monospace, "DejaVu Sans Mono", "Liberation Mono", monospace;
  vertical-align: bottom; text-align: left; padding: 0 .6rem .3rem 0; }
table.grid th.kname { vertical-align: bottom; text-align: center; padding: 0 0 .3rem; }
table.grid th.kname a { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; display: inline-block;
  color: #234; text-decoration: none; font-weight: 600; line-height: 1.2; }
table.grid th.kver { text-align: center; font-weight: normal; color: #555; font-variant-numeric: tabular-nums; padding-bottom: .2rem;
  border-bottom: 1px solid #999; }
table.grid th.kver a { color: inherit; text-decoration: none; display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
table.grid th a:hover { text-decoration: underline; }
table.grid tr.group th { text-align: left; font-family: inherit; font-weight: 600; color: #222; padding: .7rem 0 .1rem; white-space: normal;
  border-bottom: 1px solid #ccc; }
table.grid tr.group th .note { font-weight: normal; font-size: .8rem; }
table.grid tbody.caps tr.group th { font-size: .9rem; }
table.grid td.pass, .legend .pass { background: #c9e9c9; color: #1d4d1d; }
table.grid td.fail, .legend .fail { background: #f2a8a8; color: #6b0000; }
table.grid td.error, .legend .error { background: #f9c98f; color: #6b3500; }
table.grid td.skip, .legend .skip { background: #e4e4e4; color: #555; font-weight: normal; }
table.grid td.absent, .legend .absent { background: #fafafa; color: #aaa; }
table.grid td.val { background: #f3f5f8; color: #222; }
table.grid td.chg { background: #dde6f3; font-weight: bold; }
table.grid td.have { background: #d6ecd6; color: #1d4d1d; }
table.grid td.lack { background: #eeeeee; color: #777; }
.legend { font-family: system-ui, -apple-system, "Segoe UI", "Liberation Sans", sans-serif; font-weight: normal; font-size: .72rem; color: #555; line-height: 1.8; }
.legend span { display: inline-block; padding: 0 .35rem; border-radius: 2px; margin-right: .1rem; }
.legend .chg { background: #dde6f3; font-weight: bold; color: #222; }
h3 a.up { color: #888; text-decoration: none; font-weight: normal; }
table.results { table-layout: fixed; width: 100%; }
table.results th:nth-child(1) { width: 15rem; }
table.results th:nth-child(2) { width: 6rem; }
table.results th:nth-child(3) { width: 3.5rem; }
table.results th:nth-child(4) { width: 4.5rem; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="headline">{{range $i, $h := .Headline}}{{if $i}} · {{end}}{{$h}}{{end}}</p>
<p class="verdict {{if .OK}}ok{{else}}failed{{end}}">{{.Verdict}}</p>
{{- if .Grid.Columns}}
{{- $span := .Grid.Span}}
<div class="gridbox" id="grid">
<table class="grid" style="--n: {{len .Grid.Columns}}; --head: {{.Grid.HeadWidth}}">
<thead>
<tr><th class="corner" rowspan="2"><div class="legend">
<div><span class="pass">pass</span> <span class="fail">fail</span> <span class="skip">skip</span> <span class="error">error</span></div>
<div><span class="absent">—</span> not reported</div>
<div><span class="chg">bold</span> changed from the left</div>
<div>hover a cell for why, click for details</div>
</div></th>
{{- range .Grid.Columns}}
<th class="kname" title="{{.Title}}"><a href="#{{.Anchor}}">{{.Label}}</a></th>
{{- end}}
</tr>
<tr>
{{- range .Grid.Columns}}<th class="kver" title="{{.VersionTitle}}"><a href="#{{.Anchor}}">{{.Version}}</a></th>{{end}}
</tr>
</thead>
{{- range .Grid.Groups}}
<tbody{{if .Caps}} class="caps"{{end}}>
{{- if .Name}}
<tr class="group"><th colspan="{{$span}}">{{.Name}}{{if .Note}} <span class="note">{{.Note}}</span>{{end}}</th></tr>
{{- end}}
{{- range .Rows}}
<tr><th title="{{.Title}}">{{.Head}}</th>
{{- range .Cells}}<td class="{{.Class}}" title="{{.Title}}">{{if .Href}}<a href="#{{.Href}}">{{.Text}}</a>{{else}}<span>{{.Text}}</span>{{end}}</td>{{end}}</tr>
{{- end}}
</tbody>
{{- end}}
</table>
</div>
{{- end}}
{{- if .Clients.Rows}}
<h2 id="daemons">Daemons</h2>
{{template "table" .Clients}}
<p class="note">{{.ClientLegend}}</p>
{{- end}}
{{- if .Bench}}
<h2>Throughput</h2>
{{- if .Chart}}
<figure>
{{.Chart}}
</figure>
{{- end}}
{{- range .Bench}}
<h3>{{.Head}}</h3>
{{- if .Error}}
<p class="note error">did not run: {{.Error}}</p>
{{- end}}
{{- if .Table.Rows}}
{{template "table" .Table}}
<p class="note">{{.Legend}}</p>
{{- if .Disturbed}}
<p class="note">{{.Disturbed}}</p>
{{- end}}
{{- else}}
<p class="note">No benchmark cells.</p>
{{- end}}
{{- range .Notes}}
<p class="note">{{.}}</p>
{{- end}}
{{- end}}
{{- end}}
<h2>Kernels</h2>
{{- if not .Kernels}}
<p>No kernels ran.</p>
{{- end}}
{{- range .Kernels}}
<h3 id="{{.Anchor}}">{{.Name}} <span class="{{.Status}}">{{.Status}}</span> <a class="up" href="#grid" title="back to the grid">↑</a></h3>
<dl class="facts">
{{- range .Facts}}
<dt>{{.Name}}</dt><dd>{{.Value}}</dd>
{{- end}}
</dl>
{{- if .AccelNote}}
<p class="note">accelerator: {{.AccelNote}}</p>
{{- end}}
{{- if .Error}}
<p class="error">{{.Error}}</p>
{{- end}}
{{- if .Console}}
<details open><summary>console tail{{if .ConsoleLog}} ({{.ConsoleLog}}){{end}}</summary>
<pre>{{.Console}}</pre>
</details>
{{- end}}
{{- if .Results}}
<table class="results">
<tr><th>id</th><th>kind</th><th>status</th><th>seconds</th><th>detail</th></tr>
{{- range .Results}}
<tr id="{{.Anchor}}"><td>{{.ID}}</td><td>{{.Kind}}</td><td class="{{.Status}}">{{.Status}}</td><td class="num">{{.Seconds}}</td><td>{{.Detail}}
{{- if .Facts}}
<details><summary>facts ({{len .Facts}})</summary><dl class="facts">
{{- range .Facts}}
<dt>{{.Name}}</dt><dd>{{.Value}}</dd>
{{- end}}
</dl></details>
{{- end}}
{{- if .Log}}
<details{{if or (eq .Status "fail") (eq .Status "error")}} open{{end}}><summary>log</summary><pre>{{.Log}}</pre></details>
{{- end}}
</td></tr>
{{- end}}
</table>
{{- end}}
{{- end}}
</body>
</html>
{{define "table"}}<table>
<tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
{{- range .Rows}}
<tr>{{range .}}<td{{if .Class}} class="{{.Class}}"{{end}}>{{.Text}}</td>{{end}}</tr>
{{- end}}
</table>{{end}}
`))

// HTML writes the run as one self-contained HTML page: the verdict, the
// grid of every result and capability by kernel (grid.go), the
// throughput chart and tables when the run has bench cells, and every
// kernel's results with their reasons, facts and logs. Kernels appear in
// version order throughout, whatever order the run (or a merge of
// shards) holds them in.
func HTML(w io.Writer, run *results.Run) error {
	if run == nil {
		return errors.New("render html: no run")
	}
	sorted := *run
	sorted.Kernels = byVersion(run.Kernels)
	run = &sorted
	page := htmlPage{
		Title:    "fusematrix report",
		Headline: headline(run)[1:],
		Verdict:  strings.Join(verdict(run), " · "),
		OK:       verdict(run)[0] == "ok",
	}
	hasBench := false
	for _, k := range run.Kernels {
		for _, r := range k.Results {
			if _, ok := contract.ParseCell(contract.ID(r.ID)); ok {
				hasBench = true
			}
		}
	}
	if hasBench {
		var svg bytes.Buffer
		if err := Chart(&svg, run, "svg"); err != nil {
			return fmt.Errorf("render html: %w", err)
		}
		page.Chart = inlineSVG(svg.String())
		for _, k := range run.Kernels {
			page.Bench = append(page.Bench, htmlBenchOf(&k))
		}
	}
	if len(run.Kernels) > 0 {
		page.Grid = gridOf(run)
	}
	if page.Clients = clientTable(run); len(page.Clients.Rows) > 0 {
		page.ClientLegend = clientLegend
	}
	for i, k := range run.Kernels {
		page.Kernels = append(page.Kernels, htmlKernelOf(i, &k))
	}
	var b bytes.Buffer
	if err := htmlTemplate.Execute(&b, page); err != nil {
		return fmt.Errorf("render html: %w", err)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write html: %w", err)
	}
	return nil
}

// inlineSVG drops what an SVG file has before its root element (the XML
// declaration, a comment), which has no place inside an HTML body. Its
// argument is Chart's output, never guest text as such: see the comment
// at the top of this file.
func inlineSVG(svg string) template.HTML {
	if i := strings.Index(svg, "<svg"); i >= 0 {
		svg = svg[i:]
	}
	return template.HTML(svg)
}

func htmlBenchOf(k *results.Kernel) htmlBench {
	hb := htmlBench{Head: benchHead(k)}
	if k.Status != results.Pass {
		hb.Error = inert.OneLine(bootError(k))
	}
	g := newBenchGrid(k)
	if len(g.rows) == 0 {
		return hb
	}
	hb.Table.Head = []string{"op", "block"}
	for _, m := range g.modes {
		hb.Table.Head = append(hb.Table.Head, inert.OneLine(string(m)))
	}
	hb.Table.Head = append(hb.Table.Head, ratioNoopHead, goCHead)
	hb.Legend = benchLegend
	for _, row := range g.rows {
		cells := []htmlCell{{Text: inert.OneLine(string(row.op))}, {Text: blockLabel(row.block)}}
		for _, m := range g.modes {
			c := htmlCell{Text: benchCell(row.cells[m])}
			switch r := row.cells[m]; {
			case r == nil:
				c.Class = "missing"
			case r.Status != results.Pass:
				c.Class = statusClass(r.Status)
			}
			cells = append(cells, c)
		}
		cells = append(cells, htmlCell{Text: row.ratioNoopCell()}, htmlCell{Text: row.goCCell()})
		hb.Table.Rows = append(hb.Table.Rows, cells)
	}
	for _, n := range g.notes {
		hb.Notes = append(hb.Notes, fmt.Sprintf("%s: %s: %s", inert.OneLine(n.which()), n.status, n.reason))
	}
	if g.anyDisturbed() {
		hb.Disturbed = disturbedLegend
	}
	return hb
}

// statusClass is a status as a CSS class: one of the four the style
// sheet knows, whatever the guest wrote.
func statusClass(s results.Status) string {
	switch s {
	case results.Pass, results.Fail, results.Skip, results.Error:
		return string(s)
	}
	return "error"
}

// htmlKernelOf is the section of the i-th kernel on the page.
func htmlKernelOf(i int, k *results.Kernel) htmlKernel {
	hk := htmlKernel{Anchor: kernelAnchor(i), Name: inert.OneLine(k.Name), Status: statusClass(k.Status)}
	add := func(name, value string) {
		if value != "" {
			hk.Facts = append(hk.Facts, htmlFact{name, inert.OneLine(value)})
		}
	}
	add("release", k.Release)
	add("source", k.Source)
	add("accelerator", k.Accel)
	if k.HelloSeconds > 0 {
		add("hello after", strconv.FormatFloat(k.HelloSeconds, 'f', 2, 64)+" s")
	}
	add("seconds", strconv.FormatFloat(k.Seconds, 'f', 1, 64))
	add("agent", k.AgentVersion)
	add("console log", k.ConsoleLog)
	add("retried", inert.OneLine(k.Retried))
	if h := k.Host; h != nil {
		add("host", fmt.Sprintf("%s, %d CPUs (not the run's: merged from another machine)", orDash(h.CPUModel), h.CPUs))
	}
	if proto, pt := fuseCells(k); proto != "-" {
		add("fuse", proto)
		add("passthrough offered", pt)
	}
	hk.AccelNote = inert.OneLine(k.AccelNote)
	if !completed(k) {
		hk.Error = inert.OneLine(bootError(k))
	}
	if len(k.ConsoleTail) > 0 {
		lines := make([]string, len(k.ConsoleTail))
		for i, l := range k.ConsoleTail {
			lines[i] = inert.ConsoleLine(l)
		}
		hk.Console = strings.Join(lines, "\n")
		hk.ConsoleLog = inert.OneLine(k.ConsoleLog)
	}
	for j, r := range k.Results {
		hr := htmlResult{
			Anchor: resultAnchor(i, j),
			ID:     inert.OneLine(r.ID), Kind: inert.OneLine(string(r.Kind)), Status: statusClass(r.Status),
			Seconds: strconv.FormatFloat(r.Seconds, 'f', 2, 64),
			Detail:  inert.OneLine(r.Reason),
		}
		if r.Kind == results.Benchmark && len(r.Metrics) > 0 {
			parts := metricParts(r.Metrics)
			if hr.Detail != "" {
				parts = append([]string{hr.Detail}, parts...)
			}
			hr.Detail = strings.Join(parts, " · ")
		}
		for _, name := range slices.Sorted(maps.Keys(r.Facts)) {
			hr.Facts = append(hr.Facts, htmlFact{inert.OneLine(name), inert.OneLine(r.Facts[name])})
		}
		if len(r.Log) > 0 {
			lines := make([]string, len(r.Log))
			for i, l := range r.Log {
				lines[i] = inert.ConsoleLine(l)
			}
			hr.Log = strings.Join(lines, "\n")
		}
		hk.Results = append(hk.Results, hr)
	}
	return hk
}
