// Package debian reads Debian's package archive over HTTP without apt or
// dpkg: it finds the archive serving each suite from the machine's apt
// sources, fetches and verifies a suite's Packages index (SHA256 and size
// against InRelease), caches what it needs of it, downloads .deb files
// verified against the index, and orders package versions as dpkg does.
//
// It imports the standard library, go-crypto's OpenPGP (InRelease
// signatures) and the xz decompressor only; what a kernel is, it leaves to
// its caller (kernels).
package debian

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/ulikunitz/xz"
)

// IndexMaxAge is how long a cached index is used without asking the archive
// again. Debian publishes its main archive a few times a day.
const IndexMaxAge = 12 * time.Hour

// StallTimeout is how long a transfer may go without receiving a byte
// before it is abandoned; downloads have no overall deadline since a
// kernel package is tens of megabytes on any link.
const StallTimeout = 60 * time.Second

// ErrStalled is the cause of a transfer abandoned after StallTimeout.
var ErrStalled = fmt.Errorf("no data received for %v", StallTimeout)

// Archive fetches indexes and packages from Debian archives.
type Archive struct {
	Mirrors Mirrors
	// Arch is the architecture whose Packages index is read; "" is amd64.
	Arch string
	// Client makes the requests; nil uses NewClient().
	Client *http.Client
	// CacheDir keeps verified indexes, one file per suite; "" keeps none.
	// The cache holds only the entries Keep accepts, so callers with
	// different Keep functions need different directories.
	CacheDir string
	// MaxAge bounds the age of a cached index; 0 is IndexMaxAge.
	MaxAge time.Duration
	// Keep selects the index entries worth keeping; nil keeps all.
	Keep func(name string) bool
	// CheckSignature verifies InRelease; nil accepts any (see
	// SignatureNotChecked), and the indexes read so are not Signed.
	CheckSignature SignatureCheck
	// Logf reports progress and warnings; nil discards them.
	Logf func(format string, args ...any)
	// DownloadAttempts bounds the requests one DownloadFile call makes
	// while the connection keeps breaking; 0 is DefaultDownloadAttempts.
	DownloadAttempts int

	// IgnoreValidUntil turns off the Valid-Until check of InRelease
	// files and cached indexes, as apt's Acquire::Check-Valid-Until
	// "false" does (see AptIgnoresValidUntil); Suite and Codename are
	// still checked.
	IgnoreValidUntil bool

	// now replaces time.Now in tests.
	now func() time.Time
}

func (a *Archive) clock() time.Time {
	if a.now != nil {
		return a.now()
	}
	return time.Now()
}

// NewClient returns an HTTP client whose connection setup and response
// headers have deadlines. Bodies have none: Archive abandons a transfer
// that stalls for StallTimeout instead.
func NewClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	}}
}

// Index is the part of one suite's Packages index that Archive.Keep kept.
type Index struct {
	Suite string `json:"suite"`
	URI   string `json:"uri"`
	// Absent is true when the archive does not publish the suite, or no
	// archive is configured for it.
	Absent   bool      `json:"absent,omitempty"`
	Packages []Package `json:"packages"`
	// Fetched is when the index was verified; for a cached index this is
	// the cache file's modification time.
	Fetched time.Time `json:"-"`
	// Signed is true when the InRelease the index came from was checked
	// by Archive.CheckSignature; an index fetched without a check is not
	// used from the cache by an Archive that has one.
	Signed bool `json:"signed,omitempty"`
	// ValidUntil is the Valid-Until of the InRelease the index came
	// from, zero when it had none; an expired index is not used.
	ValidUntil time.Time `json:"valid_until,omitzero"`
}

// StatusError is an HTTP response other than 200 OK.
type StatusError struct {
	URL    string
	Status string
	Code   int
}

func (e *StatusError) Error() string { return fmt.Sprintf("GET %s: %s", e.URL, e.Status) }

// TransferError is a failure to reach an archive or to receive a file from
// it, as opposed to receiving a bad file.
type TransferError struct {
	URL string
	Err error
}

func (e *TransferError) Error() string { return e.Err.Error() }
func (e *TransferError) Unwrap() error { return e.Err }

// ChecksumError is a file whose size or SHA256 differs from what the
// archive's index promised.
type ChecksumError struct {
	What                  string
	WantSize, GotSize     int64
	WantSHA256, GotSHA256 string
}

func (e *ChecksumError) Error() string {
	if e.WantSize != e.GotSize {
		return fmt.Sprintf("%s: size mismatch: expected %d bytes, got %d", e.What, e.WantSize, e.GotSize)
	}
	return fmt.Sprintf("%s: SHA256 mismatch: expected %s, got %s", e.What, e.WantSHA256, e.GotSHA256)
}

func (a *Archive) logf(format string, args ...any) {
	if a.Logf != nil {
		a.Logf(format, args...)
	}
}

func (a *Archive) client() *http.Client {
	if a.Client != nil {
		return a.Client
	}
	return NewClient()
}

func (a *Archive) arch() string {
	if a.Arch != "" {
		return a.Arch
	}
	return "amd64"
}

// Index returns the kept entries of suite's Packages index. A cached index
// younger than MaxAge is returned without touching the network; an older
// one is refreshed, and used anyway (with a warning through Logf) when the
// refresh fails. A suite that is not Mirrors.Required and that the archive
// does not publish (InRelease answers 404) is returned with Absent set and
// is cached like any other index.
func (a *Archive) Index(ctx context.Context, suite string) (*Index, error) {
	uri, ok := a.Mirrors.URI(suite)
	if !ok {
		return &Index{Suite: suite, Absent: true}, nil
	}
	maxAge := a.MaxAge
	if maxAge == 0 {
		maxAge = IndexMaxAge
	}
	cached := a.readCache(suite, uri)
	if cached != nil && time.Since(cached.Fetched) < maxAge {
		return cached, nil
	}
	idx, err := a.fetchIndex(ctx, suite, uri)
	if err != nil {
		err = fmt.Errorf("fetch %s index from %s: %w", suite, uri, err)
		if cached != nil && ctx.Err() == nil {
			a.logf("warning: using the %s index cached %s ago: %v", suite, time.Since(cached.Fetched).Round(time.Minute), err)
			return cached, nil
		}
		return nil, err
	}
	if err := a.writeCache(idx); err != nil {
		a.logf("warning: cannot cache the %s index: %v", suite, err)
	}
	return idx, nil
}

func (a *Archive) cachePath(suite string) string {
	return filepath.Join(a.CacheDir, suite+".json")
}

// readCache returns the cached index of suite if it came from uri.
func (a *Archive) readCache(suite, uri string) *Index {
	if a.CacheDir == "" {
		return nil
	}
	f, err := os.Open(a.cachePath(suite))
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	var idx Index
	if err := json.NewDecoder(f).Decode(&idx); err != nil || idx.Suite != suite || idx.URI != uri {
		return nil
	}
	if !idx.Absent && !idx.Signed && a.CheckSignature != nil {
		a.logf("the cached %s index was not signature-checked; fetching it again", suite)
		return nil
	}
	if !idx.ValidUntil.IsZero() && !a.IgnoreValidUntil && a.clock().After(idx.ValidUntil) {
		// Not even a fallback: the archive said not to trust it any more.
		a.logf("the cached %s index expired at %s", suite, idx.ValidUntil.UTC().Format(time.RFC1123))
		return nil
	}
	idx.Fetched = st.ModTime()
	idx.setOrigin()
	return &idx
}

func (a *Archive) writeCache(idx *Index) error {
	if a.CacheDir == "" {
		return nil
	}
	if err := os.MkdirAll(a.CacheDir, 0o755); err != nil {
		return err
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return writeFileAtomic(a.cachePath(idx.Suite), data)
}

// writeFileAtomic replaces name so that readers see the old or the new
// content, never a part.
func writeFileAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	// CreateTemp makes the file private; the cache is not.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

func (idx *Index) setOrigin() {
	for i := range idx.Packages {
		p := &idx.Packages[i]
		p.Suite, p.URI, p.Unsigned = idx.Suite, idx.URI, !idx.Signed
	}
}

func (a *Archive) fetchIndex(ctx context.Context, suite, uri string) (*Index, error) {
	idx := &Index{Suite: suite, URI: uri, Fetched: time.Now()}
	inRelease, err := a.getLimited(ctx, uri+"/dists/"+suite+"/InRelease", "InRelease of "+suite, MaxInRelease)
	var se *StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound && !a.Mirrors.Required(suite) {
		a.logf("suite %s: not published at %s, skipped", suite, uri)
		idx.Absent = true
		return idx, nil
	}
	if err != nil {
		return nil, err
	}
	if a.CheckSignature != nil {
		if err := a.CheckSignature(suite, inRelease); err != nil {
			return nil, fmt.Errorf("InRelease signature: %w", err)
		}
		idx.Signed = true
	}
	rel, err := ParseInRelease(inRelease)
	if err != nil {
		return nil, fmt.Errorf("InRelease: %w", err)
	}
	now := a.clock()
	if a.IgnoreValidUntil {
		now = time.Time{} // before any Valid-Until
	}
	if err := rel.Check(suite, now); err != nil {
		return nil, err
	}
	idx.ValidUntil = rel.ValidUntil
	sums := rel.SHA256
	base := "main/binary-" + a.arch() + "/Packages"
	var errs []error
	for _, ext := range []string{".xz", ".gz"} {
		sum, ok := sums[base+ext]
		if !ok {
			errs = append(errs, fmt.Errorf("InRelease does not list %s", base+ext))
			continue
		}
		pkgs, err := a.fetchPackages(ctx, uri+"/dists/"+suite+"/"+base+ext, ext, sum, suite)
		if errors.As(err, &se) && se.Code == http.StatusNotFound {
			errs = append(errs, err)
			continue
		}
		if err != nil {
			return nil, err
		}
		idx.Packages = pkgs
		idx.setOrigin()
		return idx, nil
	}
	return nil, errors.Join(errs...)
}

// Limits on what is read from an archive. An index or package that the
// archive announces or sends beyond them is an error naming the limit, so
// that a broken or hostile mirror costs a failed run, never the host's
// memory or disk. Debian's largest indexes are a small fraction of each.
var (
	// MaxInRelease bounds a suite's InRelease file (Debian's: about
	// 150 KB).
	MaxInRelease int64 = 16 << 20
	// MaxPackagesIndex bounds the compressed Packages file InRelease may
	// list (Debian's: about 10 MB as .xz, 20 MB as .gz).
	MaxPackagesIndex int64 = 256 << 20
	// MaxPackagesData bounds the decompressed Packages file (Debian's:
	// under 100 MB), so that a compression bomb stops there.
	MaxPackagesData int64 = 1 << 30
	// MaxPackageFile bounds the size of a .deb the index may announce
	// (Debian's kernel source package: about 150 MB).
	MaxPackageFile int64 = 2 << 30
)

// LimitError is a file larger than the limit set for its kind.
type LimitError struct {
	What  string
	Size  int64 // the size announced or reached, more than Limit
	Limit int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s: %d bytes or more, over the limit of %d bytes", e.What, e.Size, e.Limit)
}

// fetchPackages downloads a Packages file, checks its size and SHA256
// against sum, and only then decompresses and parses it, with both the
// download and the decompressed data bounded (MaxPackagesIndex,
// MaxPackagesData, MaxLine).
func (a *Archive) fetchPackages(ctx context.Context, url, ext string, sum FileSum, suite string) ([]Package, error) {
	what := "Packages" + ext + " of " + suite
	if sum.Size < 0 || sum.Size > MaxPackagesIndex {
		return nil, &LimitError{What: what + " (size listed in InRelease)", Size: sum.Size, Limit: MaxPackagesIndex}
	}
	var compressed bytes.Buffer
	err := a.get(ctx, url, func(body io.Reader) error {
		h := sha256.New()
		n := &countingReader{r: io.LimitReader(body, sum.Size+1)}
		prog := newProgress(a.Logf, "fetch "+suite+" index", sum.Size)
		if _, err := io.Copy(io.MultiWriter(&compressed, h, prog), n); err != nil {
			return err
		}
		if err := verify(what, sum.Size, sum.SHA256, n.n, h); err != nil {
			return err
		}
		prog.done()
		return nil
	})
	if err != nil {
		return nil, err
	}
	var dec io.Reader
	switch ext {
	case ".xz":
		dec, err = xz.NewReader(&compressed)
	case ".gz":
		dec, err = gzip.NewReader(&compressed)
	default:
		err = fmt.Errorf("unknown compression %q", ext)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", what, err)
	}
	data := &countingReader{r: io.LimitReader(dec, MaxPackagesData+1)}
	pkgs, err := ParsePackages(data, a.Keep)
	if data.n > MaxPackagesData {
		return nil, &LimitError{What: what + " decompressed", Size: data.n, Limit: MaxPackagesData}
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", what, err)
	}
	return pkgs, nil
}

func verify(what string, wantSize int64, wantSHA256 string, gotSize int64, h hash.Hash) error {
	got := hex.EncodeToString(h.Sum(nil))
	if gotSize != wantSize || got != wantSHA256 {
		return &ChecksumError{What: what, WantSize: wantSize, GotSize: gotSize, WantSHA256: wantSHA256, GotSHA256: got}
	}
	return nil
}

// Download writes package p to w and returns an error unless the bytes
// written match the size and SHA256 of the index entry. On error w may hold
// a part or all of the bad bytes; the caller discards them.
func (a *Archive) Download(ctx context.Context, p Package, w io.Writer) error {
	url := p.URI + "/" + p.Filename
	if err := checkPackageSize(p); err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	err := a.get(ctx, url, func(body io.Reader) error {
		h := sha256.New()
		n := &countingReader{r: io.LimitReader(body, p.Size+1)}
		prog := newProgress(a.Logf, "download "+p.Name+" "+p.Version, p.Size)
		if _, err := io.Copy(io.MultiWriter(w, h, prog), n); err != nil {
			return err
		}
		if err := verify(p.Name+" "+p.Version, p.Size, p.SHA256, n.n, h); err != nil {
			return err
		}
		prog.done()
		return nil
	})
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	return nil
}

// checkPackageSize refuses a package whose index entry announces more
// than MaxPackageFile bytes, before anything is requested.
func checkPackageSize(p Package) error {
	if p.Size < 0 || p.Size > MaxPackageFile {
		return &LimitError{What: p.Name + " " + p.Version + " (size in the Packages index)", Size: p.Size, Limit: MaxPackageFile}
	}
	return nil
}

// getLimited fetches url whole, failing with a LimitError past limit
// bytes (announced or received).
func (a *Archive) getLimited(ctx context.Context, url, what string, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	err := a.get(ctx, url, func(body io.Reader) error {
		_, err := buf.ReadFrom(io.LimitReader(body, limit+1))
		if int64(buf.Len()) > limit {
			return &LimitError{What: what, Size: int64(buf.Len()), Limit: limit}
		}
		return err
	})
	return buf.Bytes(), err
}

// get streams url's body through read. A transfer that receives nothing
// for StallTimeout fails.
func (a *Archive) get(ctx context.Context, url string, read func(io.Reader) error) error {
	t, err := a.start(ctx, url, nil)
	if err != nil {
		return err
	}
	defer t.stop()
	if t.resp.StatusCode != http.StatusOK {
		return &StatusError{URL: url, Status: t.resp.Status, Code: t.resp.StatusCode}
	}
	return t.fail(read(t.body))
}

// watchdogReader calls reset whenever data arrives and remembers the
// first read error, so that get can tell a broken transfer from bad
// content.
type watchdogReader struct {
	r     io.Reader
	reset func()
	err   error
}

func (w *watchdogReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.reset()
	}
	if err != nil && err != io.EOF && w.err == nil {
		w.err = err
	}
	return n, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// progress logs a large transfer's size when it starts and its percentage
// at most every ten percent and every two seconds.
type progress struct {
	logf     func(format string, args ...any)
	what     string
	total    int64
	n        int64
	start    time.Time
	lastPct  int64
	lastTime time.Time
}

// progressMin is the smallest transfer worth reporting.
const progressMin = 1 << 20

func newProgress(logf func(string, ...any), what string, total int64) *progress {
	p := &progress{logf: logf, what: what, total: total, start: time.Now()}
	p.lastTime = p.start
	if p.enabled() {
		p.logf("%s: %s", what, mb(total))
	}
	return p
}

func (p *progress) enabled() bool { return p.logf != nil && p.total >= progressMin }

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if !p.enabled() {
		return len(b), nil
	}
	pct := p.n * 100 / p.total
	if pct >= p.lastPct+10 && time.Since(p.lastTime) >= 2*time.Second && p.n < p.total {
		p.logf("%s: %d%% (%s)", p.what, pct, mb(p.n))
		p.lastPct, p.lastTime = pct, time.Now()
	}
	return len(b), nil
}

func (p *progress) done() {
	if p.enabled() {
		p.logf("%s: done, %s in %v", p.what, mb(p.n), time.Since(p.start).Round(100*time.Millisecond))
	}
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// IsNetworkError reports whether err means the archive could not be
// reached, failed during a transfer or answered with an HTTP error, as
// opposed to answering with bad data.
func IsNetworkError(err error) bool {
	var (
		se *StatusError
		te *TransferError
	)
	return errors.As(err, &se) || errors.As(err, &te)
}
