package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/harness/cli"
)

const shellUsage = `usage: fusematrix shell [flags] KERNEL

Boots KERNEL with the agent, its modules and u-root's shell and tools, mounts
fusematrix's loopback of a tmpfs directory at /mnt/fuse (with passthrough
where the kernel offers it; your own daemon instead with -daemon, as for
matrix), and gives you a shell on the guest's serial
console. 'fusematrix-agent run ID' runs one check there ('fusematrix-agent
list' names them). 'exit' powers the guest off; a closed terminal or a
signal to fusematrix stops QEMU. The console is also logged to
-out/shell.console.log.

Flags:
`

// shellCmd is fusematrix shell.
func shellCmd(args []string) error {
	// Boot flags that mean nothing to a shell: refused, and not listed.
	refused := []string{"run", "scenario", "count", "j"}
	fs := newFlagSet("shell", shellUsage, refused...)
	o := harness.Options{}
	quiet := cli.BootFlags(fs, &o, filepath.Join("out", "shell"))
	catalog := ""
	cli.CatalogFlag(fs, &catalog)
	daemon := cli.DaemonFlags(fs)
	if err := fs.Parse(args); err != nil {
		return cli.Status(2)
	}
	var err error
	if daemon.Several() {
		return cli.Usagef("a shell mounts one daemon: give -daemon once, naming one")
	}
	if err = daemon.ResolveInto(fs, &o, catalog, *quiet); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.WithUsage(fs, cli.Usagef("want one kernel; got %d", fs.NArg()))
	}
	for _, f := range refused {
		if cli.IsSet(fs, f) {
			return cli.Usagef("-%s has no effect on a shell; run checks in the guest with fusematrix-agent run", f)
		}
	}
	names, _, err := (&cli.Kernels{Catalog: catalog}).Select(fs.Args(), &o.Kernel)
	if err != nil {
		return err
	}
	if err := o.DefaultSource(); err != nil {
		return err
	}
	o.Logf = cli.Progress(*quiet)
	o.Kernel.Logf = o.Logf

	// A closed terminal (SIGHUP) ends fusematrix like Ctrl-C would when
	// the terminal is not raw: either way QEMU is stopped.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	restore, err := harness.RawTerminal(int(os.Stdin.Fd()))
	if err != nil {
		return fmt.Errorf("shell: terminal: %w", err)
	}
	err = harness.Shell(ctx, names[0], o, os.Stdin, os.Stdout)
	restore()
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "\nfusematrix shell: stopped; QEMU is gone")
		return cli.Status(130)
	case err != nil:
		return err
	}
	fmt.Fprintln(os.Stderr, "\nfusematrix shell: the guest powered off")
	return nil
}
