// Package daemonspec reads the description of a user's FUSE daemon under
// test (fusematrix matrix -daemon): from a file holding one
// "[daemon NAME]" section, or from such a section of the kernel catalog,
// in the catalog's syntax. The command line's -daemon-* flags add to it or
// override it; package harness turns the result into what the guest runs.
//
// It imports kernels (for the catalog's sections) and the contract (its
// check of an environment entry), nothing of the harness.
package daemonspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/kernels"
	"github.com/fusematrix/fusematrix/results/contract"
)

// Spec is what a description says of a daemon; a field it leaves out is
// zero (Args nil, Passthrough nil).
type Spec struct {
	Name string
	// Binary is the daemon's path on the host, as written (a relative
	// path is taken from the directory fusematrix runs in).
	Binary string
	// Program is, for a Binary that names a Debian package
	// ("debian:sshfs@sid"), the daemon's program in the package's root
	// ("/usr/bin/sshfs"); "" lets fusematrix find the package's one FUSE
	// program.
	Program string
	// Args are its arguments, split as a shell would.
	Args []string
	// Env is added to its environment (KEY=VALUE).
	Env []string
	// Files are extra files to copy into the guest.
	Files []File
	// Wait bounds the wait for its mount.
	Wait time.Duration
	// Stop bounds the wait for it to exit after its unmount; 0 is
	// contract.DefaultStopWait.
	Stop time.Duration
	// Passthrough is the author's claim, nil when not made.
	Passthrough *bool
	// URing is the author's claim that the daemon serves over FUSE's
	// io_uring transport where the kernel offers it, nil when not made.
	URing *bool
	// Setup are commands run before each start, each split as a shell
	// would (contract.DaemonSpec.Setup).
	Setup [][]string
	// Stdin is what the daemon and its setup commands read
	// (contract.DaemonSpec.Stdin).
	Stdin string
	// Dirs are directories made in its scratch directory
	// (contract.DaemonSpec.Dirs).
	Dirs []string
	// Packages are more packages of the Binary's suite put into its root
	// (kernels.PackageRef.With): for a Binary that names a Debian package
	// only.
	Packages []string
	// Origin says where the description is: "file:line".
	Origin string
	// at holds the line of each key given, for Where.
	file string
	at   map[string]int
}

// Where says where the description gives key, "file:line", or "" when it
// does not.
func (s *Spec) Where(key string) string {
	if n, ok := s.at[key]; ok {
		return fmt.Sprintf("%s:%d", s.file, n)
	}
	return ""
}

// File is an extra file for the guest: Host is copied to Guest, an
// absolute path (Host's own, made absolute, unless given). Where says
// where the description names it.
type File struct {
	Host, Guest string
	Where       string
}

// DebianPrefix starts a Binary that names a package of Debian's archive,
// "debian:PACKAGE[=VERSION][@SUITE]", rather than a file on the host.
const DebianPrefix = "debian:"

// The keys of a description.
const (
	KeyBinary      = "binary"
	KeyProgram     = "program"
	KeyArgs        = "args"
	KeyEnv         = "env"
	KeyFile        = "file"
	KeyWait        = "wait"
	KeyStop        = "stop"
	KeyPassthrough = "passthrough"
	KeyURing       = "uring"
	KeySetup       = "setup"
	KeyStdin       = "stdin"
	KeyDirs        = "dirs"
	KeyPackages    = "packages"
)

// repeatable are the keys that may be given more than once.
var repeatable = map[string]bool{KeyEnv: true, KeyFile: true, KeySetup: true}

// Error is a mistake in a description, at a line of its file.
type Error struct {
	File string
	Line int
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// MaxSize is the largest description file Parse reads. A description is a
// few lines; anything near this is a mistake (a binary, a log given as
// -daemon) and is refused rather than read in part.
const MaxSize = 1 << 20

// Parse reads a daemon description file: one "[daemon NAME]" section and
// nothing else, comments ("#") and blank lines aside. A file larger than
// MaxSize is an error.
func Parse(file string, r io.Reader) (*Spec, error) {
	text, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(text) > MaxSize {
		return nil, fmt.Errorf("%s: larger than the %d MiB cap on a daemon description", file, MaxSize>>20)
	}
	c, err := kernels.ParseCatalogFile(file, bytes.NewReader(text))
	if err != nil {
		return nil, err
	}
	names := c.Daemons()
	if len(names) != 1 || len(c.Names()) > 0 || len(c.Kernels()) > 0 {
		return nil, fmt.Errorf("%s: want one [daemon NAME] section and nothing else, found %d daemon(s), %d matri(ces), %d named kernel(s)",
			file, len(names), len(c.Names()), len(c.Kernels()))
	}
	sec, _ := c.Daemon(names[0])
	return FromSection(sec)
}

// Program says what the daemon of a catalog section runs, for the
// catalog's summary (kernels.Catalog.WriteSummary): its binary, or that
// the section cannot be read and where to see why.
func Program(sec kernels.Section) string {
	if spec, err := FromSection(sec); err == nil {
		return spec.Binary
	}
	return "(not readable: see -daemon " + sec.Name + ")"
}

// FromSection reads the description in a catalog section.
func FromSection(sec kernels.Section) (*Spec, error) {
	s := &Spec{Name: sec.Name, Origin: fmt.Sprintf("%s:%d", sec.File, sec.Line), file: sec.File, at: map[string]int{}}
	seen := map[string]bool{}
	for _, l := range sec.Lines {
		fail := func(format string, args ...any) error {
			return &Error{File: sec.File, Line: l.Line, Err: fmt.Errorf(format, args...)}
		}
		key, value, ok := strings.Cut(stripComment(l.Text), "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return nil, fail("want key = value, one of %s", strings.Join(keys, ", "))
		}
		if seen[key] && !repeatable[key] {
			return nil, fail("%s given twice", key)
		}
		seen[key] = true
		s.at[key] = l.Line
		switch key {
		case KeyBinary:
			if value == "" {
				return nil, fail("binary: no path")
			}
			s.Binary = value
		case KeyProgram:
			if !strings.HasPrefix(value, "/") {
				return nil, fail("program %q: want the absolute path of the daemon's program in its package's root", value)
			}
			s.Program = value
		case KeyArgs:
			args, err := SplitArgs(value)
			if err != nil {
				return nil, fail("args: %v", err)
			}
			s.Args = append([]string{}, args...) // given, even if empty
		case KeyEnv:
			if err := contract.CheckEnv(value); err != nil {
				return nil, fail("env %q: %v", value, err)
			}
			s.Env = append(s.Env, value)
		case KeyFile:
			f, err := parseFile(value)
			if err != nil {
				return nil, fail("file %q: %v", value, err)
			}
			f.Where = fmt.Sprintf("%s:%d", sec.File, l.Line)
			s.Files = append(s.Files, f)
		case KeyWait:
			d, err := time.ParseDuration(value)
			if err != nil || d <= 0 {
				return nil, fail("wait %q: want a duration such as 30s", value)
			}
			s.Wait = d
		case KeyStop:
			d, err := time.ParseDuration(value)
			if err != nil || d <= 0 {
				return nil, fail("stop %q: want a duration such as 60s", value)
			}
			s.Stop = d
		case KeyPassthrough, KeyURing:
			var v bool
			switch strings.ToLower(value) {
			case "yes", "true":
				v = true
			case "no", "false":
			default:
				return nil, fail("%s %q: want yes or no", key, value)
			}
			if key == KeyURing {
				s.URing = &v
			} else {
				s.Passthrough = &v
			}
		case KeySetup:
			args, err := SplitArgs(value)
			if err == nil {
				err = contract.CheckSetup(args)
			}
			if err != nil {
				return nil, fail("setup: %v", err)
			}
			s.Setup = append(s.Setup, args)
		case KeyStdin:
			if value == "" || strings.ContainsRune(value, 0) {
				return nil, fail("stdin: want the text the daemon reads, on one line")
			}
			s.Stdin = value
		case KeyDirs:
			dirs, err := SplitArgs(value)
			if err == nil && len(dirs) == 0 {
				err = errors.New("no name")
			}
			for _, d := range dirs {
				if err == nil {
					err = contract.CheckDir(d)
				}
			}
			if err != nil {
				return nil, fail("dirs: %v", err)
			}
			s.Dirs = dirs
		case KeyPackages:
			names := strings.Fields(value)
			if len(names) == 0 {
				return nil, fail("packages: no name")
			}
			for _, n := range names {
				if _, err := kernels.ParsePackageRef(n); err != nil || strings.ContainsAny(n, "=@") {
					return nil, fail("packages: %q is not a Debian package name (its version and suite are the binary's)", n)
				}
			}
			s.Packages = names
		default:
			return nil, fail("unknown key %q (known: %s)", key, strings.Join(keys, ", "))
		}
	}
	if s.Binary == "" {
		return nil, &Error{File: sec.File, Line: sec.Line, Err: fmt.Errorf("[daemon %s] names no binary (binary = PATH)", sec.Name)}
	}
	if len(s.Packages) > 0 && !strings.HasPrefix(s.Binary, DebianPrefix) {
		return nil, &Error{File: sec.File, Line: s.at[KeyPackages], Err: fmt.Errorf("packages: only for a binary from Debian's archive (%sPACKAGE), whose root they join", DebianPrefix)}
	}
	return s, nil
}

var keys = []string{KeyBinary, KeyProgram, KeyArgs, KeyEnv, KeyFile, KeyWait, KeyStop, KeyPassthrough, KeyURing, KeySetup, KeyStdin, KeyDirs, KeyPackages}

// stripComment cuts text at a "#" that starts a comment: at the start or
// after a blank, outside quotes, as a shell would.
func stripComment(text string) string {
	var quote rune
	escaped := false
	prev := ' '
	for i, r := range text {
		switch {
		case escaped:
			// An escaped blank is part of a word, not a blank.
			escaped = false
			r = 0
		case quote != 0:
			if r == quote {
				quote = 0
			} else if r == '\\' && quote == '"' {
				escaped = true
			}
		case r == '\\':
			escaped = true
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (prev == ' ' || prev == '\t'):
			return strings.TrimSpace(text[:i])
		}
		prev = r
	}
	return text
}

// parseFile reads HOST or HOST:GUEST.
func parseFile(v string) (File, error) {
	host, guest, _ := strings.Cut(v, ":")
	switch {
	case host == "":
		return File{}, errors.New("want HOST[:GUEST]")
	case guest != "" && !strings.HasPrefix(guest, "/"):
		return File{}, errors.New("the guest path is not absolute")
	}
	return File{Host: host, Guest: guest}, nil
}

// SplitArgs splits s into words as a shell would, without expanding
// anything: blanks separate words, single quotes keep everything, double
// quotes keep all but a backslash before " or \, and a backslash outside
// quotes keeps the next character.
func SplitArgs(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	in := false // inside a word
	var quote byte
	escaped := false
	// Byte by byte: every special character is ASCII, and any other byte,
	// valid UTF-8 or not, is kept as it is.
	for i := 0; i < len(s); i++ {
		r := s[i]
		switch {
		case escaped:
			// Inside double quotes a backslash escapes only " and \ and
			// is kept before anything else, as in a shell: "a\b" is a\b.
			if quote == '"' && r != '"' && r != '\\' {
				w.WriteByte('\\')
			}
			w.WriteByte(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				w.WriteByte(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				w.WriteByte(r)
			}
		case r == '\\':
			escaped, in = true, true
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteByte(r)
			in = true
		}
	}
	if quote != 0 || escaped {
		return nil, errors.New("an unterminated quote or a trailing backslash")
	}
	if in {
		words = append(words, w.String())
	}
	return words, nil
}
