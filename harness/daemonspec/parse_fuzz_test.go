package daemonspec

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/fusematrix/fusematrix/results/contract"
)

// fuzzSeeds are real descriptions (the README's, the tests') and the
// inputs of issue 21.
var fuzzSeeds = []string{
	`[daemon myfs]
binary = ./target/release/myfs        # relative paths are taken from where fusematrix runs
args = -f -o 'fsname=my fs' {backing} {mnt}   # split as a shell would
env = RUST_LOG=info                   # repeatable
file = /etc/myfs.toml                 # an extra file, at the same path in the guest (repeatable)
file = ./plugins/libcodec.so:/usr/lib/myfs/libcodec.so   # HOST:GUEST
wait = 45s                            # how long it gets to mount
passthrough = yes                     # your claim, checked by daemon/myfs/passthrough
`,
	"[daemon shown]\nbinary = /tmp/nopassthrough\nargs = {mnt} /srv/shown   # a directory of its own, not {backing}\nfile = /tmp/big:/srv/shown/big\npassthrough = yes\nwait = 30s\n",
	"[daemon x] # mine\nbinary = /bin/x   # the binary\nargs = -o 'fsname=a #b' \"c#d\" e\\ #f {mnt} # end\nenv = TAG=v#1\n",
	"[daemon x]\nbinary = /bin/true\nfile = /etc/hostname:/init\n",
	"[daemon x]\nbinary = /bin/true\nfile = /etc/hostname:/etc/uinit.flags\n",
	"[daemon x]\nbinary = /bin/x\nargs = \"a\\b\" {mnt}\n",
	"[daemon x]\nbinary = /bin/x\nenv = A B=x\n",
	"[daemon x]\nbinary = /bin/x\nenv = LD_LIBRARY_PATH=/opt/myfs/lib\n",
	"[daemon x]\nbinary = /bin/x\nenv = A=\x00\n",
	"[daemon x]\r\nbinary = /bin/x\r\nargs = '{mnt}\r\n",
	"[daemon x]\nbinary = /bin/x\nargs = 'open\n",
	"[daemon x]\nbinary = /bin/x\nargs = end\\\n",
	"[daemon x]\nbinary = /bin/x\nwait = 30\npassthrough = maybe\n",
	"[daemon x]\nbinary = /bin/x\nbinary = /bin/y\n",
	"[daemon x]\nbinary = /bin/x\n[daemon y]\nbinary = /bin/y\n",
	"[default]\ndebian:6.1\n",
	"hello\n",
	"",
}

var where = regexp.MustCompile(`^d\.conf:[0-9]+$`)

// FuzzParseDescription: Parse never panics; whatever it accepts is usable
// as it says (a binary, a name, environment entries that contract.CheckEnv
// accepts, absolute guest paths, places in the file); a file over MaxSize
// is refused; and SplitArgs reads any text in double quotes as the
// package doc says (a backslash escapes only " and \), and splits back to
// the same words what it split once they are quoted again.
func FuzzParseDescription(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse("d.conf", strings.NewReader(text))
		if len(text) > MaxSize && err == nil {
			t.Fatalf("a description of %d bytes was accepted", len(text))
		}
		if err == nil {
			checkSpec(t, s)
		}

		// In double quotes, as documented, a backslash escapes only " and
		// \: text quoted with no other escape is one word, itself.
		if got, err := SplitArgs(`"` + docQuote(text) + `"`); err != nil || len(got) != 1 || got[0] != text {
			t.Fatalf("SplitArgs of %q in double quotes = %q, %v", text, got, err)
		}

		words, err := SplitArgs(text)
		if err != nil {
			return
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = shellQuote(w)
		}
		again, err := SplitArgs(strings.Join(quoted, " "))
		if err != nil {
			t.Fatalf("SplitArgs(%q) = %q, which quoted again does not split: %v", text, words, err)
		}
		if fmt.Sprintf("%q", again) != fmt.Sprintf("%q", words) {
			t.Fatalf("SplitArgs(%q) = %q, quoted again it splits to %q", text, words, again)
		}
	})
}

func checkSpec(t *testing.T, s *Spec) {
	t.Helper()
	if s.Name == "" || s.Binary == "" {
		t.Fatalf("accepted without a name or binary: %+v", s)
	}
	if !where.MatchString(s.Origin) {
		t.Fatalf("origin %q", s.Origin)
	}
	for _, e := range s.Env {
		if err := contract.CheckEnv(e); err != nil {
			t.Fatalf("accepted environment entry %q: %v", e, err)
		}
	}
	for _, f := range s.Files {
		if f.Host == "" || (f.Guest != "" && !path.IsAbs(f.Guest)) || !where.MatchString(f.Where) {
			t.Fatalf("accepted extra file %+v", f)
		}
	}
	if s.Wait < 0 {
		t.Fatalf("wait %v", s.Wait)
	}
	for _, k := range keys {
		if w := s.Where(k); w != "" && !where.MatchString(w) {
			t.Fatalf("Where(%s) = %q", k, w)
		}
	}
}

// shellQuote quotes w so that a shell (and SplitArgs) reads it back as
// one word: in single quotes, each ' written as '\”.
func shellQuote(w string) string {
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// docQuote escapes text for double quotes as little as SplitArgs's doc
// allows: " always, \ only before " or \ or at the end.
func docQuote(text string) string {
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\' && (i+1 == len(text) || text[i+1] == '"' || text[i+1] == '\\'):
			b.WriteString(`\\`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
