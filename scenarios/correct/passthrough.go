package correct

import (
	"context"
	"fmt"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
)

var passthroughRead = scenarios.Scenario{
	ID:          contract.PassthroughRead,
	Description: "reads a file through a passthrough loopback and proves the kernel served it from the backing file",
	Needs:       ptNeeds,
	Run:         against(loopback.KindLoopback, passthroughReadWith),
}

// passthroughFileSize is a few MiB: more than one readahead window and
// more than one FUSE request, small enough for a TCG guest.
const passthroughFileSize = 4<<20 + 4097

// passthroughReadWith runs passthrough-read against sub, so that tests
// can show it failing against broken servers.
func passthroughReadWith(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	r, _, want, err := seededRig(ctx, env, sub, "fm", "file", passthroughFileSize)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
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
			r.facts["backing_open"] = scenarios.ErrnoText(regs[len(regs)-1].Errno)
		}
	}
	r.requirePassthrough()
	return r.result()
}
