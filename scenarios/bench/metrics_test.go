package bench

import (
	"maps"
	"slices"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// The metrics a cell and seq-read report are exactly the ones the
// contract lists (contract.Metrics): a predicate may name only those, so
// a metric added here without the contract could not be bisected on, and
// one the contract lists but nothing reports would be a silent "cannot
// say" on every kernel. Each cell is summarised from made-up runs with
// every pair and base present, which is when it reports the most.
func TestMetricsInContract(t *testing.T) {
	for _, mode := range append(seqModes(), daemonMode()) {
		for _, op := range contract.Ops {
			if !mode.measures(string(op)) {
				continue
			}
			c := benchCell{op: string(op), mode: mode.name, block: 4096}
			id := c.id()
			if mode.name == daemonModeName {
				id = contract.Cell{Op: op, Mode: contract.DaemonMode("d"), Block: c.block}.ID()
			}
			t.Run(string(id), func(t *testing.T) {
				set := newBenchSet()
				for _, b := range mode.bases {
					set.medians[c.in(b)] = 50
				}
				cell := &cellRun{c: c, mode: mode, runs: 2, mbps: []float64{100, 120},
					r:        results.Result{Status: results.Pass, Metrics: map[string]float64{}, Facts: map[string]string{}},
					pairMbps: map[string][]float64{}, unpaired: map[string]string{},
					total: sample{bytes: 1 << 30, busy: time.Second, ctxsw: 10, server: time.Second}}
				for _, name := range mode.pairs {
					cell.pairs = append(cell.pairs, seqModes()[modeIndex(seqModes(), name)])
					cell.pairMbps[name] = []float64{200, 210}
				}
				if mode.mount != nil {
					cell.total.accounted = true
					cell.requests = map[string]int64{"OPEN": 1}
				}
				set.fillResult(cell)
				var want []string
				for _, m := range contract.Metrics(id) {
					want = append(want, string(m))
				}
				assert.DeepEqual(t, slices.Sorted(maps.Keys(cell.r.Metrics)), slices.Sorted(slices.Values(want)))
			})
		}
	}
	t.Run("seq-read", func(t *testing.T) {
		var got []contract.Metric
		for _, m := range seqReadModes() {
			got = append(got, contract.MBPS(contract.Mode(m.name)))
			if m.name != "native" {
				got = append(got, contract.SeqReadRatio(contract.Mode(m.name)))
			}
		}
		assert.DeepEqual(t, got, contract.Metrics(contract.SeqRead))
	})
}
