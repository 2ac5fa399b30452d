package harness

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fusematrix/fusematrix/results"
)

// The test binary doubles as a fake QEMU: when FAKE_QEMU names a
// behaviour, TestMain acts out that behaviour instead of running tests. It
// speaks just enough QMP and writes a guest stream like the real agent.
func TestMain(m *testing.M) {
	if mode := os.Getenv("FAKE_QEMU"); mode != "" {
		os.Exit(fakeQEMU(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

type fakeArgs struct {
	accel, qmp, stream, console string
	err                         string // what QEMU would refuse, as it says it
}

// parseFakeArgs reads the options the fake acts on, their lists parsed as
// QEMU parses them (splitOpts): a path whose commas are not doubled is
// refused, as QEMU refuses it.
func parseFakeArgs(args []string) fakeArgs {
	var a fakeArgs
	for i := 0; i+1 < len(args); i++ {
		v := args[i+1]
		switch args[i] {
		case "-accel":
			a.accel = v
		case "-qmp":
			opts, err := splitOpts(v)
			if err != nil {
				a.err = "-qmp " + v + ": " + err.Error()
				continue
			}
			a.qmp = strings.TrimPrefix(opts[0], "unix:")
		case "-chardev":
			opts, err := splitOpts(v)
			if err != nil {
				a.err = "-chardev " + v + ": " + err.Error()
				continue
			}
			kv := map[string]string{}
			for _, o := range opts[1:] {
				k, val, _ := strings.Cut(o, "=")
				kv[k] = val
			}
			switch {
			case opts[0] == "socket" && kv["id"] == "stream":
				a.stream = kv["path"]
			case opts[0] == "file" && kv["id"] == "console":
				a.console = kv["path"]
			}
		}
	}
	return a
}

// splitOpts splits a QEMU option list ("file,id=x,path=/a,,b") at single
// commas, reading ",," as a comma of the value. After the first element
// (a backend or "unix:PATH"), each must be key=value: QEMU 7.2 refuses
// anything else as "Invalid parameter".
func splitOpts(v string) ([]string, error) {
	var opts []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != ',' {
			cur.WriteByte(v[i])
			continue
		}
		if i+1 < len(v) && v[i+1] == ',' {
			cur.WriteByte(',')
			i++
			continue
		}
		opts = append(opts, cur.String())
		cur.Reset()
	}
	opts = append(opts, cur.String())
	for _, o := range opts[1:] {
		if !strings.Contains(o, "=") {
			return nil, fmt.Errorf("Invalid parameter '%s'", o)
		}
	}
	return opts, nil
}

// fakeQEMU behaves like QEMU running a guest that does what mode says. A
// mode may be "kvm:<mode>/tcg:<mode>" to act differently per accelerator.
func fakeQEMU(mode string, args []string) int {
	a := parseFakeArgs(args)
	if a.err != "" {
		fmt.Fprintln(os.Stderr, "qemu-system-x86_64: "+a.err)
		return 1
	}
	if name := os.Getenv("FAKE_QEMU_PID"); name != "" {
		os.WriteFile(name, []byte(strconv.Itoa(os.Getpid())), 0o644)
	}
	for _, part := range strings.Split(mode, "/") {
		if acc, m, ok := strings.Cut(part, ":"); ok && acc == a.accel {
			mode = m
		}
	}
	console, _ := os.Create(a.console)
	defer console.Close()
	fmt.Fprintln(console, "Linux version 6.99.0-fake (fake@qemu)")

	if mode == "abort" {
		fmt.Fprintln(os.Stderr, "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0")
		return 1
	}
	status := make(chan string, 1)
	status <- "running"
	events := make(chan string, 4)
	ln, err := net.Listen("unix", a.qmp)
	if err != nil {
		return 3
	}
	quit := make(chan struct{})
	go serveQMP(ln, status, events, quit)

	conn, err := net.Dial("unix", a.stream)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stream:", err)
		return 3
	}
	enc := results.NewEncoder(conn)
	hello := func() {
		// As the agent does, hello is echoed on the console too.
		fmt.Fprintln(console, "fusematrix: hello: kernel 6.99.0-fake, agent test, uptime 1.00s")
		enc.Encode(&results.Event{Type: results.HelloEvent, Hello: &results.Hello{Release: "6.99.0-fake", AgentVersion: "test"}})
	}
	result := func(id string, s results.Status) {
		enc.Encode(&results.Event{Type: results.ResultEvent, Result: &results.Result{ID: id, Kind: results.Scenario, Status: s}})
	}
	if mode == "boot-panic-once" {
		// The first boot of a test panics, later ones run: FAKE_QEMU_ONCE
		// names the file that remembers.
		mode = "ok"
		if f, err := os.OpenFile(os.Getenv("FAKE_QEMU_ONCE"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
			f.Close()
			mode = "boot-panic"
		}
	}
	switch mode {
	case "boot-panic":
		fmt.Fprintln(console, "[    1.770485] RIP: 0010:enqueue_timer+0xa5/0x100")
		fmt.Fprintln(console, "[    1.770485] Kernel panic - not syncing: Fatal exception in interrupt")
		return 0
	case "ok":
		hello()
		enc.Encode(&results.Event{Type: results.CapabilitiesEvent, Capabilities: &results.Capabilities{FuseMajor: 7, FuseMinor: 41, Passthrough: true}})
		result("a", results.Pass)
		result("b", results.Skip)
		enc.Encode(&results.Event{Type: results.DoneEvent})
		return 0
	case "internal-error":
		<-status
		status <- "internal-error"
		events <- `{"event":"STOP","data":{},"timestamp":{"seconds":1,"microseconds":0}}`
	case "silent":
	case "panic":
		hello()
		result("a", results.Pass)
		fmt.Fprintln(console, "[    2.000000] Kernel panic - not syncing: fake oops")
		return 0
	case "pvpanic":
		hello()
		events <- `{"event":"GUEST_PANICKED","data":{"action":"pause"},"timestamp":{"seconds":1,"microseconds":0}}`
	case "no-done":
		hello()
		result("a", results.Pass)
		return 0
	case "bad-counts":
		hello()
		result("a", results.Pass)
		// A done event claiming a result that never arrived.
		fmt.Fprintf(conn, `{"type":"done","seq":2,"time":"2026-01-01T00:00:00Z","done":{"events":2,"results":2,"pass":2}}`+"\n")
		return 0
	case "huge-line":
		hello()
		conn.Write([]byte(`{"type":"log","seq":1,"log":"` + strings.Repeat("x", 1<<20) + `"}` + "\n"))
	case "gap":
		hello()
		fmt.Fprintf(conn, `{"type":"log","seq":5,"time":"2026-01-01T00:00:00Z","log":"x"}`+"\n")
	case "early-done":
		// A run that tested nothing, such as an agent whose -run did not
		// compile, still ends with a done event whose counts match.
		hello()
		enc.Encode(&results.Event{Type: results.DoneEvent})
		return 0
	case "dup-id":
		hello()
		result("a", results.Fail)
		result("a", results.Pass)
		result("b", results.Pass)
		enc.Encode(&results.Event{Type: results.DoneEvent})
		return 0
	case "forged-expect":
		hello()
		result("a", results.Pass)
		result("b", results.Pass)
		result("expect/passthrough-offered", results.Pass)
		enc.Encode(&results.Event{Type: results.DoneEvent})
		return 0
	case "unasked":
		hello()
		result("a", results.Pass)
		result("b", results.Pass)
		result("c", results.Pass)
		enc.Encode(&results.Event{Type: results.DoneEvent})
		return 0
	case "second-hello":
		hello()
		result("a", results.Pass)
		enc.Encode(&results.Event{Type: results.HelloEvent, Hello: &results.Hello{Release: "6.0.0-other", AgentVersion: "test"}})
		result("b", results.Pass)
		enc.Encode(&results.Event{Type: results.DoneEvent})
		return 0
	case "oops-done":
		// The kernel warns while check a runs; the agent missed it (its
		// kernel log reader failed, say) and reports a pass, then a
		// valid done. The console still has it, before a's result line.
		hello()
		fmt.Fprintln(console, "[    2.000000] ------------[ cut here ]------------")
		fmt.Fprintln(console, "[    2.000001] WARNING: CPU: 0 PID: 70 at fs/fuse/iomode.c:101 fuse_file_io_release+0x5c/0x70")
		fmt.Fprintln(console, "fusematrix: scenario a: pass (0.01s)")
		result("a", results.Pass)
		fmt.Fprintln(console, "fusematrix: scenario b: pass (0.01s)")
		result("b", results.Pass)
		enc.Encode(&results.Event{Type: results.DoneEvent})
		return 0
	case "stall":
		// The agent says hello and then nothing, as a wedged one would.
		hello()
		result("a", results.Pass)
	case "flood-after-panic":
		hello()
		events <- `{"event":"GUEST_PANICKED","data":{"action":"pause"},"timestamp":{"seconds":1,"microseconds":0}}`
		for range 5000 {
			if enc.Encode(&results.Event{Type: results.LogEvent, Log: strings.Repeat("f", 1000)}) != nil {
				break
			}
		}
	case "over-cap":
		hello()
		for range 200 {
			if enc.Encode(&results.Event{Type: results.LogEvent, Log: strings.Repeat("c", 4000)}) != nil {
				break
			}
		}
	}
	select {
	case <-quit:
	case <-time.After(time.Minute):
	}
	return 0
}

func serveQMP(ln net.Listener, status chan string, events chan string, quit chan struct{}) {
	c, err := ln.Accept()
	if err != nil {
		return
	}
	fmt.Fprintln(c, `{"QMP":{"version":{"qemu":{"major":7,"minor":2,"micro":0},"package":""},"capabilities":[]}}`)
	dec := json.NewDecoder(c)
	if err := dec.Decode(new(map[string]any)); err != nil { // qmp_capabilities
		return
	}
	fmt.Fprintln(c, `{"return":{}}`)
	cmds := make(chan string)
	go func() {
		defer close(cmds)
		for {
			var cmd struct{ Execute string }
			if dec.Decode(&cmd) != nil {
				return
			}
			cmds <- cmd.Execute
		}
	}()
	for {
		select {
		case e := <-events:
			// Real events come well after the handshake; an event sent
			// before the host listens for them would be dropped.
			time.Sleep(200 * time.Millisecond)
			fmt.Fprintln(c, e)
		case cmd, ok := <-cmds:
			if !ok {
				return
			}
			switch cmd {
			case "query-status":
				s := <-status
				status <- s
				fmt.Fprintf(c, `{"return":{"status":%q,"running":false}}`+"\n", s)
			case "quit":
				fmt.Fprintln(c, `{"return":{}}`)
				close(quit)
				return
			default:
				fmt.Fprintln(c, `{"return":{}}`)
			}
		}
	}
}
