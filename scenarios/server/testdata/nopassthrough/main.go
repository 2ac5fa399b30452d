// Command nopassthrough is go-fuse's loopback with passthrough withheld:
// its files never ask for FOPEN_PASSTHROUGH, so that a test can show a
// daemon that claims passthrough (-daemon-passthrough) without having it.
//
//	nopassthrough MOUNTPOINT DIR
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

type node struct{ fs.LoopbackNode }

// plain is a loopback file that offers no descriptor to pass through.
type plain struct{ *fs.LoopbackFile }

func (plain) PassthroughFd() (int, bool) { return 0, false }

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if f, ok := fh.(*fs.LoopbackFile); ok {
		return plain{f}, fl, errno
	}
	return fh, fl, errno
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: nopassthrough MOUNTPOINT DIR")
		os.Exit(2)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(os.Args[2], &st); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root := &fs.LoopbackRoot{Path: os.Args[2], Dev: uint64(st.Dev)}
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &node{fs.LoopbackNode{RootData: r}}
	}
	// As root, mount(2) directly: no fusermount needed.
	server, err := fs.Mount(os.Args[1], root.NewNode(root, nil, "", &st), &fs.Options{MountOptions: fuse.MountOptions{DirectMount: true}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-c
		server.Unmount()
	}()
	server.Wait()
}
