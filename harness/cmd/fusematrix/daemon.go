package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/harness/elfdeps"
	"github.com/fusematrix/fusematrix/harness/initramfs"
	"github.com/fusematrix/fusematrix/results/contract"
)

// daemonGuestDir is where a daemon's binary goes in the guest; the files
// it needs keep their host paths.
const daemonGuestDir = "/fusematrix/daemon"

// daemonFlags are the flags that put a user's daemon under test.
type daemonFlags struct {
	path, args, name string
	passthrough      bool
	env              []string
	wait             time.Duration
}

func registerDaemonFlags(fs *flag.FlagSet) *daemonFlags {
	d := &daemonFlags{}
	fs.StringVar(&d.path, "daemon", "", "your FUSE daemon's `binary`: the guests also run the checks against it, under daemon/NAME/…")
	fs.StringVar(&d.args, "daemon-args", contract.PlaceholderMount,
		"the daemon's `arguments`, split as a shell would (quotes group words); "+contract.PlaceholderBacking+" is the directory it shows, "+contract.PlaceholderMount+" its mount point")
	fs.StringVar(&d.name, "daemon-name", "", "the daemon's `name` in result ids (default: the binary's base name)")
	fs.BoolVar(&d.passthrough, "daemon-passthrough", false, "the daemon's author claims it uses FUSE passthrough where the kernel offers it (checked by daemon/NAME/passthrough)")
	fs.Func("daemon-env", "`KEY=VALUE` in the daemon's environment (repeatable)", func(s string) error {
		d.env = append(d.env, s)
		return nil
	})
	fs.DurationVar(&d.wait, "daemon-wait", contract.DefaultMountWait, "how long the daemon gets to mount")
	return d
}

// daemon returns the daemon the flags describe, nil when -daemon was not
// given; a binary that cannot run in the guests is an error here, before
// anything boots.
func (d *daemonFlags) daemon(fs *flag.FlagSet) (*harness.Daemon, error) {
	if d.path == "" {
		for _, f := range []string{"daemon-args", "daemon-name", "daemon-passthrough", "daemon-env", "daemon-wait"} {
			if set(fs, f) {
				return nil, fmt.Errorf("-%s without -daemon", f)
			}
		}
		return nil, nil
	}
	name := d.name
	if name == "" {
		name = filepath.Base(d.path)
	}
	args, err := splitArgs(d.args)
	if err != nil {
		return nil, fmt.Errorf("-daemon-args: %w", err)
	}
	files, env, err := daemonFiles(d.path)
	if err != nil {
		return nil, fmt.Errorf("-daemon %s: %w", d.path, err)
	}
	out := &harness.Daemon{
		Daemon: contract.Daemon{
			Name: name, Path: daemonGuestDir + "/" + filepath.Base(d.path), Args: args,
			Env: append(env, d.env...), Passthrough: d.passthrough, MountWait: d.wait.Seconds(),
		},
		Files: files,
	}
	if err := out.Check(); err != nil {
		return nil, err
	}
	return out, nil
}

// daemonFiles are the files that carry the binary at path into a guest
// (its dynamic loader, libraries and fusermount3 too, found from the ELF
// file), and the environment it needs there. A binary that cannot run in
// the guests is an error naming why; what elfdeps could only warn about
// goes to stderr.
func daemonFiles(path string) ([]initramfs.File, []string, error) {
	b, err := elfdeps.Resolve(path)
	if err != nil {
		return nil, nil, err
	}
	for _, n := range b.Notes {
		fmt.Fprintf(os.Stderr, "fusematrix: warning: -daemon %s: %s\n", path, n)
	}
	fs, err := b.Files(daemonGuestDir + "/" + filepath.Base(path))
	if err != nil {
		return nil, nil, err
	}
	files := make([]initramfs.File, len(fs))
	for i, f := range fs {
		files[i] = initramfs.HostFile(f.Guest, f.Host, f.Mode)
	}
	return files, b.Env, nil
}

// splitArgs splits s into words as a shell would, without expanding
// anything: blanks separate words, single quotes keep everything, double
// quotes keep all but a backslash before " or \, and a backslash outside
// quotes keeps the next character.
func splitArgs(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	in := false // inside a word
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			w.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				w.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				w.WriteRune(r)
			}
		case r == '\\':
			escaped, in = true, true
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if quote != 0 || escaped {
		return nil, errors.New("an unterminated quote or a trailing backslash")
	}
	if in {
		words = append(words, w.String())
	}
	return words, nil
}
