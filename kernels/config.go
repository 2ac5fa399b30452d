package kernels

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/fusematrix/fusematrix/kernels/kconfig"
)

// configKeep reports whether a config option matters to fusematrix: the
// FUSE options, the FUSE users the capability table shows (virtiofs,
// CUSE), and io_uring, without which CONFIG_FUSE_IO_URING cannot exist.
// Everything else in a distribution config (thousands of lines) would
// only bloat results.json.
func configKeep(name string) bool {
	switch name {
	case "CONFIG_VIRTIO_FS", "CONFIG_CUSE", "CONFIG_IO_URING":
		return true
	}
	return strings.HasPrefix(name, "CONFIG_FUSE_")
}

// ConfigOptions reads the FUSE-related options of the kernel's config:
// "y", "m", "n" for "# CONFIG_X is not set", or the option's value (string
// values unquoted). An option the config does not mention is absent: on
// that kernel it does not exist or its dependencies are off. A kernel
// without a config gives nil and no error.
func (k *Kernel) ConfigOptions() (map[string]string, error) {
	if k.Config == "" {
		return nil, nil
	}
	f, err := os.Open(k.Config)
	if err != nil {
		return nil, fmt.Errorf("kernel config: %w", err)
	}
	defer f.Close()
	opts := map[string]string{}
	sc := bufio.NewScanner(f)
	// CONFIG_CMDLINE and friends can be long; a line longer than this is
	// not a config line.
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		name, value, ok, err := kconfig.ParseLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("kernel config %s:%d: %w", k.Config, n, err)
		}
		if ok && configKeep(name) {
			opts[name] = value
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kernel config %s: %w", k.Config, err)
	}
	return opts, nil
}
