package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/results"
)

// A user's own FUSE daemon under test (fusematrix matrix -daemon): the
// host puts the binary and what it needs into the guest, and a Daemon
// description at DaemonSpecFile(name); the kernel command line names it
// (Params.Daemons, which may name several, each checked in turn). Its
// checks are the correctness scenarios under DaemonPrefix+name+"/", and
// DaemonPassthrough.

// DaemonSpecDir is where the guest finds the descriptions of the daemons
// under test, one file per daemon.
const DaemonSpecDir = "/etc/fusematrix/daemons"

// DaemonSpecFile is the guest path of the description of the daemon
// called name.
func DaemonSpecFile(name string) string { return DaemonSpecDir + "/" + name + ".json" }

// The placeholders of a daemon's arguments.
const (
	PlaceholderBacking = "{backing}"
	PlaceholderMount   = "{mnt}"
	// PlaceholderScratch is a directory made fresh and empty for each
	// mount, beside the mount point (on the same file system as the
	// backing directory), for what a daemon keeps that is not the data
	// under test: an overlay's work directory, an encrypted store, an
	// image. It is removed once the daemon has ended.
	PlaceholderScratch = "{scratch}"
)

// DaemonPrefix starts the id of every check of a daemon.
const DaemonPrefix = "daemon/"

// DaemonPassthrough is the check, under a daemon's prefix, that finds from
// the kernel's side whether the daemon's files are really passed through.
const DaemonPassthrough ID = "passthrough"

// DaemonIOUring is the check, under a daemon's prefix, that finds from
// the kernel's side whether the daemon serves over FUSE's io_uring
// transport with fuse.enable_uring on, and holds the daemon to its claim
// (DaemonSpec.URing).
const DaemonIOUring ID = "io-uring"

// FactDaemonReadCallsPerGiB is the DaemonPassthrough fact that says how
// many read calls the daemon's threads made per GiB read through its
// mount: one per request or more when it serves reads, next to none when
// they are passed through.
const FactDaemonReadCallsPerGiB = "daemon_read_calls_per_gib"

// The checks, under a daemon's prefix, that judge it through its own mount
// alone, with or without a backing directory: what holds of any FUSE file
// system, so that a daemon without PlaceholderBacking (a NOOP server) gets
// a verdict too.
const (
	// DaemonMounted: it mounted within its wait; statfs and stat of the
	// root answer, the root a directory.
	DaemonMounted ID = "mount"
	// DaemonReadAll: the tree read through the mount, bounded; every
	// regular file read to its st_size.
	DaemonReadAll ID = "read-all"
	// DaemonWrite: the POSIX operations of a writable mount, in a fresh
	// directory; a skip on a read-only mount.
	DaemonWrite ID = "write"
	// DaemonUnmount: an unmount ends every process of the daemon.
	DaemonUnmount ID = "unmount"
)

// DaemonOwnChecks are the checks of every daemon that need no reference,
// in run order, with their time limits: they run before the others.
var DaemonOwnChecks = []Check{
	{DaemonMounted, results.Scenario, 60 * time.Second},
	// At most DaemonReadBudget bytes; a daemon serving 4 KiB reads
	// under TCG moves about 40 MB/s.
	{DaemonReadAll, results.Scenario, 120 * time.Second},
	{DaemonWrite, results.Scenario, 90 * time.Second},
	{DaemonUnmount, results.Scenario, 60 * time.Second},
}

// DefaultMountWait is how long a daemon gets to mount.
const DefaultMountWait = 20 * time.Second

// DefaultStopWait is how long a daemon gets to exit after its unmount
// before it is killed: one that saves its state then (fuse-zip writes its
// archive) needs time for it under TCG, and killing it would lose data.
const DefaultStopWait = 30 * time.Second

// DaemonSpec describes a user's FUSE daemon as the guest runs it.
type DaemonSpec struct {
	// Name is the daemon's name in result ids: daemon/<name>/…
	Name string `json:"name"`
	// Path is the binary's path in the guest.
	Path string `json:"path"`
	// Args are its arguments, with PlaceholderBacking and
	// PlaceholderMount standing for the directory it shows and the mount
	// point.
	Args []string `json:"args"`
	// Env is added to the daemon's environment (KEY=VALUE).
	Env []string `json:"env,omitempty"`
	// Passthrough is what the daemon's author claims: that it opens files
	// with FUSE passthrough where the kernel offers it.
	Passthrough bool `json:"passthrough"`
	// URing is the author's claim that the daemon serves over FUSE's
	// io_uring transport where the kernel offers it.
	URing bool `json:"uring,omitempty"`
	// MountWait bounds the wait for the mount to appear, in seconds; 0 is
	// DefaultMountWait.
	MountWait float64 `json:"mount_wait,omitempty"`
	// StopWait bounds the wait for it to exit after its unmount, in
	// seconds; 0 is DefaultStopWait.
	StopWait float64 `json:"stop_wait,omitempty"`
	// Root, when not "", is the guest directory the daemon runs in as its
	// root (chroot), with its own loader and libraries: a daemon packaged
	// by Debian (fusematrix matrix -daemon debian:PACKAGE). Path is then
	// a path inside it, and so are the directories the daemon is given:
	// the guest keeps a rooted daemon's scratch directories below Root
	// (RootScratch), and the daemon sees them without the Root prefix.
	Root string `json:"root,omitempty"`
	// Setup are commands run, in order, before each start of the daemon,
	// as the daemon is run (its root, environment and Stdin), with the
	// same placeholders: what a daemon needs made first (gocryptfs -init,
	// an image). Each names its program by an absolute path (inside Root,
	// if any). One that fails fails the mount.
	Setup [][]string `json:"setup,omitempty"`
	// Stdin, when not "", is what the daemon and each setup command read
	// on their standard input, a newline added: a password, for daemons
	// that take one only there. Otherwise they read /dev/null.
	Stdin string `json:"stdin,omitempty"`
	// Dirs are directories made in PlaceholderScratch before the setup
	// commands run, for daemons that need several directories and whose
	// root has no mkdir (a package's closure leaves coreutils out).
	Dirs []string `json:"dirs,omitempty"`
}

// RootScratch is where, below a daemon's Root, the guest keeps the
// scratch directories of that daemon's checks, a tmpfs as DefaultScratch
// is: the backing directories and mount points a rooted daemon is given
// must be inside its root.
const RootScratch = "/run/fusematrix"

// Inside returns p, a guest path, as the daemon sees it: p without the
// Root prefix for a rooted daemon, p itself otherwise. A p outside Root is
// an error: the daemon could not reach it.
func (d *DaemonSpec) Inside(p string) (string, error) {
	if d.Root == "" {
		return p, nil
	}
	rel, ok := strings.CutPrefix(path.Clean(p), d.Root+"/")
	if !ok {
		return "", fmt.Errorf("%s is outside the root %s that daemon %s runs in", p, d.Root, d.Name)
	}
	return "/" + rel, nil
}

// placeholderLike is what a mistyped placeholder looks like ({backng},
// {Backing}, {backing_dir}, {mnt2}); braces around anything else (JSON in
// an option, say) are left alone.
var placeholderLike = regexp.MustCompile(`\{[A-Za-z_][A-Za-z0-9_-]{1,31}\}`)

var daemonName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`)

// Check reports what makes d unusable.
func (d *DaemonSpec) Check() error {
	var errs []error
	if !daemonName.MatchString(d.Name) {
		errs = append(errs, fmt.Errorf("daemon name %q: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", d.Name))
	}
	if !strings.HasPrefix(d.Path, "/") {
		errs = append(errs, fmt.Errorf("daemon path %q: not absolute", d.Path))
	}
	if err := CheckArgs(d.Args); err != nil {
		errs = append(errs, err)
	}
	for _, e := range d.Env {
		if err := CheckEnv(e); err != nil {
			errs = append(errs, fmt.Errorf("daemon environment %q: %w", e, err))
		}
	}
	if d.Root != "" && (!path.IsAbs(d.Root) || path.Clean(d.Root) != d.Root || d.Root == "/") {
		errs = append(errs, fmt.Errorf("daemon root %q: not an absolute, clean directory below /", d.Root))
	}
	for _, c := range d.Setup {
		if err := CheckSetup(c); err != nil {
			errs = append(errs, err)
		}
	}
	for _, dir := range d.Dirs {
		if err := CheckDir(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if d.MountWait < 0 || d.MountWait > 600 {
		errs = append(errs, fmt.Errorf("daemon mount wait %vs: want 0 to 600", d.MountWait))
	}
	if d.StopWait < 0 || d.StopWait > 600 {
		errs = append(errs, fmt.Errorf("daemon stop wait %vs: want 0 to 600", d.StopWait))
	}
	return errors.Join(errs...)
}

// envName is what a shell takes for a variable name (POSIX, "Name").
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// CheckEnv reports what makes e unusable as an entry of a daemon's
// environment: it must be KEY=VALUE, KEY a variable name (letters, digits
// and '_', not starting with a digit), and hold no NUL byte, which no
// environment can. A key such as "A B" (from "env = A B=x") would reach
// the daemon as a variable no program can read.
func CheckEnv(e string) error {
	k, v, ok := strings.Cut(e, "=")
	switch {
	case !ok:
		return errors.New("want KEY=VALUE")
	case !envName.MatchString(k):
		return fmt.Errorf("%q is not a variable name (letters, digits and '_', not starting with a digit)", k)
	case strings.ContainsRune(v, 0):
		return errors.New("a NUL byte in the value")
	}
	return nil
}

// CheckArgs reports what makes args unusable as a daemon's arguments: no
// PlaceholderMount, or a word in braces that looks like a placeholder
// and is none (a typo that would otherwise cost a boot).
func CheckArgs(args []string) error {
	var errs []error
	if !slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, PlaceholderMount) }) {
		errs = append(errs, fmt.Errorf("daemon arguments %q: none holds %s, where the daemon is to mount", args, PlaceholderMount))
	}
	errs = append(errs, checkPlaceholders("daemon argument", args))
	return errors.Join(errs...)
}

// CheckSetup reports what makes cmd unusable as a setup command: no
// program, a program not named by an absolute path (it is looked up in
// no PATH: the daemon's root is not the guest's), or an unknown
// placeholder.
func CheckSetup(cmd []string) error {
	switch {
	case len(cmd) == 0:
		return errors.New("setup command: empty")
	case !path.IsAbs(cmd[0]):
		return fmt.Errorf("setup command %q: want its program's absolute path (%s is looked up in no PATH)", cmd, cmd[0])
	}
	return checkPlaceholders("setup argument", cmd)
}

// CheckDir reports what makes name unusable as a directory of Dirs: it
// must be one plain name, so that it stays inside the scratch directory.
func CheckDir(name string) error {
	if !dirName.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("scratch directory %q: want one name of letters, digits, '.', '_' or '-'", name)
	}
	return nil
}

var dirName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// placeholders are every placeholder an argument may hold.
var placeholders = []string{PlaceholderBacking, PlaceholderMount, PlaceholderScratch}

// checkPlaceholders reports the words of args, what, that hold something
// that looks like a placeholder and is none.
func checkPlaceholders(what string, args []string) error {
	var errs []error
	for _, a := range args {
		for _, p := range placeholderLike.FindAllString(a, -1) {
			if !slices.Contains(placeholders, p) {
				errs = append(errs, fmt.Errorf("%s %q: unknown placeholder %s (known: %s)", what, a, p, strings.Join(placeholders, ", ")))
			}
		}
	}
	return errors.Join(errs...)
}

// Backed says whether the daemon shows a backing directory; one that only
// takes a mount point (a NOOP server) cannot be checked against one.
func (d *DaemonSpec) Backed() bool {
	return slices.ContainsFunc(d.Args, func(a string) bool { return strings.Contains(a, PlaceholderBacking) })
}

// Argv is the daemon's arguments with the placeholders replaced.
func (d *DaemonSpec) Argv(backing, mnt, scratch string) []string {
	return Expand(d.Args, backing, mnt, scratch)
}

// Expand is args with the placeholders replaced.
func Expand(args []string, backing, mnt, scratch string) []string {
	r := strings.NewReplacer(PlaceholderBacking, backing, PlaceholderMount, mnt, PlaceholderScratch, scratch)
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = r.Replace(a)
	}
	return out
}

// Scratched says whether the daemon needs a PlaceholderScratch
// directory: its arguments or setup commands name one, or it asks for
// directories in it.
func (d *DaemonSpec) Scratched() bool {
	has := func(a string) bool { return strings.Contains(a, PlaceholderScratch) }
	if len(d.Dirs) > 0 || slices.ContainsFunc(d.Args, has) {
		return true
	}
	return slices.ContainsFunc(d.Setup, func(c []string) bool { return slices.ContainsFunc(c, has) })
}

// StopGrace is how long the daemon gets to exit after its unmount.
func (d *DaemonSpec) StopGrace() time.Duration {
	if d.StopWait <= 0 {
		return DefaultStopWait
	}
	return time.Duration(d.StopWait * float64(time.Second))
}

// Wait is how long the daemon gets to mount.
func (d *DaemonSpec) Wait() time.Duration {
	if d.MountWait <= 0 {
		return DefaultMountWait
	}
	return time.Duration(d.MountWait * float64(time.Second))
}

// ParseDaemonSpec reads a Daemon written by the host, bounded and checked.
func ParseDaemonSpec(b []byte) (*DaemonSpec, error) {
	if len(b) > 1<<20 {
		return nil, errors.New("daemon description: larger than 1 MiB")
	}
	var d DaemonSpec
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("daemon description: %w", err)
	}
	if err := d.Check(); err != nil {
		return nil, err
	}
	return &d, nil
}

// DaemonScenarios are the checks whose ids, under a daemon's prefix, the
// agent reports for a daemon: DaemonOwnChecks, every correctness scenario (those that only
// fusematrix's own server can serve report skip, saying so),
// DaemonPassthrough, and a benchmark cell (DaemonCellID) for every op and
// block size.
func DaemonScenarios() []Check {
	out := append([]Check(nil), DaemonOwnChecks...)
	for _, c := range checks {
		// Only our own servers speak io_uring.
		if c.Kind == results.Scenario && !strings.HasPrefix(string(c.ID), URingPrefix) {
			out = append(out, c)
		}
	}
	out = append(out, Check{DaemonPassthrough, results.Scenario, 60 * time.Second})
	out = append(out, Check{DaemonIOUring, results.Scenario, 60 * time.Second})
	for _, c := range DaemonCells("") {
		out = append(out, Check{DaemonCellID(c.Op, c.Block), results.Benchmark, daemonCellTimeout})
	}
	return out
}

// DaemonID is the id of check id of the daemon name.
func DaemonID(name string, id ID) ID { return ID(DaemonPrefix + name + "/" + string(id)) }

// DaemonChecks are the checks of the daemon name that pattern selects, in
// run order, with their ids under the daemon's prefix. Pattern selects a
// check when it matches either its id under the prefix or its id within
// the daemon (pt/integrity, bench/read/4096), so that "^bench/" picks the
// daemon's cells beside fusematrix's own. As with Select, benchmark cells
// are left out unless the pattern mentions "bench".
func DaemonChecks(name, pattern string) ([]Check, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("scenario pattern %q: %w", pattern, err)
	}
	bench := strings.Contains(pattern, strings.TrimSuffix(BenchPrefix, "/"))
	var out []Check
	for _, c := range DaemonScenarios() {
		if c.Kind == results.Benchmark && !bench {
			continue
		}
		own := c.ID
		c.ID = DaemonID(name, c.ID)
		if re.MatchString(string(c.ID)) || re.MatchString(string(own)) {
			out = append(out, c)
		}
	}
	return out, nil
}
