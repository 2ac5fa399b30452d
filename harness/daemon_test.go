package harness

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/harness/elfdeps"
)

// Issue 21, row 9: a user's LD_LIBRARY_PATH is joined with the one
// fusematrix sets for the daemon's libraries (its own first), not put in
// its place, where the daemon would no longer find them.
func TestDaemonEnv(t *testing.T) {
	ours := "LD_LIBRARY_PATH=" + elfdeps.GuestLibDir
	for _, tc := range []struct {
		name       string
		ours, user []string
		want       []string
	}{
		{"none of ours", nil, []string{"LD_LIBRARY_PATH=/opt/x", "A=1"}, []string{"LD_LIBRARY_PATH=/opt/x", "A=1"}},
		{"none of the user's", []string{ours}, []string{"A=1"}, []string{ours, "A=1"}},
		{"joined", []string{ours}, []string{"A=1", "LD_LIBRARY_PATH=/opt/x:/opt/y"}, []string{ours + ":/opt/x:/opt/y", "A=1"}},
		{"the user's last value", []string{ours}, []string{"LD_LIBRARY_PATH=/opt/x", "LD_LIBRARY_PATH=/opt/y"}, []string{ours + ":/opt/y"}},
		{"empty", []string{ours}, []string{"LD_LIBRARY_PATH="}, []string{ours}},
	} {
		assert.Check(t, is.DeepEqual(daemonEnv(tc.ours, tc.user), tc.want), tc.name)
	}

}
