package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fusematrix/fusematrix/harness/inert"
	"github.com/fusematrix/fusematrix/harness/qemu"
	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// guest is one boot of one kernel under one accelerator.
type guest struct {
	name    string // for progress lines
	cfg     qemu.Config
	limits  results.Limits
	timeout time.Duration
	// helloTimeout bounds the wait for the agent's first word; under KVM
	// it is short because a silent KVM guest is the usual way KVM fails.
	helloTimeout time.Duration
	// kvmHelloTimeout replaces helloTimeout for an attempt that has a
	// fallback after it; 0 keeps helloTimeout.
	kvmHelloTimeout time.Duration
	// checks are what the host asked the agent to run, in run order, each
	// runs times: a result for each must arrive, within its time limit
	// and grace, and nothing else may.
	checks []contract.Check
	runs   int
	grace  time.Duration
	logf   func(format string, args ...any)
}

// outcome is what one boot produced.
type outcome struct {
	kernel  results.Kernel // Release, Capabilities, Results, HelloSeconds, Seconds…
	accel   qemu.Accel
	console string
	hello   bool
	done    bool
	// accelFailed means the accelerator, not the kernel, is to blame: the
	// guest died or stalled before saying hello in a way KVM is known for.
	accelFailed bool
	// earlyPanic means the kernel panicked before the agent said hello,
	// so no check ran: a boot worth one more try (see boot).
	earlyPanic bool
	err        error
}

// streamItem is one decoded event or the error that ended the stream.
type streamItem struct {
	ev  results.Event
	err error
}

// run boots the guest, streams its events until the agent's done event, a
// failure, the timeout or ctx's end, and then judges how it ended. QEMU is
// gone when it returns.
func (g *guest) run(ctx context.Context) outcome {
	s, err := g.startQEMU(ctx)
	if err != nil {
		return outcome{accel: g.cfg.Accel, console: g.cfg.ConsoleLog, err: err}
	}
	defer s.close()
	s.stream(ctx)
	s.m.Stop(3 * time.Second)
	s.o.kernel.Seconds = time.Since(s.start).Seconds()
	s.judge()
	return s.o
}

// session is one running guest: its QEMU, the listener its stream
// arrives on, and what it produced so far.
type session struct {
	g        *guest
	m        *qemu.Machine
	ln       net.Listener
	start    time.Time
	o        outcome
	panicked bool // pvpanic said so
	// seen holds the ids of the results received.
	seen map[string]bool
}

// startQEMU listens for the guest's stream, then starts QEMU, which
// connects to the listener before the guest runs.
func (g *guest) startQEMU(ctx context.Context) (*session, error) {
	ln, err := net.Listen("unix", g.cfg.StreamSocket)
	if err != nil {
		return nil, fmt.Errorf("listen for guest stream: %w", err)
	}
	start := time.Now()
	m, err := qemu.Start(ctx, g.cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return &session{g: g, m: m, ln: ln, start: start, seen: map[string]bool{},
		o: outcome{accel: g.cfg.Accel, console: g.cfg.ConsoleLog}}, nil
}

func (s *session) close() {
	s.m.Stop(3 * time.Second)
	s.ln.Close()
}

// stream applies the guest's events to s.o until the stream is over: done
// and powered off, a stream error, a panic, a stop, a timeout or ctx's end.
func (s *session) stream(ctx context.Context) {
	g, m, o := s.g, s.m, &s.o
	items := make(chan streamItem, 64)
	stop := make(chan struct{})
	defer close(stop) // ends the reader, wherever it is
	go g.read(s.ln, items, stop)

	total := time.NewTimer(g.timeout)
	defer total.Stop()
	helloTimer := time.NewTimer(g.helloTimeout)
	defer helloTimer.Stop()
	// next bounds the wait for the next result once the agent said hello.
	next := time.NewTimer(time.Hour)
	next.Stop()
	defer next.Stop()
	var (
		exited      = m.Exited()
		grace       <-chan time.Time // running after done, waiting for power-off
		streamEnded = false
		awaited     string
		limit       time.Duration
	)
	for {
		select {
		case it, ok := <-items:
			if !ok {
				items = nil
				continue
			}
			if it.err != nil {
				streamEnded = true
				items = nil
				next.Stop()
				if !errors.Is(it.err, io.EOF) {
					o.err = fmt.Errorf("guest stream: %w", it.err)
				}
				if exited == nil {
					return
				}
				if !o.done {
					// Let QEMU's own fate (exit, panic event) explain a
					// stream that stopped early, but not for long.
					grace = time.After(5 * time.Second)
				}
				continue
			}
			done, err := s.handle(it.ev)
			if err != nil {
				o.err = fmt.Errorf("guest stream: %w", err)
				return
			}
			if done {
				next.Stop()
				// The agent powers the guest off after done; give it a
				// moment before stopping QEMU ourselves.
				grace = time.After(10 * time.Second)
			} else if it.ev.Type == results.HelloEvent || it.ev.Type == results.ResultEvent {
				awaited, limit = s.awaiting()
				next.Reset(limit)
			}
		case <-next.C:
			o.err = fmt.Errorf("no result for %s within %s (its limit %s and %s of grace); the agent stalled", awaited, limit, limit-g.grace, g.grace)
			return
		case ev, ok := <-m.Events():
			if !ok {
				continue
			}
			if s.machineEvent(ctx, ev) {
				return
			}
		case <-exited:
			exited = nil
			if items != nil && !streamEnded {
				// Read whatever the guest flushed before it died.
				grace = time.After(time.Second)
				continue
			}
			return
		case <-helloTimer.C:
			if !o.hello {
				o.accelFailed = g.cfg.Accel == qemu.KVM
				o.err = fmt.Errorf("no hello from the guest agent within %s", g.helloTimeout)
				return
			}
		case <-grace:
			return
		case <-total.C:
			o.err = fmt.Errorf("timed out after %s", g.timeout)
			return
		case <-ctx.Done():
			o.err = fmt.Errorf("interrupted: %w", context.Cause(ctx))
			return
		}
	}
}

// awaiting names what the guest owes next and how long it may take: the
// next selected check's time limit for each of its runs, plus the grace
// in which the agent reports a check it had to abandon; once every result
// is in, the done event, within the grace.
func (s *session) awaiting() (string, time.Duration) {
	g := s.g
	for _, c := range g.checks {
		if !s.seen[string(c.ID)] {
			runs := max(g.runs, 1)
			if c.Kind == results.Probe {
				runs = 1
			}
			return string(c.ID), time.Duration(runs)*c.Timeout + g.grace
		}
	}
	return "the done event", g.grace
}

// machineEvent applies one QMP event and reports whether the guest is
// over: a panic, or a stop in QEMU's internal-error state (KVM's way of
// failing).
func (s *session) machineEvent(ctx context.Context, ev qemu.Event) bool {
	switch ev.Name {
	case "GUEST_PANICKED":
		s.panicked = true
		return true
	case "STOP":
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		status, _ := s.m.Status(sctx)
		cancel()
		if status == "internal-error" {
			s.o.accelFailed = s.g.cfg.Accel == qemu.KVM && !s.o.hello
			s.o.err = fmt.Errorf("guest stopped: QEMU run state %s", status)
			return true
		}
	}
	return false
}

// judge says how a stopped guest ended: a panic (on the console or from
// pvpanic) outranks everything, then QEMU exiting before hello, then a
// stream without its done event.
func (s *session) judge() {
	o := &s.o
	if line := panicLine(s.g.cfg.ConsoleLog); s.panicked || line != "" {
		if line == "" {
			line = "GUEST_PANICKED from pvpanic"
		}
		o.err = fmt.Errorf("guest panicked: %s", line)
		o.accelFailed = false
		o.earlyPanic = !o.hello
		return
	}
	select {
	case <-s.m.Exited():
		if !o.hello && o.err == nil {
			o.err = fmt.Errorf("guest ended before the agent said hello: %w", s.m.ExitError())
			o.accelFailed = s.g.cfg.Accel == qemu.KVM
		}
	default:
	}
	if o.err == nil && !o.done {
		o.err = fmt.Errorf("stream ended without a done event after %d results", len(o.kernel.Results))
	}
	failReported(&o.kernel, consoleReports(s.g.cfg.ConsoleLog))
}

// bootKernel runs g under each accelerator of plan in turn until one is
// not to blame for the outcome, and returns that outcome with a note saying why
// earlier accelerators were given up, and a note saying why the kernel
// was booted twice. console names each attempt's log.
//
// A kernel that panics before the agent says hello has run no check; it
// is booted once more, because such panics come and go between boots of
// one kernel under TCG (docs/measurements.md has the one seen), and one
// of them must not cost the kernel's every result. The first console log
// is kept beside the second and the retry note names it, so the panic
// stays on the record; a second panic is the kernel's error.
func bootKernel(ctx context.Context, g *guest, plan []qemu.Accel, console func(qemu.Accel) string) (o outcome, note, retried string) {
	o, note = tryAccels(ctx, g, plan, console)
	if !o.earlyPanic || ctx.Err() != nil {
		return o, note, ""
	}
	first := o.console
	kept := strings.TrimSuffix(first, ".console.log") + ".boot1.console.log"
	if err := os.Rename(first, kept); err != nil {
		kept = first
	}
	retried = fmt.Sprintf("the first boot panicked before the agent's hello (%s; console: %s); booted again",
		oneLine(strings.TrimPrefix(o.err.Error(), "guest panicked: "), 200), filepath.Base(kept))
	g.logf("%s: %s", g.name, retried)
	o, _ = tryAccels(ctx, g, []qemu.Accel{o.accel}, func(qemu.Accel) string { return first })
	return o, note, retried
}

// tryAccels is one boot of g, under each accelerator of plan in turn
// until one is not to blame.
func tryAccels(ctx context.Context, g *guest, plan []qemu.Accel, console func(qemu.Accel) string) (outcome, string) {
	var (
		o    outcome
		note string
	)
	hello := g.helloTimeout
	for i, accel := range plan {
		last := i == len(plan)-1
		a := *g
		a.cfg.Accel = accel
		a.cfg.ConsoleLog = console(accel)
		if !last && a.kvmHelloTimeout > 0 {
			a.helloTimeout = a.kvmHelloTimeout
		} else {
			a.helloTimeout = hello
		}
		os.Remove(a.cfg.StreamSocket)
		g.logf("%s: booting under %s", g.name, accel)
		o = a.run(ctx)
		if !o.accelFailed || last || ctx.Err() != nil {
			break
		}
		note = fmt.Sprintf("%s failed (%s); fell back to %s", accel, oneLine(o.err.Error(), 200), plan[i+1])
		g.logf("%s: %s", g.name, note)
	}
	return o, note
}

// handle applies one event to s.o and reports whether it was the done
// event. An error is a stream the host cannot trust: events out of
// place, a result twice, one it did not ask for or only it may make.
func (s *session) handle(ev results.Event) (done bool, err error) {
	g, o := s.g, &s.o
	if !o.hello && ev.Type != results.HelloEvent {
		return false, fmt.Errorf("first event is %s, not hello", ev.Type)
	}
	switch ev.Type {
	case results.HelloEvent:
		if o.hello {
			return false, fmt.Errorf("a second hello (release %s)", oneLine(ev.Hello.Release, 64))
		}
		o.hello = true
		o.kernel.Release = ev.Hello.Release
		o.kernel.AgentVersion = ev.Hello.AgentVersion
		o.kernel.HelloSeconds = time.Since(s.start).Seconds()
		g.logf("%s: hello after %.1fs from %s", g.name, o.kernel.HelloSeconds, ev.Hello.Release)
	case results.CapabilitiesEvent:
		o.kernel.Capabilities = ev.Capabilities
		pt := "no passthrough"
		if ev.Capabilities.Passthrough {
			pt = "passthrough offered"
		}
		g.logf("%s: FUSE %d.%d, %s", g.name, ev.Capabilities.FuseMajor, ev.Capabilities.FuseMinor, pt)
	case results.ResultEvent:
		r := *ev.Result
		switch {
		case strings.HasPrefix(r.ID, contract.ExpectPrefix):
			return false, fmt.Errorf("result %s: only the host produces expectations", r.ID)
		case s.seen[r.ID]:
			return false, fmt.Errorf("result %s reported twice", r.ID)
		case !slices.ContainsFunc(g.checks, func(c contract.Check) bool { return string(c.ID) == r.ID }):
			return false, fmt.Errorf("result %s was not asked for", r.ID)
		}
		s.seen[r.ID] = true
		o.kernel.Results = append(o.kernel.Results, r)
		line := fmt.Sprintf("%s: %s %s (%.1fs)", g.name, r.Status, r.ID, r.Seconds)
		if r.Reason != "" {
			line += ": " + oneLine(r.Reason, 160)
		}
		g.logf("%s", line)
	case results.LogEvent:
		g.logf("%s: guest: %s", g.name, oneLine(ev.Log, 200))
	case results.DoneEvent:
		got := results.Count(o.kernel.Results)
		switch {
		case ev.Done.Events != ev.Seq:
			return true, fmt.Errorf("done says %d events, received %d", ev.Done.Events, ev.Seq)
		case ev.Done.Counts != got:
			return true, fmt.Errorf("done counts %+v, received %+v", ev.Done.Counts, got)
		}
		var missing []string
		for _, c := range g.checks {
			if !s.seen[string(c.ID)] {
				missing = append(missing, string(c.ID))
			}
		}
		if len(missing) > 0 {
			return true, fmt.Errorf("done with %d of %d results: selected but never reported: %s",
				len(o.kernel.Results), len(g.checks), strings.Join(missing, ", "))
		}
		o.done = true
		return true, nil
	}
	return false, nil
}

// read accepts QEMU's connection and decodes events until the stream
// ends or stop is closed, which also unblocks a pending read.
func (g *guest) read(ln net.Listener, items chan<- streamItem, stop <-chan struct{}) {
	defer close(items)
	send := func(it streamItem) bool {
		select {
		case items <- it:
			return true
		case <-stop:
			return false
		}
	}
	conn, err := ln.Accept()
	if err != nil {
		send(streamItem{err: io.EOF})
		return
	}
	defer conn.Close()
	ln.Close() // one guest, one connection
	go func() {
		<-stop
		conn.Close()
	}()
	dec := results.NewDecoder(conn, g.limits)
	for {
		ev, err := dec.Decode()
		if err != nil {
			send(streamItem{err: err})
			return
		}
		if !send(streamItem{ev: ev}) {
			return
		}
		if ev.Type == results.DoneEvent {
			send(streamItem{err: io.EOF})
			return
		}
	}
}

// panicLine returns the kernel's panic line from a console log, if any.
func panicLine(console string) string {
	for _, l := range qemu.ConsoleTail(console, 200) {
		if i := strings.Index(l, "Kernel panic"); i >= 0 {
			return oneLine(l[i:], 200)
		}
	}
	return ""
}

// oneLine makes untrusted text safe for a progress line of at most max
// runes.
func oneLine(s string, max int) string {
	return inert.Truncate(inert.OneLine(s), max)
}

// shortRunDir makes a directory for sockets whose paths fit sun_path.
func shortRunDir() (string, error) {
	return os.MkdirTemp("", "fm-")
}

// consoleName is the console log file for one kernel, derived only from
// host-side values so that nothing a guest says can choose a path.
func consoleName(index int, name string, accel qemu.Accel, final bool) string {
	slug := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, name)
	slug = strings.Trim(slug, "-.")
	if len(slug) > 60 {
		slug = slug[:60]
	}
	if final {
		return fmt.Sprintf("%02d-%s.console.log", index+1, slug)
	}
	return fmt.Sprintf("%02d-%s.%s.console.log", index+1, slug, accel)
}
