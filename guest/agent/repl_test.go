package agent

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The shell runs statements, reads on after failures and syntax errors,
// and ends on exit whatever the last status was (gosh would not), or at
// the end of its input.
func TestREPL(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		out, err []string
		notOut   []string
	}{
		{name: "echo", in: "echo a-$((6*7))\n", out: []string{"$ a-42\n$ "}},
		{name: "exit after a failure", in: "false\nexit\necho after\n", notOut: []string{"after"}},
		{name: "syntax error", in: "echo (\necho still\n", out: []string{"still"}, err: []string{"must be followed by )"}},
		{name: "continued line", in: "echo a \\\nb\n", out: []string{"> a b"}},
		{name: "command not found", in: "no-such-command-here\necho next\n", out: []string{"next"}, err: []string{"no-such-command-here"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errw bytes.Buffer
			err := REPL(context.Background(), strings.NewReader(tc.in), &out, &errw, os.Environ())
			assert.NilError(t, err)
			for _, w := range tc.out {
				assert.Check(t, is.Contains(out.String(), w))
			}
			for _, w := range tc.notOut {
				assert.Check(t, !strings.Contains(out.String(), w), "%q", out.String())
			}
			for _, w := range tc.err {
				assert.Check(t, is.Contains(errw.String(), w))
			}
		})
	}
}
