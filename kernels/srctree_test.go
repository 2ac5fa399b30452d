package kernels

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestSourceStateGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
		cmd.Env = GitEnv(os.Environ())
		out, err := cmd.CombinedOutput()
		assert.NilError(t, err, string(out))
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	file := filepath.Join(dir, "Makefile")
	assert.NilError(t, os.WriteFile(file, []byte("VERSION = 6\n"), 0o644))
	git("add", "Makefile")
	git("commit", "-q", "-m", "one")
	head := git("rev-parse", "HEAD")
	ctx := context.Background()

	clean, note, err := sourceState(ctx, dir)
	assert.NilError(t, err)
	assert.Equal(t, clean, "git "+head)
	assert.Equal(t, note, "")

	assert.NilError(t, os.WriteFile(file, []byte("VERSION = 7\n"), 0o644))
	dirty, _, err := sourceState(ctx, dir)
	assert.NilError(t, err)
	assert.Check(t, strings.HasPrefix(dirty, "git "+head+" dirty "), dirty)
	assert.NilError(t, os.WriteFile(file, []byte("VERSION = 8\n"), 0o644))
	dirty2, _, err := sourceState(ctx, dir)
	assert.NilError(t, err)
	assert.Check(t, dirty2 != dirty, "two different edits give one state")

	assert.NilError(t, os.WriteFile(file, []byte("VERSION = 6\n"), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "untracked"), []byte("x"), 0o644))
	again, _, err := sourceState(ctx, dir)
	assert.NilError(t, err)
	assert.Equal(t, again, clean, "untracked files are not part of the state")

	// A tree inside someone else's repository is not that repository.
	sub := filepath.Join(dir, "linux")
	assert.NilError(t, os.MkdirAll(sub, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(sub, "Makefile"), []byte("VERSION = 6\nPATCHLEVEL = 1\n"), 0o644))
	inner, _, err := sourceState(ctx, sub)
	assert.NilError(t, err)
	assert.Check(t, strings.HasPrefix(inner, "tree "+sub+" version 6.1."), inner)
}

func TestSourceStateTree(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "Makefile")
	assert.NilError(t, os.WriteFile(file, []byte("# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION = -rc1\n"), 0o644))
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "fs"), 0o755))
	old := time.Now().Add(-time.Hour)
	for _, name := range []string{file, filepath.Join(dir, "fs")} {
		assert.NilError(t, os.Chtimes(name, old, old))
	}
	ctx := context.Background()
	first, note, err := sourceState(ctx, dir)
	assert.NilError(t, err)
	assert.Check(t, strings.HasPrefix(first, "tree "+dir+" version 6.12.117-rc1 newest "), first)
	assert.Check(t, is.Contains(note, "edits below the top level are not noticed"))
	second, _, err := sourceState(ctx, dir)
	assert.NilError(t, err)
	assert.Equal(t, second, first)

	assert.NilError(t, os.Chtimes(file, time.Now(), time.Now()))
	touched, _, err := sourceState(ctx, dir)
	assert.NilError(t, err)
	assert.Check(t, touched != first, "touching the Makefile kept the state")

	_, _, err = sourceState(ctx, t.TempDir())
	assert.ErrorContains(t, err, "Makefile")
}
