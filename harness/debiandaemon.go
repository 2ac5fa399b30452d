package harness

import (
	"context"
	"fmt"
	"strings"

	"github.com/fusematrix/fusematrix/harness/daemonspec"
	"github.com/fusematrix/fusematrix/harness/debdaemon"
	"github.com/fusematrix/fusematrix/kernels"
	"github.com/fusematrix/fusematrix/results/contract"
)

// NewDebianDaemon is NewDaemon for a spec whose Binary names a package of
// Debian's archive (daemonspec.DebianPrefix): the package's sysroot,
// fetched and checked by debdaemon with kopts' mirror and keyring, goes
// into the guest below a directory of its own, where the daemon runs
// chrooted (DaemonSpec.Root), and the description's extra files go inside
// that root, where the daemon sees them; none may replace a file of the
// packages. Its one note says what was resolved. An error that is the
// input's is a *debdaemon.InputError.
func NewDebianDaemon(ctx context.Context, spec *daemonspec.Spec, what string, kopts kernels.Options) (*Daemon, error) {
	ref, ok := strings.CutPrefix(spec.Binary, daemonspec.DebianPrefix)
	if !ok {
		return nil, fmt.Errorf("%s: not a Debian package (%s…)", what, daemonspec.DebianPrefix)
	}
	if w := spec.Where(daemonspec.KeyBinary); w != "" {
		what = w
	}
	dd, err := debdaemon.Resolve(ctx, ref, spec.Packages, spec.Program, kopts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var reserved []Reserved
	for _, f := range dd.Files {
		reserved = append(reserved, Reserved{Path: strings.TrimPrefix(f.Path, dd.Root), What: "a file of " + dd.Sysroot.Package.Name + "'s run-time closure"})
	}
	for _, p := range []string{"/dev", "/proc", "/sys", "/tmp", contract.RootScratch} {
		reserved = append(reserved, Reserved{Path: p, What: "the guest mounts a file system over it in the daemon's root"})
	}
	extra, err := extraFiles(spec.Files, reserved)
	if err != nil {
		return nil, &debdaemon.InputError{Err: fmt.Errorf("%s: %w", what, err)}
	}
	for i := range extra {
		extra[i].Path = dd.Root + extra[i].Path
	}
	s := dd.Sysroot
	out := &Daemon{
		DaemonSpec: contract.DaemonSpec{
			Name: spec.Name, Path: dd.Program, Root: dd.Root, Args: spec.Args,
			Env: append(dd.Env, spec.Env...), Passthrough: spec.Passthrough != nil && *spec.Passthrough, MountWait: spec.Wait.Seconds(), StopWait: spec.Stop.Seconds(),
			URing: spec.URing != nil && *spec.URing, Setup: spec.Setup, Stdin: spec.Stdin, Dirs: spec.Dirs,
		},
		Files: append(dd.Files, extra...),
		Notes: []string{fmt.Sprintf("%s %s from %s (%d packages%s, sysroot %s), run as %s in its own root",
			s.Package.Name, s.Package.Version, s.Package.Suite, len(s.Packages), withNote(spec.Packages), s.Key[:16], dd.Program)},
	}
	if err := out.Check(); err != nil {
		if spec.Origin != "" {
			err = fmt.Errorf("%s: %w", spec.Origin, err)
		}
		return nil, &debdaemon.InputError{Err: err}
	}
	return out, nil
}

// withNote says which packages were added to a daemon's root, if any.
func withNote(with []string) string {
	if len(with) == 0 {
		return ""
	}
	return " with " + strings.Join(with, ", ")
}
