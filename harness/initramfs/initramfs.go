// Package initramfs builds the guest's initramfs without root: a u-root base
// image (u-root's init plus the fusematrix agent as uinit, compiled into one
// gobusybox binary) that is cached by a content hash of everything that
// determines it, and per-kernel overlays that append a second newc cpio
// archive (that kernel's modules, a load list) to a copy of the base.
//
// Linux unpacks concatenated cpio archives in one initrd one after another
// (init/initramfs.c, unpack_to_rootfs), so the expensive base is shared by
// every kernel and only the small overlay differs.
package initramfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/cpio"
	"github.com/u-root/mkuimage/uimage"
	mkinitramfs "github.com/u-root/mkuimage/uimage/initramfs"
	"github.com/u-root/uio/llog"

	"github.com/fusematrix/fusematrix/kernels/flock"
)

// Default packages built into the base image.
const (
	DefaultAgentPkg = "github.com/fusematrix/fusematrix/guest/cmd/fusematrix-agent"
	DefaultInitPkg  = "github.com/u-root/u-root/cmds/core/init"
)

// The guest is always linux/amd64, whatever the host runs.
const (
	guestOS   = "linux"
	guestArch = "amd64"
)

// Options says what goes into the base image and where it is cached.
type Options struct {
	// ModuleDir is the root of the Go module (where go.mod is) from which
	// the agent and init packages are resolved and built.
	ModuleDir string
	// AgentPkg is the import path of the agent, run by init as uinit.
	// Default DefaultAgentPkg.
	AgentPkg string
	// AgentArgs are the agent's arguments (written to /etc/uinit.flags).
	AgentArgs []string
	// Commands are import paths of further commands the image holds
	// (u-root's shell and tools for fusematrix shell), each run by its
	// package name; none for the images checks run in.
	Commands []string
	// InitPkg is the import path of /init. Default DefaultInitPkg; tests
	// set it to avoid depending on u-root.
	InitPkg string
	// CacheDir holds built images. Default <user cache dir>/fusematrix/initramfs.
	CacheDir string
	// Logf receives progress messages; nil discards them.
	Logf func(format string, args ...any)
}

func (o Options) withDefaults() (Options, error) {
	if o.ModuleDir == "" {
		return o, errors.New("initramfs: Options.ModuleDir is required")
	}
	dir, err := filepath.Abs(o.ModuleDir)
	if err != nil {
		return o, fmt.Errorf("initramfs: module dir %s: %w", o.ModuleDir, err)
	}
	o.ModuleDir = dir
	if o.AgentPkg == "" {
		o.AgentPkg = DefaultAgentPkg
	}
	if o.InitPkg == "" {
		o.InitPkg = DefaultInitPkg
	}
	// gobusybox names each command after the last element of its import
	// path, so two commands with one name would overwrite each other.
	if path.Base(o.AgentPkg) == path.Base(o.InitPkg) {
		return o, fmt.Errorf("initramfs: agent %s and init %s have the same command name", o.AgentPkg, o.InitPkg)
	}
	if o.CacheDir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return o, fmt.Errorf("initramfs: no cache dir given and none found: %w", err)
		}
		o.CacheDir = filepath.Join(c, "fusematrix", "initramfs")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o, nil
}

// Base builds the u-root base image, or reuses the cached one whose content
// key matches, and returns its path (<CacheDir>/<key>.cpio, an uncompressed
// newc archive).
//
// A build cannot be interrupted once it runs (gobusybox does not take a
// context); ctx is honoured before it starts and while waiting for another
// process that builds into the same cache.
func Base(ctx context.Context, o Options) (string, error) {
	o, err := o.withDefaults()
	if err != nil {
		return "", err
	}
	start := time.Now()
	key, err := cacheKey(ctx, o)
	if err != nil {
		return "", err
	}
	image := filepath.Join(o.CacheDir, key+".cpio")
	if ok, err := isFile(image); err != nil {
		return "", err
	} else if ok {
		o.Logf("initramfs: cached %s (key in %s)", image, time.Since(start).Round(time.Millisecond))
		return image, nil
	}

	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("initramfs: create cache dir: %w", err)
	}
	// One builder per cache: two processes sharing it build each image
	// once instead of both spending the CPU.
	unlock, err := flock.Lock(ctx, filepath.Join(o.CacheDir, "lock"), func() {
		o.Logf("initramfs: waiting for another build in %s", o.CacheDir)
	})
	if err != nil {
		return "", fmt.Errorf("initramfs: lock the cache: %w", err)
	}
	defer unlock()
	// Another process may have finished the same image while we waited.
	if ok, err := isFile(image); err != nil {
		return "", err
	} else if ok {
		return image, nil
	}
	removeStalePartials(o.CacheDir, o.Logf)
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}

	o.Logf("building initramfs (first run or agent changed) …")
	start = time.Now()
	if err := build(o, image); err != nil {
		return "", err
	}
	size := int64(-1)
	if fi, err := os.Stat(image); err == nil {
		size = fi.Size()
	}
	o.Logf("built initramfs %s (%.1f MiB) in %s", image, float64(size)/(1<<20), time.Since(start).Round(100*time.Millisecond))
	return image, nil
}

func isFile(name string) (bool, error) {
	fi, err := os.Stat(name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("initramfs: %w", err)
	case !fi.Mode().IsRegular():
		return false, fmt.Errorf("initramfs: %s is not a regular file", name)
	}
	return true, nil
}

// partialSuffix marks base images still being written; a name ending in
// ".cpio" is only ever produced by rename, so it is always complete.
const partialSuffix = ".cpio.building-"

// removeStalePartials deletes partial images left by builders that died.
// The caller holds the cache lock, so nobody else is writing one.
func removeStalePartials(dir string, logf func(string, ...any)) {
	stale, _ := filepath.Glob(filepath.Join(dir, "*"+partialSuffix+"*"))
	for _, s := range stale {
		if err := os.Remove(s); err == nil {
			logf("initramfs: removed unfinished %s", s)
		}
	}
}

// build runs mkuimage and atomically publishes the result as image.
func build(o Options, image string) (err error) {
	tmpDir, err := os.MkdirTemp("", "fusematrix-initramfs-")
	if err != nil {
		return fmt.Errorf("initramfs: temp dir: %w", err)
	}
	defer os.RemoveAll(tmpDir)

	f, err := os.CreateTemp(filepath.Dir(image), filepath.Base(image[:len(image)-len(".cpio")])+partialSuffix+"*")
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()

	// gobusybox logs every package at info level; only warnings are worth
	// passing on, failures come back as errors.
	logger := llog.New(slog.LevelWarn, func(format string, args ...any) { o.Logf("initramfs: "+format, args...) })
	err = uimage.Create(logger,
		uimage.WithEnv(
			golang.DisableCGO(),
			golang.WithGOOS(guestOS),
			golang.WithGOARCH(guestArch),
			golang.WithWorkingDir(o.ModuleDir),
		),
		uimage.WithTempDir(tmpDir),
		uimage.WithBaseArchive(uimage.DefaultRamfs()),
		uimage.WithBusyboxCommands(append([]string{o.AgentPkg, o.InitPkg}, o.Commands...)...),
		uimage.WithInit(path.Base(o.InitPkg)),
		uimage.WithUinit(path.Base(o.AgentPkg), o.AgentArgs...),
		uimage.WithOutput(&openFile{f}),
	)
	if err != nil {
		return fmt.Errorf("initramfs: build %s with %s: %w", o.AgentPkg, o.InitPkg, err)
	}
	// CreateTemp makes the file 0600; the image is no secret.
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("initramfs: sync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("initramfs: close %s: %w", f.Name(), err)
	}
	// Rename is atomic: a concurrent reader sees no file or a whole one.
	if err := os.Rename(f.Name(), image); err != nil {
		return fmt.Errorf("initramfs: publish %s: %w", image, err)
	}
	return nil
}

// openFile lets mkuimage write into a file we opened, so that we (not
// mkuimage, which ignores the error of its own Close) decide when it is
// synced, closed and renamed.
type openFile struct{ f *os.File }

func (o *openFile) OpenWriter() (mkinitramfs.Writer, error) {
	return &cpioWriter{RecordWriter: cpio.Newc.Writer(o.f)}, nil
}

type cpioWriter struct{ cpio.RecordWriter }

func (w *cpioWriter) Finish() error { return cpio.WriteTrailer(w) }
