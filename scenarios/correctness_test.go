package scenarios

import (
	"context"
	"os"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios/server"
)

// TestMain lets the test binary serve file systems for server.Launcher,
// as the agent does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(server.Serve(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// TestCorrectness runs each correctness scenario against the server it
// is meant for, where it must pass, and against broken servers, where it
// must fail for the reason the breakage implies.
func TestCorrectness(t *testing.T) {
	caps := hostCapabilities(t)
	type runner func(context.Context, *Env, mountFactory) results.Result
	for _, tc := range []struct {
		id   string
		run  runner
		kind server.Kind
		// needPT marks scenarios that skip without passthrough.
		needPT     bool
		wantStatus results.Status
		wantReason string
	}{
		{id: "pt/integrity", run: ptIntegrityWith, kind: server.KindLoopback, needPT: true, wantStatus: results.Pass},
		{id: "pt/integrity", run: ptIntegrityWith, kind: server.KindClassic, needPT: true, wantStatus: results.Fail,
			wantReason: "passthrough not in use: open reply 1 of 5 without FOPEN_PASSTHROUGH"},
		{id: "pt/integrity", run: ptIntegrityWith, kind: server.KindShadow, needPT: true, wantStatus: results.Fail,
			wantReason: "after the workers: backing file: bytes differ at offset"},

		{id: "pt/size-after-write", run: ptSizeWith, kind: server.KindLoopback, needPT: true, wantStatus: results.Pass},
		{id: "pt/size-after-write", run: ptSizeWith, kind: server.KindShortSize, needPT: true, wantStatus: results.Fail,
			wantReason: "after an extending pwrite: statx(AT_STATX_FORCE_SYNC), answered by the server, says size 12999, want 13000"},
		{id: "pt/size-after-write", run: ptSizeWith, kind: server.KindShadow, needPT: true, wantStatus: results.Fail,
			wantReason: "after an extending pwrite: the backing file has size 5000, want 13000"},

		{id: "pt/mmap-shared", run: ptMmapWith, kind: server.KindLoopback, needPT: true, wantStatus: results.Pass},
		{id: "pt/mmap-shared", run: ptMmapWith, kind: server.KindShadow, needPT: true, wantStatus: results.Fail,
			wantReason: "after stores to the mapping and msync, the backing file: bytes differ at offset"},
		{id: "pt/mmap-shared", run: ptMmapWith, kind: server.KindClassic, needPT: true, wantStatus: results.Fail,
			wantReason: "a write to the backing file does not show in the mapping"},

		{id: "pt/fsync", run: ptFsyncWith, kind: server.KindLoopback, needPT: true, wantStatus: results.Pass},
		{id: "pt/fsync", run: ptFsyncWith, kind: server.KindFsyncEIO, needPT: true, wantStatus: results.Fail,
			wantReason: "fsync: input/output error; fdatasync: input/output error"},

		{id: "classic/fallback", run: classicFallbackWith, kind: server.KindLoopback, wantStatus: results.Pass},
		{id: "classic/fallback", run: classicFallbackWith, kind: server.KindClassic, wantStatus: results.Pass},
		{id: "classic/fallback", run: classicFallbackWith, kind: server.KindFlipBytes, wantStatus: results.Fail,
			wantReason: "first read through the mount: bytes differ at offset 0"},
		{id: "classic/fallback", run: classicFallbackWith, kind: server.KindCrash, wantStatus: results.Fail,
			wantReason: "transport endpoint is not connected"},

		{id: "classic/basics", run: classicBasicsWith, kind: server.KindClassic, wantStatus: results.Pass},
		{id: "classic/basics", run: classicBasicsWith, kind: server.KindDropWrites, wantStatus: results.Fail,
			wantReason: "create and write: backing file: got 0 bytes, want 26"},
	} {
		t.Run(tc.id+"/"+string(tc.kind), func(t *testing.T) {
			if tc.needPT && !caps.Passthrough {
				t.Skipf("this kernel does not offer FUSE_PASSTHROUGH (protocol %s)", protocol(caps))
			}
			env := testEnv(t)
			env.Capabilities = caps
			r := tc.run(context.Background(), env, launched(env, tc.kind))
			t.Logf("%s: %s; facts %v", r.Status, r.Reason, r.Facts)
			assert.Equal(t, r.Status, tc.wantStatus, "%s", r.Reason)
			assert.Check(t, is.Contains(r.Reason, tc.wantReason))
			if r.Status == results.Fail && tc.kind == server.KindCrash {
				assert.Check(t, is.Contains(r.Log, "server: broken-crash: exiting on READ at offset 0"))
			}
		})
	}
}

// TestPassthroughScenariosSkip shows every passthrough scenario skipping,
// with the reason, where the kernel does not offer passthrough.
func TestPassthroughScenariosSkip(t *testing.T) {
	for _, s := range []Scenario{ptIntegrity, ptSizeAfterWrite, ptMmapShared, ptFsync} {
		env := testEnv(t)
		env.Capabilities = &results.Capabilities{FuseMajor: 7, FuseMinor: 38}
		r := s.Run(context.Background(), env)
		assert.Check(t, is.Equal(r.Status, results.Skip), s.ID)
		assert.Check(t, is.Contains(r.Reason, "kernel does not offer FUSE_PASSTHROUGH"), s.ID)
	}
}
