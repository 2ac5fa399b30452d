package scenarios

import (
	"context"

	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios/server"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// Subject is the FUSE server under test: what a correctness scenario
// mounts and checks.
type Subject interface {
	// Name says which server it is, for reasons and facts.
	Name() string
	// Ours is true for fusematrix's own server, which reports in Stats
	// what reached it (OPEN replies, READ and WRITE counts). Scenarios
	// that judge by that declare NeedOwnServer.
	Ours() bool
	// Mount starts the server showing the directory backing at mnt.
	Mount(ctx context.Context, mnt, backing string) (Mounted, error)
}

// Mounted is a running server process behind a mount.
type Mounted interface {
	// Pid identifies the process.
	Pid() int
	// Stop unmounts, ends the process and returns what it observed;
	// the zero Stats from a server that is not ours.
	Stop() (wire.Stats, error)
	// Stderr is the last lines the process wrote to its stderr.
	Stderr() []string
	// Exited is closed once the process has ended.
	Exited() <-chan struct{}
}

// OwnServer is fusematrix's own go-fuse server of one kind, each mount a
// process of its own started by Launcher.
type OwnServer struct {
	Launcher server.Launcher
	Kind     loopback.Kind
	// NoXattr has the server answer xattr requests with ENOSYS.
	NoXattr bool
	// URing has the server serve over FUSE's io_uring transport.
	URing bool
}

// Name is "fusematrix" and the kind.
func (o OwnServer) Name() string {
	if o.URing {
		return "fusematrix " + string(o.Kind) + " over io_uring"
	}
	return "fusematrix " + string(o.Kind)
}

// Ours is true.
func (o OwnServer) Ours() bool { return true }

// Mount starts the server as a process of its own.
func (o OwnServer) Mount(ctx context.Context, mnt, backing string) (Mounted, error) {
	p, err := o.Launcher.Start(ctx, loopback.Spec{Kind: o.Kind, Backing: backing, NoXattr: o.NoXattr, URing: o.URing}, mnt)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// SubjectFor returns the server a scenario written against our own
// server of kind mounts: Env.Subject when set, else OwnServer of kind
// started through Env.Server.
func (env *Env) SubjectFor(kind loopback.Kind) Subject {
	if env.Subject != nil {
		return env.Subject
	}
	return OwnServer{Launcher: env.Server, Kind: kind, URing: env.URing}
}

// DaemonSubject is a user's own FUSE daemon (fusematrix matrix -daemon),
// each mount a run of its binary.
type DaemonSubject struct {
	Spec *contract.DaemonSpec
}

// Name is "daemon" and the daemon's name.
func (d DaemonSubject) Name() string { return "daemon " + d.Spec.Name }

// Ours is false: the daemon reports nothing of what reached it.
func (d DaemonSubject) Ours() bool { return false }

// Mount runs the daemon showing backing at mnt.
func (d DaemonSubject) Mount(ctx context.Context, mnt, backing string) (Mounted, error) {
	p, err := server.StartDaemon(ctx, d.Spec, backing, mnt)
	if err != nil {
		return nil, err
	}
	return p, nil
}
