package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestArgs(t *testing.T) {
	base := Config{Kernel: "/k", Initrd: "/i", RunDir: "/r", ConsoleLog: "/c.log", StreamSocket: "/r/s.sock", PortName: "p.0"}
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
		want []string // flags, or flag-value pairs, that must appear
		not  []string
	}{
		{name: "tcg", cfg: func(c *Config) { c.Accel = TCG },
			want: []string{"-accel tcg", "-cpu max", "-m 2048", "-smp 2", "-no-reboot", "-kernel /k", "-initrd /i", "-device pvpanic",
				"-chardev socket,id=stream,path=/r/s.sock", "-device virtserialport,bus=vser.0,chardev=stream,name=p.0",
				"-qmp unix:/r/qmp.sock,server=on,wait=off", "-append console=ttyS0 panic=-1"}},
		{name: "kvm uses the host cpu", cfg: func(c *Config) { c.Accel = KVM }, want: []string{"-accel kvm", "-cpu host"}},
		{name: "sizes and extra args", cfg: func(c *Config) { c.Accel = TCG; c.MemoryMiB = 512; c.CPUs = 1; c.Append = "fuse.x=1" },
			want: []string{"-m 512", "-smp 1", "-append console=ttyS0 panic=-1 fuse.x=1"}},
		{name: "no initrd", cfg: func(c *Config) { c.Accel = TCG; c.Initrd = "" }, not: []string{"-initrd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.cfg(&c)
			args := c.Args()
			var pairs []string
			for i := 0; i+1 < len(args); i++ {
				pairs = append(pairs, args[i]+" "+args[i+1])
			}
			pairs = append(pairs, args...) // lone flags such as -no-reboot
			for _, w := range tc.want {
				assert.Check(t, is.Contains(pairs, w))
			}
			for _, n := range tc.not {
				assert.Check(t, !is.Contains(args, n)().Success(), "unexpected %s", n)
			}
		})
	}
}

// TestArgsEscapeCommas: QEMU splits an option's value at commas and reads
// a doubled comma as one, so a path with a comma must have it doubled, or
// "path=/out/a,b/console.log" is a path "/out/a" and a parameter "b/…".
func TestArgsEscapeCommas(t *testing.T) {
	c := Config{Accel: TCG, Kernel: "/k,1", Initrd: "/i,1", RunDir: "/r,1", ConsoleLog: "/out/a,b,,c/console.log", StreamSocket: "/r,1/s.sock", PortName: "p.0"}
	args := c.Args()
	var pairs []string
	for i := 0; i+1 < len(args); i++ {
		pairs = append(pairs, args[i]+" "+args[i+1])
	}
	for _, w := range []string{
		"-chardev file,id=console,path=/out/a,,b,,,,c/console.log",
		"-chardev socket,id=stream,path=/r,,1/s.sock",
		"-qmp unix:/r,,1/qmp.sock,server=on,wait=off",
		// -kernel, -initrd and -append take their value whole.
		"-kernel /k,1", "-initrd /i,1",
	} {
		assert.Check(t, is.Contains(pairs, w))
	}
}

func TestConsoleTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	var b strings.Builder
	for i := range 30 {
		b.WriteString("line " + string(rune('a'+i%26)) + "\x1b[0m\r\n\n")
	}
	b.WriteString("Kernel panic - not syncing: \x07oops\n")
	assert.NilError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	tail := ConsoleTail(path, 3)
	assert.DeepEqual(t, tail, []string{"line c[0m", "line d[0m", "Kernel panic - not syncing: oops"})
	assert.Check(t, is.Len(ConsoleTail(filepath.Join(t.TempDir(), "missing"), 3), 0))
}
