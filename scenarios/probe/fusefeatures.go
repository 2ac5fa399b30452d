package probe

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
)

var fuseFeaturesProbe = scenarios.Scenario{
	ID:          contract.FuseFeatures,
	Description: "records FUSE module parameters, fs.fuse sysctls, io_uring and request-timeout support, and whether virtiofs, CUSE and fusectl are there",
	Run: func(ctx context.Context, env *scenarios.Env) results.Result {
		return fuseFeaturesIn(env, systemRoots)
	},
}

// featureRoots are the trees fuse-features reads; tests point them at
// fakes to show what other kernels look like.
type featureRoots struct {
	sys, proc, dev string
}

var systemRoots = featureRoots{sys: "/sys", proc: "/proc", dev: "/dev"}

// maxFactBytes bounds one fact value: a parameter is a number or a word,
// anything longer is not worth a table cell.
const maxFactBytes = 256

// fuseFeaturesIn runs fuse-features on the trees under roots.
func fuseFeaturesIn(env *scenarios.Env, roots featureRoots) results.Result {
	facts := map[string]string{}
	var broken []string
	for _, d := range []struct{ prefix, dir string }{
		{"param.", filepath.Join(roots.sys, "module/fuse/parameters")},
		{"sysctl.", filepath.Join(roots.proc, "sys/fs/fuse")},
	} {
		if err := readValues(d.dir, d.prefix, facts); err != nil {
			broken = append(broken, err.Error())
		}
	}

	filesystems, err := readFilesystems(filepath.Join(roots.proc, "filesystems"))
	if err != nil {
		broken = append(broken, err.Error())
	}
	present := func(paths ...string) bool {
		for _, p := range paths {
			_, err := os.Stat(p)
			if err == nil {
				return true
			}
			if !errors.Is(err, fs.ErrNotExist) {
				broken = append(broken, err.Error())
			}
		}
		return false
	}
	facts["virtiofs"] = yesNo(slices.Contains(filesystems, "virtiofs") || present(filepath.Join(roots.sys, "module/virtiofs")))
	facts["cuse"] = yesNo(present(filepath.Join(roots.dev, "cuse"), filepath.Join(roots.sys, "module/cuse")))
	facts["fusectl"] = yesNo(slices.Contains(filesystems, "fusectl"))

	var reason string
	if c := env.Capabilities; c != nil {
		_, uringParam := facts["param.enable_uring"]
		facts["io_uring"] = ioUring(slices.Contains(c.InitFlags, "over_io_uring"), uringParam)
		facts["request_timeout"] = offeredOrAbsent(slices.Contains(c.InitFlags, "request_timeout"))
	} else {
		facts["io_uring"], facts["request_timeout"] = "unknown", "unknown"
		reason = "fuse-init did not report what the kernel offers"
	}

	if len(broken) > 0 {
		return results.Result{Status: results.Error, Reason: strings.Join(broken, "; "), Facts: facts}
	}
	return results.Result{Status: results.Pass, Reason: reason, Facts: facts}
}

// ioUring says what the kernel does about FUSE over io_uring: the INIT
// flag is only offered while the enable_uring parameter is on, and the
// parameter only exists with CONFIG_FUSE_IO_URING.
func ioUring(offered, param bool) string {
	switch {
	case offered:
		return "offered"
	case param:
		return "disabled"
	}
	return "absent"
}

func offeredOrAbsent(offered bool) string {
	if offered {
		return "offered"
	}
	return "absent"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// readValues records every file in dir as prefix+name. A missing dir
// records nothing: the kernel has no such knobs. A file that cannot be
// read is recorded as such, since sysfs and procfs files may refuse reads
// (write-only knobs) without anything being wrong.
func readValues(dir, prefix string, facts map[string]string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		v := string(bytes.TrimRight(data, "\n"))
		if err != nil {
			v = "unreadable: " + errText(err)
		}
		facts[prefix+e.Name()] = shorten(v)
	}
	return nil
}

// errText names the errno behind err when there is one.
func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errnoName(errno)
	}
	return err.Error()
}

// readFilesystems returns the file system names /proc/filesystems lists.
func readFilesystems(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("file systems: %w", err)
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// "nodev\tfuse" or "\text4": the name is the last field.
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			names = append(names, f[len(f)-1])
		}
	}
	return names, nil
}

// shorten cuts s to maxFactBytes on a character boundary.
func shorten(s string) string {
	if len(s) <= maxFactBytes {
		return s
	}
	cut := maxFactBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
