package probe

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios/internal/scentest"
)

// hostCapabilities runs the fuse-init probe on this machine.
func hostCapabilities(t *testing.T) *results.Capabilities {
	t.Helper()
	return scentest.Capabilities(t, All())
}

func needPassthrough(t *testing.T) *results.Capabilities {
	t.Helper()
	caps := hostCapabilities(t)
	scentest.NeedPassthrough(t, caps)
	return caps
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
	if scentest.KernelAtLeast(t, 6, 13) {
		assert.Check(t, is.Equal(caps.MaxPagesLimit, uint32(256)))
	}
}

// TestFuseInitUnreadableLimit shows that a sysctl that cannot be read
// costs the fact, not the capabilities.
func TestFuseInitUnreadableLimit(t *testing.T) {
	scentest.NeedMount(t)
	env := scentest.Env(t)
	r := fuseInitWith(context.Background(), env, t.TempDir())
	assert.Equal(t, r.Status, results.Pass, r.Reason)
	assert.Check(t, is.Equal(r.Facts["max_pages_limit"], "unreadable"))
	assert.Check(t, is.Contains(r.Reason, "is a directory"))
	assert.Assert(t, env.Capabilities != nil)
	assert.Check(t, is.Equal(env.Capabilities.MaxPagesLimit, uint32(0)))
}
