package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// EnableURing is fuse's enable_uring parameter. The kernel reads it when
// a connection negotiates INIT and on every ring command, and lets it be
// written at run time (module_param(enable_uring, bool, 0644) in
// fs/fuse/dev_uring.c), built in or a module.
var EnableURing = "/sys/module/fuse/parameters/enable_uring"

// URingMissing says why FUSE over io_uring cannot be used here, or "":
// the kernel has no enable_uring parameter without CONFIG_FUSE_IO_URING.
func URingMissing() string {
	if _, err := os.Stat(EnableURing); errors.Is(err, fs.ErrNotExist) {
		return "fuse has no enable_uring parameter: kernel built without CONFIG_FUSE_IO_URING"
	} else if err != nil {
		return fmt.Sprintf("enable_uring: %v", err)
	}
	return ""
}

// WithURing runs run with fuse.enable_uring on, and puts the kernel's
// own setting back after, so that only the io_uring checks see it on.
// It skips where the kernel has no FUSE over io_uring.
func WithURing(ctx context.Context, env *Env, run func(context.Context, *Env) results.Result) results.Result {
	if why := URingMissing(); why != "" {
		return results.Result{Status: results.Skip, Reason: why}
	}
	restore, err := URingOn()
	if err != nil {
		return ErrorResult("%v", err)
	}
	e := *env
	e.URing = true
	res := run(ctx, &e)
	if res.Facts == nil {
		res.Facts = map[string]string{}
	}
	res.Facts[string(contract.FactTransport)] = "io_uring"
	if err := restore(); err != nil {
		res.Status = results.Error
		res.Reason = strings.TrimPrefix(res.Reason+"; "+err.Error(), "; ")
	}
	return res
}

// URingOn turns fuse.enable_uring on and returns what puts the kernel's
// setting back. A connection that negotiated io_uring keeps it after the
// parameter goes off again (fuse_uring_cmd checks enable_uring or
// fc->io_uring), so a mount need only be made while it is on.
func URingOn() (restore func() error, err error) {
	def, err := os.ReadFile(EnableURing)
	if err != nil {
		return nil, fmt.Errorf("enable_uring: %w", err)
	}
	if err := os.WriteFile(EnableURing, []byte("Y"), 0); err != nil {
		return nil, fmt.Errorf("set enable_uring=Y: %w", err)
	}
	return func() error {
		if err := os.WriteFile(EnableURing, def, 0); err != nil {
			return fmt.Errorf("restore enable_uring=%s: %w", strings.TrimSpace(string(def)), err)
		}
		return nil
	}, nil
}

// OverURing is s run again with our own servers serving over FUSE's
// io_uring transport: id contract.URingPrefix+s.ID, skipped where the
// kernel lacks the transport. Only our own servers speak it, so it needs
// one.
func OverURing(s Scenario) Scenario {
	run := s.Run
	s.ID = contract.URingPrefix + s.ID
	s.Description = "over FUSE's io_uring transport: " + s.Description
	s.Needs |= NeedOwnServer
	s.AnyServer, s.OwnFiles = false, false
	s.Run = func(ctx context.Context, env *Env) results.Result {
		return WithURing(ctx, env, run)
	}
	return s
}
