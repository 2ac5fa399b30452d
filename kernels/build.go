package kernels

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fusematrix/fusematrix/kernels/flock"
)

//go:embed fuse.config
var fuseConfig []byte

// FuseConfig returns the project's config fragment (kernels/fuse.config):
// what a kernel must build in for the guest agent to run and FUSE
// passthrough to be tested.
func FuseConfig() []byte { return slices.Clone(fuseConfig) }

// Bases that a build can start from besides a config file.
const (
	// BaseDefconfig is the architecture's default config: a kernel that
	// boots most machines, built in tens of minutes on two cores.
	BaseDefconfig = "defconfig"
	// BaseTinyconfig is the smallest config; with the fragment it is the
	// fastest build that still runs the guest (minutes on two cores).
	BaseTinyconfig = "tinyconfig"
)

// BuildOptions says what to build and how.
type BuildOptions struct {
	// Src is a Linux source tree. It is only read: the build happens in
	// the cache (make O=…). Kbuild refuses that for a tree configured or
	// built in place (a .config in it), which Build reports.
	Src string
	// Base is the config the fragment is applied to: BaseDefconfig (when
	// ""), BaseTinyconfig, or the path of a config file.
	Base string
	// Jobs is make's -j; 0 is the number of CPUs.
	Jobs int
	// Fragment is applied to the base and checked afterwards; nil is
	// FuseConfig().
	Fragment []byte
	// Options gives the cache directory (CacheDir) and the progress
	// callback (Logf); the mirror settings are not used.
	Options
}

// ConfigOption is one assignment of a config fragment.
type ConfigOption struct {
	Name  string // "CONFIG_FUSE_FS"
	Value string // "y", "m", "n" (from "# CONFIG_X is not set"), or the value
	Line  int
}

// ParseFragment reads a Kconfig fragment: CONFIG_X=value lines and
// "# CONFIG_X is not set", comments and blank lines. An option assigned
// twice with different values is an error: which one was meant?
func ParseFragment(data []byte) ([]ConfigOption, error) {
	var opts []ConfigOption
	seen := map[string]int{}
	for n, line := range strings.Split(string(data), "\n") {
		name, value, ok, err := configLine(line)
		if err != nil {
			return nil, fmt.Errorf("config fragment line %d: %w", n+1, err)
		}
		if !ok {
			continue
		}
		if i, dup := seen[name]; dup {
			if opts[i].Value != value {
				return nil, fmt.Errorf("config fragment line %d: %s=%s, but line %d says %s", n+1, name, value, opts[i].Line, opts[i].Value)
			}
			continue
		}
		seen[name] = len(opts)
		opts = append(opts, ConfigOption{Name: name, Value: value, Line: n + 1})
	}
	return opts, nil
}

// ConfigMismatch is a fragment option that did not take effect.
type ConfigMismatch struct {
	Name string
	Want string
	Got  string // "" when the resulting config does not mention it
	// Unknown is set when the source tree's Kconfig files do not define
	// the option at all (an older kernel, or a misspelling).
	Unknown bool
}

func (m ConfigMismatch) String() string {
	switch {
	case m.Unknown:
		return fmt.Sprintf("%s=%s: no Kconfig file of this tree defines it (older kernel or misspelt)", m.Name, m.Want)
	case m.Got == "":
		return fmt.Sprintf("%s=%s: absent from the result (a dependency is off)", m.Name, m.Want)
	}
	return fmt.Sprintf("%s=%s: the result has %s (a dependency is off or a choice overrides it)", m.Name, m.Want, m.Got)
}

// CheckConfig compares the kernel config file with the options it should
// carry and returns those it does not. "n" is met by an option that is
// absent, as Kconfig leaves out what cannot be enabled.
func CheckConfig(configFile string, want []ConfigOption) ([]ConfigMismatch, error) {
	got, err := readConfig(configFile)
	if err != nil {
		return nil, err
	}
	var bad []ConfigMismatch
	for _, o := range want {
		v, ok := got[o.Name]
		if v == o.Value || (o.Value == "n" && !ok) {
			continue
		}
		bad = append(bad, ConfigMismatch{Name: o.Name, Want: o.Value, Got: v})
	}
	return bad, nil
}

// readConfig reads every option of a .config; a later assignment wins, as
// in Kconfig.
func readConfig(name string) (map[string]string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("kernel config: %w", err)
	}
	opts := map[string]string{}
	for n, line := range strings.Split(string(data), "\n") {
		key, value, ok, err := configLine(line)
		if err != nil {
			return nil, fmt.Errorf("kernel config %s:%d: %w", name, n+1, err)
		}
		if ok {
			opts[key] = value
		}
	}
	return opts, nil
}

// markUnknown sets Unknown on the mismatches whose option no Kconfig file
// below src defines. It only runs when a check failed, so reading every
// Kconfig file (a second or so on a full tree) costs nothing otherwise.
func markUnknown(src string, bad []ConfigMismatch) {
	defined := map[string]bool{}
	filepath.WalkDir(src, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && name != src {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(d.Name(), "Kconfig") {
			return nil
		}
		data, err := os.ReadFile(name)
		if err != nil {
			return nil
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && (f[0] == "config" || f[0] == "menuconfig") {
				defined["CONFIG_"+f[1]] = true
			}
		}
		return nil
	})
	for i := range bad {
		bad[i].Unknown = !defined[bad[i].Name]
	}
}

// Build compiles the kernel in opts.Src with the fragment applied to the
// base config, out of tree, and returns it from the cache. The cache key
// is the source's state (see sourceState), the fragment and the base; a
// second call with the same key returns the cached kernel without running
// make. The build directory is kept per source tree and base, so
// rebuilding after a small change (a bisection step) is incremental.
//
// Build fails when any option of the fragment did not take effect in the
// resulting config, naming each one.
func Build(ctx context.Context, opts BuildOptions) (*Kernel, error) {
	b, err := newBuilder(ctx, opts)
	if err != nil {
		return nil, err
	}
	return b.run(ctx)
}

// builder is one Build call.
type builder struct {
	src      string // absolute
	base     string // BaseDefconfig, BaseTinyconfig or an absolute file
	baseDesc string // base as it enters the key
	jobs     int
	fragment []byte
	want     []ConfigOption
	root     string // <cache>/built
	state    string // the source's state, as it enters the key
	note     string // what the state misses, said when building
	key      string
	logf     func(string, ...any)
	// workLock is the locked file of the build directory, while a build
	// holds it: every make inherits it (see makeCmd).
	workLock *os.File
}

// BuiltDir is the directory of the cache that holds built kernels, below
// Options.CacheDir.
const BuiltDir = "built"

func newBuilder(ctx context.Context, opts BuildOptions) (*builder, error) {
	if opts.Src == "" {
		return nil, errors.New("kernel build: no source tree given")
	}
	src, err := filepath.Abs(opts.Src)
	if err != nil {
		return nil, err
	}
	if err := checkTree(src); err != nil {
		return nil, err
	}
	cacheDir, err := cacheRoot(opts.Options)
	if err != nil {
		return nil, err
	}
	b := &builder{src: src, jobs: opts.Jobs, fragment: opts.Fragment, root: filepath.Join(cacheDir, BuiltDir), logf: opts.Logf}
	if b.logf == nil {
		b.logf = func(string, ...any) {}
	}
	if b.jobs <= 0 {
		b.jobs = runtime.NumCPU()
	}
	if b.fragment == nil {
		b.fragment = FuseConfig()
	}
	if b.want, err = ParseFragment(b.fragment); err != nil {
		return nil, err
	}
	switch opts.Base {
	case "", BaseDefconfig:
		b.base, b.baseDesc = BaseDefconfig, BaseDefconfig
	case BaseTinyconfig:
		b.base, b.baseDesc = BaseTinyconfig, BaseTinyconfig
	default:
		if b.base, err = localFile(opts.Base, false); err != nil {
			return nil, fmt.Errorf("kernel build: base config: %w", err)
		}
		data, err := os.ReadFile(b.base)
		if err != nil {
			return nil, fmt.Errorf("kernel build: base config: %w", err)
		}
		b.baseDesc = "file " + sha256Hex(data)
	}
	if b.state, b.note, err = sourceState(ctx, src); err != nil {
		return nil, err
	}
	b.key = buildKey(b.state, b.baseDesc, b.fragment)
	return b, nil
}

// checkTree tells a kernel source tree from anything else, and refuses one
// kbuild would refuse to build out of tree, before anything runs.
func checkTree(src string) error {
	for _, name := range []string{"Makefile", "Kconfig", "scripts/kconfig", "arch/x86"} {
		if _, err := os.Stat(filepath.Join(src, name)); err != nil {
			return fmt.Errorf("kernel build: %s is not a Linux source tree (no %s)", src, name)
		}
	}
	for _, name := range []string{".config", "include/config", "arch/x86/include/generated"} {
		if _, err := os.Stat(filepath.Join(src, name)); err == nil {
			return fmt.Errorf("kernel build: %s was configured or built in place (it has %s), and kbuild refuses to build such a tree elsewhere; "+
				"fusematrix never writes into your tree: save your .config if you need it, run 'make mrproper' there, and pass the saved file as the base", src, name)
		}
	}
	return nil
}

// sourceState describes the source tree's content for the cache key. A
// git work tree is its HEAD commit plus a hash of `git diff HEAD` when
// tracked files differ (untracked files are not looked at). Anything else
// would need every file hashed (over a second per thousand files), so it is
// the tree's path, kernel version and the newest modification time of its
// top-level entries: edits deeper in the tree are not noticed, and note
// says so.
func sourceState(ctx context.Context, src string) (state, note string, err error) {
	if top, err := gitOutput(ctx, src, "rev-parse", "--show-toplevel"); err == nil && sameDir(strings.TrimSpace(string(top)), src) {
		head, err := gitOutput(ctx, src, "rev-parse", "HEAD")
		if err != nil {
			return "", "", fmt.Errorf("kernel build: %s: %w", src, err)
		}
		state = "git " + strings.TrimSpace(string(head))
		diff, err := gitOutput(ctx, src, "diff", "--binary", "HEAD")
		if err != nil {
			return "", "", fmt.Errorf("kernel build: %s: %w", src, err)
		}
		if len(diff) > 0 {
			state += " dirty " + sha256Hex(diff)[:16]
		}
		return state, "", nil
	}
	version, err := makefileVersion(filepath.Join(src, "Makefile"))
	if err != nil {
		return "", "", fmt.Errorf("kernel build: %w", err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", "", fmt.Errorf("kernel build: %w", err)
	}
	var newest time.Time
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.ModTime().After(newest) {
			newest = info.ModTime()
		}
	}
	state = fmt.Sprintf("tree %s version %s newest %d", src, version, newest.UnixNano())
	note = fmt.Sprintf("%s is not a git work tree: builds are cached by its path, version (%s) and the newest time of its top-level entries, so edits below the top level are not noticed (touch %s to force a rebuild)",
		src, version, filepath.Join(src, "Makefile"))
	return state, note, nil
}

func gitOutput(ctx context.Context, dir string, args ...string) ([]byte, error) {
	// The tree may belong to another user (root building a user's tree);
	// git refuses such a repository unless told it is safe, and only
	// reading is done here.
	cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "safe.directory=*", "-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func sameDir(a, b string) bool {
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

var makeVar = regexp.MustCompile(`^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(\S*)`)

// makefileVersion reads the kernel version from the top of the Makefile.
func makefileVersion(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for i := 0; i < 20 && sc.Scan(); i++ {
		if m := makeVar.FindStringSubmatch(sc.Text()); m != nil {
			vars[m[1]] = m[2]
		}
	}
	if vars["VERSION"] == "" {
		return "", fmt.Errorf("%s: no VERSION = line: not a kernel Makefile", name)
	}
	return fmt.Sprintf("%s.%s.%s%s", vars["VERSION"], vars["PATCHLEVEL"], vars["SUBLEVEL"], vars["EXTRAVERSION"]), nil
}

// buildFormat changes when what a cache entry holds or how it is built
// changes, so that older entries are not taken for current ones.
const buildFormat = "1"

// buildKey is the cache key of a build: everything that decides what the
// image is.
func buildKey(state, baseDesc string, fragment []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "format %s\nsource %s\nbase %s\nfragment %s\n", buildFormat, state, baseDesc, sha256Hex(fragment))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// entryPath is the cache entry of the build: the tree's directory name
// keeps it recognisable to a person listing the cache.
func (b *builder) entryPath() string {
	return filepath.Join(b.root, safeName(filepath.Base(b.src))+"-"+b.key)
}

// workPath is the build directory (make O=) of the tree and base. It
// outlives the build, so the next build of the same tree recompiles only
// what changed.
func (b *builder) workPath() string {
	return filepath.Join(b.root, ".work-"+safeName(filepath.Base(b.src))+"-"+sha256Hex([]byte(b.src + "\n" + b.baseDesc))[:12])
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._+-]+`)

func safeName(s string) string {
	s = strings.Trim(unsafeChars.ReplaceAllString(s, "_"), "._")
	if s == "" {
		return "linux"
	}
	return s
}

func (b *builder) source() string {
	base := b.base
	if b.base != BaseDefconfig && b.base != BaseTinyconfig {
		base = "config " + b.base
	}
	return fmt.Sprintf("built from %s (%s; base %s; fragment %s)", b.src, b.state, base, sha256Hex(b.fragment)[:12])
}

func (b *builder) run(ctx context.Context) (*Kernel, error) {
	entry := b.entryPath()
	k, unlock, err := claimEntry(ctx, entry, b.source(), checkQuick, nil, func() {
		b.logf("kernel build: waiting for another process building %s", filepath.Base(entry))
	}, b.logf)
	if err != nil {
		return nil, err
	}
	if k != nil {
		b.logf("kernel build: %s is cached (%s)", b.src, entry)
		return k, nil
	}
	defer unlock()
	work := b.workPath()
	// The lock on the build directory is held for the whole build, and
	// inherited by make and everything it starts: if fusematrix dies, a
	// process of that build still alive keeps it, so that the next build
	// waits rather than runs a second make in the same directory.
	if b.workLock, err = flock.LockFile(ctx, work+".lock", func() {
		b.logf("kernel build: waiting for another build in %s", work)
	}); err != nil {
		return nil, err
	}
	defer func() {
		b.workLock.Close()
		b.workLock = nil
	}()
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}

	if b.note != "" {
		b.logf("kernel build: %s", b.note)
	}
	start := time.Now()
	if err := b.configure(ctx, work); err != nil {
		return nil, err
	}
	b.logf("kernel build: make -j%d bzImage in %s", b.jobs, work)
	if err := b.make(ctx, work, true, fmt.Sprintf("-j%d", b.jobs), "bzImage"); err != nil {
		return nil, err
	}
	out, err := b.makeOutput(ctx, work, "-s", "kernelrelease")
	if err != nil {
		return nil, err
	}
	release := lastLine(out)
	if release == "" {
		return nil, fmt.Errorf("kernel build %s: make kernelrelease printed nothing", b.src)
	}
	b.logf("kernel build: %s built in %v", release, time.Since(start).Round(time.Second))
	if err := b.install(work, entry, release); err != nil {
		return nil, fmt.Errorf("kernel build %s: %w", b.src, err)
	}
	return loadEntry(entry, b.source(), checkQuick)
}

// configure writes the base config into work, applies the fragment and
// checks the result.
func (b *builder) configure(ctx context.Context, work string) error {
	config := filepath.Join(work, ".config")
	switch b.base {
	case BaseDefconfig, BaseTinyconfig:
		b.logf("kernel build: make %s", b.base)
		if err := b.make(ctx, work, false, b.base); err != nil {
			return err
		}
	default:
		data, err := os.ReadFile(b.base)
		if err != nil {
			return fmt.Errorf("kernel build: base config: %w", err)
		}
		if err := os.WriteFile(config, data, 0o644); err != nil {
			return err
		}
	}
	// Appending works because Kconfig lets a later assignment override an
	// earlier one; olddefconfig then settles every dependency.
	f, err := os.OpenFile(config, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("kernel build: %w", err)
	}
	_, err = fmt.Fprintf(f, "\n# fusematrix config fragment\n%s\n", b.fragment)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("kernel build: %w", err)
	}
	b.logf("kernel build: make olddefconfig")
	if err := b.make(ctx, work, false, "olddefconfig"); err != nil {
		return err
	}
	bad, err := CheckConfig(config, b.want)
	if err != nil {
		return err
	}
	if len(bad) == 0 {
		return nil
	}
	markUnknown(b.src, bad)
	// An option the tree does not define at all cannot be had from this
	// tree, whatever the base: FUSE_PASSTHROUGH before 6.9 is the case
	// that matters, since bisecting across 6.9 must build both sides
	// (the guest then reports passthrough as not offered, which is the
	// truth for that commit). Those are warned about; an option the tree
	// defines but the result lacks is a broken build configuration.
	var lines []string
	for _, m := range bad {
		if m.Unknown {
			b.logf("kernel build: warning: %s", m)
			continue
		}
		lines = append(lines, "  "+m.String())
	}
	if len(lines) == 0 {
		return nil
	}
	return fmt.Errorf("kernel build %s: %d option(s) of the config fragment did not take effect (base %s):\n%s",
		b.src, len(lines), b.base, strings.Join(lines, "\n"))
}

// install copies the image and config out of the build directory into a
// new cache entry, which appears complete or not at all.
func (b *builder) install(work, entry, release string) error {
	tmp, err := freshTemp(b.root, filepath.Base(entry))
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	for _, c := range []struct{ from, to string }{
		{filepath.Join(work, "arch/x86/boot/bzImage"), "bzImage"},
		{filepath.Join(work, ".config"), "config"},
	} {
		if err := copyFile(c.from, filepath.Join(tmp, c.to)); err != nil {
			return err
		}
	}
	m := &manifest{Packages: []string{b.source()}, Release: release, Image: "bzImage", Config: "config"}
	if m.Files, err = hashTree(tmp); err != nil {
		return err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, manifestName), data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, entry); err != nil {
		return fmt.Errorf("install %s: %w", entry, err)
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", from, err)
	}
	return out.Close()
}

// tailLines is how much of make's output an error quotes: enough for the
// compiler's message and its context, not the whole build.
const tailLines = 40

// progressEvery is how often a build reports progress.
const progressEvery = 15 * time.Second

// make runs make in the source tree with the build directory work. Its
// output is not passed on: progress lines summarise it (when progress is
// set) and an error quotes its last lines.
func (b *builder) make(ctx context.Context, work string, progress bool, args ...string) error {
	cmd := b.makeCmd(ctx, work, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var (
		tail  []string
		steps int
		last  string
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		next := time.Now().Add(progressEvery)
		for sc.Scan() {
			line := sc.Text()
			tail = append(tail, line)
			if len(tail) > tailLines {
				tail = tail[1:]
			}
			// Kbuild's quiet output: "  CC      fs/fuse/inode.o".
			if len(line) > 2 && line[:2] == "  " && line[2] >= 'A' && line[2] <= 'Z' {
				steps++
				last = strings.Join(strings.Fields(line), " ")
			}
			if progress && time.Now().After(next) {
				b.logf("kernel build: %d steps, now %s", steps, last)
				next = time.Now().Add(progressEvery)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	err := runLocked(cmd.Run)
	pw.Close()
	<-done
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("kernel build %s: make %s: %w", b.src, strings.Join(args, " "), context.Cause(ctx))
		}
		return fmt.Errorf("kernel build %s: make %s: %w; last lines of its output:\n%s", b.src, strings.Join(args, " "), err, strings.Join(tail, "\n"))
	}
	return nil
}

// makeOutput runs make and returns what it printed on stdout.
func (b *builder) makeOutput(ctx context.Context, work string, args ...string) (string, error) {
	cmd := b.makeCmd(ctx, work, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	var out []byte
	err := runLocked(func() (err error) {
		out, err = cmd.Output()
		return err
	})
	if err != nil {
		return "", fmt.Errorf("kernel build %s: make %s: %w: %s", b.src, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// makeGuard runs make ("$@") in the background of a shell that leads
// make's process group and stays in it. SIGTERM to the guard (the parent
// death signal, or a cancel, which signals the whole group) sends SIGTERM
// to the whole group, as Ctrl-C in a terminal would, so that make deletes
// the targets it left half written; once make has ended, or after
// makeGrace, SIGKILL ends whatever of the group is left (a compiler that
// a recipe's shell started) and the guard with it. Otherwise the guard
// exits with make's status.
//
// The guard is needed because a parent death signal reaches only the
// child fusematrix started: a SIGKILLed make leaves its recipes' shells,
// their compilers and every sub-make running, and SIGTERM to make alone
// leaves the compilers (make signals the shells, which do not pass it on).
const makeGuard = `trap 'trap "" TERM; kill -s TERM 0; (sleep ` + makeGrace + `; kill -s KILL 0) & wait "$pid"; kill -s KILL 0' TERM
"$@" &
pid=$!
wait "$pid"
`

// makeGrace is how long, in seconds, make's group has after SIGTERM
// before SIGKILL; less than the command's WaitDelay.
const makeGrace = "5"

// makeCmd returns the command that runs make in the source tree with the
// build directory work: make under makeGuard, in a process group of its
// own, which ends when ctx does or fusematrix dies.
func (b *builder) makeCmd(ctx context.Context, work string, args ...string) *exec.Cmd {
	args = append([]string{"-c", makeGuard, "fusematrix-make", "make", "--no-print-directory", "-C", b.src, "O=" + work, "ARCH=x86_64"}, args...)
	if _, err := exec.LookPath("ccache"); err == nil {
		// Nearby commits of a bisection share most objects; ccache keeps
		// them across the checkouts that make's timestamps cannot.
		args = append(args, "CC=ccache gcc")
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", args...)
	cmd.Env = makeEnv(os.Environ())
	// Cancelling must stop the compilers too, not only make: the guard
	// leads the group, and SIGTERM reaches all of it. Pdeathsig does the
	// same when fusematrix dies, even by SIGKILL; it is sent when the
	// thread that started the guard ends, so the command runs on a locked
	// thread (runLocked).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if b.workLock != nil {
		cmd.ExtraFiles = []*os.File{b.workLock}
	}
	return cmd
}

// runLocked runs a command's Run (or Output) on a goroutine locked to its
// OS thread: the parent death signal (Pdeathsig) is sent when the thread
// that forked the child ends, not the process, and Go ends a thread only
// when a goroutine locked to it exits, so the thread outlives the child.
func runLocked(run func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return run()
}

// makeEnv drops what would redirect or reshape the build from the
// environment: an enclosing make's flags and jobserver (when fusematrix
// runs under make), and kbuild's own overrides of the output and config
// file.
func makeEnv(env []string) []string {
	drop := []string{"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "KBUILD_OUTPUT", "KCONFIG_CONFIG", "ARCH", "CROSS_COMPILE", "O"}
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(drop, k)
	})
}

func lastLine(s string) string {
	lines := strings.Fields(strings.TrimSpace(s))
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

// srcSelector builds the kernel a "src:DIR[,base=B][,j=N]" name stands for.
func srcSelector(ctx context.Context, name string, opts Options) (*Kernel, error) {
	bo, err := parseSrc(name, opts)
	if err != nil {
		return nil, err
	}
	k, err := Build(ctx, bo)
	if err != nil {
		return nil, err
	}
	k.Name = name
	return k, nil
}

// parseSrc reads a "src:DIR[,base=B][,j=N]" selector.
func parseSrc(name string, opts Options) (BuildOptions, error) {
	spec, _ := strings.CutPrefix(name, "src:")
	dir, rest, _ := strings.Cut(spec, ",")
	if dir == "" {
		return BuildOptions{}, fmt.Errorf("kernel %q: want src:DIR[,base=defconfig|tinyconfig|FILE][,j=N]", name)
	}
	bo := BuildOptions{Src: dir, Options: opts}
	if rest != "" {
		for opt := range strings.SplitSeq(rest, ",") {
			key, value, _ := strings.Cut(opt, "=")
			switch {
			case key == "base" && value != "":
				bo.Base = value
			case key == "j" && value != "":
				n, err := strconv.Atoi(value)
				if err != nil || n < 1 {
					return BuildOptions{}, fmt.Errorf("kernel %q: j=%s: want a positive number", name, value)
				}
				bo.Jobs = n
			default:
				return BuildOptions{}, fmt.Errorf("kernel %q: option %q: want base=defconfig|tinyconfig|FILE or j=N", name, opt)
			}
		}
	}
	return bo, nil
}

// BuildInfo is what a source selector stands for, without building it.
type BuildInfo struct {
	// Src is the tree, Version the kernel version its Makefile names and
	// State what the cache key takes of the tree (a git commit, …).
	Src, Version, State string
	// Base is the configuration the build starts from.
	Base string
	// Entry is the cache entry the build lands in; Cached says whether a
	// complete build is there, and Size how large its image is.
	Entry  string
	Cached bool
	Size   int64
}

// SourceStatus says what the "src:DIR[,…]" selector sel would build and
// whether that build is cached, without building anything.
func SourceStatus(ctx context.Context, sel string, opts Options) (BuildInfo, error) {
	bo, err := parseSrc(sel, opts)
	if err != nil {
		return BuildInfo{}, err
	}
	b, err := newBuilder(ctx, bo)
	if err != nil {
		return BuildInfo{}, err
	}
	version, err := makefileVersion(filepath.Join(b.src, "Makefile"))
	if err != nil {
		return BuildInfo{}, fmt.Errorf("kernel %q: %w", sel, err)
	}
	info := BuildInfo{Src: b.src, Version: version, State: b.state, Base: b.base, Entry: b.entryPath()}
	if k, err := loadEntry(info.Entry, b.source(), checkQuick); err == nil {
		info.Cached = true
		if st, err := os.Stat(k.Image); err == nil {
			info.Size = st.Size()
		}
	}
	return info, nil
}
