package kernels

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

// TestMain lets the test binary stand in for fusematrix building a kernel:
// with FAKE_BUILD_SRC set it runs one Build of that tree into
// FAKE_BUILD_CACHE and exits, so that a test can SIGKILL it mid-build.
func TestMain(m *testing.M) {
	if src := os.Getenv("FAKE_BUILD_SRC"); src != "" {
		_, err := Build(context.Background(), BuildOptions{Src: src, Base: BaseTinyconfig, Jobs: 1,
			Fragment: []byte(testFragment), Options: Options{CacheDir: os.Getenv("FAKE_BUILD_CACHE")}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBuildKilled SIGKILLs a process in the middle of a build (make's
// recipe sleeping in a child, as a compiler does): make's whole process
// group must be gone within seconds, and a second build in the same work
// directory must wait for it instead of running make alongside it.
func TestBuildKilled(t *testing.T) {
	src, log := fakeTree(t)
	cache := t.TempDir()
	pidFile := filepath.Join(t.TempDir(), "make.pid")
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "FAKE_BUILD_SRC="+src, "FAKE_BUILD_CACHE="+cache, "FAKE_SLEEP="+pidFile)
	child.Stdout, child.Stderr = os.Stdout, os.Stderr
	assert.NilError(t, child.Start())
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })

	var pid int
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := os.ReadFile(pidFile)
		if err == nil {
			pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
			assert.NilError(t, err)
			break
		}
		assert.Assert(t, time.Now().Before(deadline), "the build never reached bzImage; make log: %q", makeLog(t, log))
		time.Sleep(20 * time.Millisecond)
	}
	pgid, err := syscall.Getpgid(pid)
	assert.NilError(t, err)
	assert.Assert(t, pgid != child.Process.Pid, "make runs in fusematrix's process group")
	// Whatever happens below, leave nothing behind.
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })

	// A second build of the same tree and base (another fragment, so
	// another cache entry) shares the work directory: it must wait.
	var (
		mu         sync.Mutex
		logged     []string
		concurrent []string
	)
	logf := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, line)
		if strings.HasPrefix(line, "kernel build: make ") && groupAlive(pgid) {
			concurrent = append(concurrent, line)
		}
	}
	second := make(chan error, 1)
	go func() {
		_, err := Build(context.Background(), BuildOptions{Src: src, Base: BaseTinyconfig, Jobs: 1,
			Fragment: []byte(testFragment + "CONFIG_SECOND=y\n"), Options: Options{CacheDir: cache, Logf: logf}})
		second <- err
	}()
	waiting := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(strings.Join(logged, "\n"), "waiting for another build in")
	}
	for deadline := time.Now().Add(10 * time.Second); !waiting(); {
		assert.Assert(t, time.Now().Before(deadline), "the second build did not wait for the first: %q", logged)
		time.Sleep(20 * time.Millisecond)
	}

	assert.NilError(t, child.Process.Signal(syscall.SIGKILL))
	child.Wait()
	killed := time.Now()
	for {
		// Dead members wait as zombies until init reaps them, which some
		// inits (this project's sandbox's) do late: a zombie holds
		// nothing, so only live members count.
		err := syscall.Kill(-pgid, 0)
		if errors.Is(err, syscall.ESRCH) || !groupAlive(pgid) {
			break
		}
		// A liveness bound, not a timing check: a loaded machine has been
		// seen to need more than 5 s to tear the group down.
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("make's process group %d outlived fusematrix by 20 s (kill: %v): %s", pgid, err, groupProcs(pgid))
		}
		time.Sleep(20 * time.Millisecond)
	}

	select {
	case err := <-second:
		assert.NilError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the second build did not finish")
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Check(t, len(concurrent) == 0, "the second build ran make while the first one's processes lived: %q", concurrent)
}

// groupAlive says whether a process of group pgid is alive (not a zombie
// waiting to be reaped).
func groupAlive(pgid int) bool { return groupProcs(pgid) != "" }

// groupProcs lists the live processes of group pgid from /proc.
func groupProcs(pgid int) string {
	entries, _ := os.ReadDir("/proc")
	var live []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces.
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[2] != strconv.Itoa(pgid) {
			continue
		}
		live = append(live, s[:i+1])
	}
	return strings.Join(live, ", ")
}

// TestBuildCancelled cancels a build in the middle of make: Build returns
// at once with the cause, and make's whole process group is gone.
func TestBuildCancelled(t *testing.T) {
	src, _ := fakeTree(t)
	pidFile := filepath.Join(t.TempDir(), "make.pid")
	t.Setenv("FAKE_SLEEP", pidFile)
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Build(ctx, BuildOptions{Src: src, Base: BaseTinyconfig, Jobs: 1, Fragment: []byte(testFragment), Options: Options{CacheDir: t.TempDir()}})
		done <- err
	}()
	var pid int
	for deadline := time.Now().Add(30 * time.Second); ; {
		if data, err := os.ReadFile(pidFile); err == nil {
			pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
			assert.NilError(t, err)
			break
		}
		assert.Assert(t, time.Now().Before(deadline), "the build never reached bzImage")
		time.Sleep(20 * time.Millisecond)
	}
	pgid, err := syscall.Getpgid(pid)
	assert.NilError(t, err)
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	cancel(errors.New("stop now"))
	select {
	case err := <-done:
		assert.ErrorContains(t, err, "stop now")
	case <-time.After(20 * time.Second):
		t.Fatal("Build did not return after its context ended")
	}
	// SIGKILL is delivered at once but a loaded machine takes a moment to
	// tear the members down; the bound catches a group nobody killed.
	for stopped := time.Now(); groupAlive(pgid); time.Sleep(20 * time.Millisecond) {
		if time.Since(stopped) > 20*time.Second {
			t.Fatalf("make's group %d outlived the build by 20 s: %s", pgid, groupProcs(pgid))
		}
	}
}
