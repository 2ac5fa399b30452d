// Command fusematrix-agent is the fusematrix guest agent (see package
// agent). In a guest it runs as u-root's uinit and takes its settings from
// the kernel command line; flags override them when it runs elsewhere. At
// the shell of fusematrix shell it also runs checks by hand:
//
//	fusematrix-agent run pt/integrity   # one check (and the probes), results as lines
//	fusematrix-agent list               # the ids it knows
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"

	"github.com/fusematrix/fusematrix/guest/agent"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios/server"
)

// name is the agent's command name in the guest's gobusybox binary, which
// dispatches on argv[0]: the agent re-executes itself under it to serve
// FUSE file systems as separate processes.
const name = "fusematrix-agent"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "serve":
			// A server is the agent re-executed: it must not read the
			// kernel command line, which would make it power the guest off.
			os.Exit(server.Serve(os.Args[2:]))
		case "run":
			os.Exit(runByHand(os.Args[2:]))
		case "sh":
			// The shell of fusematrix shell, which the agent starts on the
			// console.
			if err := agent.REPL(context.Background(), os.Stdin, os.Stdout, os.Stderr, os.Environ()); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			return
		case "list":
			checks := contract.Checks()
			for _, d := range guestDaemons() {
				for _, c := range contract.DaemonScenarios() {
					c.ID = contract.DaemonID(d, c.ID)
					checks = append(checks, c)
				}
			}
			for _, c := range checks {
				fmt.Printf("%-40s %s\n", c.ID, c.Kind)
			}
			return
		}
	}
	cfg := agent.FromSystem()
	cfg.Server = server.Launcher{Argv0: name}
	cfg.RegisterFlags(flag.CommandLine)
	flag.Parse()
	var err error
	if cfg.Shell {
		err = agent.Shell(context.Background(), cfg, agent.ShellConfig{Argv0: name})
	} else {
		err = agent.Run(context.Background(), cfg)
	}
	if err != nil {
		log.Fatalf("fusematrix agent: %v", err)
	}
}

// runByHand runs the checks named by ids (exact ids, or one regular
// expression) and prints their results; Ctrl-C ends them.
func runByHand(ids []string) int {
	if len(ids) == 0 {
		fmt.Fprintln(os.Stderr, "usage: fusematrix-agent run ID… (fusematrix-agent list names them)")
		return 2
	}
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = regexp.QuoteMeta(id)
	}
	pattern := "^(" + strings.Join(quoted, "|") + ")$"
	if len(ids) == 1 && strings.ContainsAny(ids[0], "^$*+?()[]|") {
		pattern = ids[0]
	}
	if _, err := contract.Select(pattern); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	re := regexp.MustCompile(pattern)
	matched := slices.ContainsFunc(contract.Checks(), func(c contract.Check) bool { return re.MatchString(string(c.ID)) })
	daemons := guestDaemons()
	for _, d := range daemons {
		dc, _ := contract.DaemonChecks(d, pattern)
		matched = matched || len(dc) > 0
	}
	if !matched {
		fmt.Fprintf(os.Stderr, "%s matches no check (fusematrix-agent list names them)\n", strings.Join(ids, " "))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg, _ := agent.FromCmdline("")
	cfg.Daemons = daemons // their checks too, under daemon/NAME/…
	cfg.Server = server.Launcher{Argv0: name}
	if err := agent.RunOne(ctx, cfg, pattern, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// guestDaemons are the daemons the guest's command line names (fusematrix
// shell -daemon), none outside a guest.
func guestDaemons() []string {
	data, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil
	}
	var p contract.Params
	p.ParseCmdline(string(data))
	return p.Daemons
}
