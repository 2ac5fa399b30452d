package scenarios

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
	"github.com/fusematrix/fusematrix/scenarios/server"
)

var fuseInitProbe = Scenario{
	ID:          "fuse-init",
	Kind:        results.Probe,
	Description: "mounts a FUSE file system and records what the kernel offers in FUSE_INIT",
	Timeout:     30 * time.Second,
	Run:         runFuseInit,
}

func runFuseInit(ctx context.Context, env *Env) results.Result {
	if err := server.CanMount(); err != nil {
		return results.Result{Status: results.Error, Reason: err.Error()}
	}
	mnt := filepath.Join(env.Dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return results.Result{Status: results.Error, Reason: fmt.Sprintf("mount point: %v", err)}
	}
	// The NOOP file system touches no storage; what matters is the INIT
	// request the kernel sends to any server. Passthrough stays
	// negotiable so that the reply does not hide anything.
	m, err := server.Noop(ctx, mnt, 0, server.Options{Passthrough: true, Logf: env.logf})
	if err != nil {
		return results.Result{Status: results.Error, Reason: fmt.Sprintf("mount failed: %v", err)}
	}
	in := m.KernelSettings()
	r := initResult(in.Major, in.Minor, in.MaxReadAhead, fuseabi.InitFlags(in.Flags, in.Flags2))
	env.Capabilities = r.caps
	if err := m.Unmount(); err != nil {
		r.Reason = err.Error()
	}
	return r.Result
}

type probed struct {
	results.Result
	caps *results.Capabilities
}

func initResult(major, minor, readahead uint32, flags uint64) probed {
	caps := &results.Capabilities{
		FuseMajor:    major,
		FuseMinor:    minor,
		Passthrough:  flags&fuseabi.Passthrough != 0,
		InitFlags:    fuseabi.FlagNames(flags),
		Flags:        flags,
		MaxReadahead: readahead,
	}
	offered := "not offered"
	if caps.Passthrough {
		offered = "offered"
	}
	return probed{
		Result: results.Result{
			Status: results.Pass,
			Facts: map[string]string{
				"protocol":      protocol(caps),
				"passthrough":   offered,
				"init_flags":    fmt.Sprintf("%#x", flags),
				"max_readahead": fmt.Sprint(readahead),
			},
		},
		caps: caps,
	}
}

func protocol(c *results.Capabilities) string {
	return fmt.Sprintf("%d.%d", c.FuseMajor, c.FuseMinor)
}

func (env *Env) logf(format string, args ...any) {
	if env.Logf != nil {
		env.Logf(format, args...)
	}
}
