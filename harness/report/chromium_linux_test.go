package report

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
)

// The HTML report is checked where people read it, in a browser: Debian's
// headless Chromium lays it out at a laptop's size and says how wide the
// page came out. `make screenshot` writes the picture the README shows.

var screenshot = flag.String("screenshot", "", "write a PNG of the wide fixture's report at a laptop's width to this `file` (make screenshot)")

const (
	chromiumPath = "/usr/bin/chromium"
	// A common laptop screen: the page must fit its width.
	laptopWidth, laptopHeight = 1366, 900
)

// measurement is what the page reports about its own layout.
type measurement struct {
	// ScrollWidth is the document's width, ClientWidth the viewport's
	// without its vertical scroll bar, InnerWidth the window's.
	ScrollWidth, ClientWidth, InnerWidth int
	// GridScroll and GridClient are the grid box's content and visible
	// widths; GridBottom is where it ends on the page.
	GridScroll, GridClient, GridBottom int
	// Wide names elements that reach past the viewport, for the message.
	Wide []string
}

// measureScript runs last on the page: it measures the laid-out page,
// then writes the figures into it for --dump-dom to print.
const measureScript = `<script>
(function () {
  var d = document.documentElement, g = document.querySelector('.gridbox');
  var m = {ScrollWidth: d.scrollWidth, ClientWidth: d.clientWidth, InnerWidth: window.innerWidth,
    GridScroll: g ? g.scrollWidth : 0, GridClient: g ? g.clientWidth : 0,
    GridBottom: g ? Math.ceil(g.getBoundingClientRect().bottom + window.scrollY) : 0, Wide: []};
  document.querySelectorAll('body *').forEach(function (e) {
    if (!(e instanceof HTMLElement)) {
      return; // the chart's SVG scales to its box
    }
    // An element past the viewport, or one whose text spills out of it.
    var r = e.getBoundingClientRect(), spills = e.scrollWidth > e.clientWidth + 1 &&
      getComputedStyle(e).overflowX === 'visible' && e.clientWidth > 0;
    if ((r.right > d.clientWidth + 0.5 || spills) && m.Wide.length < 8) {
      m.Wide.push(e.tagName + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '') +
        ' right=' + Math.round(r.right) + ' scrollWidth=' + e.scrollWidth);
    }
  });
  var p = document.createElement('pre');
  p.id = 'fm-measure';
  p.textContent = JSON.stringify(m);
  document.body.appendChild(p);
})();
</script>
`

var measured = regexp.MustCompile(`<pre id="fm-measure">([^<]*)</pre>`)

// chromium runs headless Chromium with args on the page at path, in a
// window width×height, and returns its standard output.
func chromium(t *testing.T, path string, width, height int, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append([]string{"--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
		"--user-data-dir=" + t.TempDir(), "--window-size=" + strconv.Itoa(width) + "," + strconv.Itoa(height)},
		append(args, "file://"+path)...)
	cmd := exec.CommandContext(ctx, chromiumPath, args...)
	// Chromium starts helpers of its own: a timeout ends them all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	assert.NilError(t, err, "chromium %s\n%s", strings.Join(args, " "), stderr.String())
	return stdout.String()
}

// measure lays page out in Chromium at a laptop's size.
func measure(t *testing.T, page string) measurement {
	t.Helper()
	i := strings.LastIndex(page, "</body>")
	assert.Assert(t, i >= 0)
	path := filepath.Join(t.TempDir(), "report.html")
	assert.NilError(t, os.WriteFile(path, []byte(page[:i]+measureScript+page[i:]), 0o644))
	dom := chromium(t, path, laptopWidth, laptopHeight, "--dump-dom")
	m := measured.FindStringSubmatch(dom)
	assert.Assert(t, m != nil, "no measurement in the page Chromium printed:\n%.2000s", dom)
	var got measurement
	assert.NilError(t, json.Unmarshal([]byte(m[1]), &got), m[1])
	return got
}

// At a laptop's width the page never scrolls sideways, not even for a
// wide matrix with long errors and logs, and the wide matrix's grid fits
// without scrolling inside its own box either.
func TestHTMLFitsLaptop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts headless Chromium; run without -short")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		if *screenshot != "" {
			t.Fatalf("-screenshot needs %s: apt-get install chromium", chromiumPath)
		}
		t.Skipf("no %s (Debian's chromium package): the report's layout is not checked", chromiumPath)
	}
	for _, tc := range []struct {
		name string
		run  func(*testing.T) *results.Run
		// gridFits: the grid needs no scroll bar of its own.
		gridFits bool
	}{
		{"wide", wideRun, true},
		{"wide-broken", wideBrokenRun, true},
		{"bench", func(*testing.T) *results.Run { return htmlRun() }, true},
		{"hostile", func(*testing.T) *results.Run { return caseRun("hostile") }, false},
		// Beyond what a laptop's width holds, the grid scrolls in its box.
		{"33 kernels", func(t *testing.T) *results.Run {
			run := wideRun(t)
			for _, flavour := range []string{"rt", "amd64"} {
				for _, k := range run.Kernels[:11] {
					k.Name = strings.Replace(k.Name, "/cloud", "/"+flavour, 1)
					run.Kernels = append(run.Kernels, k)
				}
			}
			return run
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page := render(t, HTML, tc.run(t))
			m := measure(t, page)
			t.Logf("%+v", m)
			// Else the window size did not take, and the rest proves nothing.
			assert.Assert(t, is.Equal(m.InnerWidth, laptopWidth))
			assert.Check(t, m.ScrollWidth <= m.ClientWidth,
				"the page is %d px wide in a %d px viewport: it scrolls sideways; too wide: %v", m.ScrollWidth, m.ClientWidth, m.Wide)
			if tc.gridFits {
				assert.Check(t, m.GridScroll <= m.GridClient, "the grid is %d px wide in a %d px box", m.GridScroll, m.GridClient)
			}
			if tc.name == "wide" && *screenshot != "" {
				writeScreenshot(t, page, m)
			}
		})
	}
}

// writeScreenshot writes the top of the page, the grid and its legend,
// as a laptop shows it, to -screenshot.
func writeScreenshot(t *testing.T, page string, m measurement) {
	dst, err := filepath.Abs(*screenshot)
	assert.NilError(t, err)
	src := filepath.Join(t.TempDir(), "report.html")
	assert.NilError(t, os.WriteFile(src, []byte(page), 0o644))
	height := min(max(m.GridBottom+24, laptopHeight), 4000)
	chromium(t, src, laptopWidth, height, "--hide-scrollbars", "--screenshot="+dst)
	b, err := os.ReadFile(dst)
	assert.NilError(t, err)
	img, err := png.Decode(bytes.NewReader(b))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(img.Bounds().Dx(), laptopWidth))
	t.Logf("wrote %s (%d×%d)", dst, img.Bounds().Dx(), img.Bounds().Dy())
}
