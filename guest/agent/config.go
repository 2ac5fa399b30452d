package agent

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server"
)

// DefaultScratch is where the agent mounts its scratch tmpfs.
const DefaultScratch = "/run/fusematrix"

// Config says what the agent runs and where it reports.
type Config struct {
	// Params are what the host says on the kernel command line: which
	// scenarios to run (Run, a regular expression; probes always run;
	// empty selects everything), the port to stream on, how often to run
	// each scenario (Count), and the benchmarks' size, runs and profiling.
	contract.Params
	BlockSize int
	// PortWait bounds the wait for the port to appear.
	PortWait time.Duration
	// Out is where events go: "" is the virtio port, "-" is stdout,
	// anything else a file that is created.
	Out string
	// Output, when set, receives the events instead of Out.
	Output io.Writer
	// Console receives one human line per event; nil is stderr, which
	// in a guest is the console the host records.
	Console io.Writer
	// Dir is the scratch root; "" mounts a tmpfs at DefaultScratch.
	Dir string
	// Modules names a file listing kernel modules to load, one absolute
	// path per line in load order. A missing file means none.
	Modules string
	// PowerOff ends the machine when the agent is done.
	PowerOff bool
	// Notes are problems found while configuring; they are reported as
	// log events after hello.
	Notes []string
	// Server starts the FUSE servers scenarios run against as processes.
	Server server.Launcher
	// DaemonSpecDir is where the users' daemons (Params.Daemons) are
	// described, a NAME.json each; "" is contract.DaemonSpecDir.
	DaemonSpecDir string
	// Kmsg is the kernel log device; "" is /dev/kmsg.
	Kmsg string
	// openKmsg replaces openKmsg in tests.
	openKmsg func(path string) (kernelLog, error)
	// Scenarios, when set, replaces the selection made by Run; tests use
	// it to run scenarios that misbehave on purpose.
	Scenarios []scenarios.Scenario
}

func (c *Config) daemonSpecPath(name string) string {
	if c.DaemonSpecDir == "" {
		return contract.DaemonSpecFile(name)
	}
	return filepath.Join(c.DaemonSpecDir, name+".json")
}

func (c *Config) kmsgPath() string {
	if c.Kmsg == "" {
		return "/dev/kmsg"
	}
	return c.Kmsg
}

// FromCmdline returns the defaults adjusted by the fusematrix.* keys of a
// kernel command line. PowerOff is set when any such key is present: only
// a fusematrix guest boots with them. A malformed value is reported and
// the default kept.
func FromCmdline(cmdline string) (Config, error) {
	c := Config{
		Params:    contract.Params{Port: contract.PortName, BenchMiB: scenarios.DefaultBenchBytes >> 20},
		BlockSize: scenarios.DefaultBlockSize,
		PortWait:  5 * time.Second,
		Modules:   contract.ModuleList,
	}
	found, err := c.ParseCmdline(cmdline)
	c.PowerOff = found
	return c, err
}

// FromSystem is FromCmdline applied to /proc/cmdline. Problems land in
// Notes so that they reach the host.
func FromSystem() Config {
	data, err := os.ReadFile("/proc/cmdline")
	c, cerr := FromCmdline(string(data))
	for _, e := range []error{err, cerr} {
		if e != nil {
			c.Notes = append(c.Notes, e.Error())
		}
	}
	return c
}

// RegisterFlags adds the agent's flags to fs with c's values as defaults,
// so that flags override the kernel command line.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Run, "run", c.Run, "regular expression selecting scenario ids (probes always run)")
	fs.Func("bench-mib", fmt.Sprintf("size of the benchmark file in MiB (default %d)", c.BenchMiB), func(s string) error {
		return setInt(&c.BenchMiB, s, contract.MaxBenchMiB, "a size in MiB")
	})
	fs.Func("bench-runs", fmt.Sprintf("times each benchmark cell measures (default %d)", contract.DefaultBenchRuns), func(s string) error {
		return setInt(&c.BenchRuns, s, contract.MaxCount, "a run count")
	})
	fs.Func("count", "run each scenario but the probes this many times; disagreeing runs are reported as flaky (default 1)", func(s string) error {
		return setInt(&c.Count, s, contract.MaxCount, "a count")
	})
	fs.BoolVar(&c.Profile, "profile", c.Profile, "profile the NOOP and classic servers of benchmark cells and log a summary")
	fs.StringVar(&c.Port, "port", c.Port, "name of the virtio-serial port to write events to")
	fs.StringVar(&c.Out, "out", c.Out, `where events go: "-" for stdout, a file path, or empty for the virtio port`)
	fs.StringVar(&c.Dir, "dir", c.Dir, "scratch root (default: a tmpfs mounted at "+DefaultScratch+")")
	fs.StringVar(&c.Modules, "modules", c.Modules, "file listing kernel modules to load, one path per line")
	fs.BoolVar(&c.PowerOff, "poweroff", c.PowerOff, "power the machine off when done (default: inside a fusematrix guest)")
}

// setInt sets *v to s when s is a whole number from 1 to limit.
func setInt(v *int, s string, limit int, what string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > limit {
		return fmt.Errorf("%q is not %s from 1 to %d", s, what, limit)
	}
	*v = n
	return nil
}
