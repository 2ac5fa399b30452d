package scenarios

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
	"golang.org/x/sys/unix"
)

var passthroughRead = Scenario{
	ID:          "passthrough-read",
	Kind:        results.Scenario,
	Description: "reads a file through a passthrough loopback and proves the kernel served it from the backing file",
	Timeout:     60 * time.Second,
	Run: func(ctx context.Context, env *Env) results.Result {
		return passthroughReadWith(ctx, env, launched(env, loopback.KindLoopback))
	},
}

// passthroughFileSize is a few MiB: more than one readahead window and
// more than one FUSE request, small enough for a TCG guest.
const passthroughFileSize = 4<<20 + 4097

// passthroughReadWith runs passthrough-read against the servers mount
// starts, so that tests can show it failing against broken ones.
func passthroughReadWith(ctx context.Context, env *Env, mount mountFactory) results.Result {
	if why := passthroughMissing(env.Capabilities); why != "" {
		return results.Result{Status: results.Skip, Reason: why}
	}
	want := make([]byte, passthroughFileSize)
	_, _ = rand.NewChaCha8([32]byte{'f', 'm'}).Read(want)
	r, err := newRig(ctx, env, mount, map[string][]byte{"file": want})
	if err != nil {
		return errorResult("%v", err)
	}
	// The server is stopped after ReadFile has closed the file; it waits
	// for the RELEASE before it unmounts and reports.
	r.compareFile("read through the mount", r.m("file"), want)
	if st := r.stop(); st != nil {
		if len(st.Opens) > 0 {
			r.facts["open_flags"] = fmt.Sprintf("%#x", st.Opens[0].OpenFlags)
			r.facts["backing_id"] = fmt.Sprint(st.Opens[0].BackingID)
		}
		if regs := st.Registrations; len(regs) > 0 {
			r.facts["backing_open"] = errnoText(regs[len(regs)-1].Errno)
		}
	}
	r.requirePassthrough()
	return r.result()
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
func openProblems(opens []wire.OpenReply, regs []wire.Registration) []string {
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
		return "BACKING_OPEN failed: " + errnoText(last.Errno)
	}
	return fmt.Sprintf("BACKING_OPEN succeeded (id %d) but the reply did not use it", last.ID)
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
