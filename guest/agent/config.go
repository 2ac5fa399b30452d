package agent

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server"
)

// Defaults for a guest.
const (
	DefaultPort    = "fusematrix.0"
	DefaultModules = "/etc/fusematrix/modules"
	DefaultScratch = "/run/fusematrix"
	// cmdlinePrefix marks the kernel command-line keys the agent reads;
	// their presence also says the agent runs inside a fusematrix guest.
	cmdlinePrefix = "fusematrix."
)

// Config says what the agent runs and where it reports.
type Config struct {
	// Run selects scenarios by id (a regular expression); probes always
	// run. Empty selects everything.
	Run        string
	BenchBytes int64
	BlockSize  int
	// BenchRuns is how many times each benchmark cell measures; 0 means
	// scenarios.DefaultBenchRuns.
	BenchRuns int
	// Port is the name of the virtio-serial port the host listens on.
	Port string
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
	// Count runs every selected scenario but the probes this many times
	// and reports one result per scenario; 0 and 1 mean once.
	Count int
	// Server starts the FUSE servers scenarios run against as processes.
	Server server.Launcher
	// Profile has benchmark cells profile their NOOP and classic server
	// processes (scenarios.Env.Profile).
	Profile bool
	// Kmsg is the kernel log device; "" is /dev/kmsg.
	Kmsg string
	// Scenarios, when set, replaces the selection made by Run; tests use
	// it to run scenarios that misbehave on purpose.
	Scenarios []scenarios.Scenario
}

// maxCount bounds Count: enough to expose flakiness, too few to outlast
// any sensible guest timeout by accident.
const maxCount = 1000

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
		BenchBytes: scenarios.DefaultBenchBytes,
		BlockSize:  scenarios.DefaultBlockSize,
		Port:       DefaultPort,
		PortWait:   5 * time.Second,
		Modules:    DefaultModules,
	}
	var errs []error
	for _, arg := range splitCmdline(cmdline) {
		if arg == "--" {
			break // the rest are arguments for init, not parameters
		}
		key, value, _ := strings.Cut(arg, "=")
		name, ok := strings.CutPrefix(key, cmdlinePrefix)
		if !ok {
			continue
		}
		c.PowerOff = true
		switch name {
		case "run":
			c.Run = value
		case "port":
			c.Port = value
		case "count":
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 || n > maxCount {
				errs = append(errs, fmt.Errorf("kernel command line: %s=%q is not a count from 1 to %d", key, value, maxCount))
				continue
			}
			c.Count = n
		case "bench_runs":
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 || n > maxCount {
				errs = append(errs, fmt.Errorf("kernel command line: %s=%q is not a run count from 1 to %d", key, value, maxCount))
				continue
			}
			c.BenchRuns = n
		case "profile":
			on, err := strconv.ParseBool(value)
			if err != nil {
				errs = append(errs, fmt.Errorf("kernel command line: %s=%q is not a boolean", key, value))
				continue
			}
			c.Profile = on
		case "bench_mib":
			mib, err := strconv.ParseInt(value, 10, 64)
			if err != nil || mib <= 0 || mib > 1<<20 {
				errs = append(errs, fmt.Errorf("kernel command line: %s=%q is not a size in MiB", key, value))
				continue
			}
			c.BenchBytes = mib << 20
		default:
			errs = append(errs, fmt.Errorf("kernel command line: unknown key %s", key))
		}
	}
	return c, errors.Join(errs...)
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
	fs.Func("bench-mib", fmt.Sprintf("size of the benchmark file in MiB (default %d)", c.BenchBytes>>20), func(s string) error {
		mib, err := strconv.ParseInt(s, 10, 64)
		if err != nil || mib <= 0 || mib > 1<<20 {
			return fmt.Errorf("%q is not a size in MiB", s)
		}
		c.BenchBytes = mib << 20
		return nil
	})
	fs.Func("bench-runs", fmt.Sprintf("times each benchmark cell measures (default %d)", scenarios.DefaultBenchRuns), func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxCount {
			return fmt.Errorf("%q is not a run count from 1 to %d", s, maxCount)
		}
		c.BenchRuns = n
		return nil
	})
	fs.Func("count", "run each scenario but the probes this many times; disagreeing runs are reported as flaky (default 1)", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxCount {
			return fmt.Errorf("%q is not a count from 1 to %d", s, maxCount)
		}
		c.Count = n
		return nil
	})
	fs.BoolVar(&c.Profile, "profile", c.Profile, "profile the NOOP and classic servers of benchmark cells and log a summary")
	fs.StringVar(&c.Port, "port", c.Port, "name of the virtio-serial port to write events to")
	fs.StringVar(&c.Out, "out", c.Out, `where events go: "-" for stdout, a file path, or empty for the virtio port`)
	fs.StringVar(&c.Dir, "dir", c.Dir, "scratch root (default: a tmpfs mounted at "+DefaultScratch+")")
	fs.StringVar(&c.Modules, "modules", c.Modules, "file listing kernel modules to load, one path per line")
	fs.BoolVar(&c.PowerOff, "poweroff", c.PowerOff, "power the machine off when done (default: inside a fusematrix guest)")
}

// splitCmdline splits a kernel command line into words the way the kernel
// does: on spaces, with double quotes protecting spaces and removed.
func splitCmdline(s string) []string {
	var words []string
	var cur strings.Builder
	inQuote, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
