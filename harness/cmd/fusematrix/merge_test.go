package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"
)

// The two shards of testdata/merge are halves of one real run of the
// default matrix, the second made on another host.
var (
	shardA = filepath.Join("testdata", "merge", "a")
	shardB = filepath.Join("testdata", "merge", "b")
)

// merge joins shards into one folder: results.json and junit.xml as one
// run would have written them (golden), every console log copied, a name
// two shards share kept apart, and each kernel's console_log following.
func TestMerge(t *testing.T) {
	out := filepath.Join(t.TempDir(), "merged")
	code, text := fusematrix(t, "merge", "-out", out, shardA, filepath.Join(shardB, "results.json"))
	assert.Equal(t, code, 0, text)
	assert.Check(t, is.Contains(text, "merged 2 runs: 2 kernels, 40 results (27 pass, 0 fail, 13 skip, 0 error)"))

	for _, name := range []string{"results.json", "junit.xml"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		assert.NilError(t, err)
		golden.Assert(t, string(b), filepath.Join("merge", "merged."+name+".golden"))
	}
	run := readRun(t, out)
	assert.Equal(t, run.Kernels[0].Name, "debian:6.1/cloud@bookworm", "kernels in version order")
	assert.Equal(t, run.Kernels[0].ConsoleLog, "01-debian-6.1-cloud-bookworm.console.log")
	assert.Equal(t, run.Kernels[1].ConsoleLog, "01-debian-6.12-cloud-bookworm.console.log")
	for name, want := range map[string]string{
		"01-debian-6.1-cloud-bookworm.console.log":  "Linux version 6.1.0-57",
		"01-debian-6.12-cloud-bookworm.console.log": "Linux version 6.12.118",
		"00-extra.kvm.console.log":                  "kvm attempt of shard a",
		"shard2-00-extra.kvm.console.log":           "kvm attempt of shard b",
	} {
		b, err := os.ReadFile(filepath.Join(out, name))
		assert.Check(t, err)
		assert.Check(t, is.Contains(string(b), want), name)
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(html), "debian:6.1/cloud@bookworm"))
	assert.Check(t, is.Contains(string(html), "debian:6.12/cloud@bookworm"))

	// The merged run compares with itself as any run does, and caps reads it.
	code, text = fusematrix(t, "compare", out, out)
	assert.Equal(t, code, 0, text)
	code, text = fusematrix(t, "caps", "-from", filepath.Join(out, "results.json"))
	assert.Equal(t, code, 0, text)

	// Merging into a folder that holds something is refused.
	code, text = fusematrix(t, "merge", "-out", out, shardA, shardB)
	assert.Equal(t, code, 2, text)
	assert.Check(t, is.Contains(text, "is not empty: give a new folder"))
}

// Input merge cannot join is a usage error: exit 2, a message naming the
// cause, and no output folder at all (nothing written half).
func TestMergeBadInput(t *testing.T) {
	bad := func(name string) string { return filepath.Join("testdata", "compare", name) }
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"truncated JSON", []string{shardA, bad("truncated.json")}, "read run testdata/compare/truncated.json: not a fusematrix run: unexpected end of JSON input"},
		{"future schema", []string{bad("future-schema.json"), shardB}, "fusematrix run of schema 2; this fusematrix reads schema 1"},
		{"same kernel twice", []string{shardA, shardB, shardA}, `kernel "debian:6.12/cloud@bookworm" is in both testdata/merge/a/results.json and testdata/merge/a/results.json: shards must not overlap`},
		{"folder without results", []string{shardA, t.TempDir()}, "results.json: no such file or directory"},
		{"nothing", nil, "fusematrix merge: no runs given"},
		{"same id twice", []string{shardA, hostileRuns(t).dup}, `result "fuse-init" appears more than once`},
		{"a FIFO", []string{hostileRuns(t).fifo, shardA}, "results.json: not a regular file (a named pipe)"},
		{"a cell's min above its max", []string{hostileRuns(t).minAboveMax}, hostileCell + `: metric "mbps_min": 1801 is above "mbps_max"`},
		{"negative MB/s", []string{hostileRuns(t).negative}, hostileCell + `: metric "mbps_min": -1600 is negative`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "merged")
			code, text := fusematrix(t, append([]string{"merge", "-out", out}, tc.args...)...)
			assert.Equal(t, code, 2, text)
			assert.Check(t, is.Contains(text, tc.want))
			_, err := os.Stat(out)
			assert.Check(t, os.IsNotExist(err), "the output folder exists")
			entries, err := os.ReadDir(filepath.Dir(out))
			assert.NilError(t, err)
			assert.Check(t, is.Len(entries, 0), "left behind: %v", entries)
		})
	}
}

// A shard's console log that is a symbolic link is not followed: a shard
// from another machine names no file of this one.
func TestMergeSymlinkedConsole(t *testing.T) {
	shard := t.TempDir()
	b, err := os.ReadFile(filepath.Join(shardA, "results.json"))
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(shard, "results.json"), b, 0o644))
	secret := filepath.Join(t.TempDir(), "secret")
	assert.NilError(t, os.WriteFile(secret, []byte("host secret"), 0o600))
	assert.NilError(t, os.Symlink(secret, filepath.Join(shard, "01-debian-6.12-cloud-bookworm.console.log")))

	out := filepath.Join(t.TempDir(), "merged")
	code, text := fusematrix(t, "merge", "-out", out, shard, shardB)
	assert.Equal(t, code, 0, text)
	run := readRun(t, out)
	assert.Equal(t, run.Kernels[1].ConsoleLog, "", "a console the shard did not hold as a file")
	entries, err := os.ReadDir(out)
	assert.NilError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(out, e.Name()))
		assert.NilError(t, err)
		assert.Check(t, !strings.Contains(string(b), "host secret"), e.Name())
	}
}
