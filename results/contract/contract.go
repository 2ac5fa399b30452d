// Package contract is what the fusematrix host and its guest agent agree
// on beyond the event schema of package results: the kernel command-line
// parameters that carry a run's options into a guest (Params), where the
// guest finds its port and files, and the names of results, facts, metrics
// and benchmark cells that the host reads back.
//
// Both sides import it, and it imports only package results and the
// standard library, so that the host learns these names without importing
// the scenarios (and with them go-fuse). A name changes here or nowhere;
// the tests round-trip every one.
package contract

// PortName is the virtio-serial port the agent streams events on.
const PortName = "fusematrix.0"

// ModuleList is the guest file that lists the kernel modules to load, one
// absolute path per line in load order. A guest without it loads none.
const ModuleList = "/etc/fusematrix/modules"

// ModulePath is where the host puts module name of kernel release in the
// guest.
func ModulePath(release, name string) string {
	return "/lib/modules/" + release + "/" + name + ".ko"
}

// PeerPath is where the host puts the C NOOP peer (make peer) in every
// guest, when it has one.
const PeerPath = "/bin/fusematrix-nullfs"
