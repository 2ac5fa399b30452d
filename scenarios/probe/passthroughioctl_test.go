package probe

import (
	"context"
	"errors"
	"slices"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/internal/scentest"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// TestPassthroughIoctl runs the probe on this machine's kernel and checks
// each answer against the kernel source that gives it. Upstream, BACKING_OPEN
// and BACKING_CLOSE arrive in fs/fuse/dev.c (fuse_dev_ioctl_backing_open,
// fuse_dev_ioctl_backing_close) and are decided by fuse_backing_open and
// fuse_backing_close, in fs/fuse/passthrough.c from 6.9 and in
// fs/fuse/backing.c from 6.18 (commit c4331e19a6b0 moved them). Passthrough
// itself is accepted or not in process_init_reply (fs/fuse/inode.c).
func TestPassthroughIoctl(t *testing.T) {
	caps := needPassthrough(t)
	env := scentest.Env(t)
	env.Capabilities = caps
	r := scenarios.Run(context.Background(), passthroughIoctlProbe, env)
	assert.Equal(t, r.Status, results.Pass, r.Reason)
	assert.Check(t, is.Equal(r.Reason, ""))
	t.Logf("facts: %v", r.Facts)

	for _, tc := range []struct {
		fact string
		// want holds every answer some upstream kernel with passthrough
		// gives; since, when set, is the release from which only the
		// first one is right.
		want  []string
		since [2]int
		why   string
	}{
		{fact: "negotiated", want: []string{"yes"}},
		{fact: "backing_open", want: []string{"ok"}},
		{fact: "backing_close", want: []string{"ok"}},
		{fact: "not_negotiated", want: []string{"EPERM"}, why: "fuse_backing_open: !fc->passthrough, checked first (6.9)"},
		{fact: "bad_fd", want: []string{"EBADF"}, why: "fuse_backing_open: fget_raw(-1) finds no file (6.9)"},
		{fact: "flags_nonzero", want: []string{"EINVAL"}, why: "fuse_backing_open: map->flags || map->padding (6.9)"},
		{fact: "padding_nonzero", want: []string{"EINVAL"}, why: "fuse_backing_open: map->flags || map->padding (6.9)"},
		{
			fact: "directory", want: []string{"EISDIR", "ok", "EOPNOTSUPP"}, since: [2]int{6, 17},
			why: "fuse_backing_open: d_is_dir → EISDIR since e9c8da670e74 (6.17, backported to stable); " +
				"accepted between efad7153bf93 (6.12) and it; EOPNOTSUPP (no read_iter) before 6.12",
		},
		{
			fact: "o_path", want: []string{"ok", "EBADF"}, since: [2]int{6, 12},
			why: "fuse_backing_open: fget_raw accepts O_PATH since efad7153bf93 (6.12); fget refused it with EBADF before",
		},
		{fact: "stacked_too_deep", want: []string{"ELOOP"}, why: "fuse_backing_open: s_stack_depth >= fc->max_stack_depth (6.9)"},
		{fact: "close_unknown", want: []string{"ENOENT"}, why: "fuse_backing_close: fuse_backing_id_remove finds nothing (6.9)"},
		{fact: "close_zero", want: []string{"EINVAL"}, why: "fuse_backing_close: backing_id <= 0 (6.9)"},
		{
			fact: "writeback_cache", want: []string{"refused", "accepted"}, since: [2]int{6, 11},
			why: "process_init_reply: no passthrough with FUSE_WRITEBACK_CACHE since 3ab394b363c5 (6.11, 6.10.y)",
		},
	} {
		t.Run(tc.fact, func(t *testing.T) {
			got, ok := r.Facts[tc.fact]
			assert.Assert(t, ok, "no fact %s", tc.fact)
			want := tc.want
			if tc.since != [2]int{} && scentest.KernelAtLeast(t, tc.since[0], tc.since[1]) {
				want = want[:1]
			}
			assert.Check(t, slices.Contains(want, got), "%s = %q, want one of %q: %s", tc.fact, got, want, tc.why)
		})
	}
	assert.Check(t, r.Facts["backing_id"] != "" && r.Facts["backing_id"] != "0", "backing_id %q", r.Facts["backing_id"])
}

func TestPassthroughIoctlSkips(t *testing.T) {
	host := hostCapabilities(t)
	// Without passthrough negotiated the kernel answers EPERM
	// (fuse_backing_open); a kernel built without passthrough answers
	// EOPNOTSUPP (fuse_dev_ioctl_backing_open, 6.9+) and an older one
	// ENOTTY (fuse_dev_ioctl does not know the command).
	wantNotNegotiated := []string{"ENOTTY", "EOPNOTSUPP"}
	if host.Passthrough {
		wantNotNegotiated = []string{"EPERM"}
	}
	for _, tc := range []struct {
		name string
		caps *results.Capabilities
		want string
	}{
		{name: "no probe result", caps: nil, want: "fuse-init did not report what the kernel offers"},
		{
			name: "kernel without passthrough",
			caps: &results.Capabilities{FuseMajor: 7, FuseMinor: 38},
			want: "kernel does not offer FUSE_PASSTHROUGH (INIT flags2 bit 5); protocol 7.38",
		},
		{
			name: "android kernel",
			caps: &results.Capabilities{FuseMajor: 7, FuseMinor: 38, PassthroughABI: "android"},
			want: "kernel offers Android's passthrough ABI (protocol 7.38), whose ioctl and open reply differ from upstream's; not probed",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := scentest.Env(t)
			env.Capabilities = tc.caps
			r := scenarios.Run(context.Background(), passthroughIoctlProbe, env)
			assert.Equal(t, r.Status, results.Skip, r.Reason)
			assert.Check(t, is.Equal(r.Reason, tc.want))
			// Measured anyway, and nothing else.
			assert.Check(t, slices.Contains(wantNotNegotiated, r.Facts["not_negotiated"]), "not_negotiated = %q", r.Facts["not_negotiated"])
			assert.Check(t, is.Len(r.Facts, 1), "%v", r.Facts)
		})
	}
}

// TestPassthroughIoctlFailures shows the probe failing against servers
// that do not give the kernel what it needs.
func TestPassthroughIoctlFailures(t *testing.T) {
	caps := needPassthrough(t)
	for _, tc := range []struct {
		name       string
		mount      connMount
		wantStatus results.Status
		wantReason string
		wantFacts  map[string]string
	}{
		{
			// A server that never accepts passthrough in INIT: the kernel
			// refuses every registration.
			name: "server refuses passthrough",
			mount: func(ctx context.Context, mnt string, o wire.Options) (*wire.Mount, error) {
				o.Passthrough = false
				return noopConn(ctx, mnt, o)
			},
			wantStatus: results.Fail,
			wantReason: "BACKING_OPEN of a regular tmpfs file failed as root: EPERM (operation not permitted)",
			wantFacts:  map[string]string{"negotiated": "no", "backing_open": "EPERM", "not_negotiated": "EPERM"},
		},
		{
			name: "cannot mount",
			mount: func(ctx context.Context, mnt string, o wire.Options) (*wire.Mount, error) {
				return nil, errors.New("no mount today")
			},
			wantStatus: results.Error,
			wantReason: "not_negotiated: no mount today",
		},
		{
			// Only the lower mount of the stacking case lacks passthrough:
			// the case cannot measure stacking and says so.
			name: "stacking not measurable",
			mount: func(ctx context.Context, mnt string, o wire.Options) (*wire.Mount, error) {
				if o.Name == "fusematrix-lower" {
					o.Passthrough = false
				}
				return noopConn(ctx, mnt, o)
			},
			wantStatus: results.Error,
			wantReason: "stacked_too_deep: lower mount did not negotiate passthrough: BACKING_OPEN EPERM",
			wantFacts:  map[string]string{"negotiated": "yes", "backing_open": "ok", "bad_fd": "EBADF"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := scentest.Env(t)
			env.Capabilities = caps
			r := passthroughIoctlWith(context.Background(), env, tc.mount)
			assert.Equal(t, r.Status, tc.wantStatus, r.Reason)
			assert.Check(t, is.Equal(r.Reason, tc.wantReason))
			for k, v := range tc.wantFacts {
				assert.Check(t, is.Equal(r.Facts[k], v), "fact %s", k)
			}
			if tc.wantStatus == results.Fail {
				// Misuses meet the same refusal and are not recorded.
				_, ok := r.Facts["bad_fd"]
				assert.Check(t, !ok, "misuse facts recorded on a refused connection: %v", r.Facts)
			}
		})
	}
}

// A clean-up that failed is never hidden in the reason of a pass.
func TestWithCleanup(t *testing.T) {
	closeFailed := []string{"BACKING_CLOSE of id 1 (fd 7) failed: EINVAL (invalid argument)"}
	for _, tc := range []struct {
		in       results.Result
		problems []string
		want     results.Status
		reason   string
	}{
		{in: results.Result{Status: results.Pass}, want: results.Pass},
		{in: results.Result{Status: results.Pass}, problems: closeFailed, want: results.Fail,
			reason: "clean-up failed; BACKING_CLOSE of id 1 (fd 7) failed: EINVAL (invalid argument)"},
		{in: results.Result{Status: results.Skip, Reason: "no passthrough"}, problems: []string{"unmount: EBUSY"}, want: results.Fail,
			reason: "clean-up failed; no passthrough; unmount: EBUSY"},
		{in: results.Result{Status: results.Error, Reason: "o_path: timed out"}, problems: closeFailed, want: results.Error,
			reason: "o_path: timed out; " + closeFailed[0]},
	} {
		got := withCleanup(tc.in, tc.problems)
		assert.Check(t, is.Equal(got.Status, tc.want), "%+v", tc)
		assert.Check(t, is.Equal(got.Reason, tc.reason))
	}
}
