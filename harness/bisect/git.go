package bisect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/fusematrix/fusematrix/kernels"
)

// Commits lists the candidates of a bisection over a git tree: good, then
// every commit on the first-parent line from good to bad, oldest first,
// each with its subject and author date. good must be an ancestor of bad.
func Commits(ctx context.Context, repo, good, bad string) ([]Candidate, error) {
	var ends [2]string
	for i, rev := range []string{good, bad} {
		out, err := git(ctx, repo, "rev-parse", "--verify", "--end-of-options", rev+"^{commit}")
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInput, rev, err)
		}
		ends[i] = strings.TrimSpace(out)
	}
	if _, err := git(ctx, repo, "merge-base", "--is-ancestor", ends[0], ends[1]); err != nil {
		return nil, fmt.Errorf("%w: %s is not an ancestor of %s: a bisection needs good before bad on one line", ErrInput, good, bad)
	}
	const format = "--format=%H%x00%s%x00%aI"
	first, err := git(ctx, repo, "log", "-1", format, "--end-of-options", ends[0])
	if err != nil {
		return nil, err
	}
	rest, err := git(ctx, repo, "log", "--first-parent", "--reverse", format, "--end-of-options", ends[0]+".."+ends[1])
	if err != nil {
		return nil, err
	}
	var cs []Candidate
	for _, line := range strings.Split(strings.TrimSpace(first+rest), "\n") {
		f := strings.SplitN(line, "\x00", 3)
		if len(f) != 3 {
			continue
		}
		cs = append(cs, Candidate{Commit: f[0], Subject: f[1], Date: f[2], Selector: f[0]})
	}
	return cs, nil
}

// Worktree is a checkout of the user's repository that fusematrix owns:
// their own checkout, index and branches are never touched. It stays at
// one path for the repository, so that the kernel build directory, keyed
// by that path, makes each step an incremental build.
type Worktree struct {
	repo string
	Path string
}

// OpenWorktree adds (or reuses) the worktree of repo under dir.
func OpenWorktree(ctx context.Context, repo, dir string) (*Worktree, error) {
	abs, err := filepath.Abs(repo)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(abs))
	w := &Worktree{repo: abs, Path: filepath.Join(dir, filepath.Base(abs)+"-"+hex.EncodeToString(sum[:6]))}
	if _, err := os.Stat(filepath.Join(w.Path, ".git")); err == nil {
		return w, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// A worktree whose folder was deleted is still registered; prune it.
	git(ctx, abs, "worktree", "prune")
	if _, err := git(ctx, abs, "worktree", "add", "--detach", "--force", w.Path, "HEAD"); err != nil {
		return nil, fmt.Errorf("bisect: worktree of %s: %w", repo, err)
	}
	return w, nil
}

// Checkout puts commit in the worktree, discarding anything a build left
// in the tree.
func (w *Worktree) Checkout(ctx context.Context, commit string) error {
	if _, err := git(ctx, w.Path, "checkout", "--detach", "--force", "--quiet", commit); err != nil {
		return fmt.Errorf("bisect: check out %.12s: %w", commit, err)
	}
	_, err := git(ctx, w.Path, "clean", "-fdxq")
	return err
}

// git runs git in dir and returns its output; its error carries stderr.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	cmd.Env = kernels.GitEnv(os.Environ())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		var exit *exec.ExitError
		if msg == "" && errors.As(err, &exit) {
			return "", err
		}
		return "", fmt.Errorf("git %s: %v: %s", args[0], err, msg)
	}
	return string(out), nil
}
