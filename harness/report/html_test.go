package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/fusematrix/fusematrix/results"
)

// htmlRun has bench cells, a kernel with capabilities and a failing
// scenario with its log, and a kernel that did not boot.
func htmlRun() *results.Run {
	run := benchRun()
	k := &run.Kernels[1]
	k.Capabilities = &results.Capabilities{FuseMajor: 7, FuseMinor: 41, Passthrough: true, PassthroughABI: "upstream"}
	k.Results = append(k.Results,
		results.Result{ID: "passthrough-ioctl", Kind: results.Probe, Status: results.Pass,
			Facts: map[string]string{"negotiated": "yes", "backing_open": "ok", "bad_fd": "EBADF"}},
		results.Result{ID: "passthrough-write", Kind: results.Scenario, Status: results.Fail, Seconds: 0.31,
			Reason: "read back 4096 bytes differ from written at offset 0",
			Log:    []string{"[   12.1] fuse: backing file closed", "server: write 4096 @0 -> passthrough"}})
	run.Kernels[2] = brokenKernel()
	return run
}

// wideRun is a real run of the wide matrix (fusematrix matrix -matrix
// wide, eleven kernels from 6.1 to 7.3 under TCG), as results.json.
func wideRun(t *testing.T) *results.Run {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "wide-run.json"))
	assert.NilError(t, err)
	var run results.Run
	assert.NilError(t, json.Unmarshal(b, &run))
	assert.Assert(t, is.Len(run.Kernels, 11))
	return &run
}

// wideBrokenRun is the wide run as a bad night (or a merge of shards)
// would hold it: in no particular order, its newest kernel never said
// hello and one scenario failed with a long reason and log, which must
// all fit as well.
func wideBrokenRun(t *testing.T) *results.Run {
	run := wideRun(t)
	slices.Reverse(run.Kernels)
	newest := &run.Kernels[0]
	assert.Assert(t, is.Equal(newest.Name, "debian:7.3/cloud"))
	*newest = results.Kernel{
		Name: newest.Name, Source: newest.Source, Accel: "tcg", Status: results.Error, Seconds: 120.4,
		Error:      "no hello within 2m0s: the guest's last console line was a panic (" + strings.Repeat("x", 200) + ")",
		ConsoleLog: "11-debian-7.3-cloud.console.log",
		ConsoleTail: []string{
			"[    2.118004] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0) " + strings.Repeat("=", 300),
			"[    2.119954] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0) ]---",
		},
	}
	k := slices.IndexFunc(run.Kernels, func(k results.Kernel) bool { return k.Name == "debian:6.19/cloud" })
	assert.Assert(t, k >= 0)
	r := run.Kernels[k].Result("pt/integrity")
	assert.Assert(t, r != nil)
	r.Status = results.Fail
	r.Reason = "read back differs at offset 1048576: " + strings.Repeat("0123456789abcdef", 40)
	r.Log = []string{"[   14.2] fuse: " + strings.Repeat("a-very-long-unbroken-token/", 30), "server: read 4096 @1048576 -> passthrough"}
	return run
}

func TestHTMLGolden(t *testing.T) {
	golden.Assert(t, render(t, HTML, htmlRun()), "bench.report.html.golden")
	golden.Assert(t, render(t, HTML, caseRun("healthy")), "healthy.report.html.golden")
}

// The parts a reader comes for are there: the chart only when the run
// has bench cells, the failing result's reason and log, the boot error
// with its console, and the verdict.
func TestHTMLContent(t *testing.T) {
	out := render(t, HTML, htmlRun())
	assert.Check(t, is.Equal(strings.Count(out, "<svg"), 1), "the chart, inline")
	assert.Check(t, !strings.Contains(out, "<?xml"), "no XML declaration inside HTML")
	for _, want := range []string{
		`<td class="fail">fail</td>`,
		"read back 4096 bytes differ from written at offset 0",
		"<details open><summary>log</summary><pre>[   12.1] fuse: backing file closed\nserver: write 4096 @0 -&gt; passthrough</pre>",
		"no hello within 60s: guest panicked",
		"Kernel panic - not syncing",
		"<th>pt/noop</th>",
		`<td class="fail">FAIL</td>`,
		"<dt>bad_fd</dt><dd>EBADF</dd>",
		`<p class="verdict failed">FAILED`,
	} {
		assert.Check(t, is.Contains(out, want))
	}

	healthy := render(t, HTML, caseRun("healthy"))
	assert.Check(t, !strings.Contains(healthy, "<svg"), "no bench cells, no chart")
	assert.Check(t, !strings.Contains(healthy, "Throughput"))
	empty := render(t, HTML, caseRun("empty"))
	assert.Check(t, is.Contains(empty, "No kernels ran."))
}

// Everything the guest wrote stays text: no element, attribute, comment
// or control character of its own reaches the page, and the page's own
// structure survives.
func TestHTMLInert(t *testing.T) {
	run := caseRun("hostile")
	k := run.Kernels[0]
	k.Results = append(slices.Clone(k.Results),
		results.Result{ID: "bench/read/<img src=x onerror=alert(1)>/4096", Kind: results.Benchmark, Status: results.Fail,
			Reason: "</td></tr></table><script>alert(2)</script>", Log: []string{"</pre><script>alert(3)</script>", "\x1b[31m\x00"}},
		benchResult("bench/read/native/4096", 10, 1))
	k.ConsoleLog = `"><script>alert(4)</script>`
	hostile := &results.Run{Schema: run.Schema, Kernels: []results.Kernel{k, run.Kernels[1]}}
	out := render(t, HTML, hostile)

	for i, c := range []byte(out) {
		// Tabs: gonum indents the SVG's style attributes with them.
		assert.Assert(t, c >= 0x20 && c != 0x7f || c == '\n' || c == '\t', "byte %#x at %d", c, i)
	}
	assert.Check(t, utf8.ValidString(out))
	for _, bad := range []string{"<script", "<img", "<b>", "<x>", "<!--", "<![CDATA[", "\u202e"} {
		assert.Check(t, !strings.Contains(out, bad), "%q on the page", bad)
	}
	// Every tag on the page is one the template or the chart writes.
	tags := regexp.MustCompile(`<(/?)([a-zA-Z!][a-zA-Z0-9]*)`)
	allowed := map[string]bool{"!DOCTYPE": true, "html": true, "head": true, "meta": true, "title": true, "style": true,
		"body": true, "h1": true, "h2": true, "h3": true, "p": true, "span": true, "table": true, "tr": true, "th": true,
		"td": true, "details": true, "summary": true, "pre": true, "dl": true, "dt": true, "dd": true, "figure": true,
		"svg": true, "g": true, "path": true, "text": true, "div": true, "thead": true, "tbody": true, "a": true}
	opened := map[string]int{}
	for _, m := range tags.FindAllStringSubmatch(out, -1) {
		assert.Check(t, allowed[m[2]], "tag %q", m[0])
		if m[1] == "/" {
			opened[m[2]]--
		} else {
			opened[m[2]]++
		}
	}
	for _, tag := range []string{"table", "thead", "tbody", "tr", "td", "details", "pre", "svg", "text", "div", "a"} {
		assert.Check(t, is.Equal(opened[tag], 0), "<%s> opened and closed a different number of times", tag)
	}
	// Every link leads to a place on the page, by an id the page chose.
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(` id="([^"]*)"`).FindAllStringSubmatch(out, -1) {
		ids[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(out, -1) {
		assert.Check(t, is.Regexp(`^#(grid|k[0-9]+(-r[0-9]+)?)$`, m[1]))
		assert.Check(t, ids[strings.TrimPrefix(m[1], "#")], "%s leads nowhere", m[1])
	}
	// The chart inside is well-formed XML on its own.
	svg := out[strings.Index(out, "<svg") : strings.Index(out, "</svg>")+len("</svg>")]
	dec := xml.NewDecoder(strings.NewReader(svg))
	dec.Strict = true
	for {
		_, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		assert.NilError(t, err)
	}
}

func TestHTMLWriteError(t *testing.T) {
	err := HTML(brokenWriter{}, htmlRun())
	assert.Check(t, errors.Is(err, errBroken), "%v", err)
	assert.Check(t, is.ErrorContains(err, "write html"))
	var b bytes.Buffer
	assert.NilError(t, HTML(&b, htmlRun()))
}
