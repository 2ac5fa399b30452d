package kernels

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func isPath(name string) bool {
	return strings.HasPrefix(name, "/") || strings.HasPrefix(name, "./") || strings.HasPrefix(name, "../")
}

// localKernel is a kernel image file given by path, with the modules
// directory and config named after it. It warns through logf when neither
// the config nor the modules provide FUSE.
func localKernel(name string, logf func(string, ...any)) (*Kernel, error) {
	file, opts, _ := strings.Cut(name, ",")
	k := &Kernel{Name: name}
	var err error
	if k.Image, err = localFile(file, false); err != nil {
		return nil, fmt.Errorf("kernel %q: %w", name, err)
	}
	k.Source = "file " + k.Image
	if opts != "" {
		for opt := range strings.SplitSeq(opts, ",") {
			key, value, _ := strings.Cut(opt, "=")
			switch {
			case key == "modules" && value != "":
				k.ModulesDir, err = localFile(value, true)
				k.Release = filepath.Base(k.ModulesDir)
			case key == "config" && value != "":
				k.Config, err = localFile(value, false)
			default:
				return nil, fmt.Errorf("kernel %q: option %q: want modules=DIR or config=FILE", name, opt)
			}
			if err != nil {
				return nil, fmt.Errorf("kernel %q: %w", name, err)
			}
		}
	}
	if warning := k.fuseWarning(); warning != "" && logf != nil {
		logf("warning: kernel %s: %s", name, warning)
	}
	return k, nil
}

func localFile(name string, dir bool) (string, error) {
	abs, err := filepath.Abs(name)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	switch {
	case dir && !st.IsDir():
		return "", fmt.Errorf("%s: not a directory", name)
	case !dir && !st.Mode().IsRegular():
		return "", fmt.Errorf("%s: not a regular file", name)
	}
	return abs, nil
}

// fuseWarning says why FUSE may be missing from the kernel, or "" when
// the config builds it in or the modules hold it.
func (k *Kernel) fuseWarning() string {
	if k.ModulesDir != "" {
		// No error: a module file or built in, either way the guest has it.
		if _, _, err := k.Modules("fuse"); err == nil {
			return ""
		}
	}
	opts, err := k.ConfigOptions()
	if err != nil {
		return err.Error()
	}
	switch {
	case k.Config == "" && k.ModulesDir == "":
		return "no config and no modules given: cannot tell whether FUSE is built in (add ,config=FILE)"
	case opts["CONFIG_FUSE_FS"] == "y":
		return ""
	case opts["CONFIG_FUSE_FS"] == "m":
		return "FUSE is a module (CONFIG_FUSE_FS=m) but no fuse module is in the modules given (add ,modules=DIR)"
	case k.Config == "":
		return "FUSE is not among the modules given, and no config says it is built in"
	}
	return "FUSE is neither built in (CONFIG_FUSE_FS is not y in the config) nor among the modules"
}
