package scenarios

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
	"github.com/fusematrix/fusematrix/scenarios/server"
	"golang.org/x/sys/unix"
)

var passthroughRead = Scenario{
	ID:          "passthrough-read",
	Kind:        results.Scenario,
	Description: "reads a file through a passthrough loopback and proves the kernel served it from the backing file",
	Timeout:     60 * time.Second,
	Run: func(ctx context.Context, env *Env) results.Result {
		return passthroughReadWith(ctx, env, func(ctx context.Context, mnt, backing string) (*server.Mount, error) {
			return server.Loopback(ctx, mnt, backing, server.Options{Passthrough: true, Logf: env.logf})
		})
	},
}

// passthroughFileSize is a few MiB: more than one readahead window and
// more than one FUSE request, small enough for a TCG guest.
const passthroughFileSize = 4<<20 + 4097

// mountFunc mounts a file system at mnt that shows the files of backing.
type mountFunc func(ctx context.Context, mnt, backing string) (*server.Mount, error)

// passthroughReadWith runs passthrough-read against the servers mount
// makes, so that tests can show it failing against broken ones.
func passthroughReadWith(ctx context.Context, env *Env, mount mountFunc) results.Result {
	if why := passthroughMissing(env.Capabilities); why != "" {
		return results.Result{Status: results.Skip, Reason: why}
	}
	backing, mnt := filepath.Join(env.Dir, "backing"), filepath.Join(env.Dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return errorResult("scratch directory: %v", err)
		}
	}
	want := make([]byte, passthroughFileSize)
	_, _ = rand.NewChaCha8([32]byte{'f', 'm'}).Read(want)
	if err := os.WriteFile(filepath.Join(backing, "file"), want, 0o644); err != nil {
		return errorResult("backing file: %v", err)
	}
	m, err := mount(ctx, mnt, backing)
	if err != nil {
		return errorResult("%v", err)
	}
	// The observer is read after ReadFile has closed the file; Unmount
	// then waits for the RELEASE before taking the server down.
	got, readErr := os.ReadFile(filepath.Join(mnt, "file"))
	opens, regs := m.Observer.Opens(), m.Observer.Registrations()
	reads, readBytes := m.Observer.Reads()
	unmountErr := m.Unmount()

	r := results.Result{Status: results.Pass, Facts: map[string]string{
		"opens":         fmt.Sprint(len(opens)),
		"read_requests": fmt.Sprint(reads),
	}}
	if len(opens) > 0 {
		r.Facts["open_flags"] = fmt.Sprintf("%#x", opens[0].OpenFlags)
		r.Facts["backing_id"] = fmt.Sprint(opens[0].BackingID)
	}
	if len(regs) > 0 {
		r.Facts["backing_open"] = errnoText(regs[len(regs)-1].Errno)
	}
	var problems []string
	if readErr != nil {
		problems = append(problems, fmt.Sprintf("read through the mount: %v", readErr))
	}
	problems = append(problems, openProblems(opens, regs)...)
	if reads > 0 {
		problems = append(problems, fmt.Sprintf("%d READ requests (%d bytes) reached the daemon", reads, readBytes))
	}
	if readErr == nil {
		if p := compareBytes(got, want); p != "" {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		r.Status = results.Fail
		r.Reason = strings.Join(problems, "; ")
	}
	if unmountErr != nil && r.Status == results.Pass {
		r.Reason = unmountErr.Error()
	}
	return r
}

// passthroughMissing says why passthrough cannot be expected, or "".
func passthroughMissing(c *results.Capabilities) string {
	if c == nil {
		return "fuse-init did not report what the kernel offers"
	}
	if !c.Passthrough {
		return fmt.Sprintf("kernel does not offer FUSE_PASSTHROUGH (INIT flags2 bit 5); protocol %s", protocol(c))
	}
	return ""
}

// openProblems says what is wrong with the OPEN replies of a file that
// should all have asked for passthrough.
func openProblems(opens []server.OpenReply, regs []server.Registration) []string {
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
func registrationCause(regs []server.Registration) string {
	if len(regs) == 0 {
		return "the server registered no backing file"
	}
	last := regs[len(regs)-1]
	if last.Errno != 0 {
		return "BACKING_OPEN failed: " + errnoText(last.Errno)
	}
	return fmt.Sprintf("BACKING_OPEN succeeded (id %d) but the reply did not use it", last.ID)
}

// compareBytes describes the first difference between got and want.
func compareBytes(got, want []byte) string {
	n := min(len(got), len(want))
	for i := 0; i < n; i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("bytes differ at offset %d", i)
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("read %d bytes, the backing file has %d", len(got), len(want))
	}
	return ""
}

// errnoText names an errno the way kernel sources do, with its message.
func errnoText(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	if name := unix.ErrnoName(e); name != "" {
		return fmt.Sprintf("%s (%v)", name, e)
	}
	return fmt.Sprintf("errno %d (%v)", int(e), e)
}

func errorResult(format string, args ...any) results.Result {
	return results.Result{Status: results.Error, Reason: fmt.Sprintf(format, args...)}
}
