package cli

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/fusematrix/fusematrix/harness/predicate"
	"github.com/fusematrix/fusematrix/results"
)

// NewFlagSet returns the flag set of the command name ("matrix", "kernels
// list"), whose -h prints text (a usage line when empty), the flags, and
// last doc, the line that names the page of docs/ explaining the command.
// The flags named hidden are parsed but not listed.
func NewFlagSet(name, text, doc string, hidden ...string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		if text == "" {
			text = fmt.Sprintf("usage: fusematrix %s [flags] [kernel …]\n\nFlags:\n", name)
		}
		fmt.Fprint(fs.Output(), text)
		shown := flag.NewFlagSet(name, flag.ContinueOnError)
		shown.SetOutput(fs.Output())
		fs.VisitAll(func(f *flag.Flag) {
			if !slices.Contains(hidden, f.Name) {
				shown.Var(f.Value, f.Name, f.Usage)
				shown.Lookup(f.Name).DefValue = f.DefValue
			}
		})
		shown.PrintDefaults()
		fmt.Fprintln(fs.Output(), doc)
	}
	return fs
}

// WithUsage is err (an Error) followed by fs's usage.
func WithUsage(fs *flag.FlagSet, err error) error {
	var b strings.Builder
	out := fs.Output()
	fs.SetOutput(&b)
	fs.Usage()
	fs.SetOutput(out)
	e, _ := err.(Error)
	e.More = "\n" + b.String()
	return e
}

// ParseAround parses args with fs, flags before, between or after the
// arguments, and returns the arguments.
func ParseAround(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, Status(2) // reported with the usage already
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// ReadFrom reads the run -from names, to render it instead of booting:
// flags other than allowed, or arguments, are a usage error, for
// everything else configures a boot, and accepting it silently would let
// a reader believe it had an effect.
func ReadFrom(fs *flag.FlagSet, path string, allowed ...string) (*results.Run, error) {
	if err := onlyFlags(fs, allowed...); err != nil {
		return nil, err
	}
	run, err := results.ReadFile(path)
	if err != nil {
		return nil, BadInput(err)
	}
	return run, nil
}

func onlyFlags(fs *flag.FlagSet, allowed ...string) error {
	var unused []string
	fs.Visit(func(f *flag.Flag) {
		if !slices.Contains(allowed, f.Name) {
			unused = append(unused, "-"+f.Name)
		}
	})
	unused = append(unused, fs.Args()...)
	if len(unused) > 0 {
		return Usagef("-from renders an earlier run; %s would have no effect", strings.Join(unused, " "))
	}
	return nil
}

// ParsePredicate parses bisect's flags before and after its one
// argument, the predicate, as the documented forms put it either way;
// usage follows the error when there is none.
func ParsePredicate(fs *flag.FlagSet, args []string, usage string) (*predicate.Predicate, error) {
	if err := fs.Parse(args); err != nil {
		return nil, Status(2)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return nil, Usagef("no predicate\n\n%s", usage)
	}
	text := rest[0]
	if err := fs.Parse(rest[1:]); err != nil {
		return nil, Status(2)
	}
	if fs.NArg() > 0 {
		return nil, Usagef("one predicate, not %q and %q (quote a predicate with spaces)", text, fs.Arg(0))
	}
	p, err := predicate.Parse(text)
	if err != nil {
		return nil, Usagef("%v", err)
	}
	return p, nil
}
