package results

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"
	"time"
)

// EventType names what an Event carries.
type EventType string

const (
	// HelloEvent is the first event of every stream.
	HelloEvent EventType = "hello"
	// CapabilitiesEvent reports what the kernel offers in FUSE_INIT.
	CapabilitiesEvent EventType = "capabilities"
	// ResultEvent reports one finished probe, scenario or benchmark.
	ResultEvent EventType = "result"
	// LogEvent carries a line the agent wants the host to show.
	LogEvent EventType = "log"
	// DoneEvent is the last event; its counts let the host detect loss.
	DoneEvent EventType = "done"
)

// Event is one JSON line on the guest-to-host channel. Exactly one of the
// pointer fields is set, matching Type.
type Event struct {
	Type EventType `json:"type"`
	// Seq numbers events from 0 so that the host can tell a gap from a
	// quiet guest.
	Seq          int           `json:"seq"`
	Time         time.Time     `json:"time"`
	Hello        *Hello        `json:"hello,omitempty"`
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	Result       *Result       `json:"result,omitempty"`
	Log          string        `json:"log,omitempty"`
	Done         *Done         `json:"done,omitempty"`
}

// Hello opens a stream.
type Hello struct {
	Release      string `json:"release"`
	AgentVersion string `json:"agent_version"`
	// Uptime is the guest's uptime at hello, from /proc/uptime.
	Uptime float64 `json:"uptime"`
}

// Done closes a stream.
type Done struct {
	// Events is how many events came before this one.
	Events int `json:"events"`
	Counts
}

// Limits bound what a decoder accepts from a guest.
type Limits struct {
	LineBytes   int   // longest JSON line
	Events      int   // events in one stream
	TextBytes   int   // any one string (reason, fact, log line)
	Entries     int   // metrics, facts or init flags in one event
	StreamBytes int64 // the whole stream
}

// DefaultLimits are generous for an honest agent and small enough that a
// hostile one cannot make the host hold more than a few tens of MiB per
// guest. The agent keeps every event within them (see Fit).
var DefaultLimits = Limits{LineBytes: 256 << 10, Events: 10000, TextBytes: 8 << 10, Entries: 256, StreamBytes: 64 << 20}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]{0,127}$`)

// Validate checks that e is well formed and within l.
func (e *Event) Validate(l Limits) error {
	text := func(what, s string) error {
		if len(s) > l.TextBytes {
			return fmt.Errorf("%s: %d bytes, limit %d", what, len(s), l.TextBytes)
		}
		return nil
	}
	set := 0
	for _, p := range []bool{e.Hello != nil, e.Capabilities != nil, e.Result != nil, e.Done != nil} {
		if p {
			set++
		}
	}
	want := 1
	if e.Type == LogEvent {
		want = 0
	}
	if set != want {
		return fmt.Errorf("%s event carries %d payloads, want %d", e.Type, set, want)
	}
	switch e.Type {
	case HelloEvent:
		if e.Hello == nil {
			return errors.New("hello event without hello")
		}
		return errors.Join(text("release", e.Hello.Release), text("agent version", e.Hello.AgentVersion))
	case CapabilitiesEvent:
		c := e.Capabilities
		if c == nil {
			return errors.New("capabilities event without capabilities")
		}
		if len(c.InitFlags) > l.Entries {
			return fmt.Errorf("init flags: %d entries, limit %d", len(c.InitFlags), l.Entries)
		}
		for _, f := range c.InitFlags {
			if err := text("init flag", f); err != nil {
				return err
			}
		}
	case ResultEvent:
		return e.Result.validate(l, text)
	case LogEvent:
		return text("log", e.Log)
	case DoneEvent:
		if e.Done == nil {
			return errors.New("done event without done")
		}
	default:
		return fmt.Errorf("unknown event type %.32q", e.Type)
	}
	return nil
}

func (r *Result) validate(l Limits, text func(string, string) error) error {
	if r == nil {
		return errors.New("result event without result")
	}
	if !idPattern.MatchString(r.ID) {
		return fmt.Errorf("result id %.64q: not of the form %s", r.ID, idPattern)
	}
	if !r.Kind.valid() {
		return fmt.Errorf("result %s: unknown kind %.32q", r.ID, r.Kind)
	}
	if !r.Status.valid() {
		return fmt.Errorf("result %s: unknown status %.32q", r.ID, r.Status)
	}
	if len(r.Metrics)+len(r.Facts) > l.Entries {
		return fmt.Errorf("result %s: %d metrics and facts, limit %d", r.ID, len(r.Metrics)+len(r.Facts), l.Entries)
	}
	errs := []error{text("reason", r.Reason)}
	for k, v := range r.Facts {
		errs = append(errs, text("fact name", k), text("fact "+k, v))
	}
	for k := range r.Metrics {
		errs = append(errs, text("metric name", k))
	}
	if len(r.Log) > l.Entries {
		return fmt.Errorf("result %s: %d log lines, limit %d", r.ID, len(r.Log), l.Entries)
	}
	for _, line := range r.Log {
		errs = append(errs, text("log line", line))
	}
	return errors.Join(errs...)
}

// Encoder writes events as JSON lines, numbering them. It is safe for
// concurrent use.
type Encoder struct {
	mu     sync.Mutex
	w      io.Writer
	seq    int
	counts Counts
	now    func() time.Time
}

// NewEncoder returns an encoder writing to w.
func NewEncoder(w io.Writer) *Encoder {
	return &Encoder{w: w, now: time.Now}
}

// Encode numbers e, stamps it and writes it as one line, filling in e's
// Seq, Time (unless set) and, for the done event, the counts of the result
// events written before it: the encoder is the one place a stream is
// tallied.
func (enc *Encoder) Encode(e *Event) error {
	enc.mu.Lock()
	defer enc.mu.Unlock()
	e.Seq = enc.seq
	if e.Time.IsZero() {
		e.Time = enc.now()
	}
	if e.Type == DoneEvent {
		e.Done = &Done{Events: enc.seq, Counts: enc.counts}
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", e.Type, err)
	}
	if _, err := enc.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write %s event: %w", e.Type, err)
	}
	enc.seq++
	if e.Type == ResultEvent && e.Result != nil {
		enc.counts.Add(e.Result.Status)
	}
	return nil
}

// ErrLimit is returned (wrapped) when a stream exceeds the decoder's limits.
var ErrLimit = errors.New("stream exceeds limits")

// Decoder reads events written by an Encoder from an untrusted source.
type Decoder struct {
	r      *bufio.Reader
	limits Limits
	next   int
	read   int64 // bytes of the stream so far
}

// NewDecoder returns a decoder reading from r within l.
func NewDecoder(r io.Reader, l Limits) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 64<<10), limits: l}
}

// Decode returns the next event. It returns io.EOF at a clean end of the
// stream, an error wrapping ErrLimit when a limit is crossed, and an error
// for malformed or out-of-sequence events; after an error the stream
// should be abandoned.
func (d *Decoder) Decode() (Event, error) {
	var e Event
	if d.next >= d.limits.Events {
		return e, fmt.Errorf("%w: more than %d events", ErrLimit, d.limits.Events)
	}
	line, err := d.readLine()
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(line, &e); err != nil {
		return e, fmt.Errorf("event %d: %w", d.next, err)
	}
	if err := e.Validate(d.limits); err != nil {
		return e, fmt.Errorf("event %d: %w", d.next, err)
	}
	if e.Seq != d.next {
		return e, fmt.Errorf("event %d: sequence number %d, events were lost or repeated", d.next, e.Seq)
	}
	d.next++
	return e, nil
}

// readLine reads one line without ever holding more than LineBytes.
func (d *Decoder) readLine() ([]byte, error) {
	var line []byte
	for {
		frag, err := d.r.ReadSlice('\n')
		d.read += int64(len(frag))
		if d.limits.StreamBytes > 0 && d.read > d.limits.StreamBytes {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrLimit, d.limits.StreamBytes)
		}
		if len(line)+len(frag) > d.limits.LineBytes {
			return nil, fmt.Errorf("%w: event %d longer than %d bytes", ErrLimit, d.next, d.limits.LineBytes)
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, fmt.Errorf("event %d: %w", d.next, io.ErrUnexpectedEOF)
		default:
			return nil, err
		}
	}
}
