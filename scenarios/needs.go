package scenarios

import (
	"fmt"
	"os"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// Needs is a set of preconditions a scenario declares. Each is checked
// once, by Run, before the scenario starts; the first one missing, in the
// order of the constants below, is the reason of the skip.
type Needs uint

const (
	// NeedPassthrough: the kernel offers FUSE_PASSTHROUGH, as fuse-init
	// found (PassthroughMissing).
	NeedPassthrough Needs = 1 << iota
	// NeedOwnServer: the server under test is fusematrix's own, which
	// reports what reached it (OPEN replies, READ and WRITE counts) and
	// serves the kinds scenarios ask for.
	NeedOwnServer
	// NeedFusectl: the FUSE control file system is mounted (FusectlDir).
	NeedFusectl
)

// Unmet says why env does not meet n, or "" when it does.
func (n Needs) Unmet(env *Env) string {
	if n&NeedPassthrough != 0 {
		if why := PassthroughMissing(env.Capabilities); why != "" {
			return why
		}
	}
	if n&NeedOwnServer != 0 && env.Subject != nil && !env.Subject.Ours() {
		return fmt.Sprintf("needs fusematrix's own server, which reports what reached it; the server under test is %s", env.Subject.Name())
	}
	if n&NeedFusectl != 0 {
		if _, err := os.Stat(wire.FusectlDir); err != nil {
			return fmt.Sprintf("no FUSE control file system: %v", err)
		}
	}
	return ""
}

// PassthroughMissing says why passthrough cannot be expected, or "".
func PassthroughMissing(c *results.Capabilities) string {
	if c == nil {
		return "fuse-init did not report what the kernel offers"
	}
	if !c.Passthrough {
		return fmt.Sprintf("kernel does not offer FUSE_PASSTHROUGH (INIT flags2 bit 5); protocol %s", Protocol(c))
	}
	return ""
}

// Protocol is the FUSE protocol version in c, "7.41".
func Protocol(c *results.Capabilities) string {
	return fmt.Sprintf("%d.%d", c.FuseMajor, c.FuseMinor)
}
