package correct

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/internal/scentest"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

// A scenario's seed is its stream's key, so that its file and its later
// data are the same bytes on every run; a seed may end in a byte that is
// no letter (pt/unmount-open and pt/abort-open take theirs from the
// teardown).
func TestSeededRig(t *testing.T) {
	for _, tc := range []struct {
		seed string
		key  [32]byte
	}{
		{seed: "pm", key: [32]byte{'p', 'm'}},
		{seed: "poa", key: [32]byte{'p', 'o', 'a'}},
		{seed: "pt" + string(rune(lazyUnmount)), key: [32]byte{'p', 't', 0}},
		{seed: "pt" + string(rune(connectionAbort)), key: [32]byte{'p', 't', 1}},
	} {
		t.Run(tc.seed, func(t *testing.T) {
			r, rng, data, err := seededRig(context.Background(), scentest.Env(t), noMount{}, tc.seed, "f", 5000)
			assert.NilError(t, err)
			want := rand.NewChaCha8(tc.key)
			assert.DeepEqual(t, data, randomBytes(want, 5000))
			got, err := os.ReadFile(r.b("f"))
			assert.NilError(t, err)
			assert.DeepEqual(t, got, data)
			assert.DeepEqual(t, randomBytes(rng, 100), randomBytes(want, 100))
		})
	}
}

// noMount is a server under test that mounts nothing.
type noMount struct{}

func (noMount) Name() string { return "nothing" }
func (noMount) Ours() bool   { return true }
func (noMount) Mount(context.Context, string, string) (scenarios.Mounted, error) {
	return noDaemon{}, nil
}

// A check that could not run one of its parts is an error, unless it
// found a problem: then the problem is what it reports.
func TestRigUntested(t *testing.T) {
	for _, tc := range []struct {
		name               string
		problems, untested []string
		want               results.Status
		reason             string
	}{
		{name: "all ran", want: results.Pass},
		{name: "part untested", untested: []string{"xattr: nothing takes them"}, want: results.Error, reason: "not every part could run: xattr: nothing takes them"},
		{name: "problem and untested", problems: []string{"bytes differ"}, untested: []string{"xattr"}, want: results.Fail, reason: "bytes differ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &rig{facts: map[string]string{}, problems: tc.problems, untested: tc.untested, stats: &wire.Stats{}, proc: noDaemon{}}
			res := r.result()
			assert.Check(t, is.Equal(res.Status, tc.want))
			assert.Check(t, is.Equal(res.Reason, tc.reason))
		})
	}
}

// noDaemon is a stopped server with nothing to say.
type noDaemon struct{}

func (noDaemon) Pid() int                  { return 0 }
func (noDaemon) Stop() (wire.Stats, error) { return wire.Stats{}, nil }
func (noDaemon) Stderr() []string          { return nil }
func (noDaemon) Exited() <-chan struct{}   { return nil }
