package debian

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/fusematrix/fusematrix/kernels/internal/fakearchive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// dlEnv is one DownloadFile test's archive, package and destination.
type dlEnv struct {
	srv  *fakearchive.Server
	a    *Archive
	p    Package
	path string // the .deb's path on the server
	body []byte
	dest string
	logs *[]string
}

func newDLEnv(t *testing.T) *dlEnv {
	// Large enough for several reads on each side of a cut.
	body := make([]byte, 256<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte(r.Uint32())
	}
	pkg := fakearchive.Package{Name: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2", Deb: body}
	srv := fakearchive.Serve(t, fakearchive.Suite{Name: "bookworm", Packages: []fakearchive.Package{pkg}})
	var logs []string
	a := testArchive(t, srv, &logs)
	idx, err := a.Index(context.Background(), "bookworm")
	assert.NilError(t, err)
	assert.Assert(t, is.Len(idx.Packages, 1))
	return &dlEnv{
		srv: srv, a: a, p: idx.Packages[0], body: body, logs: &logs,
		path: fakearchive.PoolPath("bookworm", pkg),
		dest: t.TempDir() + "/linux-image.deb",
	}
}

// served returns the answers for the .deb given since the first n.
func (e *dlEnv) served(n int) []fakearchive.Served {
	var out []fakearchive.Served
	for _, s := range e.srv.Served()[n:] {
		if s.Path == e.path {
			out = append(out, s)
		}
	}
	return out
}

func (e *dlEnv) whole() fakearchive.Served {
	return fakearchive.Served{Path: e.path, Status: 200, Bytes: int64(len(e.body))}
}

func (e *dlEnv) rest(from int64, ifRange string) fakearchive.Served {
	return fakearchive.Served{Path: e.path, Range: fmt.Sprintf("bytes=%d-", from), IfRange: ifRange, Status: 206, Bytes: int64(len(e.body)) - from}
}

func (e *dlEnv) writePartial(t *testing.T, data []byte) {
	assert.NilError(t, os.WriteFile(e.dest+PartialSuffix, data, 0o644))
}

func (e *dlEnv) logged(substr string) bool {
	return slices.ContainsFunc(*e.logs, func(l string) bool { return strings.Contains(l, substr) })
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

func TestDownloadFile(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, e *dlEnv)
		// served is what the server must have answered for the .deb
		// during the call.
		served func(e *dlEnv) []fakearchive.Served
		// err, when set, is the call's error; a second call must then
		// succeed.
		err string
		log string
	}{
		{
			name: "cut half way, the rest asked for by range",
			prepare: func(t *testing.T, e *dlEnv) {
				e.srv.Cut(e.path, int64(len(e.body)/2))
			},
			served: func(e *dlEnv) []fakearchive.Served {
				half := int64(len(e.body) / 2)
				return []fakearchive.Served{
					{Path: e.path, Status: 200, Bytes: half},
					// If-Range carries the ETag of the first answer, so a
					// changed file cannot be spliced onto the old bytes.
					e.rest(half, fakearchive.ETag(e.body)),
				}
			},
			log: "resuming linux-image-6.1.0-56-cloud-amd64 6.1.192-2 at 0.1 MB of 0.3 MB after: GET ",
		},
		{
			name: "range ignored: starts over",
			prepare: func(t *testing.T, e *dlEnv) {
				e.srv.Cut(e.path, int64(len(e.body)/2))
				e.srv.SetRanges(fakearchive.RangesIgnored)
			},
			served: func(e *dlEnv) []fakearchive.Served {
				return []fakearchive.Served{
					{Path: e.path, Status: 200, Bytes: int64(len(e.body) / 2)},
					{Path: e.path, Range: fmt.Sprintf("bytes=%d-", len(e.body)/2), Status: 200, Bytes: int64(len(e.body))},
				}
			},
			log: "the archive sent the whole file instead of the rest; starting over",
		},
		{
			name: "range not satisfiable: starts over",
			prepare: func(t *testing.T, e *dlEnv) {
				e.srv.Cut(e.path, int64(len(e.body)/2))
				e.srv.SetRanges(fakearchive.RangesRefused)
			},
			served: func(e *dlEnv) []fakearchive.Served {
				return []fakearchive.Served{
					{Path: e.path, Status: 200, Bytes: int64(len(e.body) / 2)},
					{Path: e.path, Range: fmt.Sprintf("bytes=%d-", len(e.body)/2), IfRange: fakearchive.ETag(e.body), Status: 416},
					e.whole(),
				}
			},
			log: "(416 Requested Range Not Satisfiable); starting over",
		},
		{
			name: "partial left by an earlier process",
			prepare: func(t *testing.T, e *dlEnv) {
				// The earlier process gives up after one broken attempt;
				// this one is a new Archive, as a new process has.
				earlier := *e.a
				earlier.DownloadAttempts = 1
				e.srv.Cut(e.path, 1000)
				err := earlier.DownloadFile(ctx, e.p, e.dest)
				assert.Assert(t, IsNetworkError(err), "%v", err)
				assert.Assert(t, exists(e.dest+PartialSuffix))
				assert.Assert(t, !exists(e.dest))
			},
			served: func(e *dlEnv) []fakearchive.Served {
				return []fakearchive.Served{e.rest(1000, fakearchive.ETag(e.body))}
			},
			log: "resuming linux-image-6.1.0-56-cloud-amd64 6.1.192-2 at 0.0 MB of 0.3 MB",
		},
		{
			name: "partial without a validator",
			prepare: func(t *testing.T, e *dlEnv) {
				e.writePartial(t, e.body[:5000])
			},
			served: func(e *dlEnv) []fakearchive.Served {
				return []fakearchive.Served{e.rest(5000, "")}
			},
		},
		{
			name: "partial of a file that changed since (If-Range)",
			prepare: func(t *testing.T, e *dlEnv) {
				e.writePartial(t, e.body[:5000])
				assert.NilError(t, os.WriteFile(e.dest+PartialSuffix+validatorSuffix,
					fmt.Appendf(nil, `{"url":%q,"etag":"\"0ld\""}`, e.p.URI+"/"+e.p.Filename), 0o644))
			},
			served: func(e *dlEnv) []fakearchive.Served {
				return []fakearchive.Served{{Path: e.path, Range: "bytes=5000-", IfRange: `"0ld"`, Status: 200, Bytes: int64(len(e.body))}}
			},
		},
		{
			name: "partial with wrong bytes",
			prepare: func(t *testing.T, e *dlEnv) {
				bad := slices.Clone(e.body[:5000])
				bad[100] ^= 1
				e.writePartial(t, bad)
			},
			served: func(e *dlEnv) []fakearchive.Served {
				return []fakearchive.Served{e.rest(5000, "")}
			},
			err: "linux-image-6.1.0-56-cloud-amd64 6.1.192-2: SHA256 mismatch: expected ",
		},
		{
			name: "partial larger than the package",
			prepare: func(t *testing.T, e *dlEnv) {
				e.writePartial(t, append(slices.Clone(e.body), 'x'))
			},
			served: func(e *dlEnv) []fakearchive.Served { return []fakearchive.Served{e.whole()} },
			log:    "is larger than the package; starting over",
		},
		{
			name: "complete partial needs no request",
			prepare: func(t *testing.T, e *dlEnv) {
				e.writePartial(t, e.body)
			},
			served: func(e *dlEnv) []fakearchive.Served { return nil },
		},
		{
			name: "downloaded file is reused",
			prepare: func(t *testing.T, e *dlEnv) {
				assert.NilError(t, os.WriteFile(e.dest, e.body, 0o644))
			},
			served: func(e *dlEnv) []fakearchive.Served { return nil },
		},
		{
			name: "damaged downloaded file is replaced",
			prepare: func(t *testing.T, e *dlEnv) {
				assert.NilError(t, os.WriteFile(e.dest, e.body[1:], 0o644))
			},
			served: func(e *dlEnv) []fakearchive.Served { return []fakearchive.Served{e.whole()} },
			log:    "downloading it again",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDLEnv(t)
			tc.prepare(t, e)
			before := len(e.srv.Served())
			err := e.a.DownloadFile(ctx, e.p, e.dest)
			assert.DeepEqual(t, e.served(before), tc.served(e))
			if tc.log != "" {
				assert.Check(t, e.logged(tc.log), "no log line with %q in:\n%s", tc.log, strings.Join(*e.logs, "\n"))
			}
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				var ce *ChecksumError
				assert.Check(t, errors.As(err, &ce))
				assert.Check(t, !exists(e.dest), "a bad file was put in place")
				assert.Check(t, !exists(e.dest+PartialSuffix), "the bad partial was kept")
				before = len(e.srv.Served())
				err = e.a.DownloadFile(ctx, e.p, e.dest)
				assert.DeepEqual(t, e.served(before), []fakearchive.Served{e.whole()})
			}
			assert.NilError(t, err)
			got, err := os.ReadFile(e.dest)
			assert.NilError(t, err)
			assert.Check(t, slices.Equal(got, e.body), "the file differs from the package")
			assert.Check(t, !exists(e.dest+PartialSuffix))
			assert.Check(t, !exists(e.dest+PartialSuffix+validatorSuffix))
		})
	}
}

// A connection that breaks on every attempt ends the call after
// DownloadAttempts requests, each resuming where the last one broke, and
// the bytes received stay for the next call.
func TestDownloadFileGivesUp(t *testing.T) {
	e := newDLEnv(t)
	e.a.DownloadAttempts = 3
	e.a.Client = &http.Client{Transport: &shortBodies{n: 1000}}
	err := e.a.DownloadFile(context.Background(), e.p, e.dest)
	assert.Assert(t, IsNetworkError(err), "%v", err)
	assert.ErrorContains(t, err, "download "+e.p.URI+"/"+e.p.Filename+": GET ")
	var ranges []string
	for _, s := range e.served(0) {
		ranges = append(ranges, s.Range)
	}
	assert.DeepEqual(t, ranges, []string{"", "bytes=1000-", "bytes=2000-"})
	st, err := os.Stat(e.dest + PartialSuffix)
	assert.NilError(t, err)
	assert.Equal(t, st.Size(), int64(3000))
	assert.Check(t, !exists(e.dest))
}

// Cancelling the context stops the download without retrying and keeps
// the partial file for the next call.
func TestDownloadFileCancelled(t *testing.T) {
	e := newDLEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.a.Client = &http.Client{Transport: &shortBodies{n: 4096, then: func() error { cancel(); return ctx.Err() }}}
	err := e.a.DownloadFile(ctx, e.p, e.dest)
	assert.Assert(t, errors.Is(err, context.Canceled), "%v", err)
	assert.Equal(t, len(e.served(0)), 1, "a cancelled download was retried")
	st, err := os.Stat(e.dest + PartialSuffix)
	assert.NilError(t, err)
	assert.Equal(t, st.Size(), int64(4096))
}

// shortBodies ends every .deb body after n bytes with the error then
// returns (io.ErrUnexpectedEOF when then is nil), as a dropped connection
// does.
type shortBodies struct {
	n    int64
	then func() error
}

func (s *shortBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, ".deb") {
		return resp, err
	}
	then := s.then
	if then == nil {
		then = func() error { return io.ErrUnexpectedEOF }
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(resp.Body, s.n), failingReader(then)), resp.Body}
	return resp, nil
}

type failingReader func() error

func (f failingReader) Read([]byte) (int, error) { return 0, f() }
