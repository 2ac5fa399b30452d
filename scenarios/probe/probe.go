// Package probe holds the probes: checks that report facts about the
// kernel's FUSE (what FUSE_INIT offers, what the passthrough ioctls
// answer, module parameters and sysctls, what requests a fixed workload
// sends the server, what the io_uring commands answer) rather than judge
// a server. They run first, and fuse-init fills Env.Capabilities for
// every check after it.
//
// It imports the core package scenarios, fuseabi, uring and the server
// packages (wire, loopback), never correct, bench or suite.
package probe

import "github.com/fusematrix/fusematrix/scenarios"

// All returns the probes; the suite runs them in the contract's order.
func All() []scenarios.Scenario {
	return []scenarios.Scenario{fuseInitProbe, passthroughIoctlProbe, fuseFeaturesProbe, requestsProbe, ioUringProbe}
}
