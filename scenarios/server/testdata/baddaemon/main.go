// Command baddaemon is a FUSE daemon that never serves: with -exit N it
// says why on stderr and exits with status N at once, with -sleep D it
// waits D without mounting. Tests use it as a user's daemon that fails.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	exit := flag.Int("exit", 0, "exit at once with this status")
	sleep := flag.Duration("sleep", 0, "wait this long without mounting")
	flag.Parse()
	if *exit != 0 {
		fmt.Fprintf(os.Stderr, "baddaemon: cannot serve %v\n", flag.Args())
		os.Exit(*exit)
	}
	time.Sleep(*sleep)
}
