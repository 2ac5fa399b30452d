package cli

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/harness/elfdeps"
	"github.com/fusematrix/fusematrix/kernels"
)

// Issue 21, row 9: a user's LD_LIBRARY_PATH is joined with the one
// fusematrix sets for the daemon's libraries (its own first), not put in
// its place, where the daemon would no longer find them.
func TestDaemonLibraryPath(t *testing.T) {
	// The join itself: harness TestDaemonEnv.

	// The flags and a description, on a daemon whose library goes to
	// elfdeps.GuestLibDir.
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skipf("gcc is not installed: %v", err)
	}
	dir := t.TempDir()
	for _, args := range [][]string{
		{"-shared", "-fPIC", "-o", "libfoo.so.1", "-Wl,-soname,libfoo.so.1", "-x", "c", "foo.c"},
		{"-o", "myfs", "-x", "c", "main.c", "-L.", "-l:libfoo.so.1", "-Wl,-rpath,$ORIGIN"},
	} {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "foo.c"), []byte("int foo(void) { return 0; }\n"), 0o644))
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "main.c"), []byte("int foo(void); int main(void) { return foo(); }\n"), 0o644))
		cmd := exec.Command("gcc", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		assert.NilError(t, err, "%s", out)
	}
	desc := filepath.Join(dir, "myfs.conf")
	assert.NilError(t, os.WriteFile(desc, []byte("[daemon myfs]\nbinary = "+filepath.Join(dir, "myfs")+"\nenv = LD_LIBRARY_PATH=/opt/myfs/lib\n"), 0o644))
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"flag", []string{"-daemon", filepath.Join(dir, "myfs"), "-daemon-env", "LD_LIBRARY_PATH=/opt/myfs/lib"}},
		{"description", []string{"-daemon", desc}},
	} {
		daemon := oneDaemon(t, tc.args)
		assert.Check(t, is.DeepEqual(daemon.Env, []string{"LD_LIBRARY_PATH=" + elfdeps.GuestLibDir + ":/opt/myfs/lib"}), tc.name)
	}
}

// -daemon clients is every daemon of the catalog in use, the built-in
// clients first, in the catalog's order, wherever it is given.
func TestExpandClients(t *testing.T) {
	user, err := kernels.DefaultCatalog.Overlay("user.conf", strings.NewReader("[daemon mine]\nbinary = /bin/true\n"))
	assert.NilError(t, err)
	catalog := func() (*kernels.Catalog, error) { return user, nil }
	builtin := kernels.DefaultCatalog.Daemons()
	assert.Assert(t, len(builtin) >= 8, "the built-in catalog describes %d clients", len(builtin))
	got, err := expandClients([]string{"./x", clientsWord, "debian:sshfs"}, catalog)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, slices.Concat([]string{"./x"}, builtin, []string{"mine", "debian:sshfs"}))

	got, err = expandClients([]string{"mine"}, func() (*kernels.Catalog, error) { t.Fatal("read the catalog for no reason"); return nil, nil })
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []string{"mine"})

	t.Chdir(t.TempDir())
	assert.NilError(t, os.WriteFile(clientsWord, nil, 0o644))
	_, err = expandClients([]string{clientsWord}, catalog)
	assert.ErrorContains(t, err, "also a file here: name the file ./clients")
}

// -daemon-uring makes the io_uring claim daemon/NAME/io-uring holds the
// daemon to, as uring = yes does in a description; the flag overrides the
// description either way.
func TestDaemonURingClaim(t *testing.T) {
	desc := filepath.Join(t.TempDir(), "myfs.conf")
	assert.NilError(t, os.WriteFile(desc, []byte("[daemon myfs]\nbinary = /bin/true\nargs = {mnt}\nuring = yes\n"), 0o644))
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"-daemon", "/bin/true"}, false},
		{[]string{"-daemon", "/bin/true", "-daemon-uring"}, true},
		{[]string{"-daemon", desc}, true},
		{[]string{"-daemon", desc, "-daemon-uring=false"}, false},
	} {
		assert.Check(t, is.Equal(oneDaemon(t, tc.args).URing, tc.want), "%v", tc.args)
	}
}

// oneDaemon is the one daemon a matrix's flags args describe.
func oneDaemon(t *testing.T, args []string) *harness.Daemon {
	t.Helper()
	fs := flag.NewFlagSet("matrix", flag.ContinueOnError)
	d := DaemonFlags(fs)
	assert.NilError(t, fs.Parse(args))
	ds, err := d.daemons(context.Background(), fs, "", kernels.Options{}, true)
	assert.NilError(t, err)
	assert.Assert(t, is.Len(ds, 1))
	return ds[0]
}
