package kernels

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// tailLines is how much of make's output an error quotes: enough for the
// compiler's message and its context, not the whole build.
const tailLines = 40

// progressEvery is how often a build reports progress.
const progressEvery = 15 * time.Second

// make runs make in the source tree with the build directory work. Its
// output is not passed on: progress lines summarise it (when progress is
// set) and an error quotes its last lines.
func (b *builder) make(ctx context.Context, work string, progress bool, args ...string) error {
	cmd := b.makeCmd(ctx, work, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var (
		tail  []string
		steps int
		last  string
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		next := time.Now().Add(progressEvery)
		for sc.Scan() {
			line := sc.Text()
			tail = append(tail, line)
			if len(tail) > tailLines {
				tail = tail[1:]
			}
			// Kbuild's quiet output: "  CC      fs/fuse/inode.o".
			if len(line) > 2 && line[:2] == "  " && line[2] >= 'A' && line[2] <= 'Z' {
				steps++
				last = strings.Join(strings.Fields(line), " ")
			}
			if progress && time.Now().After(next) {
				b.logf("kernel build: %d steps, now %s", steps, last)
				next = time.Now().Add(progressEvery)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	err := runLocked(cmd.Run)
	pw.Close()
	<-done
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("kernel build %s: make %s: %w", b.src, strings.Join(args, " "), context.Cause(ctx))
		}
		return fmt.Errorf("kernel build %s: make %s: %w; last lines of its output:\n%s", b.src, strings.Join(args, " "), err, strings.Join(tail, "\n"))
	}
	return nil
}

// makeOutput runs make and returns what it printed on stdout.
func (b *builder) makeOutput(ctx context.Context, work string, args ...string) (string, error) {
	cmd := b.makeCmd(ctx, work, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	var out []byte
	err := runLocked(func() (err error) {
		out, err = cmd.Output()
		return err
	})
	if err != nil {
		return "", fmt.Errorf("kernel build %s: make %s: %w: %s", b.src, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// makeGuard runs make ("$@") in the background of a shell that leads
// make's process group and stays in it. SIGTERM to the guard (the parent
// death signal, or a cancel, which signals the whole group) sends SIGTERM
// to the whole group, as Ctrl-C in a terminal would, so that make deletes
// the targets it left half written; once make has ended, or after
// makeGrace, SIGKILL ends whatever of the group is left (a compiler that
// a recipe's shell started) and the guard with it. Otherwise the guard
// exits with make's status.
//
// The guard is needed because a parent death signal reaches only the
// child fusematrix started: a SIGKILLed make leaves its recipes' shells,
// their compilers and every sub-make running, and SIGTERM to make alone
// leaves the compilers (make signals the shells, which do not pass it on).
const makeGuard = `trap 'trap "" TERM; kill -s TERM 0; (sleep ` + makeGrace + `; kill -s KILL 0) & wait "$pid"; kill -s KILL 0' TERM
"$@" &
pid=$!
wait "$pid"
`

// makeGrace is how long, in seconds, make's group has after SIGTERM
// before SIGKILL; less than the command's WaitDelay.
const makeGrace = "5"

// makeCmd returns the command that runs make in the source tree with the
// build directory work: make under makeGuard, in a process group of its
// own, which ends when ctx does or fusematrix dies.
func (b *builder) makeCmd(ctx context.Context, work string, args ...string) *exec.Cmd {
	args = append([]string{"-c", makeGuard, "fusematrix-make", "make", "--no-print-directory", "-C", b.src, "O=" + work, "ARCH=x86_64"}, args...)
	if _, err := exec.LookPath("ccache"); err == nil {
		// Nearby commits of a bisection share most objects; ccache keeps
		// them across the checkouts that make's timestamps cannot.
		args = append(args, "CC=ccache gcc")
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", args...)
	cmd.Env = makeEnv(os.Environ())
	// Cancelling must stop the compilers too, not only make: the guard
	// leads the group, and SIGTERM reaches all of it. Pdeathsig does the
	// same when fusematrix dies, even by SIGKILL; it is sent when the
	// thread that started the guard ends, so the command runs on a locked
	// thread (runLocked).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if b.workLock != nil {
		cmd.ExtraFiles = []*os.File{b.workLock}
	}
	return cmd
}

// runLocked runs a command's Run (or Output) on a goroutine locked to its
// OS thread: the parent death signal (Pdeathsig) is sent when the thread
// that forked the child ends, not the process, and Go ends a thread only
// when a goroutine locked to it exits, so the thread outlives the child.
func runLocked(run func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return run()
}

// makeEnv drops what would redirect or reshape the build from the
// environment: an enclosing make's flags and jobserver (when fusematrix
// runs under make), and kbuild's own overrides of the output and config
// file.
func makeEnv(env []string) []string {
	drop := []string{"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "KBUILD_OUTPUT", "KCONFIG_CONFIG", "ARCH", "CROSS_COMPILE", "O"}
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(drop, k)
	})
}

func lastLine(s string) string {
	lines := strings.Fields(strings.TrimSpace(s))
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}
