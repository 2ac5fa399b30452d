package scenarios

import "github.com/fusematrix/fusematrix/scenarios/server"

// This file is the scenarios' one adapter onto package server: every name
// of it that probes, correctness scenarios and benchmarks use is given
// here, and nowhere else in package scenarios or its subpackages is
// package server imported (tests aside, for their broken kinds).

// Our own server as separate processes, and what each reports.
type (
	// Launcher starts fusematrix's own servers as processes of their own.
	Launcher = server.Launcher
	// Spec says which server Launcher starts, over what.
	Spec = server.Spec
	// Kind names a file system our server can mount.
	Kind = server.Kind
	// Stats is what our server observed: OPEN replies, backing-file
	// registrations, READ and WRITE counts, requests by opcode.
	Stats = server.Stats
	// OpenReply is one OPEN reply our server sent.
	OpenReply = server.OpenReply
	// Registration is one FUSE_DEV_IOC_BACKING_OPEN our server issued.
	Registration = server.Registration
	// ExitedError says that a server process ended by itself.
	ExitedError = server.ExitedError
)

// The kinds of our own server that the scenarios and the benchmark run.
const (
	KindLoopback       = server.KindLoopback
	KindClassic        = server.KindClassic
	KindNoop           = server.KindNoop
	KindMixed          = server.KindMixed
	KindBackingPerOpen = server.KindBackingPerOpen
	KindDirectIO       = server.KindDirectIO
	KindCloseBacking   = server.KindCloseBacking
)

// Serve runs a server process: what the program Launcher re-executes does.
var Serve = server.Serve

// In-process connections, on which the probes read INIT and issue ioctls.
type (
	// Mount is a FUSE file system served inside this process.
	Mount = server.Mount
	// Options configure a Mount.
	Options = server.Options
)

var (
	// CanMount says why this process cannot mount FUSE, or nil.
	CanMount = server.CanMount
	// Noop mounts the NOOP file system: one file, NoopName, of zeros.
	Noop = server.Noop
	// Connection finds the fusectl connection of a mount point.
	Connection = server.Connection
	// ParseClosedBacking reads our server's answer to CloseBackingXattr.
	ParseClosedBacking = server.ParseClosedBacking
)

const (
	// NoopName is the one file of the NOOP file system.
	NoopName = server.NoopName
	// MaxWrite is the largest WRITE our servers accept.
	MaxWrite = server.MaxWrite
	// DevFuse is the FUSE device.
	DevFuse = server.DevFuse
	// FusectlDir is where the FUSE control file system is mounted.
	FusectlDir = server.FusectlDir
	// CloseBackingXattr is the attribute whose GETXATTR asks
	// KindCloseBacking to close the inode's backing ids.
	CloseBackingXattr = server.CloseBackingXattr
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
const PeerGuestPath = server.PeerGuestPath
