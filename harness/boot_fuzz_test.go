package harness

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// fuzzChecks are the checks a fuzzed session selected.
var fuzzChecks = []contract.Check{
	{ID: "a", Kind: results.Scenario, Timeout: time.Second},
	{ID: "b", Kind: results.Probe, Timeout: time.Second},
	{ID: "pt/c", Kind: results.Scenario, Timeout: time.Second},
}

// seedStream encodes events as the agent would.
func seedStream(evs ...results.Event) []byte {
	var b bytes.Buffer
	enc := results.NewEncoder(&b)
	for _, e := range evs {
		enc.Encode(&e)
	}
	return b.Bytes()
}

// FuzzSessionHandle feeds the host's handling of a guest stream
// (session.handle) whatever the stream decoder makes of the input. It
// must never panic, never accept a result whose id repeats, that was not
// selected or that only the host may produce, never accept an event
// before hello or a second hello, and accept done only when every
// selected check reported. The seed corpus is the fake QEMU's streams.
func FuzzSessionHandle(f *testing.F) {
	hello := results.Event{Type: results.HelloEvent, Hello: &results.Hello{Release: "6.99.0-fake", AgentVersion: "test"}}
	caps := results.Event{Type: results.CapabilitiesEvent, Capabilities: &results.Capabilities{FuseMajor: 7, FuseMinor: 41, Passthrough: true, InitFlags: []string{"passthrough"}}}
	res := func(id string, s results.Status) results.Event {
		return results.Event{Type: results.ResultEvent, Result: &results.Result{ID: id, Kind: results.Scenario, Status: s, Reason: "r", Log: []string{"l"}}}
	}
	logEv := results.Event{Type: results.LogEvent, Log: "guest says"}
	done := results.Event{Type: results.DoneEvent}
	for _, s := range [][]results.Event{
		{hello, caps, res("a", results.Pass), res("b", results.Skip), logEv, res("pt/c", results.Fail), done}, // complete
		{hello, done}, // early done
		{hello, res("a", results.Fail), res("a", results.Pass), res("b", results.Pass), res("pt/c", results.Pass), done}, // duplicate id
		{hello, res("a", results.Pass), res("b", results.Pass), res("pt/c", results.Pass), res(contract.ExpectPrefix+"passthrough-offered", results.Pass), done},
		{hello, res("a", results.Pass), res("b", results.Pass), res("x", results.Pass), done}, // unasked
		{hello, res("a", results.Pass), hello, res("b", results.Pass), done},                  // second hello
		{res("a", results.Pass), hello, done}, // hello not first
		{hello, res("a", results.Pass)},       // no done
	} {
		f.Add(seedStream(s...))
	}
	// Hand-written lines: counts that lie, a gap in the numbering.
	f.Add([]byte(`{"type":"hello","seq":0,"hello":{"release":"6.1"}}` + "\n" +
		`{"type":"result","seq":1,"result":{"id":"a","kind":"scenario","status":"pass"}}` + "\n" +
		`{"type":"done","seq":2,"time":"2026-01-01T00:00:00Z","done":{"events":2,"results":2,"pass":2}}` + "\n"))
	f.Add([]byte(`{"type":"hello","seq":0,"hello":{"release":"6.1"}}` + "\n" + `{"type":"log","seq":5,"log":"x"}` + "\n"))

	l := results.Limits{LineBytes: 4 << 10, Events: 64, TextBytes: 256, Entries: 8, StreamBytes: 64 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &guest{name: "fuzz", checks: fuzzChecks, limits: l, grace: time.Second, runs: 2, logf: func(string, ...any) {}}
		s := &session{g: g, start: time.Now(), seen: map[string]bool{}}
		selected := map[string]bool{}
		for _, c := range fuzzChecks {
			selected[string(c.ID)] = true
		}
		reported := map[string]bool{}
		hellos := 0
		dec := results.NewDecoder(bytes.NewReader(data), l)
		for {
			ev, err := dec.Decode()
			if err != nil {
				break
			}
			gotDone, err := s.handle(ev)
			if err != nil {
				break // the host ends the stream at the first error
			}
			assert.Assert(t, hellos == 1 || ev.Type == results.HelloEvent, "accepted a %s event before hello", ev.Type)
			switch ev.Type {
			case results.HelloEvent:
				hellos++
				assert.Assert(t, hellos == 1, "accepted a second hello")
			case results.ResultEvent:
				id := ev.Result.ID
				assert.Assert(t, !strings.HasPrefix(id, contract.ExpectPrefix), "accepted %s from the guest", id)
				assert.Assert(t, selected[id], "accepted %s, which was not selected", id)
				assert.Assert(t, !reported[id], "accepted %s twice", id)
				reported[id] = true
			}
			if gotDone {
				assert.Assert(t, ev.Type == results.DoneEvent)
				assert.Assert(t, s.o.done)
				assert.Equal(t, len(reported), len(selected), "done accepted with %d of %d checks reported", len(reported), len(selected))
				break
			}
			assert.Assert(t, !s.o.done, "done set by a %s event", ev.Type)
			id, limit := s.awaiting()
			assert.Assert(t, limit > 0 && id != "")
		}
		assert.Equal(t, len(s.o.kernel.Results), len(reported))
	})
}
