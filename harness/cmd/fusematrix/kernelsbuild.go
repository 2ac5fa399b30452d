package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/fusematrix/fusematrix/harness/cli"
	"github.com/fusematrix/fusematrix/kernels"
)

// kernelsBuild is `fusematrix kernels build`: it builds the kernel of a
// source tree with the project's config fragment, or finds it cached, and
// says where it is. `make matrix KERNELS=src:DIR` does the same on the way.
func kernelsBuild(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("kernels build", "usage: fusematrix kernels build [-base defconfig|tinyconfig|FILE] [-j N] -src DIR\n\nFlags:\n")
	var o kernels.BuildOptions
	fs.StringVar(&o.Src, "src", "", "Linux source `folder` (required; only read: the build happens in the cache)")
	fs.StringVar(&o.Base, "base", kernels.BaseDefconfig, "config the fragment is applied to: defconfig, tinyconfig (fastest) or a config `file`")
	fs.IntVar(&o.Jobs, "j", 0, "make jobs (default: the number of CPUs)")
	quiet := fs.Bool("q", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return cli.Status(2)
	}
	if o.Src == "" || fs.NArg() > 0 {
		return cli.WithUsage(fs, cli.Usagef("want -src DIR and no arguments"))
	}
	o.Logf = cli.Progress(*quiet)
	start := time.Now()
	k, err := kernels.Build(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return cli.Failf(130, "%v", err)
		}
		return err
	}
	fmt.Fprintf(out, "image    %s\nconfig   %s\nrelease  %s\nsource   %s\ntime     %v\nboot it  fusematrix matrix src:%s,base=%s\n",
		k.Image, k.Config, k.Release, k.Source, time.Since(start).Round(100*time.Millisecond), o.Src, o.Base)
	return nil
}
