package agent

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results/contract"
)

// Bounds on the kernel log a result carries.
const (
	kmsgLines     = 100
	kmsgLineBytes = 512
)

// kmsg reads the kernel log records written after it was opened, from
// /dev/kmsg: each read(2) returns one record, "prio,seq,usec,flags;text\n"
// followed by continuation lines that start with a space.
type kmsg struct{ fd int }

// openKmsg opens path and moves to its end, so that lines returns only
// what the kernel logs from now on.
func openKmsg(path string) (kernelLog, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("kernel log: %w", err)
	}
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("kernel log: seek: %w", err)
	}
	return &kmsg{fd: fd}, nil
}

// kernelLog is what a scenario's run reads of the kernel log; tests give
// the agent one of their own.
type kernelLog interface {
	// read returns the records logged since open (or the previous call),
	// as "kmsg: [seconds] text", at most kmsgLines of them, each
	// clipped; and, apart, every one of them that reports a kernel bug
	// (contract.KernelReport), up to kmsgReports.
	read() (lines, reports []string)
	close()
}

// kmsgReports bounds the kernel bug reports a result carries: the first
// few say what happened, the rest repeat it.
const kmsgReports = 10

func (k *kmsg) read() (out, reports []string) {
	dropped := 0
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(k.fd, buf)
		if errors.Is(err, unix.EPIPE) {
			// Records were overwritten before we read them; the next
			// read continues with the oldest one left.
			out = append(out, "kmsg: [records lost: the kernel log buffer wrapped]")
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		line, report, ok := kmsgRecord(string(buf[:n]))
		if !ok {
			continue
		}
		if report && len(reports) < kmsgReports {
			reports = append(reports, line)
		}
		if len(out) >= kmsgLines-1 {
			dropped++
			continue
		}
		out = append(out, line)
	}
	if dropped > 0 {
		out = append(out, fmt.Sprintf("kmsg: [%d more lines not kept]", dropped))
	}
	return out, reports
}

// kmsgRecord renders one /dev/kmsg record, and says whether it is the
// kernel's own (facility 0: what user space writes to /dev/kmsg is
// LOG_USER or above, so no program can fake one) report of a kernel bug.
func kmsgRecord(rec string) (line string, report, ok bool) {
	head, text, ok := strings.Cut(rec, ";")
	if !ok {
		return "", false, false
	}
	text, _, _ = strings.Cut(text, "\n")
	f := strings.Split(head, ",")
	if prio, err := strconv.Atoi(f[0]); err == nil && prio>>3 == 0 {
		report = contract.KernelReport(text)
	}
	stamp := ""
	if len(f) >= 3 {
		if us, err := strconv.ParseUint(f[2], 10, 64); err == nil {
			stamp = fmt.Sprintf("[%d.%06d] ", us/1e6, us%1e6)
		}
	}
	line = "kmsg: " + stamp + text
	if len(line) > kmsgLineBytes {
		line = line[:kmsgLineBytes]
	}
	return line, report, true
}

func (k *kmsg) close() { unix.Close(k.fd) }
