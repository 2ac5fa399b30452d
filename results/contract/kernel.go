package contract

import "strings"

// kernelReports are the starts of the kernel log lines that report a
// kernel bug, whatever a check concluded: BUG (KASAN, KFENCE and the
// sleeping-in-atomic checks say "BUG:" too), an Oops, a WARNING (lockdep
// says "WARNING: possible circular locking dependency"), UBSAN, a general
// protection fault, and a task hung past the hung-task timeout.
var kernelReports = []string{
	"BUG:", "kernel BUG at", "Oops", "WARNING:", "UBSAN:",
	"general protection fault", "INFO: task ", "Kernel panic",
}

// KernelReport says whether a kernel log line, without its level and
// timestamp, reports a kernel bug. A check during which the kernel logged
// one fails, with the line as its reason, however it ended itself.
func KernelReport(text string) bool {
	text = strings.TrimSpace(text)
	for _, p := range kernelReports {
		if strings.HasPrefix(text, p) {
			return p != "INFO: task " || strings.Contains(text, "blocked for more than")
		}
	}
	return false
}
