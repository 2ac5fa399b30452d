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
	Caps     htmlTable
	Misuse   htmlTable
	Kernels  []htmlKernel
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
	ID, Kind, Status string
	Seconds          string
	Detail           string
	Facts            []htmlFact
	Log              string
}

var htmlTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", "Liberation Sans", sans-serif; margin: 1.5rem; color: #222; max-width: 90rem; }
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
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0 1rem; margin: .3rem 0; }
dl.facts dt { color: #555; }
dl.facts dd { margin: 0; }
.note { color: #555; font-size: .9rem; margin: .2rem 0; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="headline">{{range $i, $h := .Headline}}{{if $i}} · {{end}}{{$h}}{{end}}</p>
<p class="verdict {{if .OK}}ok{{else}}failed{{end}}">{{.Verdict}}</p>
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
{{- if .Caps.Rows}}
<h2>Capabilities</h2>
{{template "table" .Caps}}
<h3>Passthrough ioctl misuse</h3>
<p class="note">errno of each call the kernel should refuse, "ok" when it accepted it</p>
{{template "table" .Misuse}}
{{- end}}
<h2>Results</h2>
{{- if not .Kernels}}
<p>No kernels ran.</p>
{{- end}}
{{- range .Kernels}}
<h3>{{.Name}} <span class="{{.Status}}">{{.Status}}</span></h3>
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
<table>
<tr><th>id</th><th>kind</th><th>status</th><th>seconds</th><th>detail</th></tr>
{{- range .Results}}
<tr><td>{{.ID}}</td><td>{{.Kind}}</td><td class="{{.Status}}">{{.Status}}</td><td class="num">{{.Seconds}}</td><td>{{.Detail}}
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
// throughput chart and tables when the run has bench cells, the
// capability table, and every kernel's results with their reasons, facts
// and logs.
func HTML(w io.Writer, run *results.Run) error {
	if run == nil {
		return errors.New("render html: no run")
	}
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
		raw, status := capsRows(run)
		page.Caps = htmlTableOf(raw, func(row, col int) string {
			if col == len(raw[0])-1 {
				return string(status[row])
			}
			return ""
		})
		page.Misuse = htmlTableOf(misuseRows(run), nil)
	}
	for _, k := range run.Kernels {
		page.Kernels = append(page.Kernels, htmlKernelOf(&k))
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

// htmlTableOf bounds and makes inert raw rows (header first) like the
// terminal view does; class, when set, gives a data cell its class.
func htmlTableOf(raw [][]string, class func(row, col int) string) htmlTable {
	var t htmlTable
	for _, s := range raw[0] {
		t.Head = append(t.Head, OneLine(s))
	}
	for i, r := range raw[1:] {
		var row []htmlCell
		for j, s := range r {
			c := htmlCell{Text: Truncate(OneLine(s), 80)}
			if s == "" {
				c = htmlCell{Text: "-", Class: "missing"}
			}
			if class != nil {
				if cl := class(i+1, j); cl != "" {
					c.Class = cl
				}
			}
			row = append(row, c)
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

func htmlBenchOf(k *results.Kernel) htmlBench {
	hb := htmlBench{Head: benchHead(k)}
	if k.Status != results.Pass {
		hb.Error = OneLine(bootError(k))
	}
	g := newBenchGrid(k)
	if len(g.rows) == 0 {
		return hb
	}
	hb.Table.Head = []string{"op", "block"}
	for _, m := range g.modes {
		hb.Table.Head = append(hb.Table.Head, OneLine(string(m)))
	}
	hb.Table.Head = append(hb.Table.Head, ratioNoopHead, goCHead)
	hb.Legend = benchLegend
	for _, row := range g.rows {
		cells := []htmlCell{{Text: OneLine(string(row.op))}, {Text: blockLabel(row.block)}}
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
		hb.Notes = append(hb.Notes, fmt.Sprintf("%s: %s: %s", OneLine(n.which()), n.status, n.reason))
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

func htmlKernelOf(k *results.Kernel) htmlKernel {
	hk := htmlKernel{Name: OneLine(k.Name), Status: statusClass(k.Status)}
	add := func(name, value string) {
		if value != "" {
			hk.Facts = append(hk.Facts, htmlFact{name, OneLine(value)})
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
	add("retried", OneLine(k.Retried))
	if h := k.Host; h != nil {
		add("host", fmt.Sprintf("%s, %d CPUs (not the run's: merged from another machine)", orDash(h.CPUModel), h.CPUs))
	}
	if proto, pt := fuseCells(k); proto != "-" {
		add("fuse", proto)
		add("passthrough offered", pt)
	}
	hk.AccelNote = OneLine(k.AccelNote)
	if !completed(k) {
		hk.Error = OneLine(bootError(k))
	}
	if len(k.ConsoleTail) > 0 {
		lines := make([]string, len(k.ConsoleTail))
		for i, l := range k.ConsoleTail {
			lines[i] = consoleLine(l)
		}
		hk.Console = strings.Join(lines, "\n")
		hk.ConsoleLog = OneLine(k.ConsoleLog)
	}
	for _, r := range k.Results {
		hr := htmlResult{
			ID: OneLine(r.ID), Kind: OneLine(string(r.Kind)), Status: statusClass(r.Status),
			Seconds: strconv.FormatFloat(r.Seconds, 'f', 2, 64),
			Detail:  OneLine(r.Reason),
		}
		if r.Kind == results.Benchmark && len(r.Metrics) > 0 {
			parts := metricParts(r.Metrics)
			if hr.Detail != "" {
				parts = append([]string{hr.Detail}, parts...)
			}
			hr.Detail = strings.Join(parts, " · ")
		}
		for _, name := range slices.Sorted(maps.Keys(r.Facts)) {
			hr.Facts = append(hr.Facts, htmlFact{OneLine(name), OneLine(r.Facts[name])})
		}
		if len(r.Log) > 0 {
			lines := make([]string, len(r.Log))
			for i, l := range r.Log {
				lines[i] = consoleLine(l)
			}
			hr.Log = strings.Join(lines, "\n")
		}
		hk.Results = append(hk.Results, hr)
	}
	return hk
}
