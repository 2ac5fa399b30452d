package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
)

// capsRun is a finished run as `fusematrix caps` writes it: one kernel
// whose passthrough works, one whose config promises passthrough it does
// not offer.
func capsRun() results.Run {
	started := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	exp := func(name string, s results.Status, e, o, b string) results.Result {
		return results.Result{ID: "expect/" + name, Kind: results.Expectation, Status: s,
			Facts: map[string]string{"expected": e, "observed": o, "basis": b}}
	}
	return results.Run{
		Schema: results.SchemaVersion, Started: started, Finished: started.Add(time.Minute),
		Host: results.Host{CPUs: 2, Jobs: 1, Accel: "tcg"},
		Kernels: []results.Kernel{
			{
				Name: "debian:6.12/cloud", Release: "6.12.117+deb12-cloud-amd64", Accel: "tcg", Status: results.Pass,
				Config:       map[string]string{"CONFIG_FUSE_FS": "y", "CONFIG_FUSE_PASSTHROUGH": "y"},
				Capabilities: &results.Capabilities{FuseMajor: 7, FuseMinor: 41, Passthrough: true, PassthroughABI: "upstream"},
				Results: []results.Result{
					{ID: "passthrough-ioctl", Kind: results.Probe, Status: results.Pass,
						Facts: map[string]string{"negotiated": "yes", "backing_open": "ok", "bad_fd": "EBADF"}},
					exp("passthrough-offered", results.Pass, "offered", "offered", "CONFIG_FUSE_PASSTHROUGH=y"),
				},
			},
			{
				Name: "./custom-bzImage", Release: "6.12.9", Accel: "tcg", Status: results.Pass,
				Config:       map[string]string{"CONFIG_FUSE_FS": "y", "CONFIG_FUSE_PASSTHROUGH": "y"},
				Capabilities: &results.Capabilities{FuseMajor: 7, FuseMinor: 41},
				Results: []results.Result{
					exp("passthrough-offered", results.Fail, "offered", "not offered", "CONFIG_FUSE_PASSTHROUGH=y"),
				},
			},
		},
	}
}

func writeJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	assert.NilError(t, err)
	p := filepath.Join(t.TempDir(), "results.json")
	assert.NilError(t, os.WriteFile(p, b, 0o644))
	return p
}

// caps -from renders an earlier run without booting anything, in every
// format.
func TestCapsFrom(t *testing.T) {
	path := writeJSON(t, capsRun())

	code, out := fusematrix(t, "caps", "-from", path)
	assert.Equal(t, code, 0, out)
	for _, want := range []string{"CONFIG_FUSE_PASSTHROUGH", "debian:6.12/cloud", "1/1 ok", "1 FAIL", "EBADF",
		"./custom-bzImage / expect/passthrough-offered: fail: expected offered, observed not offered"} {
		assert.Check(t, is.Contains(out, want))
	}

	code, out = fusematrix(t, "caps", "-format", "markdown", "-from", path)
	assert.Equal(t, code, 0, out)
	assert.Check(t, strings.HasPrefix(out, "### fusematrix caps\n"), out)
	assert.Check(t, is.Contains(out, "| **1 FAIL** |"))

	code, out = fusematrix(t, "caps", "-format", "json", "-q", "-from", path)
	assert.Equal(t, code, 0, out)
	var doc struct {
		Kernels []struct {
			Name  string
			Facts map[string]map[string]string
		}
	}
	assert.NilError(t, json.Unmarshal([]byte(out), &doc), out)
	assert.Equal(t, len(doc.Kernels), 2)
	assert.Equal(t, doc.Kernels[0].Facts["passthrough-ioctl"]["backing_open"], "ok")
}

// A file that is not a fusematrix run of this schema is refused with a
// reason, and so are flags that only matter when booting.
func TestCapsFromRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	huge := filepath.Join(dir, "huge.json")
	f, err := os.Create(huge)
	assert.NilError(t, err)
	assert.NilError(t, f.Truncate(results.MaxFileBytes+1)) // sparse: no 64 MiB written
	assert.NilError(t, f.Close())
	future := capsRun()
	future.Schema = results.SchemaVersion + 1
	badStatus := capsRun()
	badStatus.Kernels[1].Results[0].Status = "meh"
	good := writeJSON(t, capsRun())

	for _, tc := range []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"missing file", []string{"-from", filepath.Join(dir, "nope.json")}, 2, "no such file"},
		{"directory", []string{"-from", dir}, 2, "results.json: no such file"},
		{"too large", []string{"-from", huge}, 2, "larger than 64 MiB"},
		{"not json", []string{"-from", write("text.json", "hello")}, 2, "not a fusematrix run"},
		{"other json", []string{"-from", write("other.json", `{"name":"x"}`)}, 2, "not a fusematrix run: no schema or no kernels"},
		{"trailing garbage", []string{"-from", write("trail.json", `{"schema":1,"kernels":[]} {}`)}, 2, "not a fusematrix run"},
		{"wrong types", []string{"-from", write("types.json", `{"schema":1,"kernels":[{"name":3}]}`)}, 2, "not a fusematrix run of schema 1"},
		{"newer schema", []string{"-from", writeJSON(t, future)}, 2, "fusematrix run of schema 2; this fusematrix reads schema 1"},
		{"unknown status", []string{"-from", writeJSON(t, badStatus)}, 2, `unknown status "meh"`},
		{"kernels with -from", []string{"-from", good, "debian:6.1/cloud"}, 2, "debian:6.1/cloud would have no effect"},
		{"boot flags with -from", []string{"-j", "2", "-from", good}, 2, "-j would have no effect"},
		{"unknown format", []string{"-format", "yaml", "-from", good}, 2, `-format "yaml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := fusematrix(t, append([]string{"caps"}, tc.args...)...)
			assert.Equal(t, code, tc.code, out)
			assert.Check(t, is.Contains(out, tc.err))
		})
	}
}

func TestCapsUsage(t *testing.T) {
	code, out := fusematrix(t, "help")
	assert.Equal(t, code, 0)
	assert.Check(t, is.Contains(out, "caps -from results.json"))
	code, out = fusematrix(t, "caps", "-h")
	assert.Equal(t, code, 2)
	for _, flag := range []string{"-from", "-format", "-out", "-accel", "-mirror"} {
		assert.Check(t, is.Contains(out, flag))
	}
	assert.Check(t, !strings.Contains(out, "-bench-mib"), "caps runs no benchmarks")
}
