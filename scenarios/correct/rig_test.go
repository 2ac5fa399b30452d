package correct

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

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
