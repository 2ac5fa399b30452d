package debian

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultDownloadAttempts is how many requests one DownloadFile call makes
// when the connection keeps breaking mid-body, unless
// Archive.DownloadAttempts says otherwise.
const DefaultDownloadAttempts = 5

// PartialSuffix is appended to DownloadFile's destination while the
// download is incomplete.
const PartialSuffix = ".partial"

// validatorSuffix is appended to a partial download's name to name the
// file recording which response its bytes came from, so that a later
// process resumes it only from the same file version (If-Range).
const validatorSuffix = ".validator"

// retryWait is the pause before asking again after an attempt that
// received nothing; an attempt that made progress is resumed at once.
const retryWait = time.Second

// validator identifies the response a partial download's bytes came from.
type validator struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// ifRange is the If-Range value for resuming from url, or "" when none
// can be sent: only a strong ETag or a date may be (RFC 9110, 13.1.5).
func (v validator) ifRange(url string) string {
	switch {
	case v.URL != url:
		return ""
	case v.ETag != "" && !strings.HasPrefix(v.ETag, "W/"):
		return v.ETag
	}
	return v.LastModified
}

// DownloadFile stores package p at dest, verified against the size and
// SHA256 of its index entry. Bytes go to dest+PartialSuffix first and
// are renamed into place once the whole file matched; a dest that
// already holds the package is used as it is.
//
// A partial file left by an earlier call or process is resumed with a
// Range request (If-Range on the ETag or Last-Modified the archive sent
// for it). An archive that answers with the whole file (200) or cannot
// satisfy the range (416) makes the download start over. When the
// connection breaks mid-body, DownloadFile resumes up to
// DownloadAttempts times before giving up; the partial file stays for the
// next call. A file that does not match the index is deleted: it is an
// error and never used.
//
// DownloadFile takes no lock: callers sharing dest between processes
// serialize on their own.
func (a *Archive) DownloadFile(ctx context.Context, p Package, dest string) error {
	url := p.URI + "/" + p.Filename
	if err := checkPackageSize(p); err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	if err := a.downloadFile(ctx, p, url, dest); err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	return nil
}

func (a *Archive) downloadFile(ctx context.Context, p Package, url, dest string) error {
	what := p.Name + " " + p.Version
	if _, err := os.Stat(dest); err == nil {
		err := verifyFile(what, dest, p)
		if err == nil {
			return nil
		}
		a.logf("warning: %s: %v; downloading it again", dest, err)
		if err := os.Remove(dest); err != nil {
			return err
		}
	}
	partial := dest + PartialSuffix
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	d := &download{a: a, p: p, url: url, what: what, f: f, name: partial, h: sha256.New()}
	err = d.run(ctx)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var ce *ChecksumError
	if errors.As(err, &ce) {
		// The bytes are wrong, wherever they came from: resuming them
		// could only fail again.
		d.discard()
	}
	if err != nil {
		return err
	}
	if err := os.Rename(partial, dest); err != nil {
		return err
	}
	os.Remove(partial + validatorSuffix)
	return nil
}

// download is one DownloadFile call's state: the partial file, how much
// of it is written and the hash of those bytes.
type download struct {
	a    *Archive
	p    Package
	url  string
	what string
	f    *os.File
	name string
	n    int64
	h    hash.Hash
	prog *progress
}

func (d *download) validatorFile() string { return d.name + validatorSuffix }

// run brings the partial file to the package's size, or fails.
func (d *download) run(ctx context.Context) error {
	st, err := d.f.Stat()
	if err != nil {
		return err
	}
	switch {
	case st.Size() > d.p.Size:
		d.a.logf("%s: partial download %s is larger than the package; starting over", d.what, d.name)
		if err := d.reset(); err != nil {
			return err
		}
	case st.Size() > 0:
		// The bytes already there are hashed now, so that the whole file
		// is checked at the end without reading it twice.
		if _, err := io.Copy(d.h, io.LimitReader(d.f, st.Size())); err != nil {
			return fmt.Errorf("read %s: %w", d.name, err)
		}
		d.n = st.Size()
		if d.n < d.p.Size {
			d.a.logf("resuming %s at %s of %s", d.what, mb(d.n), mb(d.p.Size))
		}
	}
	if d.n > 0 {
		// The resuming line above says the size already.
		d.prog = &progress{what: "download " + d.what, total: d.p.Size, n: d.n, start: time.Now(), logf: d.a.Logf}
		d.prog.lastTime, d.prog.lastPct = d.prog.start, d.n*100/d.p.Size
	} else {
		d.prog = newProgress(d.a.Logf, "download "+d.what, d.p.Size)
	}
	attempts := d.a.DownloadAttempts
	if attempts <= 0 {
		attempts = DefaultDownloadAttempts
	}
	for attempt := 1; d.n < d.p.Size; attempt++ {
		before := d.n
		broke, err := d.attempt(ctx)
		if err == nil {
			break
		}
		if !broke || ctx.Err() != nil || attempt >= attempts {
			return err
		}
		if d.n == before {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(retryWait):
			}
		}
		d.a.logf("resuming %s at %s of %s after: %v (attempt %d of %d)", d.what, mb(d.n), mb(d.p.Size), err, attempt+1, attempts)
	}
	if err := verify(d.what, d.p.Size, d.p.SHA256, d.n, d.h); err != nil {
		return err
	}
	d.prog.done()
	return nil
}

// attempt makes one request for the bytes the partial file lacks and
// appends what arrives. broke reports a transfer that ended early, which
// is worth resuming.
func (d *download) attempt(ctx context.Context) (broke bool, err error) {
	header := http.Header{}
	if d.n > 0 {
		header.Set("Range", fmt.Sprintf("bytes=%d-", d.n))
		if v := d.readValidator().ifRange(d.url); v != "" {
			header.Set("If-Range", v)
		}
	}
	t, err := d.a.start(ctx, d.url, header)
	if err != nil {
		return false, err
	}
	defer t.stop()
	resp := t.resp
	switch {
	case resp.StatusCode == http.StatusPartialContent && d.n > 0:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != d.n {
			d.a.logf("%s: asked for bytes from %d on, the archive sent %q; starting over", d.what, d.n, resp.Header.Get("Content-Range"))
			return d.restart(ctx)
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && d.n > 0:
		d.a.logf("%s: the archive cannot send bytes from %s on (%s); starting over", d.what, mb(d.n), resp.Status)
		return d.restart(ctx)
	case resp.StatusCode == http.StatusOK:
		if d.n > 0 {
			// The server ignored the range, or the file changed since
			// the partial bytes came (If-Range).
			d.a.logf("%s: the archive sent the whole file instead of the rest; starting over", d.what)
			if err := d.reset(); err != nil {
				return false, err
			}
		}
		if err := d.writeValidator(resp); err != nil {
			return false, err
		}
	default:
		return false, &StatusError{URL: d.url, Status: resp.Status, Code: resp.StatusCode}
	}
	_, err = io.Copy(d, io.LimitReader(t.body, d.p.Size-d.n+1))
	err = t.fail(err)
	return t.body.err != nil, err
}

// restart drops the partial bytes and asks for the whole file in the
// same attempt: the answer that made it start over carried no body worth
// keeping.
func (d *download) restart(ctx context.Context) (bool, error) {
	if err := d.reset(); err != nil {
		return false, err
	}
	return d.attempt(ctx)
}

// Write appends to the partial file and hashes what was written.
func (d *download) Write(b []byte) (int, error) {
	n, err := d.f.Write(b)
	d.h.Write(b[:n])
	d.n += int64(n)
	d.prog.Write(b[:n])
	if err != nil {
		return n, fmt.Errorf("write %s: %w", d.name, err)
	}
	return n, nil
}

// reset empties the partial file.
func (d *download) reset() error {
	if err := d.f.Truncate(0); err != nil {
		return err
	}
	if _, err := d.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	d.h.Reset()
	d.n = 0
	if d.prog != nil {
		d.prog.n = 0
	}
	if err := os.Remove(d.validatorFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// discard removes the partial file and its validator.
func (d *download) discard() {
	os.Remove(d.name)
	os.Remove(d.validatorFile())
}

func (d *download) readValidator() validator {
	var v validator
	if data, err := os.ReadFile(d.validatorFile()); err == nil {
		json.Unmarshal(data, &v)
	}
	return v
}

// writeValidator records what identifies the response about to fill the
// partial file; without an ETag or a date a later resume sends no
// If-Range, and the SHA256 check alone guards against mixed versions.
func (d *download) writeValidator(resp *http.Response) error {
	v := validator{URL: d.url, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
	if v.ETag == "" && v.LastModified == "" {
		if err := os.Remove(d.validatorFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFileAtomic(d.validatorFile(), data)
}

// contentRangeStart returns the first byte position of a Content-Range
// header such as "bytes 100-199/200".
func contentRangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	return n, err == nil
}

// verifyFile checks a complete file against package p's index entry.
func verifyFile(what, name string, p Package) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, p.Size+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return verify(what, p.Size, p.SHA256, n, h)
}

// transfer is a response being received, with its body watched for
// stalls.
type transfer struct {
	url  string
	ctx  context.Context
	resp *http.Response
	body *watchdogReader
	stop func()
}

// start sends a GET for url with header; the response body fails with
// ErrStalled when nothing arrives for StallTimeout.
func (a *Archive) start(ctx context.Context, url string, header http.Header) (*transfer, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := a.client().Do(req)
	if err != nil {
		cancel(nil)
		return nil, &TransferError{URL: url, Err: err}
	}
	timer := time.AfterFunc(StallTimeout, func() { cancel(ErrStalled) })
	return &transfer{
		url:  url,
		ctx:  ctx,
		resp: resp,
		body: &watchdogReader{r: resp.Body, reset: func() { timer.Reset(StallTimeout) }},
		stop: func() {
			timer.Stop()
			resp.Body.Close()
			cancel(nil)
		},
	}, nil
}

// fail turns the error of whatever read t.body into a TransferError when
// the transfer itself failed, as opposed to what was done with the bytes.
func (t *transfer) fail(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(context.Cause(t.ctx), ErrStalled):
		return &TransferError{URL: t.url, Err: fmt.Errorf("GET %s: %w", t.url, ErrStalled)}
	case t.body.err != nil:
		return &TransferError{URL: t.url, Err: fmt.Errorf("GET %s: %w", t.url, err)}
	}
	return err
}
