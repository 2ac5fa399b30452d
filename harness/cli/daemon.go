package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
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
	"github.com/fusematrix/fusematrix/kernels"
	"github.com/fusematrix/fusematrix/kernels/debian"
	"github.com/fusematrix/fusematrix/results/contract"
)

// Daemons are the flags that put users' daemons under test: -daemon,
// repeatable, and the -daemon-* flags that describe one daemon.
type Daemons struct {
	paths       []string
	args, name  string
	bin         string
	passthrough bool
	uring       bool
	env         []string
	wait        time.Duration
}

// DaemonFlags registers -daemon and the -daemon-* flags; what -daemon
// says of the daemon depends on the command (fs's name).
func DaemonFlags(fs *flag.FlagSet) *Daemons {
	d := &Daemons{}
	what := "the guests also run the checks against it, under daemon/NAME/…"
	switch fs.Name() {
	case "bench":
		what = "the guests also measure it, in cells daemon/NAME/bench/<op>/<block>"
	case "shell":
		what = "the guest mounts it at /mnt/fuse instead of fusematrix's loopback; fusematrix-agent run daemon/NAME/… runs one of its checks"
	}
	fs.Func("daemon", "your FUSE daemon: its `binary`, a file describing it, the NAME of a [daemon NAME] section of the catalog, or a Debian package, debian:PACKAGE[=VERSION][@SUITE] (run with its own libraries from the archive); "+what+". Repeat it to run several daemons in one boot, each after the other; "+clientsWord+" is every daemon of the catalog", func(s string) error {
		if s == "" {
			return errors.New("empty")
		}
		d.paths = append(d.paths, s)
		return nil
	})
	fs.StringVar(&d.bin, "daemon-bin", "", "for -daemon debian:PACKAGE: the daemon's `program` in the package's root, e.g. /usr/bin/sshfs (default: the package's one FUSE program in /usr/bin or /usr/sbin)")
	fs.StringVar(&d.args, "daemon-args", contract.PlaceholderMount,
		"the daemon's `arguments`, split as a shell would (quotes group words); "+contract.PlaceholderBacking+" is the directory it shows, "+contract.PlaceholderMount+" its mount point")
	fs.StringVar(&d.name, "daemon-name", "", "the daemon's `name` in result ids (default: the binary's base name)")
	fs.BoolVar(&d.passthrough, "daemon-passthrough", false, "the daemon's author claims it uses FUSE passthrough where the kernel offers it (checked by daemon/NAME/passthrough)")
	fs.BoolVar(&d.uring, "daemon-uring", false, "the daemon's author claims it serves over FUSE's io_uring transport where the kernel offers it (checked by daemon/NAME/io-uring)")
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

// clientsWord, given to -daemon, stands for every daemon section of the
// catalog (the built-in one's FUSE clients, and the user's).
const clientsWord = kernels.AllDaemons

// daemons returns the daemons the flags describe, in the order given,
// none when -daemon was not given; -daemon clients is every daemon of the
// catalog. The -daemon-* flags describe one daemon, so with several they
// are an error.
func (d *Daemons) daemons(ctx context.Context, fs *flag.FlagSet, catalog string, kopts kernels.Options, quiet bool) ([]*harness.Daemon, error) {
	if len(d.paths) == 0 {
		for _, f := range daemonDetailFlags {
			if IsSet(fs, f) {
				return nil, fmt.Errorf("-%s without -daemon", f)
			}
		}
		return nil, nil
	}
	paths, err := expandClients(d.paths, func() (*kernels.Catalog, error) { return kernels.UserCatalog(catalog) })
	if err != nil {
		return nil, err
	}
	if len(paths) > 1 {
		for _, f := range daemonDetailFlags {
			if IsSet(fs, f) {
				return nil, fmt.Errorf("-%s describes one daemon, and -daemon names %d: describe each in a file or a [daemon NAME] section instead", f, len(paths))
			}
		}
	}
	var out []*harness.Daemon
	seen := map[string]string{}
	for _, p := range paths {
		dm, err := d.daemon(ctx, fs, p, catalog, kopts, quiet)
		if err != nil {
			return nil, err
		}
		if first, ok := seen[dm.Name]; ok {
			return nil, fmt.Errorf("-daemon %s and -daemon %s are both called %s: their results would share daemon/%s/ (name one in its description, name = …)", first, p, dm.Name, dm.Name)
		}
		seen[dm.Name] = p
		out = append(out, dm)
	}
	return out, nil
}

// expandClients returns paths with clientsWord replaced by every daemon
// of the catalog, in the catalog's order. A file of that name in the
// working directory makes the word ambiguous: an error.
func expandClients(paths []string, catalog func() (*kernels.Catalog, error)) ([]string, error) {
	var out []string
	for _, p := range paths {
		if p != clientsWord {
			out = append(out, p)
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("-daemon %s: %s is every daemon of the catalog, and also a file here: name the file ./%s", p, p, p)
		}
		c, err := catalog()
		if err != nil {
			return nil, err
		}
		if len(c.Daemons()) == 0 {
			return nil, fmt.Errorf("-daemon %s: the catalog (%s) describes no daemon", p, strings.Join(c.Files(), ", "))
		}
		out = append(out, c.Daemons()...)
	}
	return out, nil
}

// daemonDetailFlags are the flags that add to one daemon's description.
var daemonDetailFlags = []string{"daemon-args", "daemon-name", "daemon-passthrough", "daemon-uring", "daemon-env", "daemon-wait", "daemon-bin"}

// daemon returns the daemon path describes with the -daemon-* flags.
// path names a binary, a description file, or a [daemon NAME]
// section of the catalog (the file catalog, else the user's); the other
// -daemon-* flags add to the description or override it. A binary that
// cannot run in the guests is an error here, before anything boots.
//
// A Debian package (debian:…, on the command line or as a description's
// binary) is resolved here too: its sysroot is fetched (kernels' options
// say from where), so that an unknown package, a closure that cannot be
// satisfied or a package without a FUSE program is an error before any
// boot (a *debdaemon.InputError; a mirror out of reach is not one).
func (d *Daemons) daemon(ctx context.Context, fs *flag.FlagSet, path, catalog string, kopts kernels.Options, quiet bool) (*harness.Daemon, error) {
	spec, err := daemonspec.Read(path, catalog)
	if err != nil {
		return nil, fmt.Errorf("-daemon %s: %w", path, err)
	}
	ref, isDebian := strings.CutPrefix(spec.Binary, debdaemon.Prefix)
	if IsSet(fs, "daemon-bin") {
		spec.Program = d.bin
	}
	if spec.Program != "" && !isDebian {
		return nil, fmt.Errorf("-daemon-bin (or program =) names a program in a Debian package's root: -daemon %s is no debian:PACKAGE", path)
	}
	if spec.Name == "" || IsSet(fs, "daemon-name") {
		spec.Name = d.name
	}
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Binary)
		if isDebian {
			// The package's name: "bindfs" of "bindfs=1.18.4-0.1@sid".
			spec.Name, _, _ = strings.Cut(ref, "=")
			spec.Name, _, _ = strings.Cut(spec.Name, "@")
		}
	}
	argsFrom := "-daemon-args"
	if spec.Args == nil || IsSet(fs, "daemon-args") {
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
	if spec.Passthrough != nil && !IsSet(fs, "daemon-passthrough") {
		claim = *spec.Passthrough
	}
	uring := d.uring
	if spec.URing != nil && !IsSet(fs, "daemon-uring") {
		uring = *spec.URing
	}
	spec.URing = &uring
	wait := d.wait
	if spec.Wait > 0 && !IsSet(fs, "daemon-wait") {
		wait = spec.Wait
	}
	if wait <= 0 {
		return nil, fmt.Errorf("-daemon-wait %s: want a positive duration", wait)
	}
	spec.Passthrough, spec.Wait = &claim, wait
	spec.Env = slices.Concat(spec.Env, d.env)
	if isDebian {
		if kopts.Logf == nil && !quiet {
			kopts.Logf = func(format string, args ...any) {
				fmt.Fprintf(os.Stderr, "fusematrix: %s\n", fmt.Sprintf(format, args...))
			}
		}
		out, err := harness.NewDebianDaemon(ctx, spec, "-daemon "+path, kopts)
		if err != nil {
			return nil, err
		}
		for _, n := range out.Notes {
			fmt.Fprintf(os.Stderr, "fusematrix: daemon %s: %s\n", out.Name, n)
		}
		return out, nil
	}
	out, err := harness.NewDaemon(spec, "-daemon "+path)
	if out != nil {
		for _, n := range out.Notes {
			fmt.Fprintf(os.Stderr, "fusematrix: warning: daemon binary %s: %s\n", spec.Binary, n)
		}
	}
	return out, err
}

// extraDaemonTime is what a guest's -timeout grows by, unless given, for
// each daemon after the first: each mounts and is checked in turn.
const extraDaemonTime = 3 * time.Minute

// Several says whether -daemon names more than one daemon, or clients.
func (d *Daemons) Several() bool {
	return len(d.paths) > 1 || slices.Contains(d.paths, clientsWord)
}

// ResolveInto puts the daemons the flags name into o, and gives each
// after the first more time unless -timeout was given. It can be
// interrupted (a Debian package's download can take a while); its error
// is exit 2 for the input (a daemon named cannot run, or is no package
// the archive has) and 1 when the Debian mirror could not be reached,
// which says nothing of the input.
func (d *Daemons) ResolveInto(fs *flag.FlagSet, o *harness.Options, catalog string, quiet bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ds, err := d.daemons(ctx, fs, catalog, o.Kernel, quiet)
	if err != nil {
		var in *debdaemon.InputError
		if !errors.As(err, &in) && debian.IsNetworkError(err) {
			return Failf(1, "%v", err)
		}
		return Usagef("%v", err)
	}
	o.Daemons = ds
	if len(ds) > 1 && !IsSet(fs, "timeout") {
		o.Timeout += time.Duration(len(ds)-1) * extraDaemonTime
	}
	return nil
}
