// Package loopback holds the file systems fusematrix builds on go-fuse's
// node tree (package fs): go-fuse's loopback over a directory, with or
// without passthrough, and its deliberately broken or special variants
// (Kind), each of which misbehaves in exactly one way so that a scenario
// can be shown to fail. MountSpec mounts any Kind, the NOOP file system of
// package wire included.
//
// Package loopback mounts through package wire (wire.MountRaw), which
// observes every mount; of this project it may import only
// scenarios/server/wire (and what that imports). Running servers as
// processes of their own is package server's.
package loopback

import (
	"context"
	"fmt"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// Mount mounts at mountpoint a loopback of backing, go-fuse's own
// loopback file system, whose files offer their descriptor for
// passthrough.
func Mount(ctx context.Context, mountpoint, backing string, o wire.Options) (*wire.Mount, error) {
	root, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		return nil, fmt.Errorf("loopback of %s: %w", backing, err)
	}
	if o.Name == "" {
		o.Name = "fusematrix-loopback"
	}
	return Node(ctx, mountpoint, root, o)
}

// Node mounts the node tree rooted at root at mountpoint, observed.
func Node(ctx context.Context, mountpoint string, root fs.InodeEmbedder, o wire.Options) (*wire.Mount, error) {
	return wire.MountRaw(ctx, mountpoint, o, func(s wire.Settings) fuse.RawFileSystem {
		return fs.NewNodeFS(root, &fs.Options{
			MountOptions:    *s.MountOptions,
			EntryTimeout:    &s.EntryTimeout,
			AttrTimeout:     &s.AttrTimeout,
			Logger:          s.Logger,
			ServerCallbacks: s.Callbacks,
		})
	})
}
