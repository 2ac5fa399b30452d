package bench

import (
	"context"
	"slices"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/internal/scentest"
)

func TestSeqRead(t *testing.T) {
	caps := hostCapabilities(t)
	noPT := &results.Capabilities{FuseMajor: caps.FuseMajor, FuseMinor: caps.FuseMinor}
	for _, tc := range []struct {
		name        string
		caps        *results.Capabilities
		modes       func() []seqMode
		wantStatus  results.Status
		wantMetrics []string
		wantFacts   map[string]string
		wantReason  string
	}{
		{
			name:        "all modes",
			caps:        caps,
			wantStatus:  results.Pass,
			wantMetrics: []string{"native_mbps", "noop_mbps", "noop_ratio", "classic_mbps", "classic_ratio", "passthrough_mbps", "passthrough_ratio"},
			wantFacts:   map[string]string{"passthrough_active": "true", "bytes": "8388608", "block_size": "65536", "passthrough_read_requests": "0"},
		},
		{
			name:        "kernel without passthrough",
			caps:        noPT,
			wantStatus:  results.Pass,
			wantMetrics: []string{"native_mbps", "noop_mbps", "noop_ratio", "classic_mbps", "classic_ratio"},
			wantFacts: map[string]string{
				"passthrough_active": "false",
				"passthrough_absent": "kernel does not offer FUSE_PASSTHROUGH (INIT flags2 bit 5); protocol " + scenarios.Protocol(caps),
			},
		},
		{
			name: "passthrough label on a classic mount",
			caps: caps,
			modes: func() []seqMode {
				ms := seqReadModes()
				ms[modeIndex(ms, "passthrough")].mount = ms[modeIndex(ms, "classic")].mount
				return ms
			},
			wantStatus:  results.Fail,
			wantMetrics: []string{"native_mbps", "noop_mbps", "noop_ratio", "classic_mbps", "classic_ratio"},
			wantFacts:   map[string]string{"passthrough_active": "false"},
			wantReason:  "passthrough: open reply without FOPEN_PASSTHROUGH: BACKING_OPEN failed: EPERM",
		},
		{
			name: "short file",
			caps: noPT,
			modes: func() []seqMode {
				ms := seqReadModes()
				i := modeIndex(ms, "noop")
				noop := ms[i].mount
				ms[i].mount = func(ctx context.Context, env *scenarios.Env, req mountRequest) (scenarios.Mounted, string, error) {
					req.size /= 2
					return noop(ctx, env, req)
				}
				return ms
			},
			wantStatus:  results.Error,
			wantMetrics: []string{"native_mbps"},
			wantReason:  "noop: read 4194304 bytes, want 8388608",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.caps == caps && !caps.Passthrough {
				t.Skip("this kernel does not offer FUSE_PASSTHROUGH")
			}
			env := scentest.Env(t)
			env.Capabilities = tc.caps
			modes := seqReadModes()
			if tc.modes != nil {
				modes = tc.modes()
			}
			r := seqReadWith(context.Background(), env, modes)
			assert.Equal(t, r.Status, tc.wantStatus, r.Reason)
			assert.Check(t, is.Contains(r.Reason, tc.wantReason))
			var got []string
			for k, v := range r.Metrics {
				assert.Check(t, v > 0, "%s = %v", k, v)
				got = append(got, k)
			}
			slices.Sort(got)
			slices.Sort(tc.wantMetrics)
			assert.Check(t, is.DeepEqual(got, tc.wantMetrics))
			for k, v := range tc.wantFacts {
				assert.Check(t, is.Equal(r.Facts[k], v), "fact %s", k)
			}
		})
	}
}
