package kernels

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gotest.tools/v3/assert"
)

// make is told to compile through ccache when the machine has it, and
// only then.
func TestMakeUsesCcache(t *testing.T) {
	bin := t.TempDir()
	t.Setenv("PATH", bin)
	b := &builder{src: "/src"}
	assert.Check(t, !slices.Contains(b.makeCmd(context.Background(), "/work", "bzImage").Args, "CC=ccache gcc"))
	assert.NilError(t, os.WriteFile(filepath.Join(bin, "ccache"), []byte("#!/bin/sh\nexec \"$@\"\n"), 0o755))
	args := b.makeCmd(context.Background(), "/work", "bzImage").Args
	assert.Check(t, slices.Contains(args, "CC=ccache gcc"), "%q", args)
}
