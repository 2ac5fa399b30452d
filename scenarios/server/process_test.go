package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestMain lets the test binary serve file systems for Launcher, as the
// agent does: Launcher re-executes /proc/self/exe with "serve".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(Serve(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func backingWith(t *testing.T, name string, data []byte) (backing, mnt string) {
	t.Helper()
	dir := t.TempDir()
	backing, mnt = filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	assert.NilError(t, os.Mkdir(backing, 0o755))
	assert.NilError(t, os.Mkdir(mnt, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(backing, name), data, 0o644))
	return backing, mnt
}

func TestProcess(t *testing.T) {
	needMount(t)
	for _, tc := range []struct {
		kind     Kind
		file     string
		want     []byte
		wantRead bool
	}{
		{kind: KindClassic, file: "f", want: []byte("hello, classic\n"), wantRead: true},
		{kind: KindFlipBytes, file: "f", want: []byte{'h' ^ 0xff, 'i'}, wantRead: true},
		{kind: KindNoop, file: NoopName, want: make([]byte, 5), wantRead: true},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			backing, mnt := backingWith(t, "f", []byte("hello, classic\n"))
			if tc.kind == KindFlipBytes {
				assert.NilError(t, os.WriteFile(filepath.Join(backing, "f"), []byte("hi"), 0o644))
			}
			p, err := Launcher{}.Start(context.Background(), Spec{Kind: tc.kind, Backing: backing, Size: 5}, mnt)
			assert.NilError(t, err)
			got, readErr := os.ReadFile(filepath.Join(mnt, tc.file))
			st, err := p.Stop()
			assert.NilError(t, readErr)
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want)
			assert.Check(t, is.Len(st.Opens, 1))
			assert.Check(t, is.Equal(st.Reads > 0, tc.wantRead))
			// Stopped means unmounted: the mount point is the empty
			// directory again.
			entries, err := os.ReadDir(mnt)
			assert.NilError(t, err)
			assert.Check(t, is.Len(entries, 0))
		})
	}
}

// TestProcessCrash shows that a server that dies costs its caller an
// error, not a hang, and leaves no dead mount behind.
func TestProcessCrash(t *testing.T) {
	needMount(t)
	backing, mnt := backingWith(t, "f", []byte("data"))
	p, err := Launcher{}.Start(context.Background(), Spec{Kind: KindCrash, Backing: backing}, mnt)
	assert.NilError(t, err)
	_, readErr := os.ReadFile(filepath.Join(mnt, "f"))
	assert.Check(t, errors.Is(readErr, syscall.ENOTCONN) || errors.Is(readErr, syscall.ECONNABORTED), "%v", readErr)
	_, err = p.Stop()
	// Whether Stop finds it already gone or signals it first, the exit
	// status says it crashed.
	assert.ErrorContains(t, err, "exit status 3")
	assert.Check(t, is.Contains(err.Error(), "still mounted"))
	assert.Check(t, is.Contains(p.Stderr(), "broken-crash: exiting on READ at offset 0"))
	_, err = os.ReadDir(mnt)
	assert.Check(t, err, "mount point still disconnected")
}

func TestProcessStartFails(t *testing.T) {
	needMount(t)
	backing, mnt := backingWith(t, "f", nil)
	_, err := Launcher{}.Start(context.Background(), Spec{Kind: "no-such-kind", Backing: backing}, mnt)
	assert.ErrorContains(t, err, `unknown server kind "no-such-kind"`)
	_, err = Launcher{}.Start(context.Background(), Spec{Kind: KindLoopback, Backing: filepath.Join(backing, "absent")}, mnt)
	assert.ErrorContains(t, err, "loopback of")
}

func TestTail(t *testing.T) {
	tl := &tail{max: 2}
	_, _ = tl.Write([]byte("one\ntwo\nthr"))
	_, _ = tl.Write([]byte("ee\nfour"))
	assert.DeepEqual(t, tl.Lines(), []string{"two", "three", "four"})
}
