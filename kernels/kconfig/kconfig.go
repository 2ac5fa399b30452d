// Package kconfig reads the Linux kernel's configuration formats without
// the kernel's tools: a .config file, a config fragment (the same lines,
// meant to be applied over a base config), and which options the Kconfig
// files of a source tree define. It checks a config against a fragment,
// naming every option that did not take effect.
//
// It imports only the standard library.
package kconfig

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Option is one assignment of a config fragment.
type Option struct {
	Name  string // "CONFIG_FUSE_FS"
	Value string // "y", "m", "n" (from "# CONFIG_X is not set"), or the value
	Line  int
}

// ParseLine parses one line of a kernel .config or of a fragment:
// CONFIG_X=value (a string value unquoted) or "# CONFIG_X is not set"
// (value "n"). ok is false for lines that set nothing (blank lines,
// section comments).
func ParseLine(line string) (name, value string, ok bool, err error) {
	line = strings.TrimSpace(line)
	if rest, found := strings.CutPrefix(line, "# "); found {
		name, found = strings.CutSuffix(rest, " is not set")
		if found && strings.HasPrefix(name, "CONFIG_") && !strings.ContainsAny(name, " \t") {
			return name, "n", true, nil
		}
		return "", "", false, nil
	}
	if line == "" || strings.HasPrefix(line, "#") {
		return "", "", false, nil
	}
	name, value, found := strings.Cut(line, "=")
	if !found || !strings.HasPrefix(name, "CONFIG_") {
		return "", "", false, fmt.Errorf("not a config line: %.80q", line)
	}
	if strings.HasPrefix(value, `"`) {
		s, err := strconv.Unquote(value)
		if err != nil {
			return "", "", false, fmt.Errorf("%s: bad string value %.80s", name, value)
		}
		value = s
	}
	return name, value, true, nil
}

// ParseFragment reads a Kconfig fragment: CONFIG_X=value lines and
// "# CONFIG_X is not set", comments and blank lines. An option assigned
// twice with different values is an error: which one was meant?
func ParseFragment(data []byte) ([]Option, error) {
	var opts []Option
	seen := map[string]int{}
	for n, line := range strings.Split(string(data), "\n") {
		name, value, ok, err := ParseLine(line)
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
		opts = append(opts, Option{Name: name, Value: value, Line: n + 1})
	}
	return opts, nil
}

// Mismatch is a fragment option that did not take effect.
type Mismatch struct {
	Name string
	Want string
	Got  string // "" when the resulting config does not mention it
	// Unknown is set when the source tree's Kconfig files do not define
	// the option at all (an older kernel, or a misspelling).
	Unknown bool
}

func (m Mismatch) String() string {
	switch {
	case m.Unknown:
		return fmt.Sprintf("%s=%s: no Kconfig file of this tree defines it (older kernel or misspelt)", m.Name, m.Want)
	case m.Got == "":
		return fmt.Sprintf("%s=%s: absent from the result (a dependency is off)", m.Name, m.Want)
	}
	return fmt.Sprintf("%s=%s: the result has %s (a dependency is off or a choice overrides it)", m.Name, m.Want, m.Got)
}

// Check compares the kernel config file with the options it should
// carry and returns those it does not. "n" is met by an option that is
// absent, as Kconfig leaves out what cannot be enabled.
func Check(configFile string, want []Option) ([]Mismatch, error) {
	got, err := readConfig(configFile)
	if err != nil {
		return nil, err
	}
	var bad []Mismatch
	for _, o := range want {
		v, ok := got[o.Name]
		if v == o.Value || (o.Value == "n" && !ok) {
			continue
		}
		bad = append(bad, Mismatch{Name: o.Name, Want: o.Value, Got: v})
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
		key, value, ok, err := ParseLine(line)
		if err != nil {
			return nil, fmt.Errorf("kernel config %s:%d: %w", name, n+1, err)
		}
		if ok {
			opts[key] = value
		}
	}
	return opts, nil
}

// MarkUnknown sets Unknown on the mismatches whose option no Kconfig file
// below src defines. Reading every Kconfig file takes a second or so on a
// full tree: it is for when Check found something.
func MarkUnknown(src string, bad []Mismatch) {
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
