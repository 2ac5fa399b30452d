package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/results"
)

var started = time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)

func host() results.Host {
	return results.Host{QEMU: "7.2.11", CPUs: 2, Jobs: 2, Accel: "auto"}
}

// kernel61 lacks passthrough: passthrough-read skips and seq-read has no
// passthrough figures.
func kernel61() results.Kernel {
	return results.Kernel{
		Name:         "debian-6.1",
		Source:       "linux-image-6.1.0-31-cloud-amd64-unsigned 6.1.128-1",
		Release:      "6.1.0-31-cloud-amd64",
		Accel:        "tcg",
		AccelNote:    "kvm: guest stopped with KVM internal error",
		Status:       results.Pass,
		HelloSeconds: 1.52,
		Seconds:      41.234,
		ConsoleLog:   "debian-6.1/console.log",
		AgentVersion: "0.1.0",
		Capabilities: &results.Capabilities{
			FuseMajor: 7, FuseMinor: 37,
			InitFlags:    []string{"ASYNC_READ", "POSIX_LOCKS", "BIG_WRITES", "SPLICE_READ", "MAX_PAGES"},
			Flags:        0x400213,
			MaxReadahead: 131072,
		},
		Results: []results.Result{
			{ID: "fuse-init", Kind: results.Probe, Status: results.Pass, Facts: map[string]string{"protocol": "7.37"}, Seconds: 0.012},
			{ID: "passthrough-read", Kind: results.Scenario, Status: results.Skip, Reason: "kernel does not offer FUSE_PASSTHROUGH", Seconds: 0.001},
			{ID: "seq-read", Kind: results.Benchmark, Status: results.Pass, Seconds: 6.8,
				Metrics: map[string]float64{
					"native_mbps": 612.4, "noop_mbps": 203.7, "classic_mbps": 180.2,
					"noop_ratio": 203.7 / 612.4, "classic_ratio": 180.2 / 612.4,
				},
				Facts: map[string]string{"passthrough_active": "false", "block_size": "1048576", "bytes": "268435456"}},
		},
	}
}

func kernel612() results.Kernel {
	return results.Kernel{
		Name:         "debian-6.12",
		Source:       "linux-image-6.12.12+deb12-cloud-amd64-unsigned 6.12.12-1~deb12u1",
		Release:      "6.12.12+deb12-cloud-amd64",
		Accel:        "tcg",
		Status:       results.Pass,
		HelloSeconds: 2.01,
		Seconds:      44.9,
		ConsoleLog:   "debian-6.12/console.log",
		AgentVersion: "0.1.0",
		Capabilities: &results.Capabilities{
			FuseMajor: 7, FuseMinor: 41, Passthrough: true,
			InitFlags:    []string{"ASYNC_READ", "POSIX_LOCKS", "BIG_WRITES", "SPLICE_READ", "MAX_PAGES", "PASSTHROUGH"},
			Flags:        0x2000400213,
			MaxReadahead: 131072,
		},
		Results: []results.Result{
			{ID: "fuse-init", Kind: results.Probe, Status: results.Pass, Facts: map[string]string{"protocol": "7.41"}, Seconds: 0.009},
			{ID: "passthrough-read", Kind: results.Scenario, Status: results.Pass, Seconds: 0.4},
			{ID: "seq-read", Kind: results.Benchmark, Status: results.Pass, Seconds: 7.1,
				Metrics: map[string]float64{
					"native_mbps": 609.8, "noop_mbps": 198.2, "classic_mbps": 176.9, "passthrough_mbps": 597.6,
					"noop_ratio": 198.2 / 609.8, "classic_ratio": 176.9 / 609.8, "passthrough_ratio": 597.6 / 609.8,
				},
				Facts: map[string]string{"passthrough_active": "true", "block_size": "1048576", "bytes": "268435456"}},
		},
	}
}

func brokenKernel() results.Kernel {
	return results.Kernel{
		Name:       "debian-7.3",
		Source:     "linux-image-7.3.0-1-cloud-amd64 7.3.1-1~bpo13+1",
		Accel:      "tcg",
		Status:     results.Error,
		Error:      "no hello within 60s: guest panicked",
		Seconds:    60.5,
		ConsoleLog: "debian-7.3/console.log",
		ConsoleTail: []string{
			"[    1.902311] Run /init as init process",
			"[    2.118004] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
			"[    2.118610] CPU: 0 PID: 1 Comm: init Not tainted 7.3.0-1-cloud-amd64 #1 Debian 7.3.1-1~bpo13+1",
			"[    2.119954] ---[ end Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100 ]---",
		},
	}
}

// partialKernel booted from the newer layout's linux-binary alone: the
// archive listed neither its linux-modules nor its linux-base.
func partialKernel() results.Kernel {
	k := kernel612()
	k.Name = "debian:7.0/cloud"
	k.Source = "linux-image-7.0.1+deb13-cloud-amd64 7.0.1-1~bpo13+1 (trixie-backports)"
	k.Release = "7.0.1+deb13-cloud-amd64"
	k.Missing = []string{
		"linux-base-7.0.1+deb13-cloud-amd64 (= 7.0.1-1~bpo13+1)",
		"linux-modules-7.0.1+deb13-cloud-amd64 (= 7.0.1-1~bpo13+1)",
	}
	return k
}

// hostileKernel completed, but everything the guest wrote tries to break
// the renderers.
func hostileKernel() results.Kernel {
	long := strings.Repeat("the quick brown fox jumps over the lazy dog ", 30)
	k := kernel612()
	k.Name = "hostile"
	k.Release = "6.12|evil\n<b>bold</b>\t\x1b[2J"
	k.AccelNote = ""
	k.Results = []results.Result{
		{ID: "fuse-init", Kind: results.Probe, Status: results.Pass,
			Facts: map[string]string{"note": "a\x00b\x01c\nnext | <x> & \xff\xfe"}, Seconds: 0.01},
		{ID: "weird-reason", Kind: results.Scenario, Status: results.Fail, Seconds: 0.2,
			Reason: "line one\nline two | pipe <script>alert(1)</script> `code` **bold** \x1b[31mred\x1b[0m \x00nul \x07bell \u202eevil\ufffe\r\n" + long},
		{ID: "setup-broke", Kind: results.Scenario, Status: results.Error, Reason: "mount: exit status 1: ```\n</details> ]]> <![CDATA[", Seconds: 0.3},
		{ID: "seq-read", Kind: results.Benchmark, Status: results.Pass, Seconds: 1,
			Metrics: map[string]float64{"native_mbps": 100, "odd|metric\n": 1.5, "lonely_ratio": 0.5}},
	}
	return k
}

func hostileBroken() results.Kernel {
	k := brokenKernel()
	k.Name = "hostile-boot"
	k.Error = "panic:\n\x1b]0;pwned\x07 | <!-- -->"
	k.ConsoleTail = []string{"```", "</details> <b>x</b> | y", "\x1b[31mred\x1b[0m\x00", ""}
	return k
}

// wideKernels have many result ids, some only on one kernel, as later
// scenario sets will.
func wideKernels() []results.Kernel {
	a, b := kernel61(), kernel612()
	a.AccelNote = ""
	for _, id := range []string{"passthrough-write", "passthrough-mmap", "readdir-plus", "writeback-cache"} {
		a.Results = append(a.Results, results.Result{ID: id, Kind: results.Scenario, Status: results.Skip, Reason: "kernel does not offer FUSE_PASSTHROUGH"})
		b.Results = append(b.Results, results.Result{ID: id, Kind: results.Scenario, Status: results.Pass})
	}
	for _, size := range []string{"4096", "131072"} {
		for _, mode := range []string{"native", "noop", "passthrough"} {
			id := "bench/read/" + mode + "/" + size
			m := map[string]float64{mode + "_mbps": 100}
			if mode != "native" {
				m[mode+"_ratio"] = 0.5
			}
			r := results.Result{ID: id, Kind: results.Benchmark, Status: results.Pass, Metrics: m, Seconds: 2}
			if mode == "passthrough" {
				a.Results = append(a.Results, results.Result{ID: id, Kind: results.Benchmark, Status: results.Skip, Reason: "no passthrough"})
			} else {
				a.Results = append(a.Results, r)
			}
			b.Results = append(b.Results, r)
		}
	}
	b.Results = append(b.Results, results.Result{ID: "splice-read", Kind: results.Scenario, Status: results.Fail, Reason: "short read: 4096 of 8192 bytes"})
	return []results.Kernel{a, b}
}

func run(ks ...results.Kernel) *results.Run {
	return &results.Run{Schema: results.SchemaVersion, Started: started, Finished: started.Add(83*time.Second + 420*time.Millisecond), Host: host(), Kernels: ks}
}

var cases = []struct {
	name string
	run  *results.Run
}{
	{"healthy", run(kernel61(), kernel612())},
	{"boot-failure", run(kernel61(), brokenKernel(), kernel612())},
	{"hostile", run(hostileKernel(), hostileBroken())},
	{"wide", run(wideKernels()...)},
	{"all-failed", run(brokenKernel())},
	{"missing-parts", run(kernel61(), partialKernel())},
	{"empty", &results.Run{Schema: results.SchemaVersion}},
}

func caseRun(name string) *results.Run {
	for _, tc := range cases {
		if tc.name == name {
			return tc.run
		}
	}
	panic("no test case " + name)
}

func render(t *testing.T, f func(io.Writer, *results.Run) error, r *results.Run) string {
	t.Helper()
	var b bytes.Buffer
	assert.NilError(t, f(&b, r))
	return b.String()
}

func TestGolden(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			golden.Assert(t, render(t, Table, tc.run), tc.name+".table.golden")
			// JUnit has no notes, so it does not show the packages a
			// kernel booted without: that case would pin nothing.
			if tc.name != "missing-parts" {
				golden.Assert(t, render(t, JUnit, tc.run), tc.name+".junit.xml.golden")
			}
			golden.Assert(t, render(t, Markdown, tc.run), tc.name+".md.golden")
		})
	}
	t.Run("wide-80", func(t *testing.T) {
		var b bytes.Buffer
		assert.NilError(t, TableWith(&b, caseRun("wide"), Options{Width: 80}))
		golden.Assert(t, b.String(), "wide-80.table.golden")
	})
	t.Run("json", func(t *testing.T) {
		golden.Assert(t, render(t, results.WriteJSON, caseRun("healthy")), "healthy.json.golden")
	})
}

// Parsed independently of the renderer's own types, so that a wrong tag
// there shows up here.
type parsedSuites struct {
	XMLName  xml.Name      `xml:"testsuites"`
	Tests    int           `xml:"tests,attr"`
	Failures int           `xml:"failures,attr"`
	Errors   int           `xml:"errors,attr"`
	Skipped  int           `xml:"skipped,attr"`
	Suites   []parsedSuite `xml:"testsuite"`
}

type parsedSuite struct {
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Cases    []parsedCase `xml:"testcase"`
}

type parsedCase struct {
	Name      string  `xml:"name,attr"`
	Classname string  `xml:"classname,attr"`
	Failure   *string `xml:"failure"`
	Error     *string `xml:"error"`
	Skipped   *string `xml:"skipped"`
	SystemOut string  `xml:"system-out"`
}

func TestJUnitCounts(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var doc parsedSuites
			dec := xml.NewDecoder(strings.NewReader(render(t, JUnit, tc.run)))
			dec.Strict = true
			assert.NilError(t, dec.Decode(&doc))
			assert.Equal(t, len(doc.Suites), len(tc.run.Kernels))

			var total results.Counts
			for i, k := range tc.run.Kernels {
				want := results.Count(k.Results)
				if k.Status != results.Pass {
					want.Add(results.Error) // the boot case
				}
				s := doc.Suites[i]
				assert.Equal(t, s.Name, k.Name)
				got := results.Counts{Results: s.Tests, Fail: s.Failures, Error: s.Errors, Skip: s.Skipped}
				got.Pass = got.Results - got.Fail - got.Error - got.Skip
				assert.DeepEqual(t, got, want)

				// The attributes must match the elements too.
				var elems results.Counts
				for _, c := range s.Cases {
					assert.Equal(t, c.Classname, k.Name)
					switch {
					case c.Failure != nil:
						elems.Add(results.Fail)
					case c.Error != nil:
						elems.Add(results.Error)
					case c.Skipped != nil:
						elems.Add(results.Skip)
					default:
						elems.Add(results.Pass)
					}
				}
				assert.DeepEqual(t, elems, want)
				if k.Status != results.Pass {
					assert.Equal(t, s.Cases[0].Name, "boot")
					assert.Assert(t, s.Cases[0].Error != nil)
					for _, line := range k.ConsoleTail {
						assert.Assert(t, strings.Contains(*s.Cases[0].Error, xmlText(line)), "console line %q missing", line)
					}
				}
				total.Results += want.Results
				total.Fail += want.Fail
				total.Error += want.Error
				total.Skip += want.Skip
			}
			assert.DeepEqual(t, [4]int{doc.Tests, doc.Failures, doc.Errors, doc.Skipped},
				[4]int{total.Results, total.Fail, total.Error, total.Skip})
		})
	}
}

func TestJUnitBenchmarkOutput(t *testing.T) {
	var doc parsedSuites
	assert.NilError(t, xml.Unmarshal([]byte(render(t, JUnit, caseRun("healthy"))), &doc))
	got := doc.Suites[1].Cases[2]
	assert.Equal(t, got.Name, "seq-read")
	lines := strings.Split(strings.TrimSuffix(got.SystemOut, "\n"), "\n")
	assert.Assert(t, len(lines) == 10, "%q", lines)
	assert.Assert(t, strings.Contains(got.SystemOut, "passthrough_mbps=598\npassthrough_ratio=0.98\n"), got.SystemOut)
	assert.Assert(t, strings.Contains(got.SystemOut, "passthrough_active=true\n"), got.SystemOut)
	for i := 1; i < len(lines); i++ {
		assert.Assert(t, lines[i-1] < lines[i], "not sorted: %q", lines)
	}
}

// TestJUnitKeepsReasons checks that a hostile reason survives the trip
// through XML whole (CDATA ends inside it, newlines, escapes) apart from
// the characters made visible on purpose.
func TestJUnitKeepsReasons(t *testing.T) {
	type outcome struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
	var doc struct {
		Suites []struct {
			Cases []struct {
				Name    string   `xml:"name,attr"`
				Failure *outcome `xml:"failure"`
				Error   *outcome `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	r := caseRun("hostile")
	assert.NilError(t, xml.Unmarshal([]byte(render(t, JUnit, r)), &doc))
	for _, c := range doc.Suites[0].Cases {
		res := r.Kernels[0].Result(c.Name)
		o := c.Failure
		if o == nil {
			o = c.Error
		}
		if o == nil {
			continue
		}
		// XML parsers turn \r\n into \n.
		assert.Equal(t, o.Text, strings.ReplaceAll(xmlText(res.Reason), "\r\n", "\n"), c.Name)
		assert.Equal(t, o.Message, inert.Truncate(inert.OneLine(res.Reason), junitMessage), c.Name)
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func TestColor(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			assert.NilError(t, TableWith(&b, tc.run, Options{Color: true}))
			coloured := b.String()
			if len(tc.run.Kernels) > 0 {
				assert.Assert(t, ansi.MatchString(coloured))
			}
			// Escapes must not shift the columns: without them, the
			// coloured table is the plain one.
			assert.Equal(t, ansi.ReplaceAllString(coloured, ""), render(t, Table, tc.run))
		})
	}
}

func TestTableWidth(t *testing.T) {
	for _, tc := range cases {
		for _, width := range []int{DefaultWidth, 80} {
			var b bytes.Buffer
			assert.NilError(t, TableWith(&b, tc.run, Options{Width: width}))
			for line := range strings.Lines(b.String()) {
				n := utf8.RuneCountInString(strings.TrimSuffix(line, "\n"))
				assert.Assert(t, n <= width, "%s at %d: line of %d runes: %q", tc.name, width, n, line)
			}
		}
	}
}

// TestInert checks that guest text cannot act: no control character other
// than newline reaches the terminal or the Markdown, and every Markdown
// table row keeps its cell count.
func TestInert(t *testing.T) {
	r := caseRun("hostile")
	for name, f := range map[string]func(io.Writer, *results.Run) error{"table": Table, "markdown": Markdown} {
		out := render(t, f, r)
		for i, c := range []byte(out) {
			assert.Assert(t, c >= 0x20 && c != 0x7f || c == '\n', "%s: byte %#x at %d", name, c, i)
		}
		assert.Assert(t, utf8.ValidString(out), name)
		assert.Assert(t, !strings.Contains(out, "\u202e"), name)
	}
	unescapedPipe := regexp.MustCompile(`(^|[^\\])\|`)
	cells := -1
	for line := range strings.Lines(render(t, Markdown, r)) {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		n := len(unescapedPipe.FindAllString(line, -1))
		if cells < 0 {
			cells = n
		}
		assert.Equal(t, n, cells, "row %q", line)
	}
	assert.Equal(t, cells, 4+1+5+1, "kernel columns, ids and notes") // 10 cells need 11 pipes
}

func TestWriteJSONRoundTrip(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got results.Run
			assert.NilError(t, json.Unmarshal([]byte(render(t, results.WriteJSON, tc.run)), &got))
			if tc.name == "hostile" {
				// JSON carries only UTF-8: the invalid bytes of the hostile
				// fact come back as replacement characters.
				facts := got.Kernels[0].Results[0].Facts
				assert.Equal(t, facts["note"], "a\x00b\x01c\nnext | <x> & \ufffd\ufffd")
				facts["note"] = tc.run.Kernels[0].Results[0].Facts["note"]
			}
			assert.DeepEqual(t, &got, tc.run)
		})
	}
}

func TestNilRun(t *testing.T) {
	for name, f := range map[string]func(io.Writer, *results.Run) error{
		"table": Table, "junit": JUnit, "markdown": Markdown, "json": results.WriteJSON,
	} {
		assert.Assert(t, f(io.Discard, nil) != nil, name)
	}
}

type brokenWriter struct{}

var errBroken = errors.New("disk full")

func (brokenWriter) Write([]byte) (int, error) { return 0, errBroken }

func TestWriteErrors(t *testing.T) {
	for name, f := range map[string]func(io.Writer, *results.Run) error{
		"table": Table, "junit": JUnit, "markdown": Markdown, "json": results.WriteJSON,
	} {
		assert.ErrorIs(t, f(brokenWriter{}, caseRun("healthy")), errBroken, name)
	}
}

func TestMetricParts(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   map[string]float64
		want []string
	}{
		{"baseline first, then ratios by name",
			map[string]float64{"passthrough_mbps": 598.4, "passthrough_ratio": 0.977, "native_mbps": 612.6, "noop_mbps": 203, "noop_ratio": 0.3314},
			[]string{"native 613 MB/s", "noop 203 MB/s (0.33×)", "passthrough 598 MB/s (0.98×)"}},
		{"other metrics follow",
			map[string]float64{"native_mbps": 10, "latency_us": 12.345, "orphan_ratio": 2},
			[]string{"native 10 MB/s", "latency_us 12.35", "orphan 2.00×"}},
		{"not a number", map[string]float64{"x_mbps": nan()}, []string{"x NaN MB/s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, metricParts(tc.in), tc.want)
		})
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

func TestText(t *testing.T) {
	for _, tc := range []struct {
		name, in               string
		oneLine, xml, markdown string
	}{
		{"plain", "pass", "pass", "pass", "pass"},
		{"whitespace folds", " a\n\tb\r\n c ", "a b c", " a\n\tb\r\n c ", "a b c"},
		{"controls escape", "a\x1b[31mb\x00", `a\x1b[31mb\x00`, `a\x1b[31mb\x00`, `a\\x1b\[31mb\\x00`},
		{"invalid utf-8", "a\xffb", `a\xffb`, `a\xffb`, `a\\xffb`},
		{"bidi override", "a\u202eb", `a\u202eb`, `a\u202eb`, `a\\u202eb`},
		{"xml non-characters", "\ufffe", `\ufffe`, `\ufffe`, `\\ufffe`},
		{"markdown syntax", "a|b <i>*_`[x]~&", "a|b <i>*_`[x]~&", "a|b <i>*_`[x]~&", "a\\|b \\<i\\>\\*\\_\\`\\[x\\]\\~\\&"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, inert.OneLine(tc.in), tc.oneLine)
			assert.Equal(t, xmlText(tc.in), tc.xml)
			assert.Equal(t, markdownText(tc.in), tc.markdown)
		})
	}
}

func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       string
		width, n int
		want     []string
	}{
		{"fits", "a b c", 10, 2, []string{"a b c"}},
		{"breaks at spaces", "aaaa bbbb cccc", 9, 3, []string{"aaaa bbbb", "cccc"}},
		{"splits long words", "abcdefghijkl", 8, 3, []string{"abcdefgh", "ijkl"}},
		{"marks dropped lines", "aaaa bbbb cccc dddd", 9, 1, []string{"aaaa bbb…"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, wrap(tc.in, tc.width, tc.n), tc.want)
		})
	}
}

func TestWantColor(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm")
	f, err := os.CreateTemp(t.TempDir(), "out")
	assert.NilError(t, err)
	defer f.Close()
	assert.Assert(t, !WantColor(f), "a regular file is not a terminal")
	assert.Assert(t, !WantColor(nil))

	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to test the positive case: %v", err)
	}
	defer pty.Close()
	assert.Assert(t, WantColor(pty), "a pseudo-terminal is a terminal")
	t.Setenv("TERM", "dumb")
	assert.Assert(t, !WantColor(pty), "TERM=dumb")
	t.Setenv("TERM", "xterm")
	t.Setenv("NO_COLOR", "1")
	assert.Assert(t, !WantColor(pty), "NO_COLOR")
}

// A kernel booted without packages the archive lacks says so in the
// notes, naming them.
func TestTableMissingPackages(t *testing.T) {
	k := kernel61()
	k.Missing = []string{"linux-modules-7.1.13+deb13-cloud-amd64 (= 7.1.13-1)", "linux-base-7.1.13+deb13-cloud-amd64 (= 7.1.13-1)"}
	var b bytes.Buffer
	assert.NilError(t, Table(&b, &results.Run{Schema: results.SchemaVersion, Started: started, Host: host(), Kernels: []results.Kernel{k}}))
	assert.Check(t, strings.Contains(b.String(), "packages: missing: not in the archive, booted without: linux-modules-7.1.13+deb13-cloud-amd64"), b.String())
}
