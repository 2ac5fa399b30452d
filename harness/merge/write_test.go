package merge

import (
	"context"
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

// A console log gets its own name when free, else the first free one its
// shard's number makes; a shard's own files may hold any of those names
// (issue 21 row 13).
func TestFreeName(t *testing.T) {
	long := strings.Repeat("x", 250) + ".console.log"
	for _, tc := range []struct {
		name  string
		taken []string
		shard int
		want  string
	}{
		{"free", nil, 1, "k.console.log"},
		{"taken", []string{"k.console.log"}, 1, "shard2-k.console.log"},
		{"the shard-numbered name taken too", []string{"k.console.log", "shard2-k.console.log"}, 1, "shard2-2-k.console.log"},
		{"and the next", []string{"k.console.log", "shard2-k.console.log", "shard2-2-k.console.log"}, 1, "shard2-3-k.console.log"},
		{"another shard's number is free", []string{"k.console.log", "shard2-k.console.log"}, 2, "shard3-k.console.log"},
		{"too long with a prefix", []string{long}, 0, "shard1-console.log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			taken := map[string]bool{}
			for _, n := range tc.taken {
				taken[n] = true
			}
			name := "k.console.log"
			if tc.name == "too long with a prefix" {
				name = long
			}
			assert.Check(t, is.Equal(freeName(taken, tc.shard, name), tc.want))
		})
	}
}

// shardDir writes a one-kernel shard whose results.json names console
// log console, with files beside it.
func shardDir(t *testing.T, kernel, console string, files map[string]string) Shard {
	t.Helper()
	dir := t.TempDir()
	r := run("EPYC", time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC), kernel)
	r.Kernels[0].ConsoleLog = console
	b, err := json.Marshal(r)
	assert.NilError(t, err)
	path := filepath.Join(dir, "results.json")
	assert.NilError(t, os.WriteFile(path, b, 0o644))
	for name, text := range files {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
	}
	return Shard{Path: path, Run: r}
}

// Write puts the merged run, its reports and every console log in out,
// and says what it left out.
func TestWrite(t *testing.T) {
	shards := []Shard{
		shardDir(t, "debian:6.12/cloud", "k.console.log", map[string]string{"k.console.log": "a"}),
		shardDir(t, "debian:6.1/cloud", "k.console.log", map[string]string{"k.console.log": "b"}),
		shardDir(t, "debian:7.0/cloud", "absent.console.log", nil),
	}
	merged, err := Merge(shards)
	assert.NilError(t, err)
	out := filepath.Join(t.TempDir(), "merged")
	var warned []string
	assert.NilError(t, Write(context.Background(), out, shards, merged, func(s string) { warned = append(warned, s) }))

	entries, err := os.ReadDir(filepath.Dir(out))
	assert.NilError(t, err)
	assert.Check(t, is.Len(entries, 1), "only the merged folder: %v", entries)
	var names []string
	entries, err = os.ReadDir(out)
	assert.NilError(t, err)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Check(t, is.DeepEqual(names, []string{"junit.xml", "k.console.log", "report.html", "results.json", "shard2-k.console.log"}))
	got, err := results.ReadFile(out)
	assert.NilError(t, err)
	consoles := map[string]string{}
	for _, k := range got.Kernels {
		consoles[k.Name] = k.ConsoleLog
	}
	assert.Check(t, is.DeepEqual(consoles, map[string]string{
		"debian:6.1/cloud": "shard2-k.console.log", "debian:6.12/cloud": "k.console.log", "debian:7.0/cloud": "",
	}))
	assert.Check(t, is.DeepEqual(warned, []string{`kernel "debian:7.0/cloud": console log "absent.console.log" is not a plain file beside ` + shards[2].Path + ": not copied"}))

	// Into a folder that holds something: refused, nothing written.
	err = Write(context.Background(), out, shards, merged, func(string) {})
	assert.Check(t, is.ErrorContains(err, "is not empty: give a new folder"))
}

// A merge whose context ends writes nothing and leaves no staging folder.
func TestWriteCancelled(t *testing.T) {
	shards := []Shard{shardDir(t, "debian:6.12/cloud", "k.console.log", map[string]string{"k.console.log": "a"})}
	merged, err := Merge(shards)
	assert.NilError(t, err)
	parent := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = Write(ctx, filepath.Join(parent, "merged"), shards, merged, func(string) {})
	assert.Check(t, is.ErrorIs(err, context.Canceled))
	entries, err := os.ReadDir(parent)
	assert.NilError(t, err)
	assert.Check(t, is.Len(entries, 0), "left behind: %v", entries)
}

// A console log beyond MaxConsoleBytes is cut, and says so in the copy
// and to the caller.
func TestWriteCut(t *testing.T) {
	shard := shardDir(t, "debian:6.12/cloud", "k.console.log", nil)
	f, err := os.Create(filepath.Join(filepath.Dir(shard.Path), "k.console.log"))
	assert.NilError(t, err)
	assert.NilError(t, f.Truncate(MaxConsoleBytes+1)) // sparse
	assert.NilError(t, f.Close())
	merged, err := Merge([]Shard{shard})
	assert.NilError(t, err)
	out := filepath.Join(t.TempDir(), "merged")
	var warned []string
	assert.NilError(t, Write(context.Background(), out, []Shard{shard}, merged, func(s string) { warned = append(warned, s) }))
	assert.Check(t, is.DeepEqual(warned, []string{filepath.Join(filepath.Dir(shard.Path), "k.console.log") + ": cut at 64 MiB"}))
	st, err := os.Stat(filepath.Join(out, "k.console.log"))
	assert.NilError(t, err)
	tail := "\n[fusematrix merge: cut at 64 MiB]\n"
	assert.Check(t, is.Equal(st.Size(), int64(MaxConsoleBytes+len(tail))))
}
