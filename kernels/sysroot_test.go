package kernels

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fusematrix/fusematrix/kernels/debian"
	"github.com/fusematrix/fusematrix/kernels/internal/fakearchive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/fs"
)

func TestParsePackageRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want PackageRef
		str  string
		err  string
	}{
		{in: "bindfs", want: PackageRef{Name: "bindfs"}, str: "bindfs@stable"},
		{in: "bindfs@sid", want: PackageRef{Name: "bindfs", Suite: "sid"}, str: "bindfs@sid"},
		{in: "sshfs=3.7.3-1.2@sid", want: PackageRef{Name: "sshfs", Version: "3.7.3-1.2", Suite: "sid"}, str: "sshfs=3.7.3-1.2@sid"},
		{in: "ntfs-3g=1:2026.9.28-2", want: PackageRef{Name: "ntfs-3g", Version: "1:2026.9.28-2"}, str: "ntfs-3g=1:2026.9.28-2@stable"},
		{in: "fuse-overlayfs@trixie-backports", want: PackageRef{Name: "fuse-overlayfs", Suite: "trixie-backports"}, str: "fuse-overlayfs@trixie-backports"},
		{in: "", err: `package "": not a Debian package name`},
		{in: "BindFS", err: `package "BindFS": not a Debian package name`},
		{in: "../etc", err: `package "../etc": not a Debian package name`},
		{in: "bindfs=", err: `version "" of bindfs: not a Debian version`},
		{in: "bindfs=1 2", err: `version "1 2" of bindfs: not a Debian version`},
		{in: "bindfs@", err: `suite "": not a suite name`},
		{in: "bindfs@../../x", err: `suite "../../x": not a suite name`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePackageRef(tc.in)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want)
			assert.Check(t, is.Equal(got.String(), tc.str))
		})
	}
}

// sysrootArchive serves a suite laid out as sid is: a FUSE daemon whose
// closure has a library, libc with the loader reached through /lib64, a
// package that provides a virtual one, an install-time helper, an
// Essential package, and a daemon whose closure cannot be satisfied.
func sysrootArchive(t *testing.T) *fakearchive.Server {
	exe := func(name, body string) fakearchive.Entry {
		return fakearchive.Entry{Name: name, Body: []byte(body), Mode: 0o755}
	}
	doc := func(p string) fakearchive.Entry {
		return fakearchive.Entry{Name: "./usr/share/doc/" + p + "/copyright", Body: []byte("GPL")}
	}
	pkgs := []fakearchive.Package{
		{Name: "myfs", Version: "1.0-1", Depends: "libc6 (>= 2.38), libfuse3-4 (>= 3.17.2), fusermount, debconf (>= 0.5) | debconf-2.0, sed",
			Deb: fakearchive.Deb(".xz", doc("myfs"), exe("./usr/bin/myfs", "myfs"), fakearchive.Entry{Name: "./usr/bin/myfs-helper", Link: "myfs"},
				fakearchive.Entry{Name: "./usr/share/man/man1/myfs.1.gz", Body: []byte("man")})},
		{Name: "libc6", Version: "2.43-7",
			Deb: fakearchive.Deb(".zst", doc("libc6"), exe("./usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "ld"),
				fakearchive.Entry{Name: "./usr/lib64/ld-linux-x86-64.so.2", Link: "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
				fakearchive.Entry{Name: "./usr/lib/x86_64-linux-gnu/libc.so.6", Body: []byte("libc")})},
		// Laid out as bookworm's packages are: below /lib, through the
		// merged-/usr link, and with an absolute link.
		{Name: "libfuse3-4", Version: "3.18.3-1", Depends: "libc6 (>= 2.38)",
			Deb: fakearchive.Deb(".xz", fakearchive.Entry{Name: "./lib/x86_64-linux-gnu/libfuse3.so.4.18.3", Body: []byte("libfuse")},
				fakearchive.Entry{Name: "./lib/x86_64-linux-gnu/libfuse3.so.4", Link: "/lib/x86_64-linux-gnu/libfuse3.so.4.18.3"})},
		{Name: "fuse3", Version: "3.18.3-1", Depends: "libc6, libfuse3-4 (= 3.18.3-1)", Fields: "Provides: fusermount, fuse (= 3.18.3-1)",
			Deb: fakearchive.Deb(".xz", exe("./usr/bin/fusermount3", "fusermount3"))},
		{Name: "debconf", Version: "1.5.91", Deb: []byte("never fetched")},
		{Name: "sed", Version: "4.9-2", Fields: "Essential: yes", Deb: []byte("never fetched")},
		{Name: "brokenfs", Version: "2", Depends: "libc6, libgone1 (>= 2) | libgone2", Deb: []byte("never fetched")},
	}
	return fakearchive.Serve(t,
		fakearchive.Suite{Name: "sid", Packages: pkgs},
		fakearchive.Suite{Name: "stable", Codename: "trixie", Packages: pkgs[1:4]},
	)
}

func TestFetchSysroot(t *testing.T) {
	srv := sysrootArchive(t)
	opts, _ := testOptions(t, srv)
	ctx := context.Background()
	ref, err := ParsePackageRef("myfs@sid")
	assert.NilError(t, err)
	s, err := FetchSysroot(ctx, ref, opts)
	assert.NilError(t, err)

	var got []string
	for _, p := range s.Packages {
		got = append(got, p.Name+" "+p.Version)
	}
	assert.DeepEqual(t, got, []string{"fuse3 3.18.3-1", "libc6 2.43-7", "libfuse3-4 3.18.3-1", "myfs 1.0-1"})
	assert.Check(t, is.Equal(s.Package.Name, "myfs"))
	assert.Check(t, is.Equal(s.Unverified, ""))
	assert.Check(t, is.Equal(s.Root, filepath.Join(opts.CacheDir, "sysroots", "myfs_"+s.Key[:16], "root")))
	assert.DeepEqual(t, s.Own, []string{"usr/bin/myfs", "usr/bin/myfs-helper"})
	assert.Assert(t, fs.Equal(s.Root, fs.Expected(t, fs.MatchAnyFileMode,
		fs.WithSymlink("bin", "usr/bin"), fs.WithSymlink("sbin", "usr/sbin"),
		fs.WithSymlink("lib", "usr/lib"), fs.WithSymlink("lib64", "usr/lib64"),
		fs.WithDir("etc", fs.WithFile("passwd", baseFiles["etc/passwd"]), fs.WithFile("group", baseFiles["etc/group"]),
			fs.WithSymlink("mtab", "../proc/self/mounts")),
		fs.WithDir("root"),
		fs.WithDir("usr",
			fs.WithDir("bin", fs.WithFile("myfs", "myfs", fs.WithMode(0o755)), fs.WithSymlink("myfs-helper", "myfs"),
				fs.WithFile("fusermount3", "fusermount3", fs.WithMode(0o755))),
			fs.WithDir("sbin"),
			fs.WithDir("lib64", fs.WithSymlink("ld-linux-x86-64.so.2", "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")),
			fs.WithDir("lib", fs.WithDir("x86_64-linux-gnu",
				fs.WithFile("ld-linux-x86-64.so.2", "ld", fs.WithMode(0o755)), fs.WithFile("libc.so.6", "libc"),
				fs.WithFile("libfuse3.so.4.18.3", "libfuse"), fs.WithSymlink("libfuse3.so.4", "/lib/x86_64-linux-gnu/libfuse3.so.4.18.3"))),
		),
	)))
	// The loader PT_INTERP names, and the library through its absolute
	// link, as a program under chroot finds them.
	for name, want := range map[string]string{
		"lib64/ld-linux-x86-64.so.2":         "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"lib/x86_64-linux-gnu/libfuse3.so.4": "usr/lib/x86_64-linux-gnu/libfuse3.so.4.18.3",
		"bin/myfs-helper":                    "usr/bin/myfs",
	} {
		real, err := ResolveIn(s.Root, name)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(real, want), name)
	}

	// A second run downloads nothing, and reads the index from the cache.
	before := len(srv.Requests())
	again, err := FetchSysroot(ctx, ref, opts)
	assert.NilError(t, err)
	assert.Check(t, is.Len(srv.Requests()[before:], 0))
	assert.Check(t, is.Equal(again.Key, s.Key))
	assert.Check(t, is.Equal(again.Root, s.Root))

	// A damaged entry is made again.
	assert.NilError(t, os.Remove(filepath.Join(s.Root, "usr/lib/x86_64-linux-gnu/libc.so.6")))
	_, err = FetchSysroot(ctx, ref, opts)
	assert.NilError(t, err)
	assert.Check(t, is.Contains(debRequests(srv)[len(debRequests(srv))-4:], "libc6_2.43-7_amd64.deb"))
	data, err := os.ReadFile(filepath.Join(s.Root, "usr/lib/x86_64-linux-gnu/libc.so.6"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(data), "libc"))
	assert.Check(t, !slices.Contains(debRequests(srv), "debconf_1.5.91_amd64.deb"))

	// "stable" is whichever release the archive says it is.
	st, err := FetchSysroot(ctx, PackageRef{Name: "libfuse3-4"}, opts)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Package.Suite, "stable"))
	assert.Check(t, st.Key != s.Key)

	// Sysroots are kept until a prune of everything.
	_, err = Prune(ctx, nil, false, opts)
	assert.NilError(t, err)
	_, err = os.Stat(s.Root)
	assert.NilError(t, err)
	_, err = Prune(ctx, nil, true, opts)
	assert.NilError(t, err)
	_, err = os.Stat(s.Root)
	assert.Check(t, errors.Is(err, os.ErrNotExist), err)
}

// Packages a daemon's setup needs beside its own (PackageRef.With) come
// with their closures into the same root; the daemon's own files stay
// those of its package, and the closure's key tells the two roots apart.
func TestFetchSysrootWith(t *testing.T) {
	srv := sysrootArchive(t)
	opts, _ := testOptions(t, srv)
	ctx := context.Background()
	plain, err := LookupSysroot(ctx, PackageRef{Name: "libfuse3-4", Suite: "sid"}, opts)
	assert.NilError(t, err)
	s, err := FetchSysroot(ctx, PackageRef{Name: "libfuse3-4", Suite: "sid", With: []string{"fuse3", "libc6"}}, opts)
	assert.NilError(t, err)
	var got []string
	for _, p := range s.Packages {
		got = append(got, p.Name)
	}
	assert.DeepEqual(t, got, []string{"fuse3", "libc6", "libfuse3-4"})
	assert.Check(t, s.Key != plain.Key)
	assert.DeepEqual(t, s.Own, []string{"lib/x86_64-linux-gnu/libfuse3.so.4", "lib/x86_64-linux-gnu/libfuse3.so.4.18.3"})
	_, err = ResolveIn(s.Root, "usr/bin/fusermount3")
	assert.NilError(t, err)

	_, err = LookupSysroot(ctx, PackageRef{Name: "libfuse3-4", Suite: "sid", With: []string{"nosuchtool"}}, opts)
	var nf *debian.NotFoundError
	assert.Check(t, errors.As(err, &nf), "%v", err)
}

func TestLookupSysrootErrors(t *testing.T) {
	srv := sysrootArchive(t)
	opts, _ := testOptions(t, srv)
	ctx := context.Background()
	for _, tc := range []struct {
		ref  string
		err  string
		kind any
	}{
		{"nosuchfs@sid", "no package nosuchfs in sid", new(*debian.NotFoundError)},
		{"myfs=0.9@sid", "sid has myfs 1.0-1, not 0.9", new(*debian.NotFoundError)},
		{"fusermount@sid", "fusermount is a virtual package in sid, provided by fuse3: name one of them", new(*debian.NotFoundError)},
		{"brokenfs@sid", "run-time closure cannot be satisfied in sid: brokenfs 2 needs libgone1 (>= 2) | libgone2: no package libgone1 in sid; no package libgone2 in sid", new(*debian.ClosureError)},
		{"myfs@experimental", "the configured Debian mirror does not publish the suite experimental", new(*SuiteError)},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			ref, err := ParsePackageRef(tc.ref)
			assert.NilError(t, err)
			_, err = LookupSysroot(ctx, ref, opts)
			assert.Check(t, is.Error(err, tc.err))
			assert.Check(t, errors.As(err, tc.kind), "%T", err)
			_, err = FetchSysroot(ctx, ref, opts)
			assert.Check(t, is.Error(err, tc.err))
		})
	}
	assert.Check(t, is.Len(debRequests(srv), 0))
}

func TestResolveIn(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"usr/lib/x", "usr/bin"} {
		assert.NilError(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	assert.NilError(t, os.WriteFile(filepath.Join(root, "usr/lib/x/real"), nil, 0o644))
	for link, target := range map[string]string{
		"lib": "usr/lib", "usr/bin/abs": "/lib/x/real", "usr/bin/up": "../../../../lib/x/real",
		"usr/bin/loop": "loop2", "usr/bin/loop2": "loop", "usr/bin/gone": "nothing",
	} {
		assert.NilError(t, os.Symlink(target, filepath.Join(root, link)))
	}
	for _, tc := range []struct{ name, want, err string }{
		{name: "lib/x/real", want: "usr/lib/x/real"},
		{name: "usr/bin/abs", want: "usr/lib/x/real"},
		{name: "/usr/bin/up", want: "usr/lib/x/real"},
		{name: "usr/bin/loop", err: "too many levels of symbolic links"},
		{name: "usr/bin/gone", err: "no such file"},
	} {
		got, err := ResolveIn(root, tc.name)
		if tc.err != "" {
			assert.Check(t, is.ErrorContains(err, tc.err), tc.name)
			continue
		}
		assert.Check(t, err, tc.name)
		assert.Check(t, is.Equal(got, tc.want), tc.name)
	}
}

// TestSysrootFromMirror resolves daemons' closures on Debian's real
// indexes, through the mirror the machine's apt sources name (an index is
// about 11 MB the first time, cached in the user's cache), and unpacks
// bindfs from sid.
func TestSysrootFromMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: reads sid's index from the configured Debian mirror")
	}
	ctx := context.Background()
	opts := Options{Logf: t.Logf}
	plan, err := LookupSysroot(ctx, PackageRef{Name: "bindfs", Suite: "sid"}, opts)
	if debian.IsNetworkError(err) {
		t.Skipf("the mirror is unreachable: %v", err)
	}
	assert.NilError(t, err)
	var names []string
	for _, p := range plan.Packages {
		names = append(names, p.Name)
	}
	for _, want := range []string{"bindfs", "libc6", "libfuse3-4", "fuse3", "libgcc-s1"} {
		assert.Check(t, slices.Contains(names, want), "%s not in %v", want, names)
	}
	for _, never := range []string{"debconf", "dpkg", "bash", "coreutils", "base-files", "systemd"} {
		assert.Check(t, !slices.Contains(names, never), "%s in %v", never, names)
	}
	again, err := LookupSysroot(ctx, PackageRef{Name: "bindfs", Suite: "sid"}, opts)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(again.Key, plan.Key), "the same index gives the same closure")

	// sshfs needs openssh-client, whose "systemd | systemd-standalone-
	// sysusers | systemd-sysusers" serves its maintainer scripts only;
	// cryfs needs libspdlog1.15-fmt11, a virtual package.
	for pkg, want := range map[string][]string{"sshfs": {"openssh-client", "libglib2.0-0t64"}, "cryfs": {"libspdlog1.15"}} {
		p, err := LookupSysroot(ctx, PackageRef{Name: pkg, Suite: "sid"}, opts)
		assert.NilError(t, err)
		var got []string
		for _, q := range p.Packages {
			got = append(got, q.Name)
		}
		for _, w := range want {
			assert.Check(t, slices.Contains(got, w), "%s: %s not in %v", pkg, w, got)
		}
		assert.Check(t, !slices.Contains(got, "systemd"), "%s: %v", pkg, got)
	}

	s, err := FetchSysroot(ctx, PackageRef{Name: "bindfs", Suite: "sid"}, opts)
	assert.NilError(t, err)
	assert.Check(t, slices.Contains(s.Own, "usr/bin/bindfs"), "%v", s.Own)
	real, err := ResolveIn(s.Root, "lib64/ld-linux-x86-64.so.2")
	assert.NilError(t, err)
	assert.Check(t, strings.HasPrefix(real, "usr/lib/"), real)
	_, err = os.Stat(filepath.Join(s.Root, "usr/share/doc"))
	assert.Check(t, errors.Is(err, os.ErrNotExist), "docs are left out")
}
