package inert

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestOneLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"two\nlines\t\ttabbed", "two lines tabbed"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"bidi \u202egnp.exe", `bidi \u202egnp.exe`},
		{"bad \xff byte", `bad \xff byte`},
		{"  padded  ", "padded"},
	} {
		assert.Equal(t, OneLine(tc.in), tc.want, "%q", tc.in)
	}
}

func TestConsoleLine(t *testing.T) {
	// Kernel logs align with spaces: those stay, escapes do not act.
	assert.Equal(t, ConsoleLine("[    1.902311] fuse: init\x1b[0m  "), `[    1.902311] fuse: init\x1b[0m`)
	assert.Equal(t, ConsoleLine("a\tb"), "a b")
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a longer text", 5, "a lo…"},
		{"ünïcödé", 3, "ün…"},
		{"x", 0, "x"},
		{"xy", 0, "…"},
	} {
		assert.Equal(t, Truncate(tc.in, tc.n), tc.want, "%q %d", tc.in, tc.n)
	}
}
