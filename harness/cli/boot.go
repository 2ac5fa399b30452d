package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/harness/report"
	"github.com/fusematrix/fusematrix/results"
)

// Reports are written next to results.json, and with it, by every
// command that boots (harness.Options.Reports).
var Reports = map[string]func(io.Writer, *results.Run) error{"junit.xml": report.JUnit}

// ListChecks prints the checks o selects (-list), one per line: id, kind
// and the time the guest gives it.
func ListChecks(w io.Writer, o harness.Options) error {
	checks, err := o.Checks()
	if err != nil {
		return Usagef("%v", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.ID, c.Kind, c.Timeout)
	}
	return tw.Flush()
}

// Boot runs the kernels o names for a command (matrix, bench, caps),
// shows the run with show, and says where the results are on info. The
// error is a Status when the run ended but a kernel failed (1) or it was
// interrupted (130).
func Boot(o harness.Options, quiet bool, show func(*results.Run) error, info io.Writer) error {
	// A selection that cannot work is a usage error, found before any
	// kernel is fetched or booted.
	if _, err := o.Checks(); err != nil {
		return Usagef("%v", err)
	}
	if err := o.Params.Check(); err != nil {
		return Usagef("%v", err)
	}
	if err := o.DefaultSource(); err != nil {
		return err
	}
	o.Reports = Reports
	o.Logf = Progress(quiet)
	start := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run, err := harness.Run(ctx, o)
	if run != nil {
		if serr := show(run); serr != nil {
			err = errors.Join(err, serr)
		}
		fmt.Fprintf(info, "\nresults: %s  (%.1fs)\n", filepath.Join(o.OutDir, "results.json"), time.Since(start).Seconds())
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return Failf(130, "interrupted; partial results written")
	}
	for _, k := range run.Kernels {
		if !k.OK() {
			return Status(1)
		}
	}
	return nil
}

// WriteBenchReports writes the chart as SVG and PNG and the HTML report
// into dir, and says where on info.
func WriteBenchReports(dir string, run *results.Run, info io.Writer) error {
	var paths []string
	for _, format := range report.ChartFormats {
		p := filepath.Join(dir, "bench."+format)
		if err := harness.WriteFile(p, func(w io.Writer) error { return report.Chart(w, run, format) }); err != nil {
			return err
		}
		paths = append(paths, p)
	}
	fmt.Fprintf(info, "\nchart: %s\n", strings.Join(paths, "  "))
	return WriteHTMLReport(dir, run, info)
}

// WriteHTMLReport writes report.html into dir and says where on info.
func WriteHTMLReport(dir string, run *results.Run, info io.Writer) error {
	p := filepath.Join(dir, "report.html")
	if err := harness.WriteFile(p, func(w io.Writer) error { return report.HTML(w, run) }); err != nil {
		return err
	}
	fmt.Fprintf(info, "report: %s\n", p)
	return nil
}
