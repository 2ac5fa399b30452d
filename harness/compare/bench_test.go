package compare

import (
	"fmt"
	"io"
	"strconv"
	"testing"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// bigRuns is a pair of runs of n results each over two kernels, as a long
// nightly might make them: mostly passing scenarios, a benchmark cell in
// every hundred, and in the new run a status move in every thousand, a
// result gone and one new in every ten thousand.
func bigRuns(n int) (old, new *results.Run) {
	mk := func(isNew bool) *results.Run {
		run := &results.Run{Schema: results.SchemaVersion, Host: results.Host{CPUModel: "cpu", CPUs: 2}}
		for k := range 2 {
			kern := results.Kernel{Name: "debian:6." + strconv.Itoa(k+1) + "/cloud", Accel: "tcg", Status: results.Pass,
				Results: make([]results.Result, 0, n/2)}
			for i := range n / 2 {
				r := results.Result{ID: fmt.Sprintf("scenario/%07d", i), Kind: results.Scenario, Status: results.Pass}
				if i%100 == 0 {
					cell := contract.Cell{Op: contract.Read, Mode: contract.Passthrough, Block: 4096 + i}
					r = cellResult(100, 90, 110, 0.8, 0.75, 0.85)
					r.ID = string(cell.ID())
				}
				if isNew {
					switch {
					case i%10000 == 7:
						r.ID += "-renamed" // one gone, one new
					case i%1000 == 3:
						r.Status = results.Fail
					}
				}
				kern.Results = append(kern.Results, r)
			}
			run.Kernels = append(run.Kernels, kern)
		}
		return run
	}
	return mk(false), mk(true)
}

// Comparing is linear in the results (issue 21 row 11: 80,000 results
// took 27 times as long as 20,000). Evidence, not a test (timings vary
// with the machine):
//
//	go test -run '^$' -bench BenchmarkCompare -benchtime 3x ./harness/compare/
//
// compares the ns/op of the two sizes: linear work makes the ratio near
// 4 (measured here: 20 before the index, 3 to 4.5 after).
// TestCompareIndexes asserts the cause instead.
func BenchmarkCompare(b *testing.B) {
	for _, n := range []int{20000, 80000} {
		old, new := bigRuns(n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				r := Compare(old, new, Options{})
				if err := Table(io.Discard, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
