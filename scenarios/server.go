package scenarios

import (
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios/server"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// This file is the scenarios' one adapter onto package server: every name
// of it that probes, correctness scenarios and benchmarks use is given
// here, and nowhere else in package scenarios or its subpackages is
// package server imported (tests aside, for their broken kinds).

// Our own server as separate processes, and what each reports.
type (
	// Launcher starts fusematrix's own servers as processes of their own.
	Launcher = server.Launcher
	// Spec says which server Launcher starts, over what.
	Spec = loopback.Spec
	// Kind names a file system our server can mount.
	Kind = loopback.Kind
	// Stats is what our server observed: OPEN replies, backing-file
	// registrations, READ and WRITE counts, requests by opcode.
	Stats = wire.Stats
	// OpenReply is one OPEN reply our server sent.
	OpenReply = wire.OpenReply
	// Registration is one FUSE_DEV_IOC_BACKING_OPEN our server issued.
	Registration = wire.Registration
	// ExitedError says that a server process ended by itself.
	ExitedError = server.ExitedError
)

// The kinds of our own server that the scenarios and the benchmark run.
const (
	KindLoopback       = loopback.KindLoopback
	KindClassic        = loopback.KindClassic
	KindNoop           = loopback.KindNoop
	KindMixed          = loopback.KindMixed
	KindBackingPerOpen = loopback.KindBackingPerOpen
	KindDirectIO       = loopback.KindDirectIO
	KindCloseBacking   = loopback.KindCloseBacking
)

// Serve runs a server process: what the program Launcher re-executes does.
var Serve = server.Serve

// In-process connections, on which the probes read INIT and issue ioctls.
type (
	// Mount is a FUSE file system served inside this process.
	Mount = wire.Mount
	// Options configure a Mount.
	Options = wire.Options
)

var (
	// CanMount says why this process cannot mount FUSE, or nil.
	CanMount = wire.CanMount
	// Noop mounts the NOOP file system: one file, NoopName, of zeros.
	Noop = wire.Noop
	// Connection finds the fusectl connection of a mount point.
	Connection = wire.Connection
	// ParseClosedBacking reads our server's answer to CloseBackingXattr.
	ParseClosedBacking = loopback.ParseClosedBacking
)

const (
	// NoopName is the one file of the NOOP file system.
	NoopName = wire.NoopName
	// MaxWrite is the largest WRITE our servers accept.
	MaxWrite = wire.MaxWrite
	// DevFuse is the FUSE device.
	DevFuse = wire.DevFuse
	// FusectlDir is where the FUSE control file system is mounted.
	FusectlDir = wire.FusectlDir
	// CloseBackingXattr is the attribute whose GETXATTR asks
	// KindCloseBacking to close the inode's backing ids.
	CloseBackingXattr = loopback.CloseBackingXattr
)

// PeerSpec says how to start the C NOOP peer the harness puts into the
// initramfs.
type PeerSpec = server.PeerSpec

var (
	// StartPeer mounts the C peer.
	StartPeer = server.StartPeer
	// PeerAvailable says why the peer cannot run here, or "".
	PeerAvailable = server.PeerAvailable
	// PeerVersion is the libfuse version the peer was built with.
	PeerVersion = server.PeerVersion
)

// PeerGuestPath is where the peer lives in the guest.
const PeerGuestPath = contract.PeerPath
