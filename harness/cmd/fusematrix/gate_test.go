package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// fakeGH stands in for GitHub's gh in the nightly's scripts: run list
// prints the ids in $GH_FAKE/runs (fails when $GH_FAKE/list-fails
// exists), and run download copies $GH_FAKE/artifacts/ID/NAME into the
// folder named, failing when there is no such artifact.
const fakeGH = `#!/bin/sh
set -e
case "$1 $2" in
"run list")
  [ ! -e "$GH_FAKE/list-fails" ] || { echo "HTTP 502" >&2; exit 1; }
  cat "$GH_FAKE/runs" 2>/dev/null || true
  ;;
"run download")
  id=$3; shift 3
  while [ $# -gt 0 ]; do
    case "$1" in
    -n) name=$2; shift 2 ;;
    -D) dest=$2; shift 2 ;;
    *) shift ;;
    esac
  done
  [ -d "$GH_FAKE/artifacts/$id/$name" ] || { echo "no artifact matches $name" >&2; exit 1; }
  mkdir -p "$dest"
  cp -R "$GH_FAKE/artifacts/$id/$name/." "$dest/"
  ;;
*) echo "fake gh: $*" >&2; exit 3 ;;
esac
`

// TestNightlyGate runs .github/nightly-gate, the nightly's report job's
// compare and verdict steps, with a fake gh and this fusematrix, on the
// ways a night can end (issue 21 row 14): a night that could not compare
// is not green and never a baseline unless accepted or the very first,
// a night that was not judged is never picked as a baseline, and
// unreadable merged results fail whatever is accepted.
func TestNightlyGate(t *testing.T) {
	gate, err := filepath.Abs(filepath.Join("..", "..", "..", ".github", "nightly-gate"))
	assert.NilError(t, err)
	exe, err := os.Executable()
	assert.NilError(t, err)
	bin := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(bin, "gh"), []byte(fakeGH), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(bin, "fusematrix"),
		[]byte("#!/bin/sh\nFUSEMATRIX_TEST_MAIN=1 exec "+exe+" \"$@\"\n"), 0o755))

	same, older := compareNew, compareOld // older → same regresses
	future := filepath.Join("testdata", "compare", "future-schema.json")
	dup := hostileRuns(t).dup
	type run struct {
		judged bool
		merged string // results.json of both kinds; "" for no artifact
	}
	for _, tc := range []struct {
		name      string
		runs      map[string]run
		order     []string // gh run list, newest first
		listFails bool
		night     string // this night's merged results.json
		state     string
		why       string
		green     bool // verdict without accept
		accepted  bool // verdict with accept
	}{
		{name: "first", night: same, state: "first", green: true, accepted: true},
		{name: "compared, no regression", night: same, order: []string{"7"}, runs: map[string]run{"7": {true, same}},
			state: "ok", why: "no regression against run 7", green: true, accepted: true},
		{name: "regressed", night: same, order: []string{"7"}, runs: map[string]run{"7": {true, older}},
			state: "regressed", why: "against run 7", accepted: true},
		{name: "baseline download fails", night: same, order: []string{"7"}, runs: map[string]run{"7": {true, ""}},
			state: "uncompared", why: "nightly-merged artifact of run 7 could not be downloaded", accepted: true},
		{name: "run list fails", night: same, listFails: true, state: "uncompared", why: "gh run list failed", accepted: true},
		{name: "baseline unreadable", night: same, order: []string{"7"}, runs: map[string]run{"7": {true, future}},
			state: "uncompared", why: "could not read the baseline's matrix bench run of run 7", accepted: true},
		// Run 9 passed but was never judged (its compare could not run):
		// its results, which would show a regression, are not the
		// baseline; run 7's are.
		{name: "unjudged night skipped", night: same, order: []string{"9", "7"},
			runs:  map[string]run{"9": {false, older}, "7": {true, same}},
			state: "ok", why: "no regression against run 7", green: true, accepted: true},
		{name: "no judged night", night: same, order: []string{"9"}, runs: map[string]run{"9": {false, same}},
			state: "uncompared", why: "no judged nightly among the last 30", accepted: true},
		// compare's exit 2 on the new run fails the job, accepted or not.
		{name: "this night unreadable", night: dup, order: []string{"7"}, runs: map[string]run{"7": {true, same}},
			state: "broken", why: "cannot read this night's merged matrix run (exit 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fake := filepath.Join(dir, "gh")
			assert.NilError(t, os.MkdirAll(fake, 0o755))
			if tc.listFails {
				assert.NilError(t, os.WriteFile(filepath.Join(fake, "list-fails"), nil, 0o644))
			}
			assert.NilError(t, os.WriteFile(filepath.Join(fake, "runs"), []byte(strings.Join(append(tc.order, ""), "\n")), 0o644))
			for id, r := range tc.runs {
				if r.judged {
					writeFile(t, filepath.Join(fake, "artifacts", id, "nightly-judged", "judged.txt"), "ok")
				}
				if r.merged != "" {
					for _, kind := range []string{"matrix", "bench"} {
						copyFile(t, r.merged, filepath.Join(fake, "artifacts", id, "nightly-merged", kind, "results.json"))
					}
				}
			}
			work := filepath.Join(dir, "work")
			for _, kind := range []string{"matrix", "bench"} {
				copyFile(t, tc.night, filepath.Join(work, "merged", kind, "results.json"))
			}
			env := append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "GH_FAKE="+fake,
				"FUSEMATRIX="+filepath.Join(bin, "fusematrix"),
				"GITHUB_REPOSITORY=me/fusematrix", "GITHUB_REF_NAME=main", "GITHUB_SERVER_URL=https://github.invalid",
				"GITHUB_STEP_SUMMARY="+filepath.Join(dir, "summary.md"))
			step := func(args ...string) (code int, out, outputs string) {
				outFile := filepath.Join(dir, "output-"+args[0])
				os.Remove(outFile)
				cmd := exec.Command(gate, args...)
				cmd.Dir = work
				cmd.Env = append(env, "GITHUB_OUTPUT="+outFile)
				b, err := cmd.CombinedOutput()
				if exit, ok := err.(*exec.ExitError); ok {
					code = exit.ExitCode()
				} else {
					assert.NilError(t, err, string(b))
				}
				o, _ := os.ReadFile(outFile)
				return code, string(b), string(o)
			}

			code, out, outputs := step("compare", "merged", "baseline")
			assert.Equal(t, code, 0, out)
			assert.Check(t, is.Contains(outputs, "state="+tc.state+"\n"), out)
			assert.Check(t, is.Contains(outputs, tc.why), out)

			for accept, green := range map[string]bool{"false": tc.green, "true": tc.accepted} {
				code, out, outputs := step("verdict", tc.state, accept)
				assert.Check(t, is.Equal(code == 0, green), "accept=%s: %s", accept, out)
				// Only a green verdict makes the night a baseline.
				assert.Check(t, is.Equal(strings.Contains(outputs, "baseline=true"), green), "accept=%s: %q", accept, outputs)
			}
		})
	}
	// An empty state (the compare step died) is never green.
	code := exec.Command(gate, "verdict", "", "true").Run()
	assert.Check(t, code != nil)
}

// TestWorkflowsHardened checks what issue 21 row 15 asks of every
// workflow: actions pinned by full commit (its tag in a comment), read-only
// contents unless a job says otherwise, and runs grouped per workflow and
// ref rather than in one group for all.
func TestWorkflowsHardened(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "..", ".github", "workflows", "*.yml"))
	assert.NilError(t, err)
	assert.Assert(t, len(files) >= 2)
	uses := regexp.MustCompile(`^\s*(?:-\s+)?uses:\s*(\S+)(.*)$`)
	pinned := regexp.MustCompile(`^[\w.-]+/[\w./-]+@[0-9a-f]{40}$`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		assert.NilError(t, err)
		text := string(b)
		for i, line := range strings.Split(text, "\n") {
			m := uses.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			assert.Check(t, pinned.MatchString(m[1]), "%s:%d: %s is not pinned by a full commit", f, i+1, m[1])
			assert.Check(t, regexp.MustCompile(`^\s+# v\d`).MatchString(m[2]), "%s:%d: no tag comment", f, i+1)
		}
		assert.Check(t, regexp.MustCompile(`(?m)^permissions:\n  contents: read$`).MatchString(text), "%s: no top-level permissions: contents: read", f)
		assert.Check(t, is.Contains(text, "\nconcurrency:\n  group: ${{ github.workflow }}-${{ github.ref }}\n"), "%s", f)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	assert.NilError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	assert.NilError(t, os.WriteFile(path, []byte(text), 0o644))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	assert.NilError(t, err)
	writeFile(t, to, string(b))
}
