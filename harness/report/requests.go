package report

import (
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// requestFactWidth bounds a request fact's cell in the grid: wider than
// other facts, since an opcode list ("WRITE:4,GETXATTR:4") is the value
// that tells kernels apart. The cell's title holds the whole value.
const requestFactWidth = 40

// requestGroup is the grid's rows of the requests probe: the facts whose
// value differs between two kernels of the run, in the contract's order.
// A fact some kernels lack and the others agree on (a passthrough mode on
// a kernel without passthrough) tells nothing the capabilities do not.
func requestGroup(run *results.Run) htmlGroup {
	// One look-up per kernel, not one per fact: a merged run may hold
	// many kernels (TestViewsIndex).
	byKernel := make(map[*results.Kernel]*results.Result, len(run.Kernels))
	for i := range run.Kernels {
		byKernel[&run.Kernels[i]] = contract.Requests.In(&run.Kernels[i])
	}
	g := htmlGroup{Name: "requests", Note: "facts of the requests probe that differ between kernels (docs/checks.md)", Caps: true}
	for _, f := range contract.RequestFacts() {
		value := func(k *results.Kernel) string { return f.Of(byKernel[k]) }
		seen := map[string]bool{}
		for i := range run.Kernels {
			if v := value(&run.Kernels[i]); v != "" {
				seen[v] = true
			}
		}
		if len(seen) > 1 {
			g.Rows = append(g.Rows, valueRowWidth(run, string(f), value, requestFactWidth))
		}
	}
	return g
}
