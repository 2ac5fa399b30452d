package initramfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
)

// formatVersion changes whenever this package changes what it puts into an
// image or how, so that images built by an older version are not reused.
const formatVersion = "fusematrix-initramfs/1"

// builderModules build the image: their versions in this binary matter
// as much as the sources they compile.
var builderModules = []string{
	"github.com/u-root/mkuimage",
	"github.com/u-root/gobusybox/src",
}

// goEnv is the environment of every go command this package runs: the
// guest's target, without cgo, as gobusybox builds it.
func goEnv() []string {
	return append(os.Environ(), "CGO_ENABLED=0", "GOOS="+guestOS, "GOARCH="+guestArch)
}

// goEnvVars are the go env settings that change the compiled binary or
// the set of sources; GOMODCACHE and GOWORK are read to find sources.
var goEnvVars = []string{"GOVERSION", "GOAMD64", "GOEXPERIMENT", "GOFLAGS", "GOMODCACHE", "GOWORK"}

// listedPackage is the part of `go list -json` output the key needs.
type listedPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	Module     *struct {
		Path  string
		GoMod string
	}
	GoFiles, CgoFiles, CFiles, CXXFiles, HFiles, SFiles, SysoFiles, EmbedFiles []string
}

// cacheKey hashes everything that determines the base image. Packages in
// the module cache are pinned by go.mod and go.sum (the cache is
// content-addressed and read-only), so only the sources of packages that
// live elsewhere — the main module, local replacements, vendored or
// workspace modules — are read. The standard library is pinned by
// GOVERSION.
func cacheKey(ctx context.Context, o Options) (string, error) {
	h := sha256.New()
	field := func(k, v string) { fmt.Fprintf(h, "%s=%q\n", k, v) }

	field("format", formatVersion)
	field("target", guestOS+"/"+guestArch)
	field("agent", o.AgentPkg)
	field("init", o.InitPkg)
	args, _ := json.Marshal(o.AgentArgs)
	field("args", string(args))
	// Written only when set, so that the key of an image without them
	// stays what it was.
	for _, c := range o.Commands {
		field("command", c)
	}
	for _, m := range builderModules {
		field("builder", m+"@"+moduleVersion(m))
	}

	env, err := goEnvValues(ctx, o.ModuleDir)
	if err != nil {
		return "", err
	}
	for _, k := range goEnvVars {
		if k != "GOMODCACHE" {
			field(k, env[k])
		}
	}
	modCache := env["GOMODCACHE"]

	// go.mod and go.sum pin every module-cache package and are hashed even
	// when no main-module package is a dependency (an agent taken from
	// the module cache).
	if err := hashFile(h, "go.mod", filepath.Join(o.ModuleDir, "go.mod"), false); err != nil {
		return "", err
	}
	if err := hashFile(h, "go.sum", filepath.Join(o.ModuleDir, "go.sum"), true); err != nil {
		return "", err
	}
	if w := env["GOWORK"]; w != "" && w != "off" {
		for _, name := range []string{w, w + ".sum"} {
			if err := hashFile(h, "work:"+filepath.Base(name), name, true); err != nil {
				return "", err
			}
		}
	}

	pkgs, err := listDeps(ctx, o.ModuleDir, append([]string{o.AgentPkg, o.InitPkg}, o.Commands...)...)
	if err != nil {
		return "", err
	}
	goMods := map[string]string{}
	for _, p := range pkgs {
		if p.Standard || inDir(p.Dir, modCache) {
			continue
		}
		if p.Module != nil && p.Module.GoMod != "" && !inDir(p.Module.GoMod, modCache) {
			goMods[p.Module.Path] = p.Module.GoMod
		}
		var files []string
		for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.CFiles, p.CXXFiles, p.HFiles, p.SFiles, p.SysoFiles, p.EmbedFiles} {
			files = append(files, list...)
		}
		sort.Strings(files)
		field("package", p.ImportPath)
		for _, f := range files {
			// Names relative to the package keep the key independent of
			// where the checkout lives (gobusybox builds with -trimpath).
			if err := hashFile(h, f, filepath.Join(p.Dir, f), false); err != nil {
				return "", err
			}
		}
	}
	mods := make([]string, 0, len(goMods))
	for m := range goMods {
		mods = append(mods, m)
	}
	sort.Strings(mods)
	for _, m := range mods {
		if err := hashFile(h, "go.mod of "+m, goMods[m], false); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func moduleVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Replace.Path + "@" + d.Replace.Version + " " + d.Replace.Sum
			}
			return d.Version + " " + d.Sum
		}
	}
	// Running inside the module itself (its own tests) or a binary built
	// without module information: the key then just does not cover it.
	return "unknown"
}

// hashFile adds a named, length-framed file to h. A missing optional file
// is hashed as absent, so adding or removing it changes the key.
func hashFile(h hash.Hash, name, file string, optional bool) error {
	f, err := os.Open(file)
	if optional && errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(h, "file %q absent\n", name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("initramfs: cache key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("initramfs: cache key: %w", err)
	}
	fmt.Fprintf(h, "file %q %d\n", name, fi.Size())
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("initramfs: cache key: read %s: %w", file, err)
	}
	return nil
}

func inDir(name, dir string) bool {
	if dir == "" {
		return false
	}
	rel, err := filepath.Rel(dir, name)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func goEnvValues(ctx context.Context, dir string) (map[string]string, error) {
	out, err := runGo(ctx, dir, append([]string{"env", "-json"}, goEnvVars...)...)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	if err := json.Unmarshal(out, &env); err != nil {
		return nil, fmt.Errorf("initramfs: parse go env: %w", err)
	}
	return env, nil
}

func listDeps(ctx context.Context, dir string, pkgs ...string) ([]listedPackage, error) {
	fields := "ImportPath,Dir,Standard,Module,GoFiles,CgoFiles,CFiles,CXXFiles,HFiles,SFiles,SysoFiles,EmbedFiles"
	out, err := runGo(ctx, dir, append([]string{"list", "-deps", "-json=" + fields}, pkgs...)...)
	if err != nil {
		return nil, err
	}
	var list []listedPackage
	for d := json.NewDecoder(bytes.NewReader(out)); ; {
		var p listedPackage
		err := d.Decode(&p)
		if err == io.EOF {
			return list, nil
		}
		if err != nil {
			return nil, fmt.Errorf("initramfs: parse go list: %w", err)
		}
		list = append(list, p)
	}
}

func runGo(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = goEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("initramfs: go %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
