package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/harness/bisect"
	"github.com/fusematrix/fusematrix/kernels"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

func TestBisectUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bisect"}, "no predicate"},
		{[]string{"bisect", "-good", "debian:6.1", "pt/integrity=fail"}, "-good and -bad are required"},
		{[]string{"bisect", "-good", "a", "-bad", "b", "pt/integrty=fail"}, `no check has the id "pt/integrty"`},
		{[]string{"bisect", "-good", "a", "-bad", "b", "passthrough-ioctl.o_pth=ok"}, `passthrough-ioctl reports no fact "o_pth"`},
		{[]string{"bisect", "-good", "a", "-bad", "b", "pt/integrity"}, "no comparison"},
		{[]string{"bisect", "-good", "a", "-bad", "b", "-repeat", "0", "pt/integrity=fail"}, "-repeat from 1 to 100"},
		{[]string{"bisect", "-good", "a", "-bad", "b", "pt/integrity=fail", "pt/fsync=fail"}, "one predicate"},
		// Issue 21 row 5: each was accepted, and the run booted both ends
		// before it could only answer "old" everywhere (exit 1).
		{[]string{"bisect", "-good", "a", "-bad", "b", "fuse-init.protocol=>7.41"}, `the value ">7.41" after = starts with an operator character`},
		{[]string{"bisect", "-good", "a", "-bad", "b", "bench/read/passthrough/131072:no_such_metric<0.8"}, `reports no metric "no_such_metric"`},
		{[]string{"bisect", "-good", "a", "-bad", "b", "bench/read/passthrough/131072:ratio_native<NaN"}, `"NaN" is not a finite number`},
		{[]string{"bisect", "-good", "a", "-bad", "b", "bench/read/passthrough/131072:ratio_native<Inf"}, `"Inf" is not a finite number`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out := fusematrix(t, append(tc.args[:1:1], append([]string{"-q"}, tc.args[1:]...)...)...)
			assert.Equal(t, code, 2, out)
			assert.Check(t, is.Contains(out, tc.want))
		})
	}
	code, out := fusematrix(t, "bisect", "run", "-kernel", "x", "nonsense")
	assert.Equal(t, code, 128, "git bisect run's abort: %s", out)
}

// A packaged-version bisection between the default matrix's kernels,
// 6.1 (no passthrough) and 6.12 (passthrough offered), names the first
// 6.12 build the suites carry and the 6.1 build before it; a resumed run
// boots nothing again; bisect run answers git's way.
func TestBisectPackaged(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU guests with kernels from the Debian mirror; run without -short")
	}
	const good, bad, pred = "debian:6.1/cloud@bookworm", "debian:6.12/cloud@bookworm", "fuse-init.passthrough=offered"
	history, err := kernels.History(context.Background(), good, bad, kernels.Options{})
	assert.NilError(t, err)
	assert.Assert(t, len(history) >= 2)
	out := t.TempDir()
	code, text := fusematrix(t, "bisect", "-accel", "tcg", "-out", out, "-good", good, "-bad", bad, pred)
	assert.Equal(t, code, 0, text)
	r := readBisect(t, out)
	assert.Equal(t, r.Outcome, "found")
	assert.Equal(t, r.LastOld.Selector, history[0].Selector)
	assert.Equal(t, r.FirstNew.Selector, history[1].Selector, "every 6.12 build offers passthrough: the first is the answer")
	assert.Check(t, strings.HasPrefix(r.LastOld.Release, "6.1."), r.LastOld.Release)
	assert.Check(t, strings.HasPrefix(r.FirstNew.Release, "6.12."), r.FirstNew.Release)
	assert.Check(t, is.Equal(r.Certainty, "exact"))
	assert.Check(t, len(r.Steps) <= bisect.Boots(len(history))+1, "%d steps for %d candidates", len(r.Steps), len(history))
	for _, st := range r.Steps {
		assert.Check(t, is.Contains(st.Command, "fusematrix matrix -run '^fuse-init$'"))
		assert.Check(t, st.Runs[0].Results != "")
	}
	md, err := os.ReadFile(filepath.Join(out, "bisect.md"))
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(md), r.FirstNew.Selector))

	steps, err := os.ReadDir(filepath.Join(out, "steps"))
	assert.NilError(t, err)
	code, text = fusematrix(t, "bisect", "-accel", "tcg", "-out", out, "-resume", "-good", good, "-bad", bad, pred)
	assert.Equal(t, code, 0, text)
	again, err := os.ReadDir(filepath.Join(out, "steps"))
	assert.NilError(t, err)
	assert.Check(t, is.Len(again, len(steps)), "a resumed bisection boots no step again")
	assert.Check(t, is.Equal(readBisect(t, out).FirstNew.Selector, r.FirstNew.Selector))

	// Ends that do not bracket the change the predicate names stop the
	// bisection after the first end; one kernel is no range at all.
	code, text = fusematrix(t, "bisect", "-q", "-accel", "tcg", "-out", t.TempDir(), "-good", good, "-bad", bad, "fuse-init.passthrough!=offered")
	assert.Equal(t, code, 1, text)
	assert.Check(t, is.Contains(text, "already shows the new behaviour"))
	code, text = fusematrix(t, "bisect", "-q", "-accel", "tcg", "-out", t.TempDir(), "-good", good, "-bad", good, pred)
	assert.Equal(t, code, 2, text)
	assert.Check(t, is.Contains(text, "a bisection needs two ends"))

	for kernel, want := range map[string]int{good: 0, bad: 1} {
		code, text := fusematrix(t, "bisect", "run", "-q", "-accel", "tcg", "-out", t.TempDir(), "-kernel", kernel, pred)
		assert.Check(t, is.Equal(code, want), text)
	}
}

func readBisect(t *testing.T, dir string) bisect.Report {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "bisect.json"))
	assert.NilError(t, err)
	var r bisect.Report
	assert.NilError(t, json.Unmarshal(data, &r))
	return r
}

// fakeBisect, in the test binary run as fusematrix (TestMain), stands in
// for the Debian mirror and QEMU when FUSEMATRIX_TEST_BISECT is set, so
// that bisect runs end to end with no network and no guest. The variable
// has one letter per candidate k00, k01…, the guest's answer for
// pt/integrity: o passes, n fails, e reports error (a setup timeout), u
// does not run to the end (a panic), h hangs until cancelled. Each boot
// appends its kernel to the file FUSEMATRIX_TEST_BISECT_BOOTS names.
func fakeBisect() {
	spec := os.Getenv("FUSEMATRIX_TEST_BISECT")
	if spec == "" {
		return
	}
	packagedHistory = func(context.Context, string, string, kernels.Options) ([]kernels.Packaged, error) {
		var out []kernels.Packaged
		for i := range spec {
			out = append(out, kernels.Packaged{Selector: fmt.Sprintf("k%02d", i), Version: fmt.Sprintf("6.12.%d-1", 50+i)})
		}
		return out, nil
	}
	stepRunner = func(ctx context.Context, o harness.Options) (*results.Run, error) {
		name := o.Kernels[0]
		var i int
		if _, err := fmt.Sscanf(name, "k%d", &i); err != nil || i >= len(spec) {
			return nil, fmt.Errorf("fake: no candidate %q", name)
		}
		if path := os.Getenv("FUSEMATRIX_TEST_BISECT_BOOTS"); path != "" {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return nil, err
			}
			fmt.Fprintln(f, name)
			f.Close()
		}
		k := results.Kernel{Name: name, Status: results.Pass, Release: fmt.Sprintf("6.12.%d", 50+i)}
		check := func(st results.Status, reason string) {
			k.Results = []results.Result{{ID: string(contract.PtIntegrity), Status: st, Reason: reason}}
		}
		switch spec[i] {
		case 'o':
			check(results.Pass, "")
		case 'n':
			check(results.Fail, "bytes differ")
		case 'e':
			check(results.Error, "setup timed out")
		case 'u':
			k.Status, k.Error = results.Error, "guest panicked"
		case 'h':
			<-ctx.Done()
			return nil, ctx.Err()
		}
		run := &results.Run{Schema: results.SchemaVersion, Kernels: []results.Kernel{k}}
		data, err := json.Marshal(run)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
			return nil, err
		}
		return run, os.WriteFile(filepath.Join(o.OutDir, "results.json"), data, 0o644)
	}
}

// fakeCommand is fusematrix bisect over the candidates spec describes
// (fakeBisect), its boots recorded in the file boots, its output in out.
func fakeCommand(t *testing.T, spec, boots string, out *bytes.Buffer, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	assert.NilError(t, err)
	cmd := exec.Command(exe, append([]string{"bisect"}, args...)...)
	cmd.Env = append(os.Environ(), "FUSEMATRIX_TEST_MAIN=1", "FUSEMATRIX_TEST_BISECT="+spec, "FUSEMATRIX_TEST_BISECT_BOOTS="+boots)
	cmd.Stdout, cmd.Stderr = out, out
	return cmd
}

// exited waits for cmd and returns its exit status, failing the test if it
// takes longer than d (and then killing it).
func exited(t *testing.T, cmd *exec.Cmd, d time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		assert.NilError(t, err)
		return 0
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("fusematrix %s did not end within %s", strings.Join(cmd.Args[1:], " "), d)
		return -1
	}
}

// runFake runs fakeCommand to its end within a minute: its exit status,
// output and the kernels it booted.
func runFake(t *testing.T, spec, dir string, args ...string) (int, string, []string) {
	t.Helper()
	boots := filepath.Join(dir, "boots")
	os.Remove(boots)
	var out bytes.Buffer
	cmd := fakeCommand(t, spec, boots, &out, args...)
	assert.NilError(t, cmd.Start())
	code := exited(t, cmd, time.Minute)
	data, err := os.ReadFile(boots)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	assert.NilError(t, err)
	return code, out.String(), strings.Fields(string(data))
}

// Issue 21 rows 6 and 7 through the command: a bisection whose every
// candidate between the ends could not be judged exits 1 ("unjudged"),
// not 0; a check that reported error is no new behaviour for X!=pass.
func TestBisectOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name, spec, pred string
		code             int
		want             string
	}{
		{"found", "oooooonnnn", "pt/integrity=fail", 0, "first new: k06 (release 6.12.56)"},
		{"every candidate between the ends unjudged", "ouuuuuuuun", "pt/integrity=fail", 1,
			"no answer (unjudged): none of the 8 candidates between the ends could be judged (k01, k02 … k08)"},
		{"an error is not a failure", "ooooeonnnn", "pt/integrity!=pass", 0, "first new: k06 (release 6.12.56)"},
		{"the ends do not bracket", "nnnnnnnnnn", "pt/integrity=fail", 1, "no answer (not-bracketed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			code, out, _ := runFake(t, tc.spec, dir, "-out", dir, "-good", "k00", "-bad", "k09", tc.pred)
			assert.Check(t, is.Equal(code, tc.code), out)
			assert.Check(t, is.Contains(out, tc.want))
		})
	}
}

// Issue 21 rows 2 and 3 through the command: a -resume log that does not
// hold is refused with exit 2 naming its first bad step, at once, booting
// nothing and printing a few lines (a verdict "bogus" made it spin for
// ever, deaf to SIGINT and SIGTERM, writing 28 GB of log in 10 minutes);
// a step whose results are gone is booted again.
func TestBisectResumeRefused(t *testing.T) {
	const spec = "oooooonnnn" // steps: k00, k09, k04 (old), k06 (new), k05 (old)
	for _, tc := range []struct {
		name  string
		edit  func(t *testing.T, out string, r map[string]any)
		code  int
		want  string
		boots []string
	}{
		{"a step's verdict is bogus", func(t *testing.T, out string, r map[string]any) {
			step(r, 2)["verdict"] = "bogus"
		}, 2, `step 3 (k04): verdict "bogus" is not new, old or skip`, nil},
		{"a step's verdict flipped from new to old", func(t *testing.T, out string, r map[string]any) {
			step(r, 3)["verdict"] = "old"
			step(r, 3)["runs"].([]any)[0].(map[string]any)["verdict"] = "old"
		}, 2, "step 4 (k06): run 1 is logged as old, but its results say new (pt/integrity: fail (bytes differ))", nil},
		{"a step's results are a FIFO", func(t *testing.T, out string, r map[string]any) {
			path := filepath.Join(out, step(r, 3)["runs"].([]any)[0].(map[string]any)["results"].(string))
			assert.NilError(t, os.Remove(path))
			assert.NilError(t, syscall.Mkfifo(path, 0o644))
		}, 2, "step 4 (k06): run 1: read run", nil},
		{"a step's results are gone", func(t *testing.T, out string, r map[string]any) {
			path := filepath.Join(out, step(r, 3)["runs"].([]any)[0].(map[string]any)["results"].(string))
			assert.NilError(t, os.Remove(path))
			step(r, 3)["verdict"] = "old"
		}, 0, "first new: k06 (release 6.12.56)", []string{"k06"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			args := []string{"-out", out, "-good", "k00", "-bad", "k09", "pt/integrity=fail"}
			code, text, boots := runFake(t, spec, out, args...)
			assert.Assert(t, is.Equal(code, 0), text)
			assert.Assert(t, is.Len(boots, 5))
			logPath := filepath.Join(out, "bisect.json")
			data, err := os.ReadFile(logPath)
			assert.NilError(t, err)
			var r map[string]any
			assert.NilError(t, json.Unmarshal(data, &r))
			tc.edit(t, out, r)
			data, err = json.Marshal(r)
			assert.NilError(t, err)
			assert.NilError(t, os.WriteFile(logPath, data, 0o644))

			start := time.Now()
			code, text, boots = runFake(t, spec, out, append([]string{"-resume"}, args...)...)
			assert.Check(t, is.Equal(code, tc.code), text)
			assert.Check(t, is.Contains(text, tc.want))
			assert.Check(t, is.Equal(strings.Join(boots, " "), strings.Join(tc.boots, " ")), "booted again")
			assert.Check(t, time.Since(start) < 30*time.Second, "took %s", time.Since(start))
			assert.Check(t, len(text) < 8<<10, "%d bytes of output", len(text))
			if tc.code == 2 {
				after, err := os.ReadFile(logPath)
				assert.NilError(t, err)
				assert.Check(t, bytes.Equal(after, data), "a refused log is left as it was")
			}
		})
	}
}

func step(r map[string]any, i int) map[string]any {
	return r["steps"].([]any)[i].(map[string]any)
}

// SIGINT and SIGTERM stop a bisection mid-step, with exit 130 and a log
// that resumes.
func TestBisectSignals(t *testing.T) {
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			out := t.TempDir()
			boots := filepath.Join(out, "boots")
			var text bytes.Buffer
			cmd := fakeCommand(t, "oooohnnnnn", boots, &text, "-out", out, "-good", "k00", "-bad", "k09", "pt/integrity=fail")
			assert.NilError(t, cmd.Start())
			// k04, the first step between the ends, hangs until cancelled.
			deadline := time.Now().Add(time.Minute)
			for {
				data, _ := os.ReadFile(boots)
				if strings.Contains(string(data), "k04") {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("k04 never booted: %s", text.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			assert.NilError(t, cmd.Process.Signal(sig))
			code := exited(t, cmd, 30*time.Second)
			assert.Check(t, is.Equal(code, 130), text.String())
			assert.Check(t, is.Contains(text.String(), "interrupted; resume with -resume -out "+out))
			r := readBisect(t, out)
			assert.Check(t, is.Len(r.Steps, 2), "the ends, not the step cut short")
		})
	}
}
