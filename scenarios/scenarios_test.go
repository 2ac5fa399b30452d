package scenarios

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

func testEnv(t *testing.T) *Env {
	return &Env{Dir: t.TempDir(), Logf: t.Logf, BenchBytes: 8 << 20, BlockSize: 64 << 10}
}

// needMount skips tests that mount when this run cannot.
func needMount(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("mounts FUSE; skipped in -short mode")
	}
	if err := wire.CanMount(); err != nil {
		t.Skipf("cannot mount FUSE here: %v", err)
	}
}

// kernelAtLeast reports whether the running kernel's release is at least
// major.minor.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	assert.NilError(t, unix.Uname(&u))
	rel := unix.ByteSliceToString(u.Release[:])
	var got [2]int
	_, err := fmt.Sscanf(rel, "%d.%d", &got[0], &got[1])
	assert.NilError(t, err, "release %q", rel)
	return got[0] > major || got[0] == major && got[1] >= minor
}

// hostCapabilities runs the fuse-init probe on this machine.
func hostCapabilities(t *testing.T) *results.Capabilities {
	t.Helper()
	needMount(t)
	env := testEnv(t)
	r := runFuseInit(context.Background(), env)
	assert.Assert(t, is.Equal(r.Status, results.Pass), r.Reason)
	return env.Capabilities
}

func needPassthrough(t *testing.T) *results.Capabilities {
	t.Helper()
	caps := hostCapabilities(t)
	if !caps.Passthrough {
		t.Skipf("this kernel does not offer FUSE_PASSTHROUGH (protocol %s)", protocol(caps))
	}
	return caps
}

func TestAllIDsValid(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range All() {
		ev := results.Event{Type: results.ResultEvent, Result: &results.Result{ID: s.ID, Kind: s.Kind, Status: results.Pass}}
		assert.Check(t, ev.Validate(results.DefaultLimits), "scenario %q", s.ID)
		assert.Check(t, !seen[s.ID], "duplicate id %q", s.ID)
		assert.Check(t, s.Timeout > 0 && s.Run != nil && s.Description != "", "scenario %q incomplete", s.ID)
		seen[s.ID] = true
	}
}

func TestInitResult(t *testing.T) {
	const initExt = 1 << 30
	for _, tc := range []struct {
		name      string
		minor     uint32
		flags     uint64
		limit     maxPagesLimit
		wantPT    bool
		wantABI   string
		wantFlags []string
		wantFacts map[string]string
	}{
		{
			name: "passthrough offered", minor: 41, flags: 1<<37 | initExt | 1, limit: maxPagesLimit{pages: 256, present: true},
			wantPT: true, wantABI: "upstream", wantFlags: []string{"async_read", "init_ext", "passthrough"},
			wantFacts: map[string]string{"protocol": "7.41", "passthrough": "offered", "passthrough_abi": "upstream", "max_pages_limit": "256"},
		},
		{
			name: "no passthrough", minor: 38, flags: initExt | 1<<36,
			wantFlags: []string{"init_ext", "direct_io_allow_mmap"},
			wantFacts: map[string]string{"protocol": "7.38", "passthrough": "not offered", "passthrough_abi": "none", "max_pages_limit": "absent"},
		},
		{
			name: "android kernel", minor: 38, flags: 1<<63 | initExt, wantABI: "android",
			wantFlags: []string{"init_ext", "bit 63"},
			wantFacts: map[string]string{"protocol": "7.38", "passthrough": "not offered", "passthrough_abi": "android"},
		},
		{
			name: "raised pages limit", minor: 45, flags: 1 << 50, limit: maxPagesLimit{pages: 1024, present: true},
			wantFlags: []string{"bit 50"}, wantFacts: map[string]string{"protocol": "7.45", "max_pages_limit": "1024"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := initResult(7, tc.minor, 131072, tc.flags, tc.limit)
			assert.Equal(t, p.Status, results.Pass)
			for k, v := range tc.wantFacts {
				assert.Check(t, is.Equal(p.Facts[k], v), "fact %s", k)
			}
			assert.DeepEqual(t, p.caps, &results.Capabilities{
				FuseMajor: 7, FuseMinor: tc.minor, Passthrough: tc.wantPT, PassthroughABI: tc.wantABI,
				InitFlags: tc.wantFlags, Flags: tc.flags, MaxReadahead: 131072, MaxPagesLimit: tc.limit.pages,
			})
		})
	}
}

func TestReadMaxPagesLimit(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	for _, tc := range []struct {
		name    string
		path    string
		want    maxPagesLimit
		wantErr string
	}{
		{name: "kernel without the sysctl", path: filepath.Join(dir, "missing"), want: maxPagesLimit{}},
		{name: "default", path: write("default", "256\n"), want: maxPagesLimit{pages: 256, present: true}},
		{name: "raised", path: write("raised", "65535\n"), want: maxPagesLimit{pages: 65535, present: true}},
		{name: "garbage", path: write("garbage", "many\n"), wantErr: "invalid syntax"},
		{name: "a directory", path: dir, wantErr: "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readMaxPagesLimit(tc.path)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, got, tc.want)
		})
	}
}

func TestFuseInitProbe(t *testing.T) {
	caps := hostCapabilities(t)
	assert.Check(t, is.Equal(caps.FuseMajor, uint32(7)))
	assert.Check(t, caps.FuseMinor > 0)
	assert.Check(t, is.Contains(caps.InitFlags, "init_ext"))
	assert.Check(t, is.Equal(caps.Passthrough, caps.Flags&(1<<37) != 0))
	if caps.Passthrough {
		assert.Check(t, is.Equal(caps.PassthroughABI, "upstream"))
	}
	// fs.fuse.max_pages_limit (fs/fuse/sysctl.c, Linux 6.13) defaults to
	// FUSE_DEFAULT_MAX_PAGES_LIMIT, 256.
	if kernelAtLeast(t, 6, 13) {
		assert.Check(t, is.Equal(caps.MaxPagesLimit, uint32(256)))
	}
}

// TestFuseInitUnreadableLimit shows that a sysctl that cannot be read
// costs the fact, not the capabilities.
func TestFuseInitUnreadableLimit(t *testing.T) {
	needMount(t)
	env := testEnv(t)
	r := fuseInitWith(context.Background(), env, t.TempDir())
	assert.Equal(t, r.Status, results.Pass, r.Reason)
	assert.Check(t, is.Equal(r.Facts["max_pages_limit"], "unreadable"))
	assert.Check(t, is.Contains(r.Reason, "is a directory"))
	assert.Assert(t, env.Capabilities != nil)
	assert.Check(t, is.Equal(env.Capabilities.MaxPagesLimit, uint32(0)))
}

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
			env := testEnv(t)
			env.Capabilities = tc.caps
			r := passthroughRead.Run(context.Background(), env)
			assert.DeepEqual(t, r, results.Result{Status: results.Skip, Reason: tc.want})
		})
	}
}

func TestSeqRead(t *testing.T) {
	caps := hostCapabilities(t)
	noPT := &results.Capabilities{FuseMajor: caps.FuseMajor, FuseMinor: caps.FuseMinor}
	for _, tc := range []struct {
		name        string
		caps        *results.Capabilities
		modes       func() []seqMode
		wantStatus  results.Status
		wantMetrics []string
		wantFacts   map[string]string
		wantReason  string
	}{
		{
			name:        "all modes",
			caps:        caps,
			wantStatus:  results.Pass,
			wantMetrics: []string{"native_mbps", "noop_mbps", "noop_ratio", "classic_mbps", "classic_ratio", "passthrough_mbps", "passthrough_ratio"},
			wantFacts:   map[string]string{"passthrough_active": "true", "bytes": "8388608", "block_size": "65536", "passthrough_read_requests": "0"},
		},
		{
			name:        "kernel without passthrough",
			caps:        noPT,
			wantStatus:  results.Pass,
			wantMetrics: []string{"native_mbps", "noop_mbps", "noop_ratio", "classic_mbps", "classic_ratio"},
			wantFacts: map[string]string{
				"passthrough_active": "false",
				"passthrough_absent": "kernel does not offer FUSE_PASSTHROUGH (INIT flags2 bit 5); protocol " + protocol(caps),
			},
		},
		{
			name: "passthrough label on a classic mount",
			caps: caps,
			modes: func() []seqMode {
				ms := seqReadModes()
				ms[modeIndex(ms, "passthrough")].mount = ms[modeIndex(ms, "classic")].mount
				return ms
			},
			wantStatus:  results.Fail,
			wantMetrics: []string{"native_mbps", "noop_mbps", "noop_ratio", "classic_mbps", "classic_ratio"},
			wantFacts:   map[string]string{"passthrough_active": "false"},
			wantReason:  "passthrough: open reply without FOPEN_PASSTHROUGH: BACKING_OPEN failed: EPERM",
		},
		{
			name: "short file",
			caps: noPT,
			modes: func() []seqMode {
				ms := seqReadModes()
				i := modeIndex(ms, "noop")
				noop := ms[i].mount
				ms[i].mount = func(ctx context.Context, env *Env, req mountRequest) (daemon, string, error) {
					req.size /= 2
					return noop(ctx, env, req)
				}
				return ms
			},
			wantStatus:  results.Error,
			wantMetrics: []string{"native_mbps"},
			wantReason:  "noop: read 4194304 bytes, want 8388608",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.caps == caps && !caps.Passthrough {
				t.Skip("this kernel does not offer FUSE_PASSTHROUGH")
			}
			env := testEnv(t)
			env.Capabilities = tc.caps
			modes := seqReadModes()
			if tc.modes != nil {
				modes = tc.modes()
			}
			r := seqReadWith(context.Background(), env, modes)
			assert.Equal(t, r.Status, tc.wantStatus, r.Reason)
			assert.Check(t, is.Contains(r.Reason, tc.wantReason))
			var got []string
			for k, v := range r.Metrics {
				assert.Check(t, v > 0, "%s = %v", k, v)
				got = append(got, k)
			}
			slices.Sort(got)
			slices.Sort(tc.wantMetrics)
			assert.Check(t, is.DeepEqual(got, tc.wantMetrics))
			for k, v := range tc.wantFacts {
				assert.Check(t, is.Equal(r.Facts[k], v), "fact %s", k)
			}
		})
	}
}
