// Command agent is the fusematrix guest agent (see package agent). In a
// guest it runs as u-root's uinit and takes its settings from the kernel
// command line; flags override them when it runs elsewhere.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/fusematrix/fusematrix/guest/agent"
)

func main() {
	cfg := agent.FromSystem()
	cfg.RegisterFlags(flag.CommandLine)
	flag.Parse()
	if err := agent.Run(context.Background(), cfg); err != nil {
		log.Fatalf("fusematrix agent: %v", err)
	}
}
