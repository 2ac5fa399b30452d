package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

// Prompt is what the shell of fusematrix shell prints when it waits for a
// command.
const Prompt = "$ "

// REPL reads shell statements from in and runs them with mvdan.cc/sh's
// interpreter (the one u-root's gosh is built on; the commands themselves
// are u-root's, found on PATH), until exit or the end of in. It is gosh's
// simple interactive loop without gosh's quirk of staying in the loop on
// exit after a failed command. Ctrl-C ends the command running, not the
// shell; a syntax error is reported and the shell reads on.
func REPL(ctx context.Context, in io.Reader, out, errw io.Writer, env []string) error {
	// Commands read the terminal itself; any other reader the interpreter
	// would drain into a pipe of its own, racing the shell for its lines.
	var stdin io.Reader
	if f, ok := in.(*os.File); ok {
		stdin = f
	}
	runner, err := interp.New(interp.StdIO(stdin, out, errw), interp.Env(expand.ListEnviron(env...)))
	if err != nil {
		return err
	}
	// SIGINT reaches the whole foreground process group, the shell too;
	// noticed rather than ignored, because an ignored signal stays
	// ignored in the commands the shell starts.
	ints := make(chan os.Signal, 1)
	signal.Notify(ints, os.Interrupt)
	defer signal.Stop(ints)
	go func() {
		for range ints {
		}
	}()

	// Line by line, as a terminal in canonical mode delivers them: a line
	// that leaves a statement open waits for the next one.
	lines := bufio.NewReader(in)
	var src strings.Builder
	fmt.Fprint(out, Prompt)
	for {
		line, rerr := lines.ReadString('\n')
		src.WriteString(line)
		if src.Len() > 0 {
			f, perr := syntax.NewParser().Parse(strings.NewReader(src.String()), "")
			switch {
			case rerr == nil && (perr != nil && syntax.IsIncomplete(perr) || strings.HasSuffix(src.String(), "\\\n")):
				fmt.Fprint(out, "> ")
				continue
			case perr != nil:
				fmt.Fprintln(errw, perr)
			default:
				for _, st := range f.Stmts {
					if err := runner.Run(ctx, st); err != nil {
						if _, ok := interp.IsExitStatus(err); !ok {
							fmt.Fprintf(errw, "error: %v\n", err)
						}
					}
					if runner.Exited() {
						return nil
					}
				}
			}
			src.Reset()
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
		fmt.Fprint(out, Prompt)
	}
}
