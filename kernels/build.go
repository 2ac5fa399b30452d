package kernels

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/kernels/flock"
	"github.com/fusematrix/fusematrix/kernels/kconfig"
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
	want     []kconfig.Option
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
	if b.want, err = kconfig.ParseFragment(b.fragment); err != nil {
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
	bad, err := kconfig.Check(config, b.want)
	if err != nil {
		return err
	}
	if len(bad) == 0 {
		return nil
	}
	kconfig.MarkUnknown(b.src, bad)
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
