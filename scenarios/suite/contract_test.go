package suite

import (
	"testing"

	"gotest.tools/v3/assert"

	"github.com/fusematrix/fusematrix/results/contract"
)

// The host selects, names and judges checks by the contract's catalogue;
// the agent runs these. They must be the same list in the same order.
func TestCatalogueIsContract(t *testing.T) {
	var got []contract.Check
	for _, s := range All() {
		got = append(got, contract.Check{ID: contract.ID(s.ID), Kind: s.Kind, Timeout: s.Timeout})
	}
	assert.DeepEqual(t, got, contract.Checks())
}

// The checks the agent runs against a daemon are those the contract lists
// for one, in its order and with its time limits.
func TestDaemonCatalogueIsContract(t *testing.T) {
	var got []contract.Check
	for _, s := range ForDaemon() {
		got = append(got, contract.Check{ID: s.ID, Kind: s.Kind, Timeout: s.Timeout})
	}
	assert.DeepEqual(t, got, contract.DaemonScenarios())
}
