package report

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
)

// Kernels are ordered by version, not by name: 6.9 before 6.10, a kernel
// that never said hello by the version its name or package gives, equal
// versions by release, and kernels with no version at all last.
func TestByVersion(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []results.Kernel
		want []string
	}{
		{"numeric, not by name", []results.Kernel{
			{Name: "b", Release: "6.10.2-amd64"}, {Name: "a", Release: "6.9.12-amd64"}, {Name: "c", Release: "6.1.0-57-cloud-amd64"},
		}, []string{"c", "a", "b"}},
		{"Debian's ABI number orders 6.1 uploads", []results.Kernel{
			{Name: "new", Release: "6.1.0-57-cloud-amd64"}, {Name: "old", Release: "6.1.0-31-cloud-amd64"},
		}, []string{"old", "new"}},
		{"no hello: version from the name, then the package", []results.Kernel{
			{Name: "debian:7.3/cloud", Status: results.Error},
			{Name: "debian:7.2/cloud", Release: "7.2.13+deb14-cloud-amd64"},
			{Name: "./bzImage", Source: "linux-image-7.4.0-1-cloud-amd64 7.4.1-1", Status: results.Error},
			{Name: "debian:7.3/cloud@sid", Release: "7.3.4+deb13-cloud-amd64"},
		}, []string{"debian:7.2/cloud", "debian:7.3/cloud", "debian:7.3/cloud@sid", "./bzImage"}},
		{"equal versions by release, then name", []results.Kernel{
			{Name: "debian:6.12/cloud@trixie", Release: "6.12.118+deb13-cloud-amd64"},
			{Name: "z", Release: "6.12.118+deb12-cloud-amd64"},
			{Name: "debian:6.12/cloud@bookworm", Release: "6.12.118+deb12-cloud-amd64"},
		}, []string{"debian:6.12/cloud@bookworm", "z", "debian:6.12/cloud@trixie"}},
		{"no version at all: last, in the run's order", []results.Kernel{
			{Name: "./vmlinuz", Status: results.Error}, {Name: "6.6", Release: "6.6.1"}, {Name: "./bzImage", Status: results.Error},
		}, []string{"6.6", "./vmlinuz", "./bzImage"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, k := range byVersion(tc.in) {
				got = append(got, k.Name)
			}
			assert.Check(t, is.DeepEqual(got, tc.want))
		})
	}
}

// The grid of a wide run held out of order, in which one kernel never
// said hello and one scenario failed: columns in version order, each
// linking to its kernel's section; a cell per result with its reason as
// a tooltip and a link to the result's row; "—" where a kernel did not
// report, saying why; capabilities under it in the same columns.
func TestHTMLGrid(t *testing.T) {
	run := wideBrokenRun(t)
	sorted := *run
	sorted.Kernels = byVersion(run.Kernels)
	g := gridOf(&sorted)

	var names, versions []string
	for _, c := range g.Columns {
		names = append(names, c.Label)
		versions = append(versions, c.Version)
	}
	assert.Check(t, is.DeepEqual(names, []string{
		"debian:6.1/cloud@bookworm", "debian:6.12/cloud@bookworm", "debian:6.12/cloud@trixie", "debian:6.16/cloud",
		"debian:6.17/cloud", "debian:6.18/cloud", "debian:6.19/cloud", "debian:7.0/cloud", "debian:7.1/cloud",
		"debian:7.2/cloud", "debian:7.3/cloud"}))
	assert.Check(t, is.DeepEqual(versions, []string{
		"6.1.0-57", "6.12.118", "6.12.118", "6.16.12", "6.17.13", "6.18.15", "6.19.14", "7.0.13", "7.1.13", "7.2.13", "7.3"}))
	assert.Check(t, is.Contains(g.Columns[10].VersionTitle, "never said hello"))
	assert.Check(t, is.Contains(g.Columns[10].Title, "boot: error: no hello within 2m0s"))

	var groups []string
	for _, gr := range g.Groups {
		groups = append(groups, gr.Name)
	}
	assert.Check(t, is.DeepEqual(groups, []string{"", "probes", "scenarios", "benchmarks", "expectations",
		"capabilities", "INIT flags", "passthrough ioctl misuse"}))

	row := func(head string) htmlRow {
		t.Helper()
		for _, gr := range g.Groups {
			for _, r := range gr.Rows {
				if r.Head == head {
					return r
				}
			}
		}
		t.Fatalf("no row %q", head)
		return htmlRow{}
	}
	texts := func(r htmlRow) (text, class []string) {
		for _, c := range r.Cells {
			text = append(text, c.Text)
			class = append(class, c.Class)
		}
		return text, class
	}

	boot := row("boot")
	assert.Check(t, is.Equal(boot.Cells[0].Text, "ok"))
	assert.Check(t, is.Equal(boot.Cells[10].Class, "error"))
	assert.Check(t, is.Contains(boot.Cells[10].Title, "boot: error: no hello within 2m0s"))

	integrity := row("pt/integrity")
	text, _ := texts(integrity)
	assert.Check(t, is.DeepEqual(text, []string{"skip", "pass", "pass", "pass", "pass", "pass", "fail", "pass", "pass", "pass", "—"}))
	assert.Check(t, is.Contains(integrity.Cells[0].Title, "skip: kernel does not offer FUSE_PASSTHROUGH"))
	assert.Check(t, is.Contains(integrity.Cells[6].Title, "pt/integrity on debian:6.19/cloud\nfail: read back differs at offset 1048576"))
	assert.Check(t, is.Equal(integrity.Cells[6].Href, "k7-r5"))
	assert.Check(t, is.Equal(integrity.Cells[10].Href, ""))
	assert.Check(t, is.Contains(integrity.Cells[10].Title, "not reported: the kernel did not complete: no hello within 2m0s"))
	seq := row("seq-read")
	assert.Check(t, is.Regexp(`^seq-read on debian:6.1/cloud@bookworm\npass\nnative \d+ MB/s`, seq.Cells[0].Title))

	text, class := texts(row("fuse"))
	assert.Check(t, is.DeepEqual(text, []string{"7.38", "7.41", "7.41", "7.44", "7.44", "7.45", "7.45", "7.45", "7.45", "7.45", "—"}))
	assert.Check(t, is.DeepEqual(class, []string{"val", "val chg", "val", "val chg", "val", "val chg", "val", "val", "val", "val", "absent"}))
	assert.Check(t, is.Contains(row("fuse").Cells[1].Title, "7.41 (was 7.38)"))
	text, _ = texts(row("passthrough"))
	assert.Check(t, is.Equal(text[0], "no"))
	text, _ = texts(row("not_negotiated"))
	assert.Check(t, is.DeepEqual(text[:3], []string{"ENOTTY", "EPERM", "EPERM"}))
	// An INIT flag only some kernels offer is a row; one all offer is not.
	text, _ = texts(row("passthrough"))
	assert.Check(t, is.Equal(text[1], "upstream"))
	flags := g.Groups[6]
	assert.Check(t, is.Equal(flags.Rows[2].Head, "passthrough"))
	text, class = texts(flags.Rows[2])
	assert.Check(t, is.DeepEqual(text, []string{"no", "yes", "yes", "yes", "yes", "yes", "yes", "yes", "yes", "yes", "—"}))
	assert.Check(t, is.Equal(class[0], "lack"))
	for _, r := range flags.Rows {
		assert.Check(t, r.Head != "async_read", "a flag every kernel offers")
	}

	// On the page: every column head and result cell leads to its place.
	out := render(t, HTML, run)
	for i, name := range names {
		assert.Check(t, is.Regexp(`<th class="kname" title="[^"]*"><a href="#k`+strconv.Itoa(i+1)+`">`+regexp.QuoteMeta(name)+`</a></th>`, out))
		assert.Check(t, is.Contains(out, `<h3 id="k`+strconv.Itoa(i+1)+`">`+name+` `))
	}
	assert.Check(t, is.Contains(out, `<tr id="k7-r5"><td>pt/integrity</td><td>scenario</td><td class="fail">fail</td>`))
	assert.Check(t, is.Contains(out, `<td class="fail" title="pt/integrity on debian:6.19/cloud
fail: read back differs at offset 1048576: 0123456789abcdef`))
	assert.Check(t, is.Contains(out, `"><a href="#k7-r5">fail</a></td>`))
	assert.Check(t, is.Contains(out, `<table class="grid" style="--n: 11; --head: 26">`))
	// The grid comes first, the details after it.
	assert.Check(t, strings.Index(out, `class="grid"`) < strings.Index(out, "<h2>Kernels</h2>"))
}

// The views that show every result of every kernel look each up by index
// (issue 21 row 11): a scan of a kernel's results for each of them grows
// with the square of the results, which merge, writing report.html and
// junit.xml of a large merged run, would pay.
func TestViewsIndex(t *testing.T) {
	const n = 20000
	run := &results.Run{Schema: results.SchemaVersion}
	for k := range 2 {
		kern := results.Kernel{Name: "debian:6." + strconv.Itoa(k+1) + "/cloud", Status: results.Pass}
		for i := range n / 2 {
			kern.Results = append(kern.Results, results.Result{ID: "scenario/" + strconv.Itoa(i+k), Kind: results.Scenario, Status: results.Pass})
		}
		run.Kernels = append(run.Kernels, kern)
	}
	for name, view := range map[string]func(*strings.Builder, *results.Run) error{
		"table":    func(b *strings.Builder, r *results.Run) error { return Table(b, r) },
		"markdown": func(b *strings.Builder, r *results.Run) error { return Markdown(b, r) },
		"html":     func(b *strings.Builder, r *results.Run) error { return HTML(b, r) },
		"junit":    func(b *strings.Builder, r *results.Run) error { return JUnit(b, r) },
	} {
		before := results.Scanned()
		var b strings.Builder
		assert.NilError(t, view(&b, run), name)
		scanned := results.Scanned() - before
		// The capability rows look up a few probes in each kernel, a
		// scan each: some dozens of n. A scan per result would be n²/4.
		assert.Check(t, scanned <= 64*n, "%s: %d results scanned to show %d: a scan per result", name, scanned, n)
	}
}
