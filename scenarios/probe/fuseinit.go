package probe

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

var fuseInitProbe = scenarios.Scenario{
	ID:          contract.FuseInit,
	Description: "mounts a FUSE file system and records what the kernel offers in FUSE_INIT",
	Run:         runFuseInit,
}

func runFuseInit(ctx context.Context, env *scenarios.Env) results.Result {
	return fuseInitWith(ctx, env, maxPagesLimitPath)
}

// maxPagesLimitPath is the sysctl fs.fuse.max_pages_limit (Linux 6.13).
const maxPagesLimitPath = "/proc/sys/fs/fuse/max_pages_limit"

// fuseInitWith runs fuse-init reading the max_pages_limit sysctl from
// limitPath, so that tests can show what a kernel without it reports.
func fuseInitWith(ctx context.Context, env *scenarios.Env, limitPath string) results.Result {
	if err := wire.CanMount(); err != nil {
		return results.Result{Status: results.Error, Reason: err.Error()}
	}
	// An unreadable sysctl must not cost the capabilities every later
	// scenario needs: it is reported, and the fact says "unreadable".
	limit, limitErr := readMaxPagesLimit(limitPath)
	mnt := filepath.Join(env.Dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return results.Result{Status: results.Error, Reason: fmt.Sprintf("mount point: %v", err)}
	}
	// The NOOP file system touches no storage; what matters is the INIT
	// request the kernel sends to any server. Passthrough stays
	// negotiable so that the reply does not hide anything.
	m, err := wire.Noop(ctx, mnt, 0, wire.Options{Passthrough: true, Logf: env.Printf})
	if err != nil {
		return results.Result{Status: results.Error, Reason: fmt.Sprintf("mount failed: %v", err)}
	}
	in := m.KernelSettings()
	r := initResult(in.Major, in.Minor, in.MaxReadAhead, fuseabi.InitFlags(in.Flags, in.Flags2), limit)
	env.Capabilities = r.caps
	var notes []string
	if limitErr != nil {
		r.Facts["max_pages_limit"] = "unreadable"
		notes = append(notes, limitErr.Error())
	}
	if err := m.Unmount(); err != nil {
		notes = append(notes, err.Error())
	}
	r.Reason = strings.Join(notes, "; ")
	return r.Result
}

// maxPagesLimit is what the max_pages_limit sysctl says; present is false
// on kernels without it, where the limit is the compiled-in 256 pages.
type maxPagesLimit struct {
	pages   uint32
	present bool
}

func readMaxPagesLimit(path string) (maxPagesLimit, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return maxPagesLimit{}, nil
	}
	if err != nil {
		return maxPagesLimit{}, fmt.Errorf("max_pages_limit: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 32)
	if err != nil {
		return maxPagesLimit{}, fmt.Errorf("max_pages_limit %s: %w", path, err)
	}
	return maxPagesLimit{pages: uint32(n), present: true}, nil
}

type probed struct {
	results.Result
	caps *results.Capabilities
}

func initResult(major, minor, readahead uint32, flags uint64, limit maxPagesLimit) probed {
	caps := &results.Capabilities{
		FuseMajor:      major,
		FuseMinor:      minor,
		Passthrough:    flags&fuseabi.Passthrough != 0,
		PassthroughABI: fuseabi.ABI(flags, minor),
		InitFlags:      fuseabi.FlagNames(flags),
		Flags:          flags,
		MaxReadahead:   readahead,
		MaxPagesLimit:  limit.pages,
	}
	offered := "not offered"
	if caps.Passthrough {
		offered = "offered"
	}
	abi := caps.PassthroughABI
	if abi == "" {
		abi = "none"
	}
	pagesLimit := "absent"
	if limit.present {
		pagesLimit = fmt.Sprint(limit.pages)
	}
	return probed{
		Result: results.Result{
			Status: results.Pass,
			Facts: map[string]string{
				"protocol":        scenarios.Protocol(caps),
				"passthrough":     offered,
				"passthrough_abi": abi,
				"init_flags":      fmt.Sprintf("%#x", flags),
				"max_readahead":   fmt.Sprint(readahead),
				"max_pages_limit": pagesLimit,
			},
		},
		caps: caps,
	}
}
