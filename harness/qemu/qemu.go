// Package qemu starts and controls one QEMU guest: it builds the command
// line, drives the QMP monitor through go-qemu, and makes sure the process
// is gone when the caller is done with it, whatever happened to the guest.
package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// Accel is a QEMU accelerator.
type Accel string

const (
	KVM Accel = "kvm"
	TCG Accel = "tcg"
)

// DefaultBinary is the emulator Debian's qemu-system-x86 package installs.
const DefaultBinary = "qemu-system-x86_64"

// Config describes one guest.
type Config struct {
	Binary string // "" = DefaultBinary
	Kernel string
	Initrd string
	// Append is added to the kernel command line after what the guest needs
	// to report back (serial console, panic behaviour).
	Append    string
	MemoryMiB int // 0 = 2048: benchmarks keep a 256 MiB file and its page cache twice
	CPUs      int // 0 = 2
	Accel     Accel
	// RunDir holds the QMP socket; unix socket paths are limited to 108
	// bytes, so keep it short.
	RunDir string
	// ConsoleLog receives everything the guest writes to ttyS0.
	ConsoleLog string
	// ConsoleSocket, when set, is a unix socket the caller listens on:
	// QEMU connects ttyS0 to it, both ways, and still logs what the guest
	// writes to ConsoleLog (fusematrix shell).
	ConsoleSocket string
	// StreamSocket is a unix socket the caller already listens on; QEMU
	// connects to it as the backend of a virtio-serial port named PortName,
	// so the channel exists before the guest runs and nothing is lost.
	StreamSocket string
	PortName     string
}

// Args returns QEMU's command line for c, without the binary.
func (c Config) Args() []string {
	mem, cpus := c.MemoryMiB, c.CPUs
	if mem == 0 {
		mem = 2048
	}
	if cpus == 0 {
		cpus = 2
	}
	// -cpu host under KVM: on hosts where KVM cannot run a guest it tends
	// to fail at once (MSR setup) rather than after seconds of boot.
	cpu := "max"
	if c.Accel == KVM {
		cpu = "host"
	}
	appendLine := strings.TrimSpace("console=ttyS0 panic=-1 " + c.Append)
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none",
		"-no-reboot",
		"-accel", string(c.Accel), "-cpu", cpu,
		"-m", fmt.Sprint(mem), "-smp", fmt.Sprint(cpus),
		"-kernel", c.Kernel,
		"-append", appendLine,
		"-chardev", consoleChardev(c),
		"-serial", "chardev:console",
		"-device", "virtio-serial-pci,id=vser",
		"-chardev", "socket,id=stream,path=" + OptValue(c.StreamSocket),
		"-device", "virtserialport,bus=vser.0,chardev=stream,name=" + OptValue(c.PortName),
		"-device", "pvpanic",
		"-qmp", "unix:" + OptValue(filepath.Join(c.RunDir, "qmp.sock")) + ",server=on,wait=off",
	}
	// -kernel, -initrd and -append take their value whole: no escaping.
	if c.Initrd != "" {
		args = append(args, "-initrd", c.Initrd)
	}
	return args
}

func consoleChardev(c Config) string {
	if c.ConsoleSocket != "" {
		return "socket,id=console,path=" + OptValue(c.ConsoleSocket) + ",logfile=" + OptValue(c.ConsoleLog)
	}
	return "file,id=console,path=" + OptValue(c.ConsoleLog)
}

// OptValue escapes s for a value in a QEMU option list (key=value,…):
// QEMU splits the list at commas and reads ",," as one comma, so a path
// with a comma in it ("out,1/console.log") must have each doubled.
func OptValue(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// Event is a QMP event, reduced to what callers act on.
type Event struct {
	Name string
	Data map[string]any
}

// Machine is a running QEMU process.
type Machine struct {
	cmd     *exec.Cmd
	mon     *qmp.SocketMonitor
	started time.Time
	events  chan Event
	exited  chan struct{}
	waitErr error
	stderr  *tailBuffer
	once    sync.Once
}

// Start launches QEMU and connects to its monitor. QEMU's own stderr is
// kept (its last lines) for error messages.
func Start(ctx context.Context, c Config) (*Machine, error) {
	bin := c.Binary
	if bin == "" {
		bin = DefaultBinary
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("qemu: %s not found: install Debian's qemu-system-x86 package (make deps)", bin)
	}
	m := &Machine{
		events: make(chan Event, 16),
		exited: make(chan struct{}),
		stderr: &tailBuffer{max: 8 << 10},
	}
	m.cmd = exec.Command(path, c.Args()...)
	m.cmd.Stderr = m.stderr
	m.cmd.Stdout = m.stderr
	// Own process group: a Ctrl-C at the terminal reaches fusematrix, which
	// then stops every guest itself; Pdeathsig covers fusematrix dying hard.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A socket left by an earlier attempt in the same directory would be
	// connected to before QEMU replaces it.
	qmpSock := filepath.Join(c.RunDir, "qmp.sock")
	os.Remove(qmpSock)
	m.started = time.Now()
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("qemu: start %s: %w", path, err)
	}
	go func() {
		m.waitErr = m.cmd.Wait()
		close(m.exited)
	}()
	if err := m.connect(ctx, qmpSock); err != nil {
		select {
		case <-m.exited:
			// QEMU already ended, successfully or not; the caller learns
			// which from the guest stream and ExitError, as for any exit.
			return m, nil
		default:
		}
		m.Kill()
		return nil, err
	}
	return m, nil
}

// connect waits for QEMU to create its QMP socket and completes the
// handshake; QEMU exiting first is reported with its stderr.
func (m *Machine) connect(ctx context.Context, sock string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			mon, err := qmp.NewSocketMonitor("unix", sock, 2*time.Second)
			if err == nil {
				if err = mon.Connect(); err == nil {
					m.mon = mon
					go m.pump()
					return nil
				}
				mon.Disconnect()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.exited:
			return errors.New("qemu exited before its monitor answered")
		case <-deadline:
			return errors.New("qemu: no QMP monitor after 10s")
		case <-tick.C:
		}
	}
}

// pump forwards QMP events. go-qemu's event channel is unbuffered and
// shared with command replies, so it must be drained continuously or
// commands stall; events beyond our buffer are dropped rather than block.
func (m *Machine) pump() {
	defer close(m.events)
	evs, err := m.mon.Events(context.Background())
	if err != nil {
		return
	}
	for e := range evs {
		select {
		case m.events <- Event{Name: e.Event, Data: e.Data}:
		default:
		}
	}
}

// Events delivers QMP events (STOP, GUEST_PANICKED, SHUTDOWN …) until the
// monitor closes.
func (m *Machine) Events() <-chan Event { return m.events }

// Exited is closed when the QEMU process has ended.
func (m *Machine) Exited() <-chan struct{} { return m.exited }

// Started is when the process was started.
func (m *Machine) Started() time.Time { return m.started }

// Clean reports whether QEMU exited with status 0; only meaningful once
// Exited is closed.
func (m *Machine) Clean() bool { return m.waitErr == nil }

// ExitError describes how QEMU ended, with the last lines it printed. It
// is only meaningful once Exited is closed.
func (m *Machine) ExitError() error {
	msg := strings.TrimSpace(m.stderr.String())
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 && len(msg)-i < 200 {
		msg = strings.TrimSpace(msg[i:]) // the last line is usually the cause
	}
	switch {
	case m.waitErr == nil && msg == "":
		return errors.New("qemu exited")
	case m.waitErr == nil:
		return fmt.Errorf("qemu exited: %s", msg)
	case msg == "":
		return fmt.Errorf("qemu: %w", m.waitErr)
	}
	return fmt.Errorf("qemu: %w: %s", m.waitErr, msg)
}

// Stderr returns what QEMU itself printed (the last few KiB).
func (m *Machine) Stderr() string { return m.stderr.String() }

// Status returns the VM run state from query-status, e.g. "running" or
// "internal-error".
func (m *Machine) Status(ctx context.Context) (string, error) {
	out, err := m.run(ctx, `{"execute":"query-status"}`)
	if err != nil {
		return "", err
	}
	var r struct {
		Return struct {
			Status string `json:"status"`
		} `json:"return"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return "", fmt.Errorf("qemu: query-status: %w", err)
	}
	return r.Return.Status, nil
}

// run executes a QMP command; go-qemu's Run has no deadline of its own.
func (m *Machine) run(ctx context.Context, cmd string) ([]byte, error) {
	if m.mon == nil {
		return nil, errors.New("qemu: no monitor")
	}
	type reply struct {
		b   []byte
		err error
	}
	ch := make(chan reply, 1)
	go func() {
		b, err := m.mon.Run([]byte(cmd))
		ch <- reply{b, err}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-m.exited:
		return nil, m.ExitError()
	}
}

// Stop ends the guest: a QMP quit first, then SIGKILL if QEMU is still
// there after grace. It returns once the process is gone.
func (m *Machine) Stop(grace time.Duration) {
	select {
	case <-m.exited:
		m.close()
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	m.run(ctx, `{"execute":"quit"}`)
	select {
	case <-m.exited:
	case <-ctx.Done():
		m.Kill()
	}
	m.close()
}

// Kill ends QEMU at once and waits for it.
func (m *Machine) Kill() {
	if m.cmd.Process != nil {
		m.cmd.Process.Kill()
	}
	<-m.exited
	m.close()
}

func (m *Machine) close() {
	m.once.Do(func() {
		if m.mon != nil {
			m.mon.Disconnect()
		}
	})
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
