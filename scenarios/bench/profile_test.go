package bench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/pprof/profile"
	"gotest.tools/v3/assert"
)

// testProfile is a CPU profile of 100 ms in three stacks: a syscall under
// the server loop (60 ms), a memmove inlined into readRequest (30 ms), and
// the loop calling itself (10 ms), which counts once towards its
// cumulative share.
func testProfile() *profile.Profile {
	fn := map[string]*profile.Function{}
	var fns []*profile.Function
	for i, n := range []string{"syscall.Syscall6", "fuse.(*Server).loop", "runtime.goexit", "runtime.memmove", "fuse.readRequest"} {
		f := &profile.Function{ID: uint64(i + 1), Name: n}
		fn[n] = f
		fns = append(fns, f)
	}
	loc := func(id uint64, names ...string) *profile.Location {
		l := &profile.Location{ID: id, Address: 0x1000 * id}
		for _, n := range names {
			l.Line = append(l.Line, profile.Line{Function: fn[n]})
		}
		return l
	}
	sys, loop, exit := loc(1, "syscall.Syscall6"), loc(2, "fuse.(*Server).loop"), loc(3, "runtime.goexit")
	inlined := loc(4, "runtime.memmove", "fuse.readRequest")
	const ms = 1e6
	return &profile.Profile{
		SampleType:    []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType:    &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:        10 * ms,
		DurationNanos: 1e9,
		Function:      fns,
		Location:      []*profile.Location{sys, loop, exit, inlined},
		Sample: []*profile.Sample{
			{Location: []*profile.Location{sys, loop, exit}, Value: []int64{6, 60 * ms}},
			{Location: []*profile.Location{inlined, loop}, Value: []int64{3, 30 * ms}},
			{Location: []*profile.Location{loop, loop}, Value: []int64{1, 10 * ms}},
		},
	}
}

func TestSummarizeProfile(t *testing.T) {
	for _, tc := range []struct {
		name string
		top  int
		want []string
	}{
		{name: "top 3", top: 3, want: []string{
			"profile: 1 server processes, 10 samples, 0.10 s of server CPU in 1.00 s of server lifetime",
			"profile:  60.0% flat ( 60.0% cum) syscall.Syscall6",
			"profile:  30.0% flat ( 30.0% cum) runtime.memmove",
			"profile:  10.0% flat (100.0% cum) fuse.(*Server).loop",
			"profile: 100.0% cum ( 10.0% flat) fuse.(*Server).loop",
			"profile:  60.0% cum (  0.0% flat) runtime.goexit",
			"profile:  60.0% cum ( 60.0% flat) syscall.Syscall6",
		}},
		{name: "top 1", top: 1, want: []string{
			"profile: 1 server processes, 10 samples, 0.10 s of server CPU in 1.00 s of server lifetime",
			"profile:  60.0% flat ( 60.0% cum) syscall.Syscall6",
			"profile: 100.0% cum ( 10.0% flat) fuse.(*Server).loop",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, summarizeProfile(testProfile(), 1, tc.top), tc.want)
		})
	}
	t.Run("no samples", func(t *testing.T) {
		p := testProfile()
		p.Sample = nil
		assert.DeepEqual(t, summarizeProfile(p, 1, 3), []string{
			"profile: 1 server processes, 0 samples, 0.00 s of server CPU in 1.00 s of server lifetime",
		})
	})
}

// TestProfileSummary merges profiles written to files, as the servers
// write them: shares stay, CPU time and lifetime add up.
func TestProfileSummary(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for _, name := range []string{"cpu-1.pprof", "cpu-2.pprof"} {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		assert.NilError(t, err)
		assert.NilError(t, testProfile().Write(f))
		assert.NilError(t, f.Close())
		paths = append(paths, path)
	}
	got, err := profileSummary(paths, 1)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []string{
		"profile: 2 server processes, 20 samples, 0.20 s of server CPU in 2.00 s of server lifetime",
		"profile:  60.0% flat ( 60.0% cum) syscall.Syscall6",
		"profile: 100.0% cum ( 10.0% flat) fuse.(*Server).loop",
	})

	assert.NilError(t, os.WriteFile(paths[1], []byte("not a profile"), 0o644))
	_, err = profileSummary(paths, 1)
	assert.ErrorContains(t, err, "cpu-2.pprof")
}
