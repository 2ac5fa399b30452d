package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/harness/daemonspec"
	"github.com/fusematrix/fusematrix/results/contract"
)

// daemonFlags are the flags that put a user's daemon under test.
type daemonFlags struct {
	path, args, name string
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
	fs.StringVar(&d.path, "daemon", "", "your FUSE daemon: its `binary`, a file describing it, or the NAME of a [daemon NAME] section of the catalog; "+what)
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
func (d *daemonFlags) daemon(fs *flag.FlagSet, catalog string) (*harness.Daemon, error) {
	if d.path == "" {
		for _, f := range []string{"daemon-args", "daemon-name", "daemon-passthrough", "daemon-env", "daemon-wait"} {
			if set(fs, f) {
				return nil, fmt.Errorf("-%s without -daemon", f)
			}
		}
		return nil, nil
	}
	spec, err := daemonspec.Read(d.path, catalog)
	if err != nil {
		return nil, fmt.Errorf("-daemon %s: %w", d.path, err)
	}
	if spec.Name == "" || set(fs, "daemon-name") {
		spec.Name = d.name
	}
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Binary)
	}
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
	spec.Passthrough, spec.Wait = &claim, wait
	spec.Env = slices.Concat(spec.Env, d.env)
	out, err := harness.NewDaemon(spec, "-daemon "+d.path)
	if out != nil {
		for _, n := range out.Notes {
			fmt.Fprintf(os.Stderr, "fusematrix: warning: daemon binary %s: %s\n", spec.Binary, n)
		}
	}
	return out, err
}
