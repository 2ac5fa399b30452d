package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/harness/daemonspec"
	"github.com/fusematrix/fusematrix/harness/debdaemon"
	"github.com/fusematrix/fusematrix/harness/elfdeps"
	"github.com/fusematrix/fusematrix/harness/initramfs"
	"github.com/fusematrix/fusematrix/kernels"
	"github.com/fusematrix/fusematrix/kernels/debian"
	"github.com/fusematrix/fusematrix/results/contract"
)

// daemonGuestDir is where a daemon's binary goes in the guest; the files
// it needs keep their host paths.
const daemonGuestDir = "/fusematrix/daemon"

// daemonFlags are the flags that put a user's daemon under test.
type daemonFlags struct {
	path, args, name string
	bin              string
	passthrough      bool
	env              []string
	wait             time.Duration
}

func registerDaemonFlags(fs *flag.FlagSet) *daemonFlags {
	d := &daemonFlags{}
	what := "the guests also run the checks against it, under daemon/NAME/…"
	switch fs.Name() {
	case "bench":
		what = "the guests also measure it, in cells daemon/NAME/bench/<op>/<block>"
	case "shell":
		what = "the guest mounts it at /mnt/fuse instead of fusematrix's loopback; fusematrix-agent run daemon/NAME/… runs one of its checks"
	}
	fs.StringVar(&d.path, "daemon", "", "your FUSE daemon: its `binary`, a file describing it, the NAME of a [daemon NAME] section of the catalog, or a Debian package, debian:PACKAGE[=VERSION][@SUITE] (run with its own libraries from the archive); "+what)
	fs.StringVar(&d.bin, "daemon-bin", "", "for -daemon debian:PACKAGE: the daemon's `program` in the package's root, e.g. /usr/bin/sshfs (default: the package's one FUSE program in /usr/bin or /usr/sbin)")
	fs.StringVar(&d.args, "daemon-args", contract.PlaceholderMount,
		"the daemon's `arguments`, split as a shell would (quotes group words); "+contract.PlaceholderBacking+" is the directory it shows, "+contract.PlaceholderMount+" its mount point")
	fs.StringVar(&d.name, "daemon-name", "", "the daemon's `name` in result ids (default: the binary's base name)")
	fs.BoolVar(&d.passthrough, "daemon-passthrough", false, "the daemon's author claims it uses FUSE passthrough where the kernel offers it (checked by daemon/NAME/passthrough)")
	fs.Func("daemon-env", "`KEY=VALUE` in the daemon's environment (repeatable)", func(s string) error {
		if err := contract.CheckEnv(s); err != nil {
			return err
		}
		d.env = append(d.env, s)
		return nil
	})
	fs.DurationVar(&d.wait, "daemon-wait", contract.DefaultMountWait, "how long the daemon gets to mount")
	return d
}

// daemon returns the daemon the flags describe, nil when -daemon was not
// given. -daemon names a binary, a description file, or a [daemon NAME]
// section of the catalog (the file catalog, else the user's); the other
// -daemon-* flags add to the description or override it. A binary that
// cannot run in the guests is an error here, before anything boots.
//
// A Debian package (debian.Prefix, on the command line or as a
// description's binary) is resolved here too: its sysroot is fetched
// (kernels' options say from where), so that an unknown package, a
// closure that cannot be satisfied or a package without a FUSE program is
// an error before any boot (a *debdaemon.InputError, exit 2 as for any
// bad -daemon; a mirror out of reach is not one).
func (d *daemonFlags) daemon(ctx context.Context, fs *flag.FlagSet, catalog string, kopts kernels.Options, quiet bool) (*harness.Daemon, error) {
	if d.path == "" {
		for _, f := range []string{"daemon-args", "daemon-name", "daemon-passthrough", "daemon-env", "daemon-wait", "daemon-bin"} {
			if set(fs, f) {
				return nil, fmt.Errorf("-%s without -daemon", f)
			}
		}
		return nil, nil
	}
	spec := &daemonspec.Spec{Binary: d.path}
	if !strings.HasPrefix(d.path, debdaemon.Prefix) {
		var err error
		if spec, err = describe(d.path, catalog); err != nil {
			return nil, fmt.Errorf("-daemon %s: %w", d.path, err)
		}
	}
	ref, isDebian := strings.CutPrefix(spec.Binary, debdaemon.Prefix)
	if set(fs, "daemon-bin") {
		spec.Program = d.bin
	}
	if spec.Program != "" && !isDebian {
		return nil, fmt.Errorf("-daemon-bin (or program =) names a program in a Debian package's root: -daemon %s is no debian:PACKAGE", d.path)
	}
	if spec.Name == "" || set(fs, "daemon-name") {
		spec.Name = d.name
	}
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Binary)
		if isDebian {
			spec.Name, _, _ = strings.Cut(ref, "=")
			spec.Name, _, _ = strings.Cut(spec.Name, "@")
		}
	}
	var err error
	argsFrom := "-daemon-args"
	if spec.Args == nil || set(fs, "daemon-args") {
		if spec.Args, err = daemonspec.SplitArgs(d.args); err != nil {
			return nil, fmt.Errorf("-daemon-args: %w", err)
		}
	} else {
		argsFrom = spec.Where(daemonspec.KeyArgs)
	}
	if err := contract.CheckArgs(spec.Args); err != nil {
		return nil, fmt.Errorf("%s: %w", argsFrom, err)
	}
	claim := d.passthrough
	if spec.Passthrough != nil && !set(fs, "daemon-passthrough") {
		claim = *spec.Passthrough
	}
	wait := d.wait
	if spec.Wait > 0 && !set(fs, "daemon-wait") {
		wait = spec.Wait
	}
	if wait <= 0 {
		return nil, fmt.Errorf("-daemon-wait %s: want a positive duration", wait)
	}
	if isDebian {
		return debianDaemon(ctx, spec, ref, contract.DaemonSpec{
			Name: spec.Name, Args: spec.Args, Env: slices.Concat(spec.Env, d.env), Passthrough: claim, MountWait: wait.Seconds(),
		}, kopts, quiet)
	}
	files, env, own, err := daemonFiles(spec.Binary)
	if w := spec.Where(daemonspec.KeyBinary); err != nil && w != "" {
		if !filepath.IsAbs(spec.Binary) {
			wd, _ := os.Getwd()
			err = fmt.Errorf("%w (a relative path, taken from %s, where fusematrix runs)", err, wd)
		}
		return nil, fmt.Errorf("%s: %w", w, err)
	}
	if err != nil {
		return nil, fmt.Errorf("-daemon %s: %w", d.path, err)
	}
	extra, err := extraFiles(spec.Files, slices.Concat(harness.ReservedPaths, own))
	if err != nil {
		return nil, fmt.Errorf("-daemon %s: %w", d.path, err)
	}
	out := &harness.Daemon{
		DaemonSpec: contract.DaemonSpec{
			Name: spec.Name, Path: daemonGuestDir + "/" + filepath.Base(spec.Binary), Args: spec.Args,
			Env: daemonEnv(env, slices.Concat(spec.Env, d.env)), Passthrough: claim, MountWait: wait.Seconds(),
		},
		Files: append(files, extra...),
	}
	if err := out.Check(); err != nil {
		if spec.Origin != "" {
			err = fmt.Errorf("%s: %w", spec.Origin, err)
		}
		return nil, err
	}
	return out, nil
}

// debianDaemon is the daemon of a Debian package (ref, what follows
// debdaemon.Prefix) as out describes it: its sysroot goes into the guest
// below a directory of its own, where it runs chrooted, with the
// description's extra files inside that root.
func debianDaemon(ctx context.Context, spec *daemonspec.Spec, ref string, out contract.DaemonSpec, kopts kernels.Options, quiet bool) (*harness.Daemon, error) {
	where := cmp.Or(spec.Where(daemonspec.KeyBinary), "-daemon "+spec.Binary)
	if kopts.Logf == nil && !quiet {
		kopts.Logf = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "fusematrix: %s\n", fmt.Sprintf(format, args...))
		}
	}
	dd, err := debdaemon.Resolve(ctx, ref, spec.Program, kopts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	out.Root, out.Path = dd.Root, dd.Program
	out.Env = slices.Concat(dd.Env, out.Env)
	// An extra file goes where the daemon sees it: inside its root. No
	// file of the packages may be replaced by one.
	var reserved []harness.Reserved
	for _, f := range dd.Files {
		reserved = append(reserved, harness.Reserved{Path: strings.TrimPrefix(f.Path, dd.Root), What: "a file of " + dd.Sysroot.Package.Name + "'s closure"})
	}
	for _, p := range []string{"/dev", "/proc", "/sys", "/tmp", contract.RootScratch} {
		reserved = append(reserved, harness.Reserved{Path: p, What: "the guest mounts a file system over it in the daemon's root"})
	}
	extra, err := extraFiles(spec.Files, reserved)
	if err != nil {
		return nil, fmt.Errorf("-daemon %s: %w", spec.Binary, err)
	}
	for i := range extra {
		extra[i].Path = dd.Root + extra[i].Path
	}
	d := &harness.Daemon{DaemonSpec: out, Files: append(dd.Files, extra...)}
	if err := d.Check(); err != nil {
		if spec.Origin != "" {
			err = fmt.Errorf("%s: %w", spec.Origin, err)
		}
		return nil, err
	}
	s := dd.Sysroot
	fmt.Fprintf(os.Stderr, "fusematrix: daemon %s: %s %s from %s (%d packages, sysroot %s), run as %s in its own root\n",
		out.Name, s.Package.Name, s.Package.Version, s.Package.Suite, len(s.Packages), s.Key[:16], dd.Program)
	return d, nil
}

// resolveDaemon is daemon for a command: interruptible (a Debian
// package's download can take a while), and its error the exit status
// daemonFailed gives, the reason printed after prefix.
func (d *daemonFlags) resolveDaemon(prefix string, fs *flag.FlagSet, catalog string, kopts kernels.Options, quiet bool) (*harness.Daemon, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out, err := d.daemon(ctx, fs, catalog, kopts, quiet)
	if err != nil {
		return nil, daemonFailed(prefix, err)
	}
	return out, nil
}

// daemonFailed prints why -daemon cannot be used and returns the exit
// status: 2 for the input (the daemon named cannot run, or is no package
// the archive has), 1 when the Debian mirror could not be reached, which
// says nothing of the input.
func daemonFailed(prefix string, err error) error {
	fmt.Fprintf(os.Stderr, "%s: %v\n", prefix, err)
	var in *debdaemon.InputError
	if !errors.As(err, &in) && debian.IsNetworkError(err) {
		return exitError(1)
	}
	return exitError(2)
}

// daemonEnv is the daemon's environment: fusematrix's entries (elfdeps'
// LD_LIBRARY_PATH, naming the guest directory it copied libraries to)
// followed by the user's. A user's LD_LIBRARY_PATH used to replace
// fusematrix's (the last entry of a name wins), and a daemon whose
// libraries are there then failed to start: the two are joined into one
// entry instead, fusematrix's directory first. It holds only the libraries
// resolved on the host for this binary, each under the name the binary
// asks for, so the daemon loads the very files that were checked, and the
// user's directories still serve everything else (a plugin it opens with
// dlopen, given as an extra file). The user's last value is the one
// joined, as it was the one that counted.
func daemonEnv(ours, user []string) []string {
	const key = "LD_LIBRARY_PATH="
	i := slices.IndexFunc(ours, func(e string) bool { return strings.HasPrefix(e, key) })
	if i < 0 {
		return slices.Concat(ours, user)
	}
	out := slices.Clone(ours)
	for _, e := range user {
		v, ok := strings.CutPrefix(e, key)
		switch {
		case !ok:
			out = append(out, e)
		case v != "":
			out[i] = ours[i] + ":" + v
		default:
			out[i] = ours[i] // an empty value adds nothing
		}
	}
	return out
}

// describe reads what -daemon names: a binary (an ELF file, or a script,
// which elfdeps then refuses with its reason), a description file, or a
// daemon section of the catalog.
func describe(path, catalog string) (*daemonspec.Spec, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && !strings.ContainsRune(path, '/') {
		c, cerr := kernels.UserCatalog(catalog)
		if cerr != nil {
			return nil, cerr
		}
		sec, ok := c.Daemon(path)
		if !ok {
			known := "none"
			if names := c.Daemons(); len(names) > 0 {
				known = strings.Join(names, ", ")
			}
			return nil, fmt.Errorf("no such file, and no [daemon %s] in the catalog (%s; its daemons: %s)", path, strings.Join(c.Files(), ", "), known)
		}
		return daemonspec.FromSection(sec)
	}
	if err != nil {
		// Left to elfdeps, which says what is wrong with the path.
		return &daemonspec.Spec{Binary: path}, nil
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	if head = head[:n]; bytes.HasPrefix(head, []byte("\x7fELF")) || bytes.HasPrefix(head, []byte("#!")) {
		return &daemonspec.Spec{Binary: path}, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	// One byte past the cap, so that Parse refuses a larger file rather
	// than reading part of it.
	text, err := io.ReadAll(io.LimitReader(f, daemonspec.MaxSize+1))
	if err != nil {
		return nil, err
	}
	spec, err := daemonspec.Parse(path, bytes.NewReader(text))
	if err != nil && !bytes.Contains(text, []byte("[daemon ")) {
		return nil, fmt.Errorf("neither an ELF binary nor a daemon description: %w", err)
	}
	return spec, err
}

// extraFiles are a description's extra files for the guest, each at its
// guest path (its host path, made absolute, unless given). A guest path
// that would replace or hide one of reserved (the initramfs's own files,
// the daemon's, an earlier extra file's) is an error naming it, and so is
// a file that is not there, or not a regular file.
func extraFiles(fs []daemonspec.File, reserved []harness.Reserved) ([]initramfs.File, error) {
	var out []initramfs.File
	reserved = slices.Clone(reserved)
	for _, f := range fs {
		guest := f.Guest
		if guest == "" {
			var err error
			if guest, err = filepath.Abs(f.Host); err != nil {
				return nil, fmt.Errorf("%s: extra file: %w", f.Where, err)
			}
		}
		guest = filepath.Clean(guest)
		if err := harness.Conflict(guest, reserved); err != nil {
			return nil, fmt.Errorf("%s: extra file %s: %w", f.Where, f.Host, err)
		}
		info, err := os.Stat(f.Host)
		if err != nil {
			return nil, fmt.Errorf("%s: extra file: %w", f.Where, err)
		}
		if !info.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: extra file %s: not a regular file", f.Where, f.Host)
		}
		out = append(out, initramfs.HostFile(guest, f.Host, info.Mode().Perm()))
		reserved = append(reserved, harness.Reserved{Path: guest, What: "the extra file of " + f.Where})
	}
	return out, nil
}

// daemonFiles are the files that carry the binary at path into a guest
// (its dynamic loader, libraries and fusermount3 too, found from the ELF
// file), the environment it needs there, and the guest paths they take,
// which no extra file may. A binary that cannot run in the guests is an
// error naming why; what elfdeps could only warn about goes to stderr.
func daemonFiles(path string) ([]initramfs.File, []string, []harness.Reserved, error) {
	b, err := elfdeps.Resolve(path)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, n := range b.Notes {
		fmt.Fprintf(os.Stderr, "fusematrix: warning: daemon binary %s: %s\n", path, n)
	}
	fs, err := b.Files(daemonGuestDir + "/" + filepath.Base(path))
	if err != nil {
		return nil, nil, nil, err
	}
	files := make([]initramfs.File, len(fs))
	own := []harness.Reserved{{Path: daemonGuestDir, What: "where fusematrix puts the daemon's binary"}}
	for i, f := range fs {
		files[i] = initramfs.HostFile(f.Guest, f.Host, f.Mode)
		if i > 0 { // the binary's own is in daemonGuestDir
			own = append(own, harness.Reserved{Path: f.Guest, What: "the daemon needs " + f.Host + " there (its loader, a library or fusermount3)"})
		}
	}
	return files, b.Env, own, nil
}
