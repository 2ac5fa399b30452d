package scenarios

import (
	"context"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios/server"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
)

// notOurs is a server under test that is not fusematrix's own.
type notOurs struct{ Subject }

func (notOurs) Name() string { return "someone's daemon" }
func (notOurs) Ours() bool   { return false }

// TestRun shows the runner checking a scenario's needs once, in order,
// and running it only when they are met.
func TestRun(t *testing.T) {
	ran := results.Result{Status: results.Pass, Reason: "ran"}
	s := Scenario{ID: "test", Run: func(context.Context, *Env) results.Result { return ran }}
	noPT := &results.Capabilities{FuseMajor: 7, FuseMinor: 38}
	pt := &results.Capabilities{FuseMajor: 7, FuseMinor: 41, Passthrough: true}
	for _, tc := range []struct {
		name    string
		needs   Needs
		caps    *results.Capabilities
		subject Subject
		any     bool
		own     bool
		want    results.Result
	}{
		{name: "no needs", caps: nil, want: ran},
		{name: "passthrough offered", needs: NeedPassthrough, caps: pt, want: ran},
		{name: "no probe result", needs: NeedPassthrough, caps: nil,
			want: results.Result{Status: results.Skip, Reason: "fuse-init did not report what the kernel offers"}},
		{name: "no passthrough", needs: NeedPassthrough | NeedOwnServer, caps: noPT,
			want: results.Result{Status: results.Skip, Reason: "kernel does not offer FUSE_PASSTHROUGH (INIT flags2 bit 5); protocol 7.38"}},
		// Against a server not ours, what holds on every kernel is said.
		{name: "no passthrough and not ours", needs: NeedPassthrough | NeedOwnServer, caps: noPT, subject: notOurs{},
			want: results.Result{Status: results.Skip, Reason: "needs fusematrix's own server, which reports what reached it; the server under test is someone's daemon"}},
		{name: "our own server by default", needs: NeedPassthrough | NeedOwnServer, caps: pt, want: ran},
		{name: "our own server of another kind", needs: NeedOwnServer, subject: OwnServer{Kind: loopback.KindClassic}, want: ran},
		{name: "not our server", needs: NeedPassthrough | NeedOwnServer, caps: pt, subject: notOurs{},
			want: results.Result{Status: results.Skip, Reason: "needs fusematrix's own server, which reports what reached it; the server under test is someone's daemon"}},
		// A check for any server runs against one that is not ours, on
		// any kernel; one without needs our own server there.
		{name: "any server, not ours", needs: NeedPassthrough | NeedOwnServer, caps: noPT, subject: notOurs{}, any: true, want: ran},
		{name: "not for other servers", caps: pt, subject: notOurs{},
			want: results.Result{Status: results.Skip, Reason: "needs fusematrix's own server, which reports what reached it; the server under test is someone's daemon"}},
		{name: "a daemon with no backing directory", needs: NeedOwnServer, caps: pt, any: true,
			subject: DaemonSubject{Spec: &contract.DaemonSpec{Name: "noop", Args: []string{"{mnt}"}}},
			want:    results.Result{Status: results.Skip, Reason: "daemon noop serves no backing directory ({backing} is not among its arguments): nothing to compare its files with"}},
		// Its passthrough check and its cells read its own files.
		{name: "a daemon with no backing directory, its own files", needs: NeedOwnServer, caps: pt, any: true, own: true,
			subject: DaemonSubject{Spec: &contract.DaemonSpec{Name: "noop", Args: []string{"{mnt}"}}}, want: ran},
		{name: "a daemon with one", needs: NeedOwnServer, caps: pt, any: true,
			subject: DaemonSubject{Spec: &contract.DaemonSpec{Name: "lo", Args: []string{"{mnt}", "{backing}"}}}, want: ran},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.Needs, s.AnyServer, s.OwnFiles = tc.needs, tc.any, tc.own
			env := &Env{Capabilities: tc.caps, Subject: tc.subject}
			assert.DeepEqual(t, Run(context.Background(), s, env), tc.want)
		})
	}
}

func TestSubjectFor(t *testing.T) {
	env := &Env{Server: server.Launcher{Argv0: "x"}}
	own, ok := env.SubjectFor(loopback.KindDirectIO).(OwnServer)
	assert.Assert(t, ok, "%T", env.SubjectFor(loopback.KindDirectIO))
	assert.Check(t, own.Kind == loopback.KindDirectIO && own.Launcher.Argv0 == "x", "%+v", own)
	assert.Check(t, own.Ours())
	env.Subject = notOurs{}
	assert.Check(t, env.SubjectFor(loopback.KindDirectIO) == Subject(notOurs{}))
}
