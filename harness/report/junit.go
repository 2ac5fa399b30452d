package report

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/results"
)

// junitMessage bounds the message attribute, which CI views show in one
// line; the element text carries the whole reason.
const junitMessage = 500

type junitSuites struct {
	XMLName   xml.Name     `xml:"testsuites"`
	Name      string       `xml:"name,attr"`
	Tests     int          `xml:"tests,attr"`
	Failures  int          `xml:"failures,attr"`
	Errors    int          `xml:"errors,attr"`
	Skipped   int          `xml:"skipped,attr"`
	Time      string       `xml:"time,attr"`
	Timestamp string       `xml:"timestamp,attr,omitempty"`
	Suites    []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitOutcome `xml:"failure,omitempty"`
	Error     *junitOutcome `xml:"error,omitempty"`
	Skipped   *junitOutcome `xml:"skipped,omitempty"`
	SystemOut *junitText    `xml:"system-out,omitempty"`
}

// junitText is multi-line text kept readable as CDATA (encoding/xml
// splits any "]]>" inside); xmlText has already removed what XML forbids.
type junitText struct {
	Text string `xml:",cdata"`
}

type junitOutcome struct {
	Message string `xml:"message,attr,omitempty"`
	Text    string `xml:",cdata"`
}

// JUnit writes the run as JUnit XML: a test suite per kernel and a test
// case per result. A kernel that did not run to completion gets an extra
// "boot" case in error, carrying its error and console tail, so that CI
// shows it red even when it produced no results.
func JUnit(w io.Writer, run *results.Run) error {
	if run == nil {
		return errors.New("render junit: no run")
	}
	doc := junitSuites{Name: "fusematrix", Timestamp: junitTimestamp(run.Started)}
	var total float64
	for _, k := range run.Kernels {
		s := junitKernel(&k, doc.Timestamp)
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
		doc.Skipped += s.Skipped
		total += k.Seconds
		doc.Suites = append(doc.Suites, s)
	}
	// Kernels run in parallel: the wall time of the run, when known, is
	// what a reader expects, not the sum.
	if d := run.Finished.Sub(run.Started); !run.Started.IsZero() && !run.Finished.IsZero() && d >= 0 {
		total = d.Seconds()
	}
	doc.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	return nil
}

func junitKernel(k *results.Kernel, timestamp string) junitSuite {
	name := xmlText(inert.OneLine(k.Name))
	s := junitSuite{Name: name, Time: seconds(k.Seconds), Timestamp: timestamp}
	prop := func(n, v string) {
		if v != "" {
			s.Properties = append(s.Properties, junitProperty{n, xmlText(inert.OneLine(v))})
		}
	}
	prop("source", k.Source)
	prop("release", k.Release)
	prop("accel", k.Accel)
	prop("accel_note", k.AccelNote)
	prop("retried", k.Retried)
	prop("agent_version", k.AgentVersion)
	prop("console_log", k.ConsoleLog)
	if c := k.Capabilities; c != nil {
		proto, pt := fuseCells(k)
		prop("fuse_protocol", proto)
		prop("passthrough_offered", pt)
		prop("init_flags", strings.Join(c.InitFlags, " "))
	}

	if !completed(k) {
		text := bootError(k)
		if len(k.ConsoleTail) > 0 {
			text += "\n\nconsole tail:\n" + strings.Join(k.ConsoleTail, "\n")
		}
		s.Cases = append(s.Cases, junitCase{
			Name: "boot", Classname: name, Time: seconds(bootSeconds(k)),
			Error: &junitOutcome{Message: xmlText(inert.Truncate(inert.OneLine(bootError(k)), junitMessage)), Text: xmlText(text)},
		})
		s.Errors++
	}
	for _, r := range k.Results {
		c := junitCase{Name: xmlText(inert.OneLine(r.ID)), Classname: name, Time: seconds(r.Seconds), SystemOut: systemOut(&r)}
		out := &junitOutcome{Message: xmlText(inert.Truncate(inert.OneLine(r.Reason), junitMessage))}
		// The text repeats the reason only when the message lost
		// something to folding or truncation.
		if out.Message != r.Reason {
			out.Text = xmlText(r.Reason)
		}
		switch r.Status {
		case results.Pass:
		case results.Fail:
			c.Failure = out
			s.Failures++
		case results.Skip:
			c.Skipped = out
			s.Skipped++
		default:
			// Error, and any status this renderer does not know, which
			// must not pass silently.
			if r.Status != results.Error {
				out.Message = xmlText(inert.Truncate(inert.OneLine("unknown status "+string(r.Status)+": "+r.Reason), junitMessage))
			}
			c.Error = out
			s.Errors++
		}
		s.Cases = append(s.Cases, c)
	}
	s.Tests = len(s.Cases)
	return s
}

// systemOut lists metrics and facts as sorted key=value lines, with the
// reason of a pass that has one (failures carry theirs in the outcome).
// Metrics are rounded as in the table; results.json keeps them exact.
func systemOut(r *results.Result) *junitText {
	var lines []string
	for k, v := range r.Metrics {
		lines = append(lines, inert.OneLine(k)+"="+metricValue(k, v))
	}
	if r.Status == results.Pass && r.Reason != "" {
		lines = append(lines, "reason="+inert.OneLine(r.Reason))
	}
	for k, v := range r.Facts {
		lines = append(lines, inert.OneLine(k)+"="+inert.OneLine(v))
	}
	if len(lines) == 0 {
		return nil
	}
	sort.Strings(lines)
	return &junitText{xmlText(strings.Join(lines, "\n") + "\n")}
}

func seconds(s float64) string {
	return strconv.FormatFloat(s, 'f', 3, 64)
}

func junitTimestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05")
}

// bootSeconds is how long booting took, or until it was given up.
func bootSeconds(k *results.Kernel) float64 {
	if k.HelloSeconds > 0 {
		return k.HelloSeconds
	}
	return k.Seconds
}

func metricValue(name string, v float64) string {
	switch {
	case strings.HasSuffix(name, "_mbps"):
		return number(v, 0)
	case strings.HasSuffix(name, "_ratio"):
		return number(v, 2)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
