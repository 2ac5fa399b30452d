package kernels

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// checkTree tells a kernel source tree from anything else, and refuses one
// kbuild would refuse to build out of tree, before anything runs.
func checkTree(src string) error {
	for _, name := range []string{"Makefile", "Kconfig", "scripts/kconfig", "arch/x86"} {
		if _, err := os.Stat(filepath.Join(src, name)); err != nil {
			return fmt.Errorf("kernel build: %s is not a Linux source tree (no %s)", src, name)
		}
	}
	for _, name := range []string{".config", "include/config", "arch/x86/include/generated"} {
		if _, err := os.Stat(filepath.Join(src, name)); err == nil {
			return fmt.Errorf("kernel build: %s was configured or built in place (it has %s), and kbuild refuses to build such a tree elsewhere; "+
				"fusematrix never writes into your tree: save your .config if you need it, run 'make mrproper' there, and pass the saved file as the base", src, name)
		}
	}
	return nil
}

// sourceState describes the source tree's content for the cache key. A
// git work tree is its HEAD commit plus a hash of `git diff HEAD` when
// tracked files differ (untracked files are not looked at). Anything else
// would need every file hashed (over a second per thousand files), so it is
// the tree's path, kernel version and the newest modification time of its
// top-level entries: edits deeper in the tree are not noticed, and note
// says so.
func sourceState(ctx context.Context, src string) (state, note string, err error) {
	if top, err := gitOutput(ctx, src, "rev-parse", "--show-toplevel"); err == nil && sameDir(strings.TrimSpace(string(top)), src) {
		head, err := gitOutput(ctx, src, "rev-parse", "HEAD")
		if err != nil {
			return "", "", fmt.Errorf("kernel build: %s: %w", src, err)
		}
		state = "git " + strings.TrimSpace(string(head))
		diff, err := gitOutput(ctx, src, "diff", "--binary", "HEAD")
		if err != nil {
			return "", "", fmt.Errorf("kernel build: %s: %w", src, err)
		}
		if len(diff) > 0 {
			state += " dirty " + sha256Hex(diff)[:16]
		}
		return state, "", nil
	}
	version, err := makefileVersion(filepath.Join(src, "Makefile"))
	if err != nil {
		return "", "", fmt.Errorf("kernel build: %w", err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", "", fmt.Errorf("kernel build: %w", err)
	}
	var newest time.Time
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.ModTime().After(newest) {
			newest = info.ModTime()
		}
	}
	state = fmt.Sprintf("tree %s version %s newest %d", src, version, newest.UnixNano())
	note = fmt.Sprintf("%s is not a git work tree: builds are cached by its path, version (%s) and the newest time of its top-level entries, so edits below the top level are not noticed (touch %s to force a rebuild)",
		src, version, filepath.Join(src, "Makefile"))
	return state, note, nil
}

func gitOutput(ctx context.Context, dir string, args ...string) ([]byte, error) {
	// The tree may belong to another user (root building a user's tree);
	// git refuses such a repository unless told it is safe, and only
	// reading is done here.
	cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "safe.directory=*", "-C", dir}, args...)...)
	cmd.Env = GitEnv(os.Environ())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// GitEnv is env without the variables that point git at a repository,
// work tree or index other than the one -C names. fusematrix runs git on
// a kernel tree it was given (bisect checks out and cleans it); run from
// a git hook or a "git rebase --exec", it inherits GIT_DIR and the like,
// and git would then check out, clean or re-initialise that other
// repository instead.
func GitEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR",
			"GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
			"GIT_NAMESPACE", "GIT_PREFIX", "GIT_CEILING_DIRECTORIES",
			"GIT_DISCOVERY_ACROSS_FILESYSTEM", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS",
			"GIT_CONFIG_COUNT":
			continue
		}
		if strings.HasPrefix(name, "GIT_CONFIG_KEY_") || strings.HasPrefix(name, "GIT_CONFIG_VALUE_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func sameDir(a, b string) bool {
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

var makeVar = regexp.MustCompile(`^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(\S*)`)

// makefileVersion reads the kernel version from the top of the Makefile.
func makefileVersion(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for i := 0; i < 20 && sc.Scan(); i++ {
		if m := makeVar.FindStringSubmatch(sc.Text()); m != nil {
			vars[m[1]] = m[2]
		}
	}
	if vars["VERSION"] == "" {
		return "", fmt.Errorf("%s: no VERSION = line: not a kernel Makefile", name)
	}
	return fmt.Sprintf("%s.%s.%s%s", vars["VERSION"], vars["PATCHLEVEL"], vars["SUBLEVEL"], vars["EXTRAVERSION"]), nil
}
