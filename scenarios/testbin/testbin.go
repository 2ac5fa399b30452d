// Package testbin builds the FUSE daemons tests run as a user's daemon:
// Go programs, statically linked, and libfuse's own passthrough_ll
// example. It imports nothing of fusematrix, so that every package's tests
// may use it.
package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Go builds the Go package pkg (an import path, or a directory relative to
// the test's) as a static binary in a temporary directory.
func Go(t *testing.T, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// PassthroughLL builds libfuse's own passthrough_ll example, which
// Debian's libfuse3-dev ships as source; the test is skipped without it.
func PassthroughLL(t *testing.T) string {
	t.Helper()
	src := "/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c"
	if _, err := os.Stat(src); err != nil {
		t.Skipf("libfuse's passthrough_ll example: %v (libfuse3-dev)", err)
	}
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "fuse3").Output()
	if err != nil {
		t.Skipf("pkg-config fuse3: %v", err)
	}
	out := filepath.Join(t.TempDir(), "passthrough_ll")
	args := append([]string{"-O2", "-o", out, "-I", filepath.Dir(src), src}, strings.Fields(string(flags))...)
	if msg, err := exec.Command("cc", args...).CombinedOutput(); err != nil {
		t.Skipf("cc passthrough_ll: %v\n%s", err, msg)
	}
	return out
}
