package probe

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/internal/scentest"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// runRequests runs the requests probe on this machine, its caches left
// alone (drop_caches is a file of the test's).
func runRequests(t *testing.T, caps *results.Capabilities) results.Result {
	t.Helper()
	env := scentest.Env(t)
	env.Capabilities = caps
	r := requestsWith(context.Background(), env, filepath.Join(t.TempDir(), "drop_caches"))
	assert.Assert(t, is.Equal(r.Status, results.Pass), r.Reason)
	return r
}

// TestRequestsOnHost runs the workload twice on this machine's kernel:
// every fact the contract names for the modes that ran is there, both
// runs agree, and a server that answers xattr requests is asked for
// security.capability on every write, one that answers ENOSYS once.
func TestRequestsOnHost(t *testing.T) {
	caps := hostCapabilities(t)
	first, second := runRequests(t, caps), runRequests(t, caps)
	for _, k := range slices.Sorted(maps.Keys(first.Facts)) {
		t.Logf("%s = %s", k, first.Facts[k])
	}
	// The host is shared with the other packages' tests, which go test
	// runs beside this one: a request delayed past an operation's quiet
	// period under that load has once been counted with the next one.
	// A third run then settles it, each fact agreeing with one of the
	// first two; the strict claim (two runs, every fact equal) is the
	// guest's, where nothing else runs (harness TestRequestsProbeBoots).
	var third results.Result
	if !maps.Equal(first.Facts, second.Facts) {
		third = runRequests(t, caps)
		for k := range first.Facts {
			if first.Facts[k] != second.Facts[k] {
				t.Logf("fact %s differs between two runs: %q, %q; a third run: %q", k, first.Facts[k], second.Facts[k], third.Facts[k])
			}
		}
	}
	for k, v := range first.Facts {
		assert.Check(t, slices.Contains(contract.ProbeFacts[contract.Requests], contract.Fact(k)), "fact %s not in the contract", k)
		if third.Facts == nil {
			continue
		}
		w := second.Facts[k]
		assert.Check(t, v == w || third.Facts[k] == v || third.Facts[k] == w, "fact %s differs in three runs: %q, %q, %q", k, v, w, third.Facts[k])
	}
	assert.Check(t, is.Equal(len(second.Facts), len(first.Facts)))
	modes := []string{"classic", "classic_noxattr"}
	if caps.Passthrough {
		modes = append(modes, "passthrough", "passthrough_noxattr")
	}
	for _, mode := range modes {
		ops := contract.RequestOps
		if mode != "classic" && mode != "passthrough" {
			ops = contract.RequestNoXattrOps
		}
		for _, op := range ops {
			for _, f := range contract.RequestPhaseFacts(op, mode) {
				assert.Check(t, first.Facts[string(f)] != "", "no fact %s", f)
			}
		}
	}
	// The value two runs agree on.
	f := func(name string) string {
		if v := first.Facts[name]; v == second.Facts[name] || third.Facts[name] == v {
			return v
		}
		return second.Facts[name]
	}
	assert.Check(t, is.Equal(f("write_4k_classic.opcodes"), "WRITE:4,GETXATTR:4"))
	assert.Check(t, is.Equal(f("write_4k_classic_noxattr.opcodes"), "WRITE:4,GETXATTR:1"))
	assert.Check(t, is.Equal(f("open_close_classic.opcodes"), "OPEN:1,RELEASE:1,FLUSH:1"))
	assert.Check(t, is.Equal(f("interrupt"), "sent"))
	assert.Check(t, is.Equal(f("notify_reply"), "sent"))
	if caps.Passthrough {
		assert.Check(t, is.Equal(f("write_4k_passthrough.opcodes"), "GETXATTR:4"))
		assert.Check(t, is.Equal(f("write_4k_passthrough_noxattr.opcodes"), "GETXATTR:1"))
		assert.Check(t, is.Equal(f("seq_read_passthrough.opcodes"), "none"))
	}
}

// TestRequestFacts turns recorded requests into facts, without a mount.
func TestRequestFacts(t *testing.T) {
	reqs := []wire.Request{
		{Op: opOpen, Len: 48, Flags: 0x8001},
		{Op: opGetxattr, Len: 60},
		{Op: opWrite, Len: 4176, Size: 4096, Flags: 4},
		{Op: opGetxattr, Len: 60},
		{Op: opWrite, Len: 131152, Size: 131072, Flags: 1},
		{Op: opForget, Len: 48, Nodes: 1},
		{Op: opInterrupt, Len: 48},
		{Op: opRead, Len: 80, Size: 16384},
		{Op: opReaddirplus, Len: 80, Size: 65536},
		{Op: opGetattr, Len: 56, Flags: 1},
	}
	for _, tc := range []struct {
		op   string
		want map[string]string
	}{
		{op: "write_4k", want: map[string]string{
			"write_4k_classic.opcodes":     "GETATTR:1,OPEN:1,READ:1,WRITE:2,GETXATTR:2,READDIRPLUS:1",
			"write_4k_classic.write_flags": "FUSE_WRITE_CACHE|FUSE_WRITE_KILL_SUIDGID",
		}},
		{op: "open_close", want: map[string]string{
			"open_close_classic.opcodes":    "GETATTR:1,OPEN:1,READ:1,WRITE:2,GETXATTR:2,READDIRPLUS:1",
			"open_close_classic.open_flags": "O_WRONLY|O_LARGEFILE",
		}},
		{op: "stat_after_write", want: map[string]string{
			"stat_after_write_classic.opcodes":       "GETATTR:1,OPEN:1,READ:1,WRITE:2,GETXATTR:2,READDIRPLUS:1",
			"stat_after_write_classic.getattr_flags": "FUSE_GETATTR_FH",
		}},
	} {
		assert.Check(t, is.DeepEqual(phaseFacts(tc.op, "classic", reqs), tc.want))
	}
	assert.Check(t, is.DeepEqual(phaseFacts("fsync", "passthrough", []wire.Request{{Op: opForget, Nodes: 1}, {Op: opInterrupt}}),
		map[string]string{"fsync_passthrough.opcodes": "none"}), "forgets and interrupts are not the operation's")
	assert.Check(t, is.DeepEqual(sizeFacts(reqs), map[string]string{
		"read_size_min": "16384", "read_size_max": "16384", "write_size_min": "4096", "write_size_max": "131072",
		"readdir_size": "0", "readdirplus_size": "65536", "request_max": "131152", "used.max_pages": "32",
	}))
	assert.Check(t, is.Equal(flagText(0, openFlagNames), "none"))
	assert.Check(t, is.Equal(flagText(0x80000000|0x8000, openFlagNames), "O_LARGEFILE|0x80000000"))
}

// A mode whose mount wedges (a request its server never answers) is
// abandoned at its limit and run once more on a fresh mount; the facts
// are the second attempt's, and a note says so. A second wedge is the
// probe's error.
func TestRequestModeRetried(t *testing.T) {
	limit, run := reqModeLimit, runMode
	t.Cleanup(func() { reqModeLimit, runMode = limit, run })
	reqModeLimit = 50 * time.Millisecond
	var dirs []string
	wedges := 1
	runMode = func(ctx context.Context, env *scenarios.Env, mode, _ string, facts map[string]string) ([]string, error) {
		dirs = append(dirs, env.Dir)
		if len(dirs) <= wedges {
			<-ctx.Done()
			return nil, fmt.Errorf("%s: %w", mode, ctx.Err())
		}
		facts["x"] = "second"
		return []string{"fine"}, nil
	}
	env := scentest.Env(t)
	facts := map[string]string{}
	notes, err := runModeBounded(context.Background(), env, "classic", "", facts)
	assert.NilError(t, err)
	assert.DeepEqual(t, facts, map[string]string{"x": "second"})
	assert.Assert(t, is.Len(notes, 2))
	assert.Check(t, is.Contains(notes[0], "classic: abandoned after 50ms"))
	assert.Check(t, dirs[0] != dirs[1], "a fresh directory for the second attempt")

	dirs, wedges = nil, 2
	_, err = runModeBounded(context.Background(), env, "classic", "", map[string]string{})
	assert.Check(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	assert.Check(t, is.Len(dirs, 2), "run twice at most")
}

// A mode that comes back after its limit is abandoned whether it failed
// or only noted what its last steps could not do: its mount was aborted
// under them, so its facts are not the kernel's.
func TestRequestModeOutOfTime(t *testing.T) {
	limit, run := reqModeLimit, runMode
	t.Cleanup(func() { reqModeLimit, runMode = limit, run })
	reqModeLimit = 50 * time.Millisecond
	for _, tc := range []struct {
		name string
		err  error // what the first attempt returns after its limit
	}{
		{name: "failed", err: errors.New("write: software caused connection abort")},
		{name: "only noted", err: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attempts := 0
			runMode = func(ctx context.Context, env *scenarios.Env, mode, _ string, facts map[string]string) ([]string, error) {
				attempts++
				if attempts == 1 {
					<-ctx.Done()
					facts["forget_nodes"] = "0"
					return []string{"forget: " + ctx.Err().Error()}, tc.err
				}
				facts["forget_nodes"] = "12"
				return nil, nil
			}
			facts := map[string]string{}
			notes, err := runModeBounded(context.Background(), scentest.Env(t), "classic", "", facts)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(attempts, 2))
			assert.Check(t, is.DeepEqual(facts, map[string]string{"forget_nodes": "12"}))
			assert.Assert(t, is.Len(notes, 1))
			assert.Check(t, is.Contains(notes[0], "classic: abandoned after 50ms"))
		})
	}
}

// The report a mode that ran out of time carries names what its mount
// waited for: nothing on a quiet mount, and a GETXATTR the server holds
// (wire.HoldXattr, never interrupted here) by opcode, unique and node,
// with the kernel's count of waiting requests.
func TestWedgeReport(t *testing.T) {
	scentest.NeedMount(t)
	for _, tc := range []struct {
		name string
		hold bool
		want []string
	}{
		{name: "quiet", want: []string{"no request read and left unanswered"}},
		{name: "held", hold: true, want: []string{"unanswered: GETXATTR (unique ", ", node ", " before", "; the kernel counted "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
			for _, d := range []string{backing, mnt} {
				assert.NilError(t, os.Mkdir(d, 0o755))
			}
			assert.NilError(t, os.WriteFile(filepath.Join(backing, reqFile), nil, 0o644))
			rec := &wire.Recorder{}
			m, err := loopback.Mount(context.Background(), mnt, backing, wire.Options{Record: rec, Logf: t.Logf})
			assert.NilError(t, err)
			defer func() { assert.Check(t, m.Unmount()) }()
			rm := &reqMount{m: m, rec: rec}
			assert.NilError(t, rm.settle(context.Background(), 0))
			done := make(chan struct{})
			if tc.hold {
				mark := rec.Len()
				go func() {
					defer close(done)
					_, _ = unix.Getxattr(rm.path(reqFile), wire.HoldXattr, make([]byte, 64))
				}()
				for deadline := time.Now().Add(reqSettle); count(rec.Since(mark), opGetxattr) == 0 && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
			} else {
				close(done)
			}
			report := wedgeReport(m, mnt)
			for _, w := range tc.want {
				assert.Check(t, is.Contains(report, w))
			}
			<-done
		})
	}
}
