// Command agent is the fusematrix guest agent (see package agent). In a
// guest it runs as u-root's uinit and takes its settings from the kernel
// command line; flags override them when it runs elsewhere.
package main

import (
	"context"
	"flag"
	"log"
	"os"

	"github.com/fusematrix/fusematrix/guest/agent"
	"github.com/fusematrix/fusematrix/scenarios/server"
)

// name is the agent's command name in the guest's gobusybox binary, which
// dispatches on argv[0]: the agent re-executes itself under it to serve
// FUSE file systems as separate processes.
const name = "agent"

func main() {
	// A server is the agent re-executed: it must not read the kernel
	// command line, which would make it power the guest off.
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(server.Serve(os.Args[2:]))
	}
	cfg := agent.FromSystem()
	cfg.Server = server.Launcher{Argv0: name}
	cfg.RegisterFlags(flag.CommandLine)
	flag.Parse()
	if err := agent.Run(context.Background(), cfg); err != nil {
		log.Fatalf("fusematrix agent: %v", err)
	}
}
