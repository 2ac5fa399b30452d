package results

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func encodeAll(t *testing.T, evs ...Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := NewEncoder(&buf)
	for _, e := range evs {
		assert.NilError(t, enc.Encode(&e))
	}
	return buf.Bytes()
}

func decodeAll(b []byte, l Limits) ([]Event, error) {
	dec := NewDecoder(bytes.NewReader(b), l)
	var evs []Event
	for {
		e, err := dec.Decode()
		if err != nil {
			return evs, err
		}
		evs = append(evs, e)
	}
}

func TestRoundTrip(t *testing.T) {
	b := encodeAll(t,
		Event{Type: HelloEvent, Hello: &Hello{Release: "6.12.0", AgentVersion: "1"}},
		Event{Type: CapabilitiesEvent, Capabilities: &Capabilities{FuseMajor: 7, FuseMinor: 41, Passthrough: true, InitFlags: []string{"passthrough"}}},
		Event{Type: ResultEvent, Result: &Result{ID: "passthrough-read", Kind: Scenario, Status: Pass}},
		Event{Type: ResultEvent, Result: &Result{ID: "seq-read", Kind: Benchmark, Status: Skip, Reason: "no"}},
		Event{Type: LogEvent, Log: "note"},
		Event{Type: DoneEvent},
	)
	evs, err := decodeAll(b, DefaultLimits)
	assert.Assert(t, errors.Is(err, io.EOF), "%v", err)
	assert.Assert(t, is.Len(evs, 6))
	for i, e := range evs {
		assert.Equal(t, e.Seq, i)
	}
	done := evs[5].Done
	assert.DeepEqual(t, *done, Done{Events: 5, Counts: Counts{Results: 2, Pass: 1, Skip: 1}})
}

func TestDecoderRejects(t *testing.T) {
	small := Limits{LineBytes: 512, Events: 3, TextBytes: 64, Entries: 4}
	line := func(s string) string { return s + "\n" }
	hello := line(`{"type":"hello","seq":0,"hello":{"release":"x"}}`)
	for _, tc := range []struct {
		name, stream, err string
		limit             bool
	}{
		{name: "long line", stream: line(`{"type":"log","seq":0,"log":"` + strings.Repeat("a", 600) + `"}`), err: "longer than 512 bytes", limit: true},
		{name: "too many events", stream: hello + line(`{"type":"log","seq":1,"log":"a"}`) + line(`{"type":"log","seq":2,"log":"a"}`) + line(`{"type":"log","seq":3,"log":"a"}`), err: "more than 3 events", limit: true},
		{name: "long text", stream: line(`{"type":"log","seq":0,"log":"` + strings.Repeat("a", 100) + `"}`), err: "log: 100 bytes, limit 64"},
		{name: "path in id", stream: line(`{"type":"result","seq":0,"result":{"id":"../../etc/passwd","kind":"probe","status":"pass"}}`), err: "not of the form"},
		{name: "bad status", stream: line(`{"type":"result","seq":0,"result":{"id":"a","kind":"probe","status":"great"}}`), err: `unknown status "great"`},
		{name: "bad kind", stream: line(`{"type":"result","seq":0,"result":{"id":"a","kind":"vibe","status":"pass"}}`), err: `unknown kind "vibe"`},
		{name: "too many metrics", stream: line(`{"type":"result","seq":0,"result":{"id":"a","kind":"probe","status":"pass","metrics":{"a":1,"b":2,"c":3,"d":4,"e":5}}}`), err: "5 metrics and facts, limit 4"},
		{name: "too many log lines", stream: line(`{"type":"result","seq":0,"result":{"id":"a","kind":"scenario","status":"fail","log":["1","2","3","4","5"]}}`), err: "5 log lines, limit 4"},
		{name: "long log line", stream: line(`{"type":"result","seq":0,"result":{"id":"a","kind":"scenario","status":"fail","log":["` + strings.Repeat("k", 65) + `"]}}`), err: "log line: 65 bytes"},
		{name: "two payloads", stream: line(`{"type":"hello","seq":0,"hello":{},"done":{}}`), err: "carries 2 payloads"},
		{name: "missing payload", stream: line(`{"type":"result","seq":0}`), err: "carries 0 payloads"},
		{name: "unknown type", stream: line(`{"type":"exec","seq":0,"log":"rm -rf"}`), err: "carries 0 payloads"},
		{name: "gap", stream: hello + line(`{"type":"log","seq":2,"log":"a"}`), err: "events were lost or repeated"},
		{name: "repeat", stream: hello + hello, err: "events were lost or repeated"},
		{name: "not json", stream: line(`hello world`), err: "event 0"},
		{name: "truncated", stream: `{"type":"hello","seq":0`, err: "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeAll([]byte(tc.stream), small)
			assert.ErrorContains(t, err, tc.err)
			assert.Equal(t, errors.Is(err, ErrLimit), tc.limit)
		})
	}
}

// The decoder never holds more than a line's limit, however long the
// line: a guest cannot make the host buffer an endless line.
func TestDecoderEndlessLine(t *testing.T) {
	endless := io.MultiReader(strings.NewReader(`{"type":"log","seq":0,"log":"`), infinite('a'))
	_, err := NewDecoder(endless, DefaultLimits).Decode()
	assert.Assert(t, errors.Is(err, ErrLimit), "%v", err)
}

type infinite byte

func (b infinite) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// FuzzDecoder: whatever a guest sends, decoding neither panics nor yields
// an event that breaks the limits.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte(`{"type":"hello","seq":0,"hello":{"release":"6.1"}}` + "\n"))
	f.Add([]byte(`{"type":"result","seq":0,"result":{"id":"a/b","kind":"probe","status":"fail","facts":{"x":"y"}}}` + "\n"))
	f.Add([]byte(`{"type":"done","seq":0,"done":{"events":0}}` + "\n" + `{"type"`))
	l := Limits{LineBytes: 1 << 10, Events: 8, TextBytes: 64, Entries: 4}
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, _ := decodeAll(b, l)
		assert.Assert(t, len(evs) <= l.Events)
		for i, e := range evs {
			assert.Equal(t, e.Seq, i)
			assert.NilError(t, e.Validate(l))
		}
	})
}

func TestKernelOK(t *testing.T) {
	for _, tc := range []struct {
		name string
		k    Kernel
		ok   bool
	}{
		{"all pass and skip", Kernel{Status: Pass, Results: []Result{{Status: Pass}, {Status: Skip}}}, true},
		{"a failure", Kernel{Status: Pass, Results: []Result{{Status: Pass}, {Status: Fail}}}, false},
		{"an error", Kernel{Status: Pass, Results: []Result{{Status: Error}}}, false},
		{"did not finish", Kernel{Status: Error}, false},
	} {
		assert.Equal(t, tc.k.OK(), tc.ok, tc.name)
	}
}
