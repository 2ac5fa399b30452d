package harness

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// consoleReadLimit bounds how much of a guest's console the host reads
// for kernel reports: the console is the guest's to fill.
const consoleReadLimit = 16 << 20

var (
	// stamp is the printk time prefix of a kernel console line.
	stamp = regexp.MustCompile(`^\[\s*[0-9]+\.[0-9]+\]\s?`)
	// resultLine is the agent's echo of a result on the console
	// (agent.human): "fusematrix: <kind> <id>: <status> (…)".
	resultLine = regexp.MustCompile(`^fusematrix: [a-z]+ ([a-z0-9][a-z0-9._/-]*): [a-z]+ \(`)
)

// consoleReports reads the kernel's bug reports (contract.KernelReport)
// from a guest's console and attributes each to the check that was
// running: the one whose result line the agent printed next. Reports
// before the agent's hello belong to the boot, not to a check, and are
// left out; so are those after the last result line.
func consoleReports(path string) map[string][]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(&limitedReader{f, consoleReadLimit})
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	out := map[string][]string{}
	var pending []string
	hello := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "fusematrix: hello:"):
			hello, pending = true, nil
		case !hello:
		case resultLine.MatchString(line):
			id := resultLine.FindStringSubmatch(line)[1]
			if len(pending) > 0 && len(out[id]) == 0 {
				out[id] = pending
			}
			pending = nil
		default:
			if text := stamp.ReplaceAllString(line, ""); text != line && contract.KernelReport(text) && len(pending) < 10 {
				pending = append(pending, inert.Truncate(inert.OneLine(line), 512))
			}
		}
	}
	return out
}

// failReported fails every result of k during which the console shows a
// kernel bug report the guest itself did not act on (an agent whose
// kernel log reader failed, or a report only the console got).
func failReported(k *results.Kernel, reports map[string][]string) {
	for i := range k.Results {
		r := &k.Results[i]
		lines := reports[r.ID]
		if len(lines) == 0 || contract.FactKernelReport.Of(r) != "" {
			continue
		}
		was := string(r.Status)
		if r.Reason != "" {
			was += ": " + r.Reason
		}
		r.Status = results.Fail
		r.Reason = fmt.Sprintf("the kernel reported %q while it ran (on the console; the check itself: %s)",
			stamp.ReplaceAllString(lines[0], ""), was)
		if r.Facts == nil {
			r.Facts = map[string]string{}
		}
		r.Facts[string(contract.FactKernelReport)] = lines[0]
		log := make([]string, 0, len(lines)+len(r.Log))
		for _, l := range lines {
			log = append(log, "console: "+l)
		}
		r.Log = slices.Concat(log, r.Log)
	}
}

type limitedReader struct {
	f *os.File
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("console: more than %d bytes read", consoleReadLimit)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}
