package probe

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/internal/scentest"
)

// fakeTree lays out files (path relative to root → content; a name ending
// in "/" is an empty directory) and returns roots pointing into it.
func fakeTree(t *testing.T, files map[string]string) featureRoots {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if strings.HasSuffix(name, "/") {
			assert.NilError(t, os.MkdirAll(p, 0o755))
			continue
		}
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return featureRoots{sys: filepath.Join(root, "sys"), proc: filepath.Join(root, "proc"), dev: filepath.Join(root, "dev")}
}

func TestFuseFeaturesTrees(t *testing.T) {
	const procFilesystems = "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\tfuse\n"
	newKernel := map[string]string{
		"sys/module/fuse/parameters/enable_uring":           "Y\n",
		"sys/module/fuse/parameters/max_user_bgreq":         "7866\n",
		"sys/module/fuse/parameters/allow_sys_admin_access": "N\n",
		"proc/sys/fs/fuse/max_pages_limit":                  "256\n",
		"proc/sys/fs/fuse/default_request_timeout":          "0\n",
		"proc/filesystems":                                  procFilesystems + "nodev\tfusectl\nnodev\tvirtiofs\n",
		"dev/cuse":                                          "",
	}
	oldKernel := map[string]string{
		"sys/module/fuse/parameters/max_user_bgreq": "1234\n",
		"proc/filesystems":                          procFilesystems,
	}
	with := func(base map[string]string, extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			if v == "-" {
				delete(out, k)
				continue
			}
			out[k] = v
		}
		return out
	}
	uring := &results.Capabilities{InitFlags: []string{"init_ext", "over_io_uring", "request_timeout"}}
	plain := &results.Capabilities{InitFlags: []string{"init_ext"}}
	for _, tc := range []struct {
		name       string
		files      map[string]string
		caps       *results.Capabilities
		wantStatus results.Status
		wantReason string
		wantFacts  map[string]string
	}{
		{
			name: "new kernel", files: newKernel, caps: uring, wantStatus: results.Pass,
			wantFacts: map[string]string{
				"param.enable_uring": "Y", "param.max_user_bgreq": "7866", "param.allow_sys_admin_access": "N",
				"sysctl.max_pages_limit": "256", "sysctl.default_request_timeout": "0",
				"io_uring": "offered", "request_timeout": "offered",
				"virtiofs": "yes", "cuse": "yes", "fusectl": "yes",
			},
		},
		{
			name: "old kernel", files: oldKernel, caps: plain, wantStatus: results.Pass,
			wantFacts: map[string]string{
				"param.max_user_bgreq": "1234",
				"io_uring":             "absent", "request_timeout": "absent",
				"virtiofs": "no", "cuse": "no", "fusectl": "no",
			},
		},
		{
			name:  "io_uring built but switched off",
			files: with(newKernel, map[string]string{"sys/module/fuse/parameters/enable_uring": "N\n"}), caps: plain,
			wantStatus: results.Pass,
			wantFacts:  map[string]string{"param.enable_uring": "N", "io_uring": "disabled", "request_timeout": "absent"},
		},
		{
			name:  "modules instead of file systems",
			files: with(oldKernel, map[string]string{"sys/module/virtiofs/": "", "sys/module/cuse/": ""}), caps: plain,
			wantStatus: results.Pass,
			wantFacts:  map[string]string{"virtiofs": "yes", "cuse": "yes", "fusectl": "no"},
		},
		{
			name: "no capabilities", files: oldKernel, caps: nil, wantStatus: results.Pass,
			wantReason: "fuse-init did not report what the kernel offers",
			wantFacts:  map[string]string{"io_uring": "unknown", "request_timeout": "unknown", "param.max_user_bgreq": "1234"},
		},
		{
			name:  "long value",
			files: with(oldKernel, map[string]string{"sys/module/fuse/parameters/odd": strings.Repeat("é", 200) + "\n"}), caps: plain,
			wantStatus: results.Pass,
			wantFacts:  map[string]string{"param.odd": strings.Repeat("é", 128)},
		},
		{
			name: "no /proc/filesystems", files: with(oldKernel, map[string]string{"proc/filesystems": "-"}), caps: plain,
			wantStatus: results.Error,
			wantReason: "file systems: open ",
			wantFacts:  map[string]string{"param.max_user_bgreq": "1234"},
		},
		{
			name:       "parameters not a directory",
			files:      map[string]string{"sys/module/fuse/parameters": "", "proc/filesystems": procFilesystems},
			caps:       plain,
			wantStatus: results.Error,
			wantReason: "parameters: not a directory",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := scentest.Env(t)
			env.Capabilities = tc.caps
			r := fuseFeaturesIn(env, fakeTree(t, tc.files))
			assert.Equal(t, r.Status, tc.wantStatus, r.Reason)
			if tc.wantReason == "" {
				assert.Check(t, is.Equal(r.Reason, ""))
			}
			assert.Check(t, is.Contains(r.Reason, tc.wantReason))
			for k, v := range tc.wantFacts {
				assert.Check(t, is.Equal(r.Facts[k], v), "fact %s", k)
			}
			for k, v := range r.Facts {
				assert.Check(t, len(v) <= maxFactBytes, "fact %s: %d bytes", k, len(v))
			}
		})
	}
}

// TestFuseFeatures runs the probe on this machine and checks it against
// what the kernel says elsewhere.
func TestFuseFeatures(t *testing.T) {
	caps := hostCapabilities(t)
	env := scentest.Env(t)
	env.Capabilities = caps
	r := scenarios.Run(context.Background(), fuseFeaturesProbe, env)
	assert.Equal(t, r.Status, results.Pass, r.Reason)
	t.Logf("facts: %v", r.Facts)

	// The same limit fuse-init put into the capabilities.
	if caps.MaxPagesLimit != 0 {
		assert.Check(t, is.Equal(r.Facts["sysctl.max_pages_limit"], fmt.Sprint(caps.MaxPagesLimit)))
	}
	// The INIT request (fuse_send_init in fs/fuse/inode.c, fuse_new_init
	// from 6.18) offers FUSE_OVER_IO_URING only while fuse_uring_enabled(),
	// i.e. while the enable_uring parameter is on.
	if v, ok := r.Facts["param.enable_uring"]; ok {
		want := map[string]string{"Y": "offered", "N": "disabled"}[v]
		assert.Check(t, is.Equal(r.Facts["io_uring"], want))
	} else {
		assert.Check(t, is.Equal(r.Facts["io_uring"], "absent"))
	}
	// The same function offers FUSE_REQUEST_TIMEOUT unconditionally from
	// 6.14, which also brought the request-timeout sysctls.
	if scentest.KernelAtLeast(t, 6, 14) {
		assert.Check(t, is.Equal(r.Facts["request_timeout"], "offered"))
		_, ok := r.Facts["sysctl.max_request_timeout"]
		assert.Check(t, ok, "no sysctl.max_request_timeout: %v", r.Facts)
	}
	// The connections directory exists only where fusectl is mounted,
	// which needs the file system registered.
	if _, err := os.Stat("/sys/fs/fuse/connections"); err == nil {
		assert.Check(t, is.Equal(r.Facts["fusectl"], "yes"))
	}
	for _, k := range []string{"virtiofs", "cuse", "fusectl"} {
		assert.Check(t, r.Facts[k] == "yes" || r.Facts[k] == "no", "%s = %q", k, r.Facts[k])
	}
}
