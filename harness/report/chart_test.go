package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"math"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

func chart(t *testing.T, run *results.Run, format string) []byte {
	t.Helper()
	var b bytes.Buffer
	assert.NilError(t, Chart(&b, run, format))
	return b.Bytes()
}

func TestChartGolden(t *testing.T) {
	svg := chart(t, benchRun(), "svg")
	golden.Assert(t, string(svg), "bench.chart.svg.golden")
	// Same run, same bytes: a golden file can only hold if so, and a
	// re-render of a saved run must not show as a change.
	assert.Check(t, bytes.Equal(svg, chart(t, benchRun(), "svg")))
	assert.Check(t, bytes.Equal(chart(t, benchRun(), "png"), chart(t, benchRun(), "png")))
}

// What the chart draws: failed and skipped cells are absent from the
// lines, modes come in the fixed order with unknown ones last, ops read
// before write, and a kernel without cells keeps its row.
func TestChartData(t *testing.T) {
	ks, ops, modes, blocks := chartData(benchRun())
	assert.DeepEqual(t, ops, []contract.Op{"read", "write"})
	assert.DeepEqual(t, modes, []contract.Mode{"native", "noop", "libfuse-noop", "classic", "passthrough", "passthrough-noxattr", "uring", "daemon/gofuse"})
	assert.DeepEqual(t, blocks, []int{4096, 131072, 1048576})
	assert.Equal(t, len(ks), 3)

	blocksOf := func(pts []chartPoint) []int {
		var bs []int
		for _, p := range pts {
			bs = append(bs, p.block)
		}
		return bs
	}
	k61, k612, broken := ks[0], ks[1], ks[2]
	assert.Check(t, is.Len(k61.lines["read"]["passthrough"], 0), "skipped cells draw nothing")
	assert.DeepEqual(t, blocksOf(k612.lines["read"]["passthrough"]), []int{4096, 131072}) // 1M failed
	assert.DeepEqual(t, blocksOf(k612.lines["read"]["native"]), []int{4096, 131072, 1048576})
	p := k612.lines["read"]["native"][0]
	assert.DeepEqual(t, [3]float64{p.min, p.med, p.max}, [3]float64{270, 300, 330})
	assert.Equal(t, broken.cells, 0)

	drawn, none := drawnModes(ks, modes)
	assert.DeepEqual(t, drawn, modes)
	assert.Check(t, is.Len(none, 0))
}

// A mode whose every cell skipped or failed has no line, so the legend
// lists it apart instead of with a swatch.
func TestChartLegendWithoutLine(t *testing.T) {
	run := benchRun()
	for i := range run.Kernels {
		for j, r := range run.Kernels[i].Results {
			if strings.Contains(r.ID, "/uring/") {
				run.Kernels[i].Results[j].Status = results.Skip
			}
		}
	}
	ks, _, modes, _ := chartData(run)
	drawn, none := drawnModes(ks, modes)
	assert.DeepEqual(t, drawn, []contract.Mode{"native", "noop", "libfuse-noop", "classic", "passthrough", "passthrough-noxattr", "daemon/gofuse"})
	assert.DeepEqual(t, none, []contract.Mode{"uring"})

	svg := string(chart(t, run, "svg"))
	assert.Check(t, is.Contains(svg, "no passing cell: uring"))
	assert.Check(t, !strings.Contains(string(chart(t, benchRun(), "svg")), "no passing cell"))
}

func TestChartPNG(t *testing.T) {
	img, err := png.Decode(bytes.NewReader(chart(t, benchRun(), "png")))
	assert.NilError(t, err)
	// 2 panels wide, 3 kernels high, at chartDPI.
	w := (2*chartPanelW + 2*chartMargin) * chartDPI / 72
	h := (3*chartPanelH + chartHeaderH + 2*chartMargin) * chartDPI / 72
	assert.Equal(t, img.Bounds().Dx(), w)
	assert.Equal(t, img.Bounds().Dy(), h)
	// Something was drawn in every mode's colour the run has (the
	// legend at least), which a blank or mis-coloured image lacks.
	seen := map[color.RGBA]bool{}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			seen[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 0xff}] = true
		}
	}
	for _, m := range []contract.Mode{"native", "noop", "libfuse-noop", "classic", "passthrough", "passthrough-noxattr", "uring"} {
		assert.Check(t, seen[styleOf(m).color.(color.RGBA)], "no pixel of %s's colour", m)
	}
}

// Text from the guest ends up in the SVG as escaped, visible text: the
// document stays well-formed XML and carries no markup of its own.
func TestChartInert(t *testing.T) {
	run := benchRun()
	k := &run.Kernels[1]
	k.Name = `<script>alert(1)</script> & "x"`
	k.Release = "6.12\n\x1b[2J\u202e</text>"
	k.Accel = "<b>"
	k.Results = append(k.Results, benchResult("bench/read/<svg onload=alert(1)>/4096", 50, 0.2),
		benchResult("bench/<i>/native/4096", 50, 1))
	run.Kernels[2].Error = "]]> <!-- \x00"
	for _, format := range ChartFormats {
		assert.NilError(t, Chart(io.Discard, run, format), format)
	}
	svg := chart(t, run, "svg")
	for _, bad := range []string{"<script", "<svg onload", "<b>", "<i>", "\x1b", "\x00", "\u202e"} {
		assert.Check(t, !bytes.Contains(svg, []byte(bad)), "%q in the SVG", bad)
	}
	assert.Check(t, bytes.Contains(svg, []byte("&lt;script&gt;")), "the name is shown, escaped")
	assert.Check(t, is.Equal(bytes.Count(svg, []byte("<!--")), 1), "only gonum's own comment")
	dec := xml.NewDecoder(bytes.NewReader(svg))
	dec.Strict = true
	elements := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		assert.NilError(t, err)
		if se, ok := tok.(xml.StartElement); ok {
			elements++
			assert.Check(t, is.Contains([]string{"svg", "g", "path", "text", "rect", "circle"}, se.Name.Local))
		}
	}
	assert.Check(t, elements > 0)
}

func TestChartErrors(t *testing.T) {
	err := Chart(io.Discard, benchRun(), "gif")
	assert.Check(t, is.ErrorContains(err, `format "gif": want svg or png`))
	err = Chart(brokenWriter{}, benchRun(), "svg")
	assert.Check(t, errors.Is(err, errBroken), "%v", err)
}

// A run without bench cells, or without kernels, still renders: the
// chart says what is missing rather than failing.
func TestChartEmpty(t *testing.T) {
	for _, run := range []*results.Run{caseRun("empty"), caseRun("all-failed")} {
		svg := string(chart(t, run, "svg"))
		assert.Check(t, strings.Contains(svg, "No kernels ran.") || strings.Contains(svg, "no benchmark cells"), svg)
	}
}

func TestStep125(t *testing.T) {
	for _, tc := range []struct {
		v        float64
		up, want float64
	}{
		{v: 3.7, want: 2, up: 5},
		{v: 5, want: 5, up: 5},
		{v: 426, want: 200, up: 500},
		{v: 0.07, want: 0.05, up: 0.1},
		{v: 1000, want: 1000, up: 1000},
		{v: 1001, want: 1000, up: 2000},
	} {
		assert.Check(t, is.Equal(step125(tc.v, false), tc.want), "down %v", tc.v)
		assert.Check(t, is.Equal(step125(tc.v, true), tc.up), "up %v", tc.v)
	}
}

// Figures no machine measures (from a broken or hostile guest) are left
// out rather than stretching the axes or breaking the renderer.
func TestChartImplausible(t *testing.T) {
	run := benchRun()
	k := &run.Kernels[1]
	for i, v := range []float64{1e308, 1e-300, math.NaN(), math.Inf(1), -5} {
		r := benchResult(fmt.Sprintf("bench/read/odd%d/4096", i), 100, 0)
		r.Metrics["mbps_median"] = v
		k.Results = append(k.Results, r)
	}
	wild := benchResult("bench/read/wild/4096", 100, 0)
	wild.Metrics["mbps_max"], wild.Metrics["mbps_min"] = 1e308, 1e-300
	k.Results = append(k.Results, wild)
	ks, _, _, _ := chartData(run)
	for mode, pts := range ks[1].lines["read"] {
		assert.Check(t, !strings.HasPrefix(string(mode), "odd"), "%s drawn: %v", mode, pts)
	}
	assert.DeepEqual(t, ks[1].lines["read"]["wild"], []chartPoint{{block: 4096, med: 100, min: 100, max: 100}}, cmpChartPoint)
	lo, hi := yRange(ks)
	assert.Check(t, lo >= 1 && hi <= 1000, "y range %v..%v", lo, hi)
	for _, format := range ChartFormats {
		assert.NilError(t, Chart(io.Discard, run, format))
	}
}

var cmpChartPoint = gocmp.AllowUnexported(chartPoint{})
