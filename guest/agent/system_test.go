package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

const sampleMountinfo = `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 253:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:41 / /run/fusematrix rw,nosuid,nodev - tmpfs fusematrix rw,mode=755
41 40 0:53 / /run/fusematrix/seq-read/mnt-classic rw,nosuid,nodev,relatime shared:5 - fuse.fusematrix fusematrix-loopback rw,user_id=0,group_id=0
42 40 0:54 / /run/fusematrix/seq-read/with\040space rw - fuse fusematrix rw
43 27 0:55 / /run/fusematrix-other rw - tmpfs x rw
44 27 259:3 / /srv/fuse rw - fuse.sshfs host:/ rw
`

func TestParseMountinfo(t *testing.T) {
	mounts, err := parseMountinfo(strings.NewReader(sampleMountinfo))
	assert.NilError(t, err)
	assert.Assert(t, is.Len(mounts, 7))
	assert.DeepEqual(t, mounts[3], mountEntry{major: 0, minor: 53, dir: "/run/fusematrix/seq-read/mnt-classic", fstype: "fuse.fusematrix"}, cmp.AllowUnexported(mountEntry{}))
	assert.Check(t, is.Equal(mounts[4].dir, "/run/fusematrix/seq-read/with space"))

	_, err = parseMountinfo(strings.NewReader("1 2 x / /a rw - tmpfs t rw\n"))
	assert.ErrorContains(t, err, "bad device")
	_, err = parseMountinfo(strings.NewReader("1 2 0:1 / /a rw tmpfs t rw\n"))
	assert.ErrorContains(t, err, "malformed")
}

func TestMountsUnder(t *testing.T) {
	mounts, err := parseMountinfo(strings.NewReader(sampleMountinfo))
	assert.NilError(t, err)
	for _, tc := range []struct {
		dir  string
		want []string
	}{
		{dir: "/run/fusematrix/seq-read", want: []string{"/run/fusematrix/seq-read/mnt-classic", "/run/fusematrix/seq-read/with space"}},
		{dir: "/run/fusematrix/", want: []string{"/run/fusematrix/seq-read/mnt-classic", "/run/fusematrix/seq-read/with space", "/run/fusematrix"}},
		{dir: "/run/fusematrix/passthrough-read", want: nil},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			var got []string
			for _, m := range mountsUnder(mounts, tc.dir) {
				got = append(got, m.dir)
			}
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

func TestConnection(t *testing.T) {
	for _, tc := range []struct {
		m    mountEntry
		want string
		fuse bool
	}{
		{m: mountEntry{major: 0, minor: 53, fstype: "fuse.fusematrix"}, want: "53", fuse: true},
		{m: mountEntry{major: 259, minor: 3, fstype: "fuse"}, want: "271581187", fuse: true},
		{m: mountEntry{major: 0, minor: 41, fstype: "tmpfs"}, want: "41", fuse: false},
		{m: mountEntry{major: 0, minor: 7, fstype: "fuseblk"}, want: "7", fuse: false},
	} {
		t.Run(tc.want, func(t *testing.T) {
			assert.Check(t, is.Equal(tc.m.connection(), tc.want))
			assert.Check(t, is.Equal(tc.m.isFUSE(), tc.fuse))
		})
	}
}

func TestFindPort(t *testing.T) {
	root := t.TempDir()
	sys, dev := filepath.Join(root, "sys"), filepath.Join(root, "dev")
	for port, name := range map[string]string{"vport0p1": "org.qemu.guest_agent.0", "vport1p1": "fusematrix.0", "vport1p2": "fusematrix.nodev"} {
		assert.NilError(t, os.MkdirAll(filepath.Join(sys, "class/virtio-ports", port), 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(sys, "class/virtio-ports", port, "name"), []byte(name+"\n"), 0o644))
	}
	assert.NilError(t, os.MkdirAll(dev, 0o755))
	for _, port := range []string{"vport0p1", "vport1p1"} {
		assert.NilError(t, os.WriteFile(filepath.Join(dev, port), nil, 0o644))
	}
	for _, tc := range []struct {
		name, want, wantErr string
	}{
		{name: "fusematrix.0", want: filepath.Join(dev, "vport1p1")},
		{name: "fusematrix.nodev", wantErr: `no virtio port named "fusematrix.nodev"`},
		{name: "absent", wantErr: `no virtio port named "absent" after 200ms (ports: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := findPort(context.Background(), sys, dev, tc.name, 200*time.Millisecond)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, got, tc.want)
		})
	}
}

func TestLoadModules(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.ko")
	assert.NilError(t, os.WriteFile(garbage, []byte("not an ELF module"), 0o644))
	list := filepath.Join(dir, "modules")
	assert.NilError(t, os.WriteFile(list, []byte("# comment\n\n"+filepath.Join(dir, "missing.ko")+"\n"+garbage+"\n"), 0o644))

	assert.Check(t, is.Len(loadModules(filepath.Join(dir, "no-list")), 0), "a missing list means nothing to load")

	notes := loadModules(list)
	assert.Assert(t, is.Len(notes, 3), "%q", notes)
	assert.Check(t, is.Contains(notes[0], "load module "+filepath.Join(dir, "missing.ko")+": open: "))
	assert.Check(t, is.Contains(notes[1], "load module "+garbage+": finit_module: "), "the list goes on after a failure")
	assert.Check(t, is.Equal(notes[2], "modules: 0 loaded, 0 already present, 2 failed"))
}
