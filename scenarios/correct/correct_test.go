package correct

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/internal/scentest"
	"github.com/fusematrix/fusematrix/scenarios/probe"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
)

// TestMain lets the test binary serve file systems for server.Launcher,
// as the agent does.
func TestMain(m *testing.M) { scentest.Main(m) }

// hostCapabilities runs the fuse-init probe on this machine.
func hostCapabilities(t *testing.T) *results.Capabilities {
	t.Helper()
	return scentest.Capabilities(t, probe.All())
}

// TestCorrectness runs each correctness scenario against the server it
// is meant for, where it must pass, and against broken servers, where it
// must fail for the reason the breakage implies.
func TestCorrectness(t *testing.T) {
	caps := hostCapabilities(t)
	type runner func(context.Context, *scenarios.Env, scenarios.Subject) results.Result
	for _, tc := range []struct {
		id   string
		run  runner
		kind loopback.Kind
		// needPT marks scenarios that skip without passthrough.
		needPT     bool
		wantStatus results.Status
		wantReason string
	}{
		{id: "pt/integrity", run: ptIntegrityWith, kind: loopback.KindLoopback, needPT: true, wantStatus: results.Pass},
		{id: "pt/integrity", run: ptIntegrityWith, kind: loopback.KindClassic, needPT: true, wantStatus: results.Fail,
			wantReason: "passthrough not in use: open reply 1 of 5 without FOPEN_PASSTHROUGH"},
		{id: "pt/integrity", run: ptIntegrityWith, kind: loopback.KindShadow, needPT: true, wantStatus: results.Fail,
			wantReason: "after the workers: backing file: bytes differ at offset"},

		{id: "pt/size-after-write", run: ptSizeWith, kind: loopback.KindLoopback, needPT: true, wantStatus: results.Pass},
		{id: "pt/size-after-write", run: ptSizeWith, kind: loopback.KindShortSize, needPT: true, wantStatus: results.Fail,
			wantReason: "after an extending pwrite: statx(AT_STATX_FORCE_SYNC), answered by the server, says size 12999, want 13000"},
		{id: "pt/size-after-write", run: ptSizeWith, kind: loopback.KindShadow, needPT: true, wantStatus: results.Fail,
			wantReason: "after an extending pwrite: the backing file has size 5000, want 13000"},

		{id: "pt/mmap-shared", run: ptMmapWith, kind: loopback.KindLoopback, needPT: true, wantStatus: results.Pass},
		{id: "pt/mmap-shared", run: ptMmapWith, kind: loopback.KindShadow, needPT: true, wantStatus: results.Fail,
			wantReason: "after stores to the mapping and msync, the backing file: bytes differ at offset"},
		{id: "pt/mmap-shared", run: ptMmapWith, kind: loopback.KindClassic, needPT: true, wantStatus: results.Fail,
			wantReason: "a write to the backing file does not show in the mapping"},

		{id: "pt/fsync", run: ptFsyncWith, kind: loopback.KindLoopback, needPT: true, wantStatus: results.Pass},
		{id: "pt/fsync", run: ptFsyncWith, kind: loopback.KindFsyncEIO, needPT: true, wantStatus: results.Fail,
			wantReason: "fsync: input/output error; fdatasync: input/output error"},

		{id: "classic/fallback", run: classicFallbackWith, kind: loopback.KindLoopback, wantStatus: results.Pass},
		{id: "classic/fallback", run: classicFallbackWith, kind: loopback.KindClassic, wantStatus: results.Pass},
		{id: "classic/fallback", run: classicFallbackWith, kind: loopback.KindFlipBytes, wantStatus: results.Fail,
			wantReason: "first read through the mount: bytes differ at offset 0"},
		{id: "classic/fallback", run: classicFallbackWith, kind: loopback.KindCrash, wantStatus: results.Fail,
			wantReason: "transport endpoint is not connected"},

		{id: "passthrough-read", run: passthroughReadWith, kind: loopback.KindLoopback, needPT: true, wantStatus: results.Pass},
		{id: "passthrough-read", run: passthroughReadWith, kind: loopback.KindClassic, needPT: true, wantStatus: results.Fail,
			wantReason: "passthrough not in use: open reply without FOPEN_PASSTHROUGH: BACKING_OPEN failed: EPERM (operation not permitted)"},
		{id: "passthrough-read", run: passthroughReadWith, kind: loopback.KindDecoy, needPT: true, wantStatus: results.Fail,
			wantReason: "read through the mount: bytes differ at offset 12345"},

		// pt/open-twice has two parts, each on a server of its own: the
		// kind under test serves one part, the right kind the other.
		{id: "pt/open-twice", run: openTwiceMixed, kind: loopback.KindMixed, needPT: true, wantStatus: results.Pass},
		{id: "pt/open-twice", run: openTwiceMixed, kind: loopback.KindLoopback, needPT: true, wantStatus: results.Fail,
			wantReason: "mixed: pt_then_cached: not exercised: the server answered passthrough (backing id 1), then passthrough (backing id 1), not passthrough then cached"},
		{id: "pt/open-twice", run: openTwiceTwoBacking, kind: loopback.KindLoopback, needPT: true, wantStatus: results.Fail,
			wantReason: "two-backing: second_backing: not exercised: the server answered passthrough (backing id 1), then passthrough (backing id 1), not two different backing files"},

		{id: "pt/direct-io", run: ptDirectIOWith, kind: loopback.KindDirectIO, needPT: true, wantStatus: results.Pass},
		{id: "pt/direct-io", run: ptDirectIOWith, kind: loopback.KindLoopback, needPT: true, wantStatus: results.Fail,
			wantReason: "no READ reached the server: with FOPEN_DIRECT_IO the kernel sends read(2) to it"},

		{id: "pt/close-backing", run: ptCloseBackingWith, kind: loopback.KindCloseBacking, needPT: true, wantStatus: results.Pass},
		{id: "pt/close-backing", run: ptCloseBackingWith, kind: loopback.KindFakeCloseBacking, needPT: true, wantStatus: results.Fail,
			wantReason: "the server said it closed backing id 1, but the kernel still had it: a second BACKING_CLOSE of it succeeded"},
		{id: "pt/close-backing", run: ptCloseBackingWith, kind: loopback.KindLoopback, needPT: true, wantStatus: results.Fail,
			wantReason: "asking the server to close the backing id (getxattr user.fusematrix.close-backing): no data available"},

		{id: "pt/unmount-open", run: unmountOpen, kind: loopback.KindLoopback, needPT: true, wantStatus: results.Pass},
		{id: "pt/unmount-open", run: unmountOpen, kind: loopback.KindHangFlush, needPT: true, wantStatus: results.Fail,
			wantReason: "close_reader did not return within 3s: hang"},
		{id: "pt/unmount-open", run: unmountOpen, kind: loopback.KindShadow, needPT: true, wantStatus: results.Fail,
			wantReason: "pread_after_backing_write after the teardown: wrong bytes"},

		{id: "pt/abort-open", run: abortOpen, kind: loopback.KindLoopback, needPT: true, wantStatus: results.Pass},
		{id: "pt/abort-open", run: abortOpen, kind: loopback.KindShadow, needPT: true, wantStatus: results.Fail,
			wantReason: "pread_after_backing_write after the teardown: wrong bytes"},
		{id: "pt/abort-open", run: abortOpen, kind: loopback.KindClassic, needPT: true, wantStatus: results.Fail,
			wantReason: "passthrough not in use: open reply 1 of 2 without FOPEN_PASSTHROUGH"},

		{id: "classic/kill-mid-request", run: killedWith, kind: loopback.KindHoldRead, wantStatus: results.Pass},
		// A child that inherited /dev/fuse keeps the connection up after
		// the server's death: the held read is a hang, freed by an abort.
		{id: "classic/kill-mid-request", run: killedWith, kind: loopback.KindHeldHeir, wantStatus: results.Fail,
			wantReason: "the held read did not return within 3s of the SIGKILL: hang"},
		{id: "classic/kill-mid-request", run: killedWith, kind: loopback.KindClassic, wantStatus: results.Fail,
			wantReason: "the read of held was answered (4096 bytes), not held: nothing was mid-request"},

		{id: "classic/basics", run: classicBasicsWith, kind: loopback.KindClassic, wantStatus: results.Pass},
		{id: "classic/basics", run: classicBasicsWith, kind: loopback.KindDropWrites, wantStatus: results.Fail,
			wantReason: "create and write: backing file: got 0 bytes, want 26"},
		// A server that refuses xattrs the backing file takes fails the
		// xattr part, rather than passing with it skipped.
		{id: "classic/basics", run: classicBasicsNoXattr, kind: loopback.KindClassic, wantStatus: results.Fail,
			wantReason: "xattr: the mount refused every attribute"},
		// A user's daemon may choose to support no xattrs: said, not failed.
		{id: "classic/basics", run: classicBasicsForeignNoXattr, kind: loopback.KindClassic, wantStatus: results.Pass,
			wantReason: "xattr: someone's daemon supports none"},
	} {
		t.Run(tc.id+"/"+string(tc.kind), func(t *testing.T) {
			if tc.needPT && !caps.Passthrough {
				scentest.NeedPassthrough(t, caps)
			}
			env := scentest.Env(t)
			env.Capabilities = caps
			r := tc.run(context.Background(), env, ownServer(env, tc.kind))
			t.Logf("%s: %s; facts %v", r.Status, r.Reason, r.Facts)
			assert.Equal(t, r.Status, tc.wantStatus, "%s", r.Reason)
			assert.Check(t, is.Contains(r.Reason, tc.wantReason))
			if r.Status == results.Fail && tc.kind == loopback.KindCrash {
				assert.Check(t, is.Contains(r.Log, "server: broken-crash: exiting on READ at offset 0"))
			}
			if r.Status == results.Pass && tc.id == "passthrough-read" {
				assert.Check(t, is.Equal(r.Facts["read_requests"], "0"))
				assert.Check(t, r.Facts["backing_id"] != "0" && r.Facts["backing_id"] != "")
			}
		})
	}
}

// ownServer is our own server of kind, started the way the agent starts
// it.
func ownServer(env *scenarios.Env, kind loopback.Kind) scenarios.Subject {
	return scenarios.OwnServer{Launcher: env.Server, Kind: kind}
}

func classicBasicsNoXattr(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	own := sub.(scenarios.OwnServer)
	own.NoXattr = true
	return classicBasicsWith(ctx, env, own)
}

// foreign is a server under test that is not ours: a user's daemon.
type foreign struct{ scenarios.Subject }

func (foreign) Name() string { return "someone's daemon" }
func (foreign) Ours() bool   { return false }

func classicBasicsForeignNoXattr(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	own := sub.(scenarios.OwnServer)
	own.NoXattr = true
	return classicBasicsWith(ctx, env, foreign{own})
}

// openTwiceMixed runs pt/open-twice with sub serving the mixed-mode part;
// openTwiceTwoBacking with sub serving the two-backing-files part.
func openTwiceMixed(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	return ptOpenTwiceWith(ctx, env, sub, ownServer(env, loopback.KindBackingPerOpen))
}

func openTwiceTwoBacking(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	return ptOpenTwiceWith(ctx, env, ownServer(env, loopback.KindMixed), sub)
}

var (
	unmountOpen = teardownBy(lazyUnmount)
	abortOpen   = teardownBy(connectionAbort)
)

func TestPassthroughReadSkips(t *testing.T) {
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := scentest.Env(t)
			env.Capabilities = tc.caps
			r := scenarios.Run(context.Background(), passthroughRead, env)
			assert.DeepEqual(t, r, results.Result{Status: results.Skip, Reason: tc.want})
		})
	}
}

// TestPassthroughScenariosSkip shows every passthrough scenario skipping,
// with the reason, where the kernel does not offer passthrough.
func TestPassthroughScenariosSkip(t *testing.T) {
	for _, s := range []scenarios.Scenario{passthroughRead, ptIntegrity, ptSizeAfterWrite, ptMmapShared, ptFsync,
		ptOpenTwice, ptDirectIO, ptCloseBacking, ptUnmountOpen, ptAbortOpen} {
		env := scentest.Env(t)
		env.Capabilities = &results.Capabilities{FuseMajor: 7, FuseMinor: 38}
		r := scenarios.Run(context.Background(), s, env)
		assert.Check(t, is.Equal(r.Status, results.Skip), s.ID)
		assert.Check(t, is.Contains(r.Reason, "kernel does not offer FUSE_PASSTHROUGH"), s.ID)
	}
}

// TestGuardFault shows a fault on a mapping (a page past the end of a
// truncated file) reported as errFault instead of ending the process.
func TestGuardFault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	assert.NilError(t, os.WriteFile(path, make([]byte, 2*os.Getpagesize()), 0o644))
	f, err := os.Open(path)
	assert.NilError(t, err)
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, 2*os.Getpagesize(), unix.PROT_READ, unix.MAP_SHARED)
	assert.NilError(t, err)
	defer unix.Munmap(mem)
	assert.NilError(t, os.Truncate(path, 0))
	var b byte
	err = guardFault(func() { b = mem[os.Getpagesize()] })
	assert.Check(t, is.ErrorIs(err, errFault), "read %d", b)
	assert.Check(t, guardFault(func() {}))
}
