// Package debdaemon puts a FUSE daemon packaged by Debian under test
// without installing it on the host: "-daemon debian:PACKAGE[=VERSION]
// [@SUITE]". The package and its run-time closure come from the suite's
// index, verified as kernels are, and are unpacked into a sysroot
// (kernels.FetchSysroot); the whole tree goes into the guest below a
// directory of its own, and the guest runs the daemon chrooted there
// (contract.DaemonSpec.Root), with that release's loader and libraries,
// not the host's: a daemon from sid runs on a bookworm host, and two
// daemons of two releases never share a library.
//
// Resolve picks the daemon's program among the package's own files and
// checks, before anything boots, that it is an x86-64 program whose
// loader and libraries the sysroot holds. Everything it refuses is an
// *InputError naming the cause.
//
// The run-time closure is resolved in Go (debian.Universe.Closure), not by
// driving apt-get with a private root, because:
//
//   - it works on any host, Debian or not, without root and without apt:
//     fusematrix already reads Debian's archive without apt for kernels,
//     and the closure reuses that access whole (the mirror from the
//     machine's apt sources or -mirror, the InRelease signature checked
//     against the archive keyring, the index against InRelease, each .deb
//     against the index), so there is one trust path, not two;
//   - a daemon needs far less than apt installs: no maintainer scripts
//     run in a sysroot (nothing is configured, only unpacked), so the
//     packages that serve only them (debconf, adduser, the sysusers
//     helpers: debian.InstallOnly) and the Essential ones (a shell,
//     coreutils, dpkg) are left out, while apt would insist on them;
//   - it is deterministic and testable on Debian's own data: the same
//     index always gives the same closure, and the sysroot is cached by
//     it (kernels.SysrootPlan.Key).
//
// What it does not do, apt would: Conflicts and Breaks are not read (one
// suite's packages are installable together, which is what the archive
// promises), an alternative is not backtracked once chosen, and
// maintainer scripts never run (a daemon that needs its package
// configured, a user created say, does not work this way).
//
// Host side only: it imports the kernels package (the archive, the
// sysroot), initramfs (the guest's files) and the contract.
package debdaemon

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fusematrix/fusematrix/harness/initramfs"
	"github.com/fusematrix/fusematrix/kernels"
	"github.com/fusematrix/fusematrix/kernels/debian"
)

// Prefix starts a -daemon value that names a Debian package.
const Prefix = "debian:"

// GuestDir holds, in the guest, one directory per sysroot, named after
// the package and the closure's key.
const GuestDir = "/fusematrix/sysroot"

// InputError is what the user asked for that cannot be had: an unknown
// package or version, a suite the mirror does not publish, a closure that
// cannot be satisfied, no FUSE program or several, or a program that
// cannot run. It is not a failure to reach the mirror.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Rooted is a Debian package's daemon as the guest runs it.
type Rooted struct {
	// Sysroot is the package's closure unpacked on the host.
	Sysroot *kernels.Sysroot
	// Root is the guest directory the sysroot goes to, and the daemon's
	// root there.
	Root string
	// Program is the daemon's path inside Root, e.g. /usr/bin/bindfs.
	Program string
	// Env is what the daemon's environment needs: PATH, so that the
	// programs it runs (fusermount3, ssh) are found in its root, and
	// LD_LIBRARY_PATH when a package puts libraries in a directory of
	// /etc/ld.so.conf.d (the guest has no ld.so.cache).
	Env []string
	// Files are the sysroot's regular files and links at their guest
	// paths below Root.
	Files []initramfs.File
}

// Resolve finds the sysroot of ref (what follows Prefix), with the
// packages with of its suite and their closures in the same root, and the
// daemon's program in it: bin, a path inside the root, when given, else
// the one program of the package in /usr/bin or /usr/sbin that is a FUSE
// file system (see isFUSE).
func Resolve(ctx context.Context, ref string, with []string, bin string, opts kernels.Options) (*Rooted, error) {
	r, err := kernels.ParsePackageRef(ref)
	if err != nil {
		return nil, &InputError{err}
	}
	r.With = with
	s, err := kernels.FetchSysroot(ctx, r, opts)
	if err != nil {
		var (
			nf *debian.NotFoundError
			ce *debian.ClosureError
			se *kernels.SuiteError
		)
		if errors.As(err, &nf) || errors.As(err, &ce) || errors.As(err, &se) {
			return nil, &InputError{err}
		}
		return nil, err
	}
	d, err := FromSysroot(s, bin)
	if err != nil {
		return nil, &InputError{err}
	}
	return d, nil
}

// FromSysroot is Resolve for a sysroot already made.
func FromSysroot(s *kernels.Sysroot, bin string) (*Rooted, error) {
	prog, err := program(s, bin)
	if err != nil {
		return nil, err
	}
	libPath, err := ldsoConf(s.Root)
	if err != nil {
		return nil, err
	}
	if err := checkProgram(s.Root, prog, libPath); err != nil {
		return nil, err
	}
	d := &Rooted{
		Sysroot: s,
		Root:    GuestDir + "/" + s.Package.Name + "-" + s.Key[:16],
		Program: prog,
		Env:     []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"},
	}
	if len(libPath) > 0 {
		d.Env = append(d.Env, "LD_LIBRARY_PATH="+strings.Join(libPath, ":"))
	}
	if d.Files, err = treeFiles(s.Root, d.Root); err != nil {
		return nil, err
	}
	return d, nil
}

// programDirs are where a package's programs are, as a package names
// them (bookworm's packages also under /bin and /sbin, the same
// directories on a merged-/usr system).
var programDirs = []string{"usr/bin", "usr/sbin", "bin", "sbin"}

// program returns the daemon's program: bin, checked to be in the root,
// or the package's one FUSE program.
func program(s *kernels.Sysroot, bin string) (string, error) {
	if bin != "" {
		if !path.IsAbs(bin) {
			return "", fmt.Errorf("-daemon-bin %s: not an absolute path in the package's root (such as /usr/bin/%s)", bin, s.Package.Name)
		}
		real, err := kernels.ResolveIn(s.Root, bin)
		if err != nil {
			return "", fmt.Errorf("-daemon-bin %s: not in %s's run-time closure (%s)", bin, s.Package.Name, strings.Join(sysrootNames(s), ", "))
		}
		if err := executable(s.Root, real); err != nil {
			return "", fmt.Errorf("-daemon-bin %s: %w", bin, err)
		}
		return path.Clean(bin), nil
	}
	var found, programs []string
	seen := map[string]bool{}
	for _, name := range s.Own {
		if !slices.Contains(programDirs, path.Dir(name)) {
			continue
		}
		real, err := kernels.ResolveIn(s.Root, name)
		if err != nil || seen[real] || executable(s.Root, real) != nil {
			continue
		}
		seen[real] = true
		programs = append(programs, "/"+name)
		if ok, err := isFUSE(filepath.Join(s.Root, filepath.FromSlash(real))); err != nil {
			return "", err
		} else if ok {
			found = append(found, "/"+name)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		also := ""
		if len(programs) > 0 {
			also = fmt.Sprintf(" (its programs there: %s; none uses FUSE; name one with -daemon-bin)", strings.Join(programs, ", "))
		}
		return "", fmt.Errorf("%s has no FUSE program in /usr/bin or /usr/sbin%s", s.Package.Name, also)
	}
	return "", fmt.Errorf("%s has %d FUSE programs, %s: name the daemon's with -daemon-bin", s.Package.Name, len(found), strings.Join(found, ", "))
}

func sysrootNames(s *kernels.Sysroot) []string {
	var out []string
	for _, p := range s.Packages {
		out = append(out, p.Name)
	}
	return out
}

// executable says why the file at real (relative to root, links
// resolved) is no program the guest can run, or nil.
func executable(root, real string) error {
	file := filepath.Join(root, filepath.FromSlash(real))
	fi, err := os.Lstat(file)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("/%s is not an executable file", real)
	}
	ef, err := elf.Open(file)
	if err != nil {
		return fmt.Errorf("/%s is not an ELF program (a script?): %v", real, err)
	}
	defer ef.Close()
	if ef.Machine != elf.EM_X86_64 || ef.Class != elf.ELFCLASS64 {
		return fmt.Errorf("/%s is a %v %v program: the guests are x86-64", real, ef.Class, ef.Machine)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return fmt.Errorf("/%s is no executable (ELF type %v)", real, ef.Type)
	}
	return nil
}

// isFUSE says whether the ELF program at file is a FUSE file system: it
// links libfuse (libfuse.so.2, libfuse3.so.3, libfuse3.so.4…), or, built
// without it (Go's go-fuse, a static libfuse), it names /dev/fuse or
// fusermount, which every FUSE server opens or runs to mount.
func isFUSE(file string) (bool, error) {
	ef, err := elf.Open(file)
	if err != nil {
		return false, err
	}
	needed, _ := ef.DynString(elf.DT_NEEDED)
	ef.Close()
	for _, n := range needed {
		if strings.HasPrefix(n, "libfuse.so.") || strings.HasPrefix(n, "libfuse3.so.") {
			return true, nil
		}
	}
	return containsAny(file, "/dev/fuse", "fusermount")
}

// containsAny says whether the file holds one of words, read in chunks
// that overlap by the longest word's length.
func containsAny(file string, words ...string) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	longest := 0
	for _, w := range words {
		longest = max(longest, len(w))
	}
	buf := make([]byte, 1<<20)
	keep := 0
	for {
		n, err := io.ReadFull(f, buf[keep:])
		chunk := buf[:keep+n]
		for _, w := range words {
			if bytes.Contains(chunk, []byte(w)) {
				return true, nil
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		keep = min(longest-1, len(chunk))
		copy(buf, chunk[len(chunk)-keep:])
	}
}

// libDirs are the directories glibc's loader searches on x86-64 Debian
// without a cache: the multiarch directories, then its built-in ones.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// ldsoConf returns the library directories the root's /etc/ld.so.conf.d
// names that are not among libDirs: ldconfig would put their libraries in
// ld.so.cache at install time, which a sysroot never has.
func ldsoConf(root string) ([]string, error) {
	confs, err := filepath.Glob(filepath.Join(root, "etc", "ld.so.conf.d", "*.conf"))
	if err != nil {
		return nil, err
	}
	slices.Sort(confs)
	var out []string
	for _, c := range confs {
		data, err := os.ReadFile(c)
		if err != nil {
			return nil, err
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			line, _, _ = strings.Cut(line, "#")
			line = strings.TrimSpace(line)
			if path.IsAbs(line) && !slices.Contains(libDirs, path.Clean(line)) && !slices.Contains(out, path.Clean(line)) {
				out = append(out, path.Clean(line))
			}
		}
	}
	return out, nil
}

// checkProgram checks that the loader of prog (a path inside root) and
// every library it needs, transitively, are in the root where the guest's
// loader will look: RPATH and RUNPATH ($ORIGIN expanded), extra, then
// libDirs. A library no package of the closure holds is an error naming
// it and what needs it.
func checkProgram(root, prog string, extra []string) error {
	real, err := kernels.ResolveIn(root, prog)
	if err != nil {
		return err
	}
	ef, err := elf.Open(filepath.Join(root, filepath.FromSlash(real)))
	if err != nil {
		return err
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
		if err != nil {
			return err
		}
		interp := strings.TrimRight(string(data), "\x00")
		if _, err := kernels.ResolveIn(root, interp); err != nil {
			return fmt.Errorf("%s needs the loader %s, which its closure does not hold", prog, interp)
		}
	}
	type item struct{ file string }
	queue := []item{{real}}
	done := map[string]bool{real: true}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		o, err := elf.Open(filepath.Join(root, filepath.FromSlash(it.file)))
		if err != nil {
			return fmt.Errorf("/%s: %w", it.file, err)
		}
		needed, _ := o.DynString(elf.DT_NEEDED)
		rpath, _ := o.DynString(elf.DT_RPATH)
		runpath, _ := o.DynString(elf.DT_RUNPATH)
		o.Close()
		var dirs []string
		for _, list := range slices.Concat(rpath, runpath) {
			for d := range strings.SplitSeq(list, ":") {
				d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", "$ORIGIN"), "$ORIGIN", "/"+path.Dir(it.file))
				dirs = append(dirs, d)
			}
		}
		dirs = slices.Concat(dirs, extra, libDirs)
		for _, n := range needed {
			lib, ok := "", false
			for _, d := range dirs {
				if l, err := kernels.ResolveIn(root, path.Join(d, n)); err == nil {
					lib, ok = l, true
					break
				}
			}
			if !ok {
				return fmt.Errorf("/%s needs %s, which no package of its closure holds", it.file, n)
			}
			if !done[lib] {
				done[lib] = true
				queue = append(queue, item{lib})
			}
		}
	}
	return nil
}

// treeFiles lists the regular files and links below dir for the guest,
// below guest. Links are never followed: they are written as they are.
func treeFiles(dir, guest string) ([]initramfs.File, error) {
	var out []initramfs.File
	err := filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil || name == dir {
			return err
		}
		rel, err := filepath.Rel(dir, name)
		if err != nil {
			return err
		}
		g := guest + "/" + filepath.ToSlash(rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(name)
			if err != nil {
				return err
			}
			out = append(out, initramfs.Symlink(g, target))
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			out = append(out, initramfs.HostFile(g, name, fi.Mode().Perm()))
		}
		return nil
	})
	return out, err
}
