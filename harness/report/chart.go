package report

import (
	"errors"
	"fmt"
	"hash/fnv"
	"image/color"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// The chart draws the bench cells as throughput by block size: one panel
// per kernel (rows) and op (columns), one line per mode. Fonts are the
// Liberation faces gonum compiles in, so rendering needs no font files
// and no network; the SVG names them rather than embedding them, which
// keeps it small and diffable (a viewer without them substitutes a
// similar face).

// ChartFormats are the formats Chart writes.
var ChartFormats = []string{"svg", "png"}

// chartDPI makes the PNG sharp enough to read at full width on a laptop.
const chartDPI = 144

// Panel geometry, in points.
const (
	chartPanelW  = 360
	chartPanelH  = 230
	chartHeaderH = 66
	chartMargin  = 8
	chartTitleW  = 60 // runes of a kernel name or release in a title
)

// modeStyle is how a mode is drawn: its colour and glyph stay the same in
// every chart, whichever other modes a run has.
type modeStyle struct {
	color color.Color
	glyph draw.GlyphDrawer
	dash  []vg.Length
}

var modeStyles = map[contract.Mode]modeStyle{
	contract.Native:             {rgb(0x22, 0x22, 0x22), draw.CircleGlyph{}, nil},
	contract.Noop:               {rgb(0xd6, 0x27, 0x28), draw.TriangleGlyph{}, nil},
	contract.LibfuseNoop:        {rgb(0xff, 0x7f, 0x0e), draw.PyramidGlyph{}, []vg.Length{vg.Points(4), vg.Points(2)}},
	contract.Classic:            {rgb(0x1f, 0x77, 0xb4), draw.SquareGlyph{}, nil},
	contract.Passthrough:        {rgb(0x2c, 0xa0, 0x2c), draw.BoxGlyph{}, nil},
	contract.PassthroughNoXattr: {rgb(0x17, 0xbe, 0xcf), draw.RingGlyph{}, []vg.Length{vg.Points(4), vg.Points(2)}},
}

// otherColors are for modes modeStyles does not name; the mode's name
// picks one, so a mode keeps its colour from one run to the next.
var otherColors = []color.Color{
	rgb(0x94, 0x67, 0xbd), rgb(0x8c, 0x56, 0x4b), rgb(0xe3, 0x77, 0xc2),
	rgb(0x7f, 0x7f, 0x7f), rgb(0xbc, 0xbd, 0x22), rgb(0x39, 0x3b, 0x79),
}

func rgb(r, g, b uint8) color.Color { return color.RGBA{R: r, G: g, B: b, A: 0xff} }

func styleOf(mode contract.Mode) modeStyle {
	if s, ok := modeStyles[mode]; ok {
		return s
	}
	h := fnv.New32a()
	h.Write([]byte(mode))
	return modeStyle{
		color: otherColors[h.Sum32()%uint32(len(otherColors))],
		glyph: draw.CrossGlyph{},
		dash:  []vg.Length{vg.Points(2), vg.Points(2)},
	}
}

var (
	chartFont     = font.Font{Typeface: "Liberation", Variant: "Sans"}
	chartBoldFont = font.Font{Typeface: "Liberation", Variant: "Sans", Weight: xfont.WeightBold}
)

func textStyle(f font.Font, size vg.Length) text.Style {
	return text.Style{
		Color:   color.Black,
		Font:    font.From(f, size),
		Handler: plot.DefaultTextHandler,
	}
}

// chartPoint is one passing cell.
type chartPoint struct {
	block         int
	med, min, max float64
}

// chartKernel is one kernel's row of panels: per op, per mode, the
// passing cells in block order.
type chartKernel struct {
	k     *results.Kernel
	lines map[contract.Op]map[contract.Mode][]chartPoint
	cells int // benchmark cells of any status
}

// chartData gathers the cells the chart draws, the ops (columns) and
// modes in display order, and the block sizes any kernel measured.
func chartData(run *results.Run) (ks []chartKernel, ops []contract.Op, modes []contract.Mode, blocks []int) {
	for i := range run.Kernels {
		k := &run.Kernels[i]
		ck := chartKernel{k: k, lines: map[contract.Op]map[contract.Mode][]chartPoint{}}
		for _, r := range k.Results {
			c, ok := contract.ParseCell(contract.ID(r.ID))
			if !ok {
				continue
			}
			op, mode, block := c.Op, c.Mode, c.Block
			ck.cells++
			if !slices.Contains(ops, op) {
				ops = append(ops, op)
			}
			if !slices.Contains(modes, mode) {
				modes = append(modes, mode)
			}
			if !slices.Contains(blocks, block) {
				blocks = append(blocks, block)
			}
			med, ok := median(&r)
			// A log axis has no place for nothing, and a figure beyond
			// any machine's memory bandwidth is not a measurement.
			if !ok || !plausible(med) {
				continue
			}
			p := chartPoint{block: block, med: med, min: med, max: med}
			if v, _ := contract.MetricMin.Of(&r); plausible(v) && v <= med {
				p.min = v
			}
			if v, _ := contract.MetricMax.Of(&r); plausible(v) && v >= med {
				p.max = v
			}
			if ck.lines[op] == nil {
				ck.lines[op] = map[contract.Mode][]chartPoint{}
			}
			ck.lines[op][mode] = append(ck.lines[op][mode], p)
		}
		for _, byMode := range ck.lines {
			for _, pts := range byMode {
				slices.SortFunc(pts, func(a, b chartPoint) int { return a.block - b.block })
			}
		}
		ks = append(ks, ck)
	}
	// read before write, then any other op as the guest reported it.
	rank := func(op contract.Op) int {
		if i := slices.Index(contract.Ops, op); i >= 0 {
			return i
		}
		return 2
	}
	slices.SortStableFunc(ops, func(a, b contract.Op) int { return rank(a) - rank(b) })
	sortModes(modes)
	slices.Sort(blocks)
	return ks, ops, modes, blocks
}

// plausible reports whether v can be drawn as MB/s on a log axis.
func plausible(v float64) bool { return v >= 1e-6 && v <= 1e9 }

// Chart draws the run's bench cells as throughput (median MB/s, bars from
// the slowest to the fastest run) by block size, one line per mode, one
// panel per kernel and op, in format "svg" or "png". Cells that did not
// pass are left out of the lines; a kernel without cells gets a panel
// saying so. The same run always gives the same bytes.
func Chart(w io.Writer, run *results.Run, format string) (err error) {
	// gonum panics on some inputs it considers programming errors; the
	// figures come from a guest, so one it chokes on must not end the
	// run that is reporting them.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("render chart: %v", p)
		}
	}()
	if run == nil {
		return errors.New("render chart: no run")
	}
	if !slices.Contains(ChartFormats, format) {
		return fmt.Errorf("render chart: format %q: want %s", format, strings.Join(ChartFormats, " or "))
	}
	ks, ops, modes, blocks := chartData(run)
	cols := max(len(ops), 1)
	rows := max(len(ks), 1)
	width := vg.Length(cols*chartPanelW + 2*chartMargin)
	height := vg.Length(rows*chartPanelH + chartHeaderH + 2*chartMargin)

	var cw vg.CanvasWriterTo
	switch format {
	case "svg":
		cw = vgsvg.New(width, height)
	case "png":
		cw = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(chartDPI),
			vgimg.UseBackgroundColor(color.White))}
	}
	dc := draw.New(cw)
	if format == "svg" {
		// The PNG has its background from the canvas; an SVG is
		// transparent and unreadable on a dark page without one.
		dc.FillPolygon(color.White, []vg.Point{{X: 0, Y: 0}, {X: 0, Y: height}, {X: width, Y: height}, {X: width, Y: 0}})
	}
	inner := draw.Crop(dc, chartMargin, -chartMargin, chartMargin, -chartMargin)
	drawn, none := drawnModes(ks, modes)
	drawChartHeader(draw.Crop(inner, 0, 0, inner.Max.Y-inner.Min.Y-chartHeaderH, 0), run, drawn, none)
	body := draw.Crop(inner, 0, 0, 0, -chartHeaderH)

	if len(ks) == 0 {
		drawMessage(body, "No kernels ran.")
	} else {
		ylo, yhi := yRange(ks)
		plots := make([][]*plot.Plot, len(ks))
		for i, ck := range ks {
			plots[i] = make([]*plot.Plot, cols)
			if ck.cells == 0 {
				continue
			}
			for j, op := range ops {
				p, err := panel(ck, op, modes, blocks, ylo, yhi)
				if err != nil {
					return fmt.Errorf("render chart: %s %s: %w", inert.OneLine(ck.k.Name), inert.OneLine(string(op)), err)
				}
				plots[i][j] = p
			}
		}
		tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(10), PadY: vg.Points(10)}
		canvases := plot.Align(plots, tiles, body)
		for i, ck := range ks {
			if ck.cells == 0 {
				// One message across the row.
				row := canvases[i][0]
				row.Max.X = canvases[i][cols-1].Max.X
				drawEmptyKernel(row, ck.k)
				continue
			}
			for j := range ops {
				plots[i][j].Draw(canvases[i][j])
				if len(ck.lines[ops[j]]) == 0 {
					c := plots[i][j].DataCanvas(canvases[i][j])
					drawMessage(c, "no cell passed")
				}
			}
		}
	}
	if _, err := cw.WriteTo(w); err != nil {
		return fmt.Errorf("write chart: %w", err)
	}
	return nil
}

// drawnModes splits modes into those with a line in some panel and those
// whose every cell failed or skipped, which the legend names apart: a
// legend entry for a line that is nowhere sends the reader looking.
func drawnModes(ks []chartKernel, modes []contract.Mode) (drawn, none []contract.Mode) {
	for _, m := range modes {
		if slices.ContainsFunc(ks, func(ck chartKernel) bool {
			for _, byMode := range ck.lines {
				if len(byMode[m]) > 0 {
					return true
				}
			}
			return false
		}) {
			drawn = append(drawn, m)
		} else {
			none = append(none, m)
		}
	}
	return drawn, none
}

// drawChartHeader writes the chart's title and a legend of the modes
// drawn, once for all panels, then the modes with no figure anywhere.
func drawChartHeader(c draw.Canvas, run *results.Run, modes, none []contract.Mode) {
	title := textStyle(chartBoldFont, 13)
	title.YAlign = draw.YTop
	c.FillText(title, vg.Point{X: c.Min.X, Y: c.Max.Y}, "fusematrix bench: sequential throughput by block size")
	sub := textStyle(chartFont, 10)
	sub.YAlign = draw.YTop
	sub.Color = rgb(0x44, 0x44, 0x44)
	line := "MB/s, median of the runs (log scale); bars span the slowest to the fastest run; failed or skipped cells are left out"
	c.FillText(sub, vg.Point{X: c.Min.X, Y: c.Max.Y - 17}, line)
	if slices.ContainsFunc(run.Kernels, func(k results.Kernel) bool { return k.Accel == "tcg" }) {
		c.FillText(sub, vg.Point{X: c.Min.X, Y: c.Max.Y - 30},
			"TCG emulates every instruction: its figures compare with other TCG figures, not with KVM ones")
	}

	legend := textStyle(chartFont, 10)
	legend.YAlign = draw.YCenter
	x, y := c.Min.X, c.Min.Y+10
	for _, m := range modes {
		s := styleOf(m)
		ls := draw.LineStyle{Color: s.color, Width: vg.Points(1.5), Dashes: s.dash}
		c.StrokeLine2(ls, x, y, x+22, y)
		c.DrawGlyphNoClip(draw.GlyphStyle{Color: s.color, Radius: vg.Points(3), Shape: s.glyph}, vg.Point{X: x + 11, Y: y})
		name := inert.Truncate(inert.OneLine(string(m)), 24)
		c.FillText(legend, vg.Point{X: x + 27, Y: y}, name)
		x += 27 + legend.Width(name) + 14
	}
	if len(none) > 0 {
		names := make([]string, len(none))
		for i, m := range none {
			names[i] = inert.Truncate(inert.OneLine(string(m)), 24)
		}
		legend.Color = rgb(0x66, 0x66, 0x66)
		c.FillText(legend, vg.Point{X: x, Y: y}, "no passing cell: "+strings.Join(names, ", "))
	}
}

// accelWords says what produced a kernel's figures; the header explains
// why TCG figures stand apart.
func accelWords(accel string) string {
	switch accel {
	case "tcg", "kvm":
		return strings.ToUpper(accel)
	case "":
		return "accelerator unknown"
	}
	return inert.Truncate(inert.OneLine(accel), 16)
}

func panel(ck chartKernel, op contract.Op, modes []contract.Mode, blocks []int, ylo, yhi float64) (*plot.Plot, error) {
	k := ck.k
	p := plot.New()
	p.Title.Text = inert.Truncate(inert.OneLine(k.Name), chartTitleW) + ": " + inert.Truncate(inert.OneLine(string(op)), 16) + "\n" +
		inert.Truncate(inert.OneLine(orDash(k.Release)), chartTitleW) + " · " + accelWords(k.Accel)
	p.Title.TextStyle.Font = font.From(chartFont, 10)
	p.Title.Padding = vg.Points(4)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(chartFont, 9)
		a.Tick.Label.Font = font.From(chartFont, 9)
	}
	p.X.Label.Text = "block size"
	p.Y.Label.Text = "MB/s"
	p.X.Scale = plot.LogScale{}
	p.X.Min, p.X.Max = float64(blocks[0])/1.6, float64(blocks[len(blocks)-1])*1.6
	var ticks plot.ConstantTicks
	for _, b := range blocks {
		ticks = append(ticks, plot.Tick{Value: float64(b), Label: blockLabel(b)})
	}
	p.X.Tick.Marker = ticks
	p.Y.Scale = plot.LogScale{}
	p.Y.Min, p.Y.Max = ylo, yhi
	p.Y.Tick.Marker = logTicks{}
	grid := plotter.NewGrid()
	grid.Vertical.Color = rgb(0xe4, 0xe4, 0xe4)
	grid.Horizontal.Color = rgb(0xe4, 0xe4, 0xe4)
	grid.Vertical.Width = vg.Points(0.5)
	grid.Horizontal.Width = vg.Points(0.5)
	p.Add(grid)
	for _, m := range modes {
		pts := ck.lines[op][m]
		if len(pts) == 0 {
			continue
		}
		s := styleOf(m)
		xys := make(plotter.XYs, len(pts))
		errs := make(plotter.YErrors, len(pts))
		for i, pt := range pts {
			xys[i] = plotter.XY{X: float64(pt.block), Y: pt.med}
			errs[i].Low, errs[i].High = pt.med-pt.min, pt.max-pt.med
		}
		// A cell missing between two others breaks the line rather
		// than being drawn as if it lay between them.
		start := 0
		for i := range pts {
			if i+1 < len(pts) && slices.Index(blocks, pts[i+1].block) == slices.Index(blocks, pts[i].block)+1 {
				continue
			}
			if i > start {
				line, err := plotter.NewLine(xys[start : i+1])
				if err != nil {
					return nil, fmt.Errorf("mode %s: %w", inert.OneLine(string(m)), err)
				}
				line.Color, line.Width, line.Dashes = s.color, vg.Points(1.5), s.dash
				p.Add(line)
			}
			start = i + 1
		}
		scatter, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, fmt.Errorf("mode %s: %w", inert.OneLine(string(m)), err)
		}
		scatter.Color, scatter.Shape, scatter.Radius = s.color, s.glyph, vg.Points(3)
		bars, err := plotter.NewYErrorBars(struct {
			plotter.XYs
			plotter.YErrors
		}{xys, errs})
		if err != nil {
			return nil, fmt.Errorf("mode %s: %w", inert.OneLine(string(m)), err)
		}
		bars.Color, bars.Width, bars.CapWidth = s.color, vg.Points(1), vg.Points(5)
		p.Add(scatter, bars)
	}
	// Add widened the axes to the data; the figure keeps one scale for
	// every panel so that kernels compare at a glance.
	p.X.Min, p.X.Max = float64(blocks[0])/1.6, float64(blocks[len(blocks)-1])*1.6
	p.Y.Min, p.Y.Max = ylo, yhi
	return p, nil
}

// yRange is one y range for every panel: from the slowest run to the
// fastest, widened to whole 1-2-5 steps.
func yRange(ks []chartKernel) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, ck := range ks {
		for _, byMode := range ck.lines {
			for _, pts := range byMode {
				for _, p := range pts {
					lo, hi = min(lo, p.min), max(hi, p.max)
				}
			}
		}
	}
	if math.IsInf(lo, 0) {
		return 1, 1000
	}
	return step125(lo, false), step125(hi, true)
}

// step125 rounds v > 0 down, or up, to 1, 2 or 5 times a power of ten.
func step125(v float64, up bool) float64 {
	e := math.Pow10(int(math.Floor(math.Log10(v))))
	m := v / e
	steps := []float64{1, 2, 5, 10}
	if up {
		for _, s := range steps {
			if s >= m*(1-1e-9) {
				return s * e
			}
		}
		return 10 * e
	}
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i] <= m*(1+1e-9) {
			return steps[i] * e
		}
	}
	return e
}

// logTicks labels a log axis at 1, 2 and 5 times each power of ten, where
// gonum's LogTicks labels only the powers, too few over one or two
// decades.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow10(int(e)) <= hi; e++ {
		p := math.Pow10(int(e))
		for m := 1; m < 10; m++ {
			v := float64(m) * p
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			ts = append(ts, t)
		}
	}
	return ts
}

// drawEmptyKernel says, where a kernel's panels would be, why it has none.
func drawEmptyKernel(c draw.Canvas, k *results.Kernel) {
	msg := inert.Truncate(inert.OneLine(k.Name), chartTitleW) + ": no benchmark cells"
	if k.Status != results.Pass {
		msg += "\ndid not run: " + inert.Truncate(inert.OneLine(bootError(k)), 90)
	}
	c.StrokeLines(draw.LineStyle{Color: rgb(0xbb, 0xbb, 0xbb), Width: vg.Points(0.5)},
		[]vg.Point{c.Min, {X: c.Max.X, Y: c.Min.Y}, c.Max, {X: c.Min.X, Y: c.Max.Y}, c.Min})
	drawMessage(c, msg)
}

func drawMessage(c draw.Canvas, msg string) {
	s := textStyle(chartFont, 11)
	s.Color = rgb(0x55, 0x55, 0x55)
	s.XAlign, s.YAlign = draw.XCenter, draw.YCenter
	c.FillText(s, c.Center(), msg)
}
