package bisect

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/harness/predicate"
	"github.com/fusematrix/fusematrix/kernels"
)

// synthetic makes a git repository whose commits each say, in the file
// KERNEL, which kernel they build into; it returns the commit hashes.
func synthetic(t *testing.T, kernelsByCommit ...string) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	run := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(kernels.GitEnv(os.Environ()), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
		out, err := cmd.CombinedOutput()
		assert.NilError(t, err, "git %v: %s", args, out)
		return strings.TrimSpace(string(out))
	}
	run("init", "-q", "-b", "main")
	var commits []string
	for i, k := range kernelsByCommit {
		// The step number keeps commits of the same kernel distinct.
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "KERNEL"), []byte(k+"\n"), 0o644))
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "STEP"), []byte(fmt.Sprint(i)), 0o644))
		run("add", "KERNEL", "STEP")
		run("commit", "-q", "-m", fmt.Sprintf("step %d: %s", i, k))
		commits = append(commits, run("rev-parse", "HEAD"))
	}
	return dir, commits
}

func TestCommits(t *testing.T) {
	repo, commits := synthetic(t, "a", "b", "c", "d")
	cs, err := Commits(context.Background(), repo, commits[1], "main")
	assert.NilError(t, err)
	assert.Assert(t, is.Len(cs, 3))
	for i, c := range cs {
		assert.Check(t, is.Equal(c.Commit, commits[i+1]))
		assert.Check(t, is.Equal(c.Subject, fmt.Sprintf("step %d: %s", i+1, "bcd"[i:i+1])))
		_, err := time.Parse(time.RFC3339, c.Date)
		assert.Check(t, err)
	}
	_, err = Commits(context.Background(), repo, "main", commits[0])
	assert.ErrorIs(t, err, ErrInput)
	assert.ErrorContains(t, err, "is not an ancestor")
	_, err = Commits(context.Background(), repo, "nosuchrev", "main")
	assert.ErrorIs(t, err, ErrInput)

	// The worktree is fusematrix's: the user's checkout stays where it was.
	wt, err := OpenWorktree(context.Background(), repo, t.TempDir())
	assert.NilError(t, err)
	assert.NilError(t, wt.Checkout(context.Background(), commits[0]))
	got, err := os.ReadFile(filepath.Join(wt.Path, "KERNEL"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(got), "a\n"))
	mine, err := os.ReadFile(filepath.Join(repo, "KERNEL"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(mine), "d\n"))
	head, err := git(context.Background(), repo, "symbolic-ref", "HEAD")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(strings.TrimSpace(head), "refs/heads/main"))
}

// A bisection over commits of a small synthetic tree whose build maps
// each commit onto a real prebuilt kernel (6.1 without passthrough, 6.12
// with it), one commit failing to build: the answer is the first 6.12
// commit, and the broken commit is skipped, never blamed.
func TestBisectCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU guests with kernels from the Debian mirror; run without -short")
	}
	ctx := context.Background()
	prebuilt := map[string]string{}
	for series, sel := range map[string]string{"6.1": "debian:6.1/cloud@bookworm", "6.12": "debian:6.12/cloud@bookworm"} {
		k, err := kernels.Resolve(ctx, sel, kernels.Options{})
		assert.NilError(t, err)
		name := k.Image
		if k.ModulesDir != "" {
			name += ",modules=" + k.ModulesDir
		}
		if k.Config != "" {
			name += ",config=" + k.Config
		}
		prebuilt[series] = name
	}
	repo, commits := synthetic(t, "6.1", "6.1", "6.1", "6.1", "broken", "6.12", "6.12", "6.12")
	cands, err := Commits(ctx, repo, commits[0], "main")
	assert.NilError(t, err)
	wt, err := OpenWorktree(ctx, repo, t.TempDir())
	assert.NilError(t, err)
	built := map[string]int{}
	kernel := func(ctx context.Context, c Candidate) (string, error) {
		if err := wt.Checkout(ctx, c.Commit); err != nil {
			return "", err
		}
		data, err := os.ReadFile(filepath.Join(wt.Path, "KERNEL"))
		if err != nil {
			return "", err
		}
		v := strings.TrimSpace(string(data))
		built[v]++
		if prebuilt[v] == "" {
			return "", fmt.Errorf("kernel build of %.12s failed: make: *** [bzImage] Error 2", c.Commit)
		}
		return prebuilt[v], nil
	}
	pred, err := predicate.Parse("fuse-init.passthrough=offered")
	assert.NilError(t, err)
	wd, err := os.Getwd()
	assert.NilError(t, err)
	out := t.TempDir()
	r, err := Bisect(ctx, Options{
		Predicate: pred, Good: commits[0], Bad: "main", Candidates: cands, Dir: out, Logf: t.Logf,
		Judge: Boot(harness.Options{OutDir: out, Accel: "tcg", SourceDir: filepath.Join(wd, "..", ".."), Logf: t.Logf}, pred, kernel),
	})
	assert.NilError(t, err)
	assert.Equal(t, r.Outcome, "found")
	assert.Equal(t, r.FirstNew.Commit, commits[5])
	assert.Equal(t, r.FirstNew.Subject, "step 5: 6.12")
	assert.Equal(t, r.LastOld.Commit, commits[3])
	assert.Check(t, strings.HasPrefix(r.FirstNew.Release, "6.12."), r.FirstNew.Release)
	assert.Check(t, is.Equal(built["broken"], 1), "the broken commit was tried")
	for _, st := range r.Steps {
		if st.Candidate.Commit == commits[4] {
			assert.Check(t, is.Equal(st.Verdict, Skip))
			assert.Check(t, is.Contains(st.Runs[0].Evidence, "kernel build of"))
		}
	}
	assert.Check(t, is.Contains(r.Certainty, commits[4]), "the skipped commit stays a suspect: %s", r.Certainty)

	// -resume over commits: a log cut before its last step re-judges that
	// step alone, the commits matched by hash.
	logPath := filepath.Join(out, "bisect.json")
	data, err := os.ReadFile(logPath)
	assert.NilError(t, err)
	var log map[string]any
	assert.NilError(t, json.Unmarshal(data, &log))
	steps := log["steps"].([]any)
	log["steps"] = steps[:len(steps)-1]
	data, err = json.Marshal(log)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(logPath, data, 0o644))
	before := built["6.1"] + built["6.12"] + built["broken"]
	again, err := Bisect(ctx, Options{
		Predicate: pred, Good: commits[0], Bad: "main", Candidates: cands, Dir: out, Logf: t.Logf, Resume: true,
		Judge: Boot(harness.Options{OutDir: out, Accel: "tcg", SourceDir: filepath.Join(wd, "..", ".."), Logf: t.Logf}, pred, kernel),
	})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(built["6.1"]+built["6.12"]+built["broken"]-before, 1), "only the cut step was judged again")
	assert.Check(t, is.Equal(again.FirstNew.Commit, r.FirstNew.Commit))
	assert.Check(t, is.Equal(again.LastOld.Commit, r.LastOld.Commit))
}

// Run from a git hook or "git rebase --exec", fusematrix inherits GIT_DIR
// and GIT_WORK_TREE naming another repository: bisect's git commands must
// still act on the tree they were given, never check out or clean the
// other one.
func TestGitIgnoresInheritedRepository(t *testing.T) {
	repo, commits := synthetic(t, "a", "b", "c")
	decoy, _ := synthetic(t, "x")
	t.Setenv("GIT_DIR", filepath.Join(decoy, ".git"))
	t.Setenv("GIT_WORK_TREE", decoy)
	t.Setenv("GIT_INDEX_FILE", filepath.Join(decoy, ".git", "index"))

	cs, err := Commits(context.Background(), repo, commits[0], "main")
	assert.NilError(t, err)
	assert.Check(t, is.Len(cs, 3))
	w, err := OpenWorktree(context.Background(), repo, t.TempDir())
	assert.NilError(t, err)
	assert.NilError(t, w.Checkout(context.Background(), commits[1]))
	b, err := os.ReadFile(filepath.Join(w.Path, "KERNEL"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "b\n"))
	b, err = os.ReadFile(filepath.Join(decoy, "KERNEL"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "x\n"), "the inherited repository was touched")
	os.Unsetenv("GIT_DIR")
	os.Unsetenv("GIT_WORK_TREE")
	os.Unsetenv("GIT_INDEX_FILE")
	out, err := exec.Command("git", "-C", decoy, "log", "--format=%s").CombinedOutput()
	assert.NilError(t, err, string(out))
	assert.Check(t, is.Equal(strings.TrimSpace(string(out)), "step 0: x"))
}

func TestGitEnv(t *testing.T) {
	got := kernels.GitEnv([]string{"HOME=/root", "GIT_DIR=/x/.git", "GIT_WORK_TREE=/x", "GIT_AUTHOR_NAME=t", "GIT_CONFIG_KEY_0=core.bare", "PATH=/bin"})
	assert.DeepEqual(t, got, []string{"HOME=/root", "GIT_AUTHOR_NAME=t", "PATH=/bin"})
}
