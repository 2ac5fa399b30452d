package main

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios/testbin"
)

// A user's daemon on real kernels: go-fuse's own loopback example, which
// asks for passthrough where the kernel offers it, keeps its data right on
// 6.1 and 6.12 and is passed through on 6.12 only; a daemon that claims
// passthrough but never asks for it fails the passthrough check there.
func TestDaemonMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("boots kernels")
	}
	loopback := testbin.Go(t, "github.com/hanwen/go-fuse/v2/example/loopback")
	nopt := testbin.Go(t, "github.com/fusematrix/fusematrix/scenarios/server/testdata/nopassthrough")
	k61, k612 := "debian:6.1/cloud@bookworm", "debian:6.12/cloud@bookworm"

	out := t.TempDir()
	code, text := fusematrix(t, "matrix", "-q", "-accel", "tcg", "-j", "2", "-out", out, "-run", "^daemon/",
		"-daemon", loopback, "-daemon-name", "gofuse", "-daemon-args", "-q -directmount {mnt} {backing}", "-daemon-passthrough", k61, k612)
	assert.Equal(t, code, 0, text)
	run := readRun(t, out)
	every := map[string]results.Status{}
	for _, id := range []string{"pt/integrity", "pt/size-after-write", "pt/mmap-shared", "pt/fsync", "pt/open-twice",
		"pt/unmount-open", "pt/abort-open", "classic/basics"} {
		every["daemon/gofuse/"+id] = results.Pass
	}
	// What only fusematrix's own server can tell.
	every["daemon/gofuse/pt/direct-io"] = results.Skip
	want := map[string]map[string]results.Status{k61: maps.Clone(every), k612: maps.Clone(every)}
	want[k61]["daemon/gofuse/passthrough"] = results.Skip
	want[k612]["daemon/gofuse/passthrough"] = results.Pass
	for _, k := range run.Kernels {
		for id, status := range want[k.Name] {
			r := k.Result(id)
			if assert.Check(t, r != nil, "%s: no %s", k.Name, id) {
				assert.Check(t, is.Equal(r.Status, status), "%s %s: %s", k.Name, id, r.Reason)
			}
		}
	}

	out = t.TempDir()
	code, text = fusematrix(t, "matrix", "-q", "-accel", "tcg", "-out", out, "-run", "^daemon/.*/passthrough$",
		"-daemon", nopt, "-daemon-args", "{mnt} {backing}", "-daemon-passthrough", k612)
	assert.Equal(t, code, 1, text)
	r := readRun(t, out).Kernels[0].Result("daemon/nopassthrough/passthrough")
	assert.Assert(t, r != nil)
	assert.Check(t, is.Equal(r.Status, results.Fail))
	assert.Check(t, is.Contains(r.Reason, "claims passthrough, but it served the reads itself"))

	// A libfuse program, dynamically linked: its loader and libraries go
	// into the guest with it. The C NOOP server serves a file of zeros and
	// no backing directory; it claims passthrough it never asks for.
	nullfs := buildNullfs(t)
	out = t.TempDir()
	code, text = fusematrix(t, "matrix", "-q", "-accel", "tcg", "-j", "2", "-out", out, "-run", "^daemon/.*/(passthrough|pt/integrity)$",
		"-daemon", nullfs, "-daemon-args", "{mnt} zeros 67108864", "-daemon-passthrough", k61, k612)
	assert.Equal(t, code, 1, text)
	run = readRun(t, out)
	r = run.Kernels[0].Result("daemon/nullfs/passthrough")
	assert.Assert(t, r != nil)
	assert.Check(t, is.Equal(r.Status, results.Skip), "6.1 offers no passthrough: %s", r.Reason)
	k := run.Kernels[1]
	r = k.Result("daemon/nullfs/passthrough")
	assert.Assert(t, r != nil)
	assert.Check(t, is.Equal(r.Status, results.Fail))
	assert.Check(t, is.Contains(r.Reason, "claims passthrough, but it served the reads itself: while 64 MiB of zeros were read through the mount"))
	r = k.Result("daemon/nullfs/pt/integrity")
	assert.Assert(t, r != nil)
	assert.Check(t, is.Equal(r.Status, results.Skip))
	assert.Check(t, is.Contains(r.Reason, "serves no backing directory"))
}

// A user's daemon as a bench mode on real kernels: go-fuse's loopback
// example is measured beside fusematrix's NOOP server, given as ratios to
// native and to it, and the kernel's count of the daemon's read calls
// shows its reads passed through on 6.12 and served by the daemon on 6.1.
func TestDaemonBench(t *testing.T) {
	if testing.Short() {
		t.Skip("boots kernels")
	}
	loopback := testbin.Go(t, "github.com/hanwen/go-fuse/v2/example/loopback")
	k61, k612 := "debian:6.1/cloud@bookworm", "debian:6.12/cloud@bookworm"
	out := t.TempDir()
	code, text := fusematrix(t, "bench", "-q", "-accel", "tcg", "-j", "2", "-runs", "3", "-out", out, "-run", "^bench/read/(noop/)?131072$",
		"-daemon", loopback, "-daemon-name", "gofuse", "-daemon-args", "-q -directmount {mnt} {backing}", "-daemon-passthrough", k61, k612)
	assert.Equal(t, code, 0, text)
	assert.Check(t, is.Contains(text, "daemon/gofuse"), "the table has the daemon's column")
	assert.Check(t, is.Contains(text, "gofuse/noop"))
	run := readRun(t, out)
	assert.Assert(t, is.Len(run.Kernels, 2))
	for _, k := range run.Kernels {
		r := k.Result("daemon/gofuse/bench/read/131072")
		assert.Assert(t, r != nil, "%s: no daemon cell", k.Name)
		assert.Assert(t, is.Equal(r.Status, results.Pass), "%s: %s", k.Name, r.Reason)
		for _, m := range []string{"mbps_median", "ratio_native", "ratio_noop"} {
			assert.Check(t, r.Metrics[m] > 0, "%s: %s in %v", k.Name, m, r.Metrics)
		}
		assert.Check(t, is.Equal(r.Facts["mode"], "daemon/gofuse"))
		// 8192 READ requests per GiB at 128 KiB for a daemon that serves
		// them, each a read of /dev/fuse; a handful per run otherwise.
		calls, ok := r.Metrics["daemon_read_calls_per_gib"]
		assert.Check(t, ok, "%s: no daemon_read_calls_per_gib", k.Name)
		if k.Name == k612 {
			assert.Check(t, calls < 2048, "%s: passed through, yet %v read calls per GiB", k.Name, calls)
		} else {
			assert.Check(t, calls >= 4096, "%s: served by the daemon, yet %v read calls per GiB", k.Name, calls)
		}
	}
}

// A daemon described in a section of the user's catalog, with an extra
// file: the description's arguments, claim and file reach the guest. The
// daemon (go-fuse's loopback, passthrough withheld) shows a directory of
// the guest that holds only the extra file, and claims passthrough it
// never asks for, which the passthrough check finds out reading that file.
func TestDaemonDescribed(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a kernel")
	}
	nopt := testbin.Go(t, "github.com/fusematrix/fusematrix/scenarios/server/testdata/nopassthrough")
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	assert.NilError(t, os.WriteFile(big, bytes.Repeat([]byte("fusematrix "), 16<<20/11), 0o644))
	catalog := filepath.Join(dir, "catalog.conf")
	assert.NilError(t, os.WriteFile(catalog, []byte(`[daemon shown]
binary = `+nopt+`
args = {mnt} /srv/shown   # a directory of its own, not {backing}
file = `+big+`:/srv/shown/big
passthrough = yes
wait = 30s
`), 0o644))
	out := t.TempDir()
	code, text := fusematrix(t, "matrix", "-q", "-accel", "tcg", "-out", out, "-catalog", catalog, "-run", "^daemon/.*/(passthrough|pt/integrity)$",
		"-daemon", "shown", "debian:6.12/cloud@bookworm")
	assert.Equal(t, code, 1, text)
	k := readRun(t, out).Kernels[0]
	r := k.Result("daemon/shown/passthrough")
	assert.Assert(t, r != nil, text)
	assert.Check(t, is.Equal(r.Status, results.Fail))
	assert.Check(t, is.Contains(r.Reason, "claims passthrough, but it served the reads itself: while 15 MiB of big were read"))
	r = k.Result("daemon/shown/pt/integrity")
	assert.Assert(t, r != nil)
	assert.Check(t, is.Equal(r.Status, results.Skip))
	assert.Check(t, is.Contains(r.Reason, "serves no backing directory"))
}

// Input that cannot make a daemon is a usage error before anything boots.
func TestDaemonBadInput(t *testing.T) {
	script := filepath.Join(t.TempDir(), "mount-my-fs")
	assert.NilError(t, os.WriteFile(script, []byte("#!/bin/sh\nexec my-fs \"$@\"\n"), 0o755))
	described := func(text string) string {
		p := filepath.Join(t.TempDir(), "myfs.conf")
		assert.NilError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	catalog := described("[daemon myfs]\nbinary = /bin/true\nargs = {mnt}\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no mount point", []string{"-daemon", "/bin/true", "-daemon-args", "{backing}"}, "none holds {mnt}"},
		{"unbalanced quote", []string{"-daemon", "/bin/true", "-daemon-args", "'{mnt}"}, "-daemon-args: an unterminated quote"},
		{"bad name", []string{"-daemon", "/bin/true", "-daemon-name", "a/b"}, `daemon name "a/b"`},
		{"without -daemon", []string{"-daemon-passthrough"}, "-daemon-passthrough without -daemon"},
		{"no time to mount", []string{"-daemon", "/bin/true", "-daemon-wait", "0s"}, "-daemon-wait 0s: want a positive duration"},
		{"no such binary", []string{"-daemon", "/nonexistent/fs"}, "-daemon /nonexistent/fs: /nonexistent/fs: no such file"},
		{"a script", []string{"-daemon", script}, "a script (#!/bin/sh): give the binary it runs"},
		{"not a description", []string{"-daemon", described("hello\n")}, "neither an ELF binary nor a daemon description"},
		{"unknown key", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nmount = {mnt}\n")}, `myfs.conf:3: unknown key "mount"`},
		{"described without mount point", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nargs = {backing}\n")}, "myfs.conf:3: daemon arguments"},
		{"typo in the description", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nargs = {mnt} {backng}\n")}, "myfs.conf:3: daemon argument \"{backng}\": unknown placeholder"},
		{"typo in the flag", []string{"-catalog", catalog, "-daemon", "myfs", "-daemon-args", "{mnt} {backng}"}, "-daemon-args: daemon argument \"{backng}\": unknown placeholder"},
		{"binary not there", []string{"-daemon", described("[daemon x]\nbinary = ./no-such-fs\n")}, "myfs.conf:2: ./no-such-fs: no such file (a relative path, taken from"},
		{"description with a quoted hash", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nargs = -o 'a #b' {mnt} {backng} # c\n")}, "myfs.conf:3: daemon argument \"{backng}\""},
		{"missing extra file", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nfile = /nonexistent/lib.so\n")}, "myfs.conf:3: extra file: stat /nonexistent/lib.so: no such file"},
		{"not in the catalog", []string{"-catalog", catalog, "-daemon", "yourfs"}, "-daemon yourfs: no such file, and no [daemon yourfs] in the catalog"},
		// Issue 21, row 8: an extra file may not replace or hide the
		// guest's own files, nor the daemon's.
		{"extra file onto /init", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nfile = /etc/hostname:/init\n")},
			"myfs.conf:3: extra file /etc/hostname: guest path /init is reserved: u-root's init"},
		{"extra file onto the agent's flags", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nfile = /etc/hostname:/etc/uinit.flags\n")},
			"myfs.conf:3: extra file /etc/hostname: guest path /etc/uinit.flags is reserved: the agent's arguments"},
		{"extra file onto the agent", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nfile = /etc/hostname:/bbin/fusematrix-agent\n")},
			"myfs.conf:3: extra file /etc/hostname: guest path /bbin/fusematrix-agent lies under /bbin, which is reserved: u-root's busybox"},
		{"extra file among the modules", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nfile = /etc/hostname:/lib/modules/6.12.0/fuse.ko\n")},
			"myfs.conf:3: extra file /etc/hostname: guest path /lib/modules/6.12.0/fuse.ko lies under /lib/modules, which is reserved: the kernel's modules"},
		{"extra file replacing /etc", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nfile = /etc/hostname:/etc\n")},
			"myfs.conf:3: extra file /etc/hostname: guest path /etc would replace the directory holding /etc/uinit.flags, which is reserved"},
		{"extra file onto the daemon", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nfile = /etc/hostname:/fusematrix/daemon/true\n")},
			"myfs.conf:3: extra file /etc/hostname: guest path /fusematrix/daemon/true lies under /fusematrix/daemon, which is reserved: where fusematrix puts the daemon's binary"},
		{"extra file onto the daemon's loader", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nfile = /etc/hostname:/lib64/ld-linux-x86-64.so.2\n")},
			"myfs.conf:3: extra file /etc/hostname: guest path /lib64/ld-linux-x86-64.so.2 is reserved: the daemon needs"},
		{"extra file under /tmp", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nfile = /etc/hostname:/tmp/conf\n")},
			"myfs.conf:3: extra file /etc/hostname: guest path /tmp/conf lies under /tmp, which is reserved: the guest mounts a tmpfs over it"},
		{"two extra files at one guest path", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nfile = /etc/hostname:/srv/a\nfile = /etc/hosts:/srv/a\n")},
			"myfs.conf:4: extra file /etc/hosts: guest path /srv/a is reserved: the extra file of "},
		// Issue 21, row 9: an environment key must be a variable name.
		{"env key with a blank", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\nenv = A B=x\n")},
			`myfs.conf:3: env "A B=x": "A B" is not a variable name`},
		{"-daemon-env key with a blank", []string{"-daemon", "/bin/true", "-daemon-env", "A B=x"},
			`invalid value "A B=x" for flag -daemon-env: "A B" is not a variable name`},
		// Issue 21, row 9: it used to be cut at 1 MiB, silently.
		{"description over 1 MiB", []string{"-daemon", described("[daemon x]\nbinary = /bin/true\n" + strings.Repeat("# padding\n", 1<<20/10))},
			"myfs.conf: larger than the 1 MiB cap on a daemon description"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			code, text := fusematrix(t, append([]string{"matrix", "-q", "-out", out, "-qemu", "/nonexistent/qemu"}, tc.args...)...)
			assert.Equal(t, code, 2, text)
			assert.Check(t, is.Contains(text, tc.want))
			_, err := os.Stat(filepath.Join(out, "results.json"))
			assert.Check(t, os.IsNotExist(err), "nothing written")
		})
	}
}

// A daemon that exits at once, or never mounts, fails every check that
// mounts it with the cause, and the rest of the kernel's checks still run.
func TestDaemonFailsInGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a kernel")
	}
	bad := testbin.Go(t, "github.com/fusematrix/fusematrix/scenarios/server/testdata/baddaemon")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"exits at once", []string{"-daemon-args", "-exit 3 {mnt} {backing}"}, "exited before mounting (exit status 3); output: baddaemon: cannot serve"},
		{"never mounts", []string{"-daemon-args", "-sleep 1h {mnt} {backing}", "-daemon-wait", "2s"}, "did not mount at /run/fusematrix/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"matrix", "-q", "-accel", "tcg", "-out", out, "-run", "^(daemon/.*/(pt/integrity|classic/basics)|classic/basics)$",
				"-daemon", bad}, tc.args...)
			code, text := fusematrix(t, append(args, "debian:6.12/cloud@bookworm")...)
			assert.Equal(t, code, 1, text)
			k := readRun(t, out).Kernels[0]
			assert.Check(t, is.Equal(k.Status, results.Pass), "the guest ran to its end: %s", k.Error)
			for _, id := range []string{"daemon/baddaemon/pt/integrity", "daemon/baddaemon/classic/basics"} {
				r := k.Result(id)
				if assert.Check(t, r != nil, id) {
					assert.Check(t, is.Equal(r.Status, results.Error), id)
					assert.Check(t, is.Contains(r.Reason, tc.want), id)
				}
			}
			r := k.Result("classic/basics")
			if assert.Check(t, r != nil) {
				assert.Check(t, is.Equal(r.Status, results.Pass), "fusematrix's own checks go on: %s", r.Reason)
			}
		})
	}
}

// A FUSE daemon packaged by Debian, from sid, on a bookworm host: bindfs
// 1.18 links libfuse3.so.4 (libfuse 3.18), which bookworm does not have,
// so passing its checks shows that it ran with its own sysroot's loader
// and libraries. Bad input, against the real indexes, is exit 2 before
// anything boots.
func TestDaemonDebian(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a kernel, and reads sid's index from the configured Debian mirror")
	}
	for _, tc := range []struct{ name, daemon, want string }{
		{"unknown package", "debian:nosuchfs-fusematrix@sid", "-daemon debian:nosuchfs-fusematrix@sid: no package nosuchfs-fusematrix in sid\n"},
		{"no FUSE program", "debian:libfuse3-4@sid", "-daemon debian:libfuse3-4@sid: libfuse3-4 has no FUSE program in /usr/bin or /usr/sbin\n"},
		{"several FUSE programs", "debian:ntfs-3g@sid", "ntfs-3g has 2 FUSE programs, /usr/bin/lowntfs-3g, /usr/bin/ntfs-3g: name the daemon's with -daemon-bin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := fusematrix(t, "matrix", "-q", "-list", "-daemon", tc.daemon, "-daemon-args", "{mnt}")
			if code == 1 && strings.Contains(out, "is the mirror reachable?") {
				t.Skipf("the mirror is unreachable: %s", out)
			}
			assert.Check(t, is.Equal(code, 2), out)
			assert.Check(t, is.Contains(out, tc.want))
		})
	}

	out := t.TempDir()
	code, text := fusematrix(t, "matrix", "-q", "-accel", "tcg", "-out", out, "-run", "^daemon/",
		"-daemon", "debian:bindfs@sid", "-daemon-args", "{backing} {mnt}", "debian:6.12/cloud@bookworm")
	assert.Equal(t, code, 0, text)
	k := readRun(t, out).Kernels[0]
	for _, id := range []string{"pt/integrity", "pt/size-after-write", "pt/mmap-shared", "pt/fsync", "pt/open-twice",
		"pt/unmount-open", "pt/abort-open", "classic/basics"} {
		r := k.Result("daemon/bindfs/" + id)
		if assert.Check(t, r != nil, "no daemon/bindfs/%s", id) {
			assert.Check(t, is.Equal(r.Status, results.Pass), "%s: %s", id, r.Reason)
		}
	}
}

// buildNullfs builds the C NOOP server, guest/nullfs/nullfs.c, linked
// dynamically against libfuse3; the test is skipped without libfuse3-dev.
func buildNullfs(t *testing.T) string {
	t.Helper()
	nullfs := filepath.Join(t.TempDir(), "nullfs")
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "fuse3").Output()
	if err != nil {
		t.Skipf("the libfuse daemon needs libfuse3-dev and pkg-config: %v", err)
	}
	cc := append([]string{"-O2", "-o", nullfs, filepath.Join("..", "..", "..", "guest", "nullfs", "nullfs.c")}, strings.Fields(string(flags))...)
	if msg, err := exec.Command("cc", cc...).CombinedOutput(); err != nil {
		t.Skipf("cc: %v\n%s", err, msg)
	}
	return nullfs
}

// A NOOP daemon without {backing} gets real verdicts on a real kernel
// from the checks that need no reference: the C NOOP server mounts, its
// tree reads (its 64 MiB file of zeros whole), its write check skips
// since it creates nothing, and its unmount leaves no process.
func TestDaemonOwnChecksBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a kernel")
	}
	nullfs := buildNullfs(t)
	out := t.TempDir()
	code, text := fusematrix(t, "matrix", "-q", "-accel", "tcg", "-j", "1", "-out", out, "-run", "^daemon/.*/(mount|read-all|write|unmount)$",
		"-daemon", nullfs, "-daemon-args", "{mnt} zeros 67108864", "debian:6.12/cloud@bookworm")
	assert.Equal(t, code, 0, text)
	run := readRun(t, out)
	assert.Assert(t, is.Len(run.Kernels, 1))
	k := run.Kernels[0]
	for _, tc := range []struct {
		id     string
		status results.Status
		reason string
		facts  map[string]string
	}{
		{"daemon/nullfs/mount", results.Pass, "", map[string]string{"statfs_type": "0x65735546", "root_mode": "040755"}},
		{"daemon/nullfs/read-all", results.Pass, "", map[string]string{"files": "1", "bytes_read": "67108864"}},
		{"daemon/nullfs/write", results.Skip, "it creates no directory (mkdir of a fresh directory at its root answered ENOSYS)", nil},
		{"daemon/nullfs/unmount", results.Pass, "", map[string]string{"daemon_exit": "0"}},
	} {
		r := k.Result(tc.id)
		if !assert.Check(t, r != nil, "no %s", tc.id) {
			continue
		}
		assert.Check(t, is.Equal(r.Status, tc.status), "%s: %s", tc.id, r.Reason)
		assert.Check(t, is.Contains(r.Reason, tc.reason), tc.id)
		for f, v := range tc.facts {
			assert.Check(t, is.Equal(r.Facts[f], v), "%s: fact %s", tc.id, f)
		}
	}
}

// Two clients of the built-in catalog (docs/clients.md), from two
// releases, found by name alone and mounted on both default kernels: sid's
// disorderfs (libfuse 3.18) and bookworm's unionfs-fuse (libfuse 2), both
// in one boot of each kernel (-daemon given twice). Issue 23. A few
// checks only: the catalog's run is in docs/clients.md.
func TestCatalogClients(t *testing.T) {
	if testing.Short() {
		t.Skip("boots kernels, and reads sid's and bookworm's indexes from the configured Debian mirror")
	}
	t.Setenv("FUSEMATRIX_CATALOG", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // the built-in catalog alone
	k61, k612 := "debian:6.1/cloud@bookworm", "debian:6.12/cloud@bookworm"
	// Both in one boot of each kernel, one after the other.
	out := t.TempDir()
	code, text := fusematrix(t, "matrix", "-q", "-accel", "tcg", "-out", out,
		"-run", "^daemon/.*/(pt/integrity|pt/open-twice|classic/basics)$", "-daemon", "disorderfs", "-daemon", "unionfs-fuse", k61, k612)
	if code == 1 && strings.Contains(text, "is the mirror reachable?") {
		t.Skipf("the mirror is unreachable: %s", text)
	}
	assert.Equal(t, code, 0, text)
	run := readRun(t, out)
	assert.Assert(t, is.Len(run.Kernels, 2))
	for _, k := range run.Kernels {
		for _, name := range []string{"disorderfs", "unionfs-fuse"} {
			for _, id := range []string{"pt/integrity", "pt/open-twice", "classic/basics"} {
				r := k.Result("daemon/" + name + "/" + id)
				if assert.Check(t, r != nil, "%s: no daemon/%s/%s", k.Name, name, id) {
					assert.Check(t, is.Equal(r.Status, results.Pass), "%s %s %s: %s", k.Name, name, id, r.Reason)
				}
			}
		}
	}
}

// A read-only client of the built-in catalog, squashfuse on an image made
// in the guest, is found read-only by its own checks: it mounts, its tree
// reads, its unmount is clean, and its write check skips saying the mount
// is read-only, never passes or fails (issue 23).
func TestCatalogReadOnlyClient(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a kernel, and reads sid's index from the configured Debian mirror")
	}
	t.Setenv("FUSEMATRIX_CATALOG", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // the built-in catalog alone
	out := t.TempDir()
	code, text := fusematrix(t, "matrix", "-q", "-accel", "tcg", "-out", out,
		"-run", "^daemon/.*/(mount|read-all|write|unmount)$", "-daemon", "squashfuse", "debian:6.12/cloud@bookworm")
	if code == 1 && strings.Contains(text, "is the mirror reachable?") {
		t.Skipf("the mirror is unreachable: %s", text)
	}
	assert.Equal(t, code, 0, text)
	run := readRun(t, out)
	assert.Assert(t, is.Len(run.Kernels, 1))
	k := run.Kernels[0]
	for id, want := range map[string]results.Status{"mount": results.Pass, "read-all": results.Pass, "write": results.Skip, "unmount": results.Pass} {
		r := k.Result("daemon/squashfuse/" + id)
		if !assert.Check(t, r != nil, "no daemon/squashfuse/%s", id) {
			continue
		}
		assert.Check(t, is.Equal(r.Status, want), "%s: %s", id, r.Reason)
		if id == "write" {
			assert.Check(t, is.Contains(r.Reason, "read-only mount"), id)
		}
	}
	assert.Check(t, is.Equal(k.Result("daemon/squashfuse/mount").Facts["read_only"], "true"))
}
