package yield

import (
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

func TestPacerAdapts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		call  time.Duration // how long each call between ticks takes
		ticks int
		want  int
	}{
		{name: "fast calls yield rarely", call: time.Microsecond, ticks: 1000, want: maxEvery},
		{name: "calls near a tenth of the period", call: Period / 10, ticks: 1000, want: 8},
		{name: "slow calls yield at every call", call: 5 * Period, ticks: 100, want: 1},
		{name: "first tick yields", call: time.Microsecond, ticks: 1, want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := time.Unix(0, 0)
			p := &Pacer{now: func() time.Time { return clock }}
			for range tc.ticks {
				clock = clock.Add(tc.call)
				p.Tick()
			}
			assert.Equal(t, p.Every(), tc.want)
		})
	}
}

func TestPacerSlowsDownAfterFastStretch(t *testing.T) {
	clock := time.Unix(0, 0)
	var yields []time.Time
	p := &Pacer{
		now:     func() time.Time { return clock },
		gosched: func() { yields = append(yields, clock) },
	}
	for range 1000 {
		clock = clock.Add(time.Microsecond)
		p.Tick()
	}
	assert.Equal(t, p.Every(), maxEvery)
	// Calls that now block for a FUSE round trip each: the pacer must be
	// back under the runtime's 10 ms between yields within a few yields.
	yields = yields[:0]
	for range 200 {
		clock = clock.Add(400 * time.Microsecond)
		p.Tick()
	}
	assert.Assert(t, len(yields) > 10)
	const forcePreempt = 10 * time.Millisecond // the runtime's "running too long"
	for i := 4; i < len(yields); i++ {
		d := yields[i].Sub(yields[i-1])
		assert.Assert(t, d < forcePreempt, "yield %d came %v after the one before", i, d)
	}
	assert.Equal(t, p.Every(), 16) // 6.4 ms between yields
}
