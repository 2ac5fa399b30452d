package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// Every error is printed once, as "fusematrix NAME: …", and ends
// fusematrix with one rule: its own status, or 1.
func TestExit(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code int
		out  string
	}{
		{"none", nil, 0, ""},
		{"printed already", Status(130), 130, ""},
		{"printed already, wrapped", fmt.Errorf("x: %w", Status(1)), 1, ""},
		{"usage", Usagef("-format %q: want table", "x"), 2, "fusematrix caps: -format \"x\": want table\n"},
		{"bad input", BadInput(errors.New("read run: truncated")), 2, "fusematrix caps: read run: truncated\n"},
		{"own status", Failf(130, "interrupted"), 130, "fusematrix caps: interrupted\n"},
		{"with more", Error{Code: 128, Err: errors.New("no predicate"), More: "\nusage\n"}, 128, "fusematrix caps: no predicate\n\nusage\n"},
		{"any other", errors.New("qemu: gone"), 1, "fusematrix caps: qemu: gone\n"},
	} {
		var b strings.Builder
		assert.Check(t, is.Equal(Exit(&b, "caps", tc.err), tc.code), tc.name)
		assert.Check(t, is.Equal(b.String(), tc.out), tc.name)
	}
}

// A usage error with the usage: the message, then -h's text, whose last
// line names the docs, without the hidden flags.
func TestWithUsage(t *testing.T) {
	fs := NewFlagSet("shell", "usage: fusematrix shell KERNEL\n", "\nExplained in docs/shell.md.", "j")
	fs.Int("j", 1, "guests at once")
	fs.Bool("q", false, "no progress lines")
	var b strings.Builder
	assert.Check(t, is.Equal(Exit(&b, "shell", WithUsage(fs, Usagef("want one kernel"))), 2))
	assert.Check(t, is.Equal(b.String(), "fusematrix shell: want one kernel\n\nusage: fusematrix shell KERNEL\n  -q\tno progress lines\n\nExplained in docs/shell.md.\n"))
	fs.SetOutput(&b)
	assert.Check(t, fs.Parse([]string{"-j", "2"}), "a hidden flag is still parsed")
}

// Flags go before, between or after the arguments.
func TestParseAround(t *testing.T) {
	for _, tc := range []struct {
		args, want []string
		format     string
	}{
		{[]string{"a", "b"}, []string{"a", "b"}, "table"},
		{[]string{"-format", "json", "a", "b"}, []string{"a", "b"}, "json"},
		{[]string{"a", "-format", "json", "b"}, []string{"a", "b"}, "json"},
		{[]string{"a", "b", "-format", "json"}, []string{"a", "b"}, "json"},
	} {
		fs := flag.NewFlagSet("compare", flag.ContinueOnError)
		format := fs.String("format", "table", "")
		got, err := ParseAround(fs, tc.args)
		assert.NilError(t, err)
		assert.Check(t, is.DeepEqual(got, tc.want), "%v", tc.args)
		assert.Check(t, is.Equal(*format, tc.format), "%v", tc.args)
	}
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(&strings.Builder{})
	_, err := ParseAround(fs, []string{"a", "-nosuch"})
	assert.Check(t, is.Equal(err, error(Status(2))))
}
