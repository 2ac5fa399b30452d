package contract

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Params are the run options the host passes to a guest's agent on the
// kernel command line, as fusematrix.<key>=<value> words. The zero value
// of each field means "the agent's default" and is not written.
type Params struct {
	// Run selects scenarios by id (a regular expression, see Select).
	Run string
	// Port is the virtio-serial port to stream on; "" is PortName.
	Port string
	// Count runs each scenario but the probes this many times.
	Count int
	// BenchRuns is how many times each benchmark cell measures.
	BenchRuns int
	// BenchMiB is the size of the file benchmarks move.
	BenchMiB int
	// Profile has benchmark cells profile their NOOP and classic servers.
	Profile bool
	// Daemons name the users' daemons under test, each described at
	// DaemonSpecFile(name), in the order their checks run; the command
	// line carries them as one word, the names joined by commas.
	Daemons []string
	// Shell has the agent mount a loopback and hand the console to an
	// interactive shell instead of running checks (fusematrix shell).
	Shell bool
}

// The command-line keys, each after Prefix.
const (
	Prefix       = "fusematrix."
	KeyRun       = "run"
	KeyPort      = "port"
	KeyCount     = "count"
	KeyBenchRuns = "bench_runs"
	KeyBenchMiB  = "bench_mib"
	KeyProfile   = "profile"
	KeyShell     = "shell"
	KeyDaemon    = "daemon"
)

// Bounds of the numeric parameters: enough to expose flakiness or fill a
// guest, too few to outlast any sensible guest timeout by accident.
const (
	MaxCount    = 1000
	MaxBenchMiB = 1 << 20
)

// Check reports a parameter the kernel command line cannot carry, or a
// number out of range, before anything boots.
func (p Params) Check() error {
	var errs []error
	if strings.ContainsAny(p.Run, "\"\n") {
		errs = append(errs, fmt.Errorf("scenario pattern %q: a kernel command line cannot carry a double quote or a newline", p.Run))
	}
	if err := checkDaemonNames(p.Daemons); err != nil {
		errs = append(errs, err)
	}
	if strings.ContainsAny(p.Port, " \t\n\"") {
		errs = append(errs, fmt.Errorf("port %q: not a single word", p.Port))
	}
	for _, n := range []struct {
		key      string
		v, limit int
	}{{KeyCount, p.Count, MaxCount}, {KeyBenchRuns, p.BenchRuns, MaxCount}, {KeyBenchMiB, p.BenchMiB, MaxBenchMiB}} {
		if n.v < 0 || n.v > n.limit {
			errs = append(errs, fmt.Errorf("%s %d: want 1 to %d", n.key, n.v, n.limit))
		}
	}
	return errors.Join(errs...)
}

// checkDaemonNames says what is wrong with a list of daemon names: one
// the command line cannot carry, or one named twice (their ids would
// collide).
func checkDaemonNames(names []string) error {
	seen := map[string]bool{}
	for _, n := range names {
		if !daemonName.MatchString(n) {
			return fmt.Errorf("daemon name %q: want letters, digits, '.', '_' or '-'", n)
		}
		if seen[n] {
			return fmt.Errorf("daemon name %q given twice: each daemon's checks run under daemon/NAME/, so names must differ", n)
		}
		seen[n] = true
	}
	return nil
}

// Cmdline renders p as kernel command-line words. The port is always
// written: its presence also tells the agent it runs in a fusematrix
// guest.
func (p Params) Cmdline() string {
	port := p.Port
	if port == "" {
		port = PortName
	}
	words := []string{Prefix + KeyPort + "=" + port}
	if p.Run != "" {
		run := p.Run
		if strings.ContainsAny(run, " \t") {
			// The kernel keeps a double-quoted value in one parameter.
			run = `"` + run + `"`
		}
		words = append(words, Prefix+KeyRun+"="+run)
	}
	if p.BenchMiB > 0 {
		words = append(words, fmt.Sprintf("%s%s=%d", Prefix, KeyBenchMiB, p.BenchMiB))
	}
	if p.BenchRuns > 0 {
		words = append(words, fmt.Sprintf("%s%s=%d", Prefix, KeyBenchRuns, p.BenchRuns))
	}
	if p.Count > 1 {
		words = append(words, fmt.Sprintf("%s%s=%d", Prefix, KeyCount, p.Count))
	}
	if p.Profile {
		words = append(words, Prefix+KeyProfile+"=1")
	}
	if p.Shell {
		words = append(words, Prefix+KeyShell+"=1")
	}
	if len(p.Daemons) > 0 {
		words = append(words, Prefix+KeyDaemon+"="+strings.Join(p.Daemons, ","))
	}
	return strings.Join(words, " ")
}

// ParseCmdline reads the fusematrix.* words of a kernel command line into
// p, leaving the fields of keys it does not find as they are. found says
// whether there was any such word: only a fusematrix guest boots with
// them. A malformed value or an unknown key is an error, and the field
// keeps its value; the other words still count.
func (p *Params) ParseCmdline(cmdline string) (found bool, err error) {
	var errs []error
	bad := func(key, value, want string) {
		errs = append(errs, fmt.Errorf("kernel command line: %s=%q is not %s", key, value, want))
	}
	for _, word := range SplitCmdline(cmdline) {
		if word == "--" {
			break // the rest are arguments for init, not parameters
		}
		key, value, _ := strings.Cut(word, "=")
		name, ok := strings.CutPrefix(key, Prefix)
		if !ok {
			continue
		}
		found = true
		switch name {
		case KeyRun:
			p.Run = value
		case KeyPort:
			p.Port = value
		case KeyCount:
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 || n > MaxCount {
				bad(key, value, fmt.Sprintf("a count from 1 to %d", MaxCount))
				continue
			}
			p.Count = n
		case KeyBenchRuns:
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 || n > MaxCount {
				bad(key, value, fmt.Sprintf("a run count from 1 to %d", MaxCount))
				continue
			}
			p.BenchRuns = n
		case KeyProfile:
			on, err := strconv.ParseBool(value)
			if err != nil {
				bad(key, value, "a boolean")
				continue
			}
			p.Profile = on
		case KeyDaemon:
			names := strings.Split(value, ",")
			if checkDaemonNames(names) != nil {
				bad(key, value, "a list of distinct daemon names")
				continue
			}
			p.Daemons = names
		case KeyShell:
			on, err := strconv.ParseBool(value)
			if err != nil {
				bad(key, value, "a boolean")
				continue
			}
			p.Shell = on
		case KeyBenchMiB:
			n, err := strconv.Atoi(value)
			if err != nil || n <= 0 || n > MaxBenchMiB {
				bad(key, value, "a size in MiB")
				continue
			}
			p.BenchMiB = n
		default:
			errs = append(errs, fmt.Errorf("kernel command line: unknown key %s", key))
		}
	}
	return found, errors.Join(errs...)
}

// SplitCmdline splits a kernel command line into words the way the kernel
// does: on spaces, with double quotes protecting spaces and removed.
func SplitCmdline(s string) []string {
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
