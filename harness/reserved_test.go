package harness

import (
	"path"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results/contract"
)

// Issue 21, row 8: what a user's file may not replace or hide.
func TestConflict(t *testing.T) {
	reserved := []Reserved{
		{Path: "/init", What: "u-root's init"},
		{Path: "/lib/modules", What: "the kernel's modules"},
		{Path: "/etc/uinit.flags", What: "the agent's arguments"},
	}
	for _, tc := range []struct {
		path, want string
	}{
		{"/init", "guest path /init is reserved: u-root's init"},
		{"/init/x", "guest path /init/x lies under /init, which is reserved: u-root's init"},
		{"/initrd", ""},
		{"/lib/modules/6.12/fuse.ko", "guest path /lib/modules/6.12/fuse.ko lies under /lib/modules, which is reserved: the kernel's modules"},
		{"/lib/modules", "guest path /lib/modules is reserved: the kernel's modules"},
		{"/lib", "guest path /lib would replace the directory holding /lib/modules, which is reserved: the kernel's modules"},
		{"/etc", "guest path /etc would replace the directory holding /etc/uinit.flags, which is reserved: the agent's arguments"},
		{"/", "guest path / would replace the directory holding /init, which is reserved: u-root's init"},
		{"/etc/uinit.flags.d", ""},
		{"/srv/data", ""},
	} {
		err := Conflict(tc.path, reserved)
		if tc.want == "" {
			assert.Check(t, err, tc.path)
		} else {
			assert.Check(t, is.Error(err, tc.want), tc.path)
		}
	}
}

// Every path writeInitrd writes, and the base image's init, agent and its
// flags, is reserved: the list follows the constants it is made of.
func TestReservedPathsCoverInitrd(t *testing.T) {
	for _, p := range []string{
		contract.ModulePath("6.12.0-1-cloud-amd64", "fuse"), contract.ModuleList, contract.PeerPath, contract.DaemonSpecFile("myfs"),
		"/init", "/bbin/init", "/bbin/bb", "/bbin/fusematrix-agent", "/bin/uinit", "/etc/uinit.flags",
		"/tmp/x", "/dev/fuse", "/proc/1/status", "/sys/fs/fuse/connections", "/run/fusematrix/backing/f",
	} {
		assert.Check(t, Conflict(p, ReservedPaths) != nil, "%s is not reserved", p)
	}
	for _, r := range ReservedPaths {
		assert.Check(t, path.IsAbs(r.Path) && path.Clean(r.Path) == r.Path && r.Path != "/", "%q", r.Path)
		assert.Check(t, r.What != "", "%s", r.Path)
	}
}
