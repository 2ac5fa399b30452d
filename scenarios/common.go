package scenarios

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// ErrorResult is a result with status Error and the formatted reason.
func ErrorResult(format string, args ...any) results.Result {
	return results.Result{Status: results.Error, Reason: fmt.Sprintf(format, args...)}
}

// ErrnoText names an errno the way kernel sources do, with its message;
// "ok" for none.
func ErrnoText(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	if name := unix.ErrnoName(e); name != "" {
		return fmt.Sprintf("%s (%v)", name, e)
	}
	return fmt.Sprintf("errno %d (%v)", int(e), e)
}

// OpenProblems says what is wrong with the OPEN replies of a file that
// should all have asked for passthrough.
func OpenProblems(opens []wire.OpenReply, regs []wire.Registration) []string {
	if len(opens) == 0 {
		return []string{"no OPEN reached the daemon"}
	}
	var problems []string
	for i, o := range opens {
		label := "open reply"
		if len(opens) > 1 {
			label = fmt.Sprintf("open reply %d of %d", i+1, len(opens))
		}
		switch {
		case !o.Status.Ok():
			problems = append(problems, fmt.Sprintf("%s: %v", label, o.Status))
		case o.Passthrough():
		case o.OpenFlags&fuseabi.FOpenPassthrough != 0:
			problems = append(problems, label+" with FOPEN_PASSTHROUGH but backing id 0")
		default:
			problems = append(problems, label+" without FOPEN_PASSTHROUGH: "+registrationCause(regs))
		}
	}
	return problems
}

// registrationCause explains a reply without passthrough from the
// backing-file registrations the server attempted.
func registrationCause(regs []wire.Registration) string {
	if len(regs) == 0 {
		return "the server registered no backing file"
	}
	last := regs[len(regs)-1]
	if last.Errno != 0 {
		return "BACKING_OPEN failed: " + ErrnoText(last.Errno)
	}
	return fmt.Sprintf("BACKING_OPEN succeeded (id %d) but the reply did not use it", last.ID)
}

// LargestFile is the largest regular file at the top of dir.
func LargestFile(dir string) (string, int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", 0, err
	}
	var path string
	var size int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Size() <= size {
			continue
		}
		path, size = filepath.Join(dir, e.Name()), info.Size()
	}
	if path == "" {
		return "", 0, fmt.Errorf("%d entries, no regular file", len(entries))
	}
	return path, size, nil
}
