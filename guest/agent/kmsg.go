package agent

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
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
func openKmsg(path string) (*kmsg, error) {
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

// lines returns the records logged since open (or the previous call), as
// "kmsg: [seconds] text", at most kmsgLines of them, each clipped.
func (k *kmsg) lines() []string {
	var out []string
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
		line, ok := kmsgRecord(string(buf[:n]))
		if !ok {
			continue
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
	return out
}

// kmsgRecord renders one /dev/kmsg record.
func kmsgRecord(rec string) (string, bool) {
	head, text, ok := strings.Cut(rec, ";")
	if !ok {
		return "", false
	}
	text, _, _ = strings.Cut(text, "\n")
	f := strings.Split(head, ",")
	stamp := ""
	if len(f) >= 3 {
		if us, err := strconv.ParseUint(f[2], 10, 64); err == nil {
			stamp = fmt.Sprintf("[%d.%06d] ", us/1e6, us%1e6)
		}
	}
	line := "kmsg: " + stamp + text
	if len(line) > kmsgLineBytes {
		line = line[:kmsgLineBytes]
	}
	return line, true
}

func (k *kmsg) close() { unix.Close(k.fd) }
