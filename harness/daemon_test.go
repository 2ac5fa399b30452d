package harness

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/harness/elfdeps"
	"github.com/fusematrix/fusematrix/harness/initramfs"
	"github.com/fusematrix/fusematrix/results/contract"
)

// Issue 21, row 9: a user's LD_LIBRARY_PATH is joined with the one
// fusematrix sets for the daemon's libraries (its own first), not put in
// its place, where the daemon would no longer find them.
func TestDaemonEnv(t *testing.T) {
	ours := "LD_LIBRARY_PATH=" + elfdeps.GuestLibDir
	for _, tc := range []struct {
		name       string
		ours, user []string
		want       []string
	}{
		{"none of ours", nil, []string{"LD_LIBRARY_PATH=/opt/x", "A=1"}, []string{"LD_LIBRARY_PATH=/opt/x", "A=1"}},
		{"none of the user's", []string{ours}, []string{"A=1"}, []string{ours, "A=1"}},
		{"joined", []string{ours}, []string{"A=1", "LD_LIBRARY_PATH=/opt/x:/opt/y"}, []string{ours + ":/opt/x:/opt/y", "A=1"}},
		{"the user's last value", []string{ours}, []string{"LD_LIBRARY_PATH=/opt/x", "LD_LIBRARY_PATH=/opt/y"}, []string{ours + ":/opt/y"}},
		{"empty", []string{ours}, []string{"LD_LIBRARY_PATH="}, []string{ours}},
	} {
		assert.Check(t, is.DeepEqual(daemonEnv(tc.ours, tc.user), tc.want), tc.name)
	}

}

// Several daemons in one boot: what two of them share (a library, a root
// both run in) goes into the initramfs once, each gets its own
// description, and two different files at one guest path are an error
// naming both daemons, as are two daemons of one name.
func TestSeveralDaemons(t *testing.T) {
	mk := func(name string, files ...initramfs.File) *Daemon {
		return &Daemon{
			DaemonSpec: contract.DaemonSpec{Name: name, Path: "/fusematrix/daemon/" + name + "/fs", Args: []string{"{mnt}"}},
			Files:      files,
		}
	}
	lib := initramfs.HostFile("/lib/libfuse3.so.3", "/usr/lib/libfuse3.so.3", 0o644)
	link := initramfs.Symlink("/fusematrix/sysroot/x/lib64", "usr/lib64")
	a := mk("a", initramfs.HostFile("/fusematrix/daemon/a/fs", "/opt/a", 0o755), lib, link)
	b := mk("b", initramfs.HostFile("/fusematrix/daemon/b/fs", "/opt/b", 0o755), lib, link)
	files, err := allDaemonFiles([]*Daemon{a, b})
	assert.NilError(t, err)
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	assert.DeepEqual(t, paths, []string{
		"/fusematrix/daemon/a/fs", "/lib/libfuse3.so.3", "/fusematrix/sysroot/x/lib64", contract.DaemonSpecFile("a"),
		"/fusematrix/daemon/b/fs", contract.DaemonSpecFile("b"),
	})

	other := mk("c", initramfs.HostFile("/lib/libfuse3.so.3", "/home/me/libfuse3.so.3", 0o644))
	_, err = allDaemonFiles([]*Daemon{a, other})
	assert.Error(t, err, "daemons a and c both need /lib/libfuse3.so.3 in the guest, as different files")
	generated := mk("d", initramfs.BytesFile("/etc/x", []byte("1"), 0o644))
	_, err = allDaemonFiles([]*Daemon{generated, mk("e", initramfs.BytesFile("/etc/x", []byte("1"), 0o644))})
	assert.ErrorContains(t, err, "both need /etc/x")

	names, err := daemonNames([]*Daemon{a, b})
	assert.NilError(t, err)
	assert.DeepEqual(t, names, []string{"a", "b"})
	_, err = daemonNames([]*Daemon{a, mk("a")})
	assert.ErrorContains(t, err, "two daemons are called a")
}
