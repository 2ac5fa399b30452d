// Package fakearchive fabricates, for tests, what kernels reads from
// Debian: kernel module ELF objects, .deb files (ar + tar), and a whole
// archive (InRelease signed with a generated key, Packages indexes, pool)
// served over httptest, which records the requests it answers and can
// honour, ignore or refuse byte ranges and cut a body short.
//
// It is for tests of kernels and its packages, and imports none of them:
// the standard library, go-crypto's OpenPGP and the compressors only.
package fakearchive

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Module returns a minimal relocatable x86-64 ELF object whose .modinfo
// section holds the given "key=value" strings, which is all module
// metadata readers look at.
func Module(info ...string) []byte {
	var modinfo bytes.Buffer
	for _, s := range info {
		modinfo.WriteString(s)
		modinfo.WriteByte(0)
	}
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	modinfoOff := uint64(ehsize)
	shstrtabOff := modinfoOff + uint64(modinfo.Len())
	shoff := (shstrtabOff + uint64(len(shstrtab)) + 7) &^ 7

	var out bytes.Buffer
	hdr := elf.Header64{
		Type:      uint16(elf.ET_REL),
		Machine:   uint16(elf.EM_X86_64),
		Version:   uint32(elf.EV_CURRENT),
		Shoff:     shoff,
		Ehsize:    ehsize,
		Shentsize: shentsize,
		Shnum:     3,
		Shstrndx:  2,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&out, binary.LittleEndian, hdr)
	out.Write(modinfo.Bytes())
	out.Write(shstrtab)
	out.Write(make([]byte, shoff-uint64(out.Len())))
	sections := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: modinfoOff, Size: uint64(modinfo.Len()), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: shstrtabOff, Size: uint64(len(shstrtab)), Addralign: 1},
	}
	binary.Write(&out, binary.LittleEndian, sections)
	return out.Bytes()
}

// Compress compresses data the way ".xz", ".zst" or ".gz" says; "" returns
// data as it is.
func Compress(data []byte, suffix string) []byte {
	var buf bytes.Buffer
	switch suffix {
	case "":
		return data
	case ".xz":
		w, err := xz.NewWriter(&buf)
		must(err)
		must2(w.Write(data))
		must(w.Close())
	case ".zst":
		w, err := zstd.NewWriter(&buf)
		must(err)
		must2(w.Write(data))
		must(w.Close())
	case ".gz":
		w := gzip.NewWriter(&buf)
		must2(w.Write(data))
		must(w.Close())
	default:
		panic("fakearchive: unknown compression " + suffix)
	}
	return buf.Bytes()
}

// Bomb returns prefix, then n bytes of fill, then suffix, compressed as
// xz: a small file that decompresses to a large one.
func Bomb(prefix string, fill byte, n int64, suffix string) []byte {
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	must(err)
	must2(w.Write([]byte(prefix)))
	chunk := bytes.Repeat([]byte{fill}, 1<<20)
	for ; n > 0; n -= int64(len(chunk)) {
		must2(w.Write(chunk[:min(n, int64(len(chunk)))]))
	}
	must2(w.Write([]byte(suffix)))
	must(w.Close())
	return buf.Bytes()
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func must2(_ int, err error) { must(err) }

// Entry is one member of a package's data.tar.
type Entry struct {
	Name string
	Body []byte
	// Link, when set, makes the entry a symbolic link to Link, or a hard
	// link to the entry named Link when Hard is set.
	Link string
	Hard bool
	Dir  bool
	// Mode is a regular file's permission bits; 0 is 0644.
	Mode int64
}

// Deb returns a .deb holding entries in data.tar, compressed as
// compression says (".xz", ".zst", ".gz" or "").
func Deb(compression string, entries ...Entry) []byte {
	var data bytes.Buffer
	tw := tar.NewWriter(&data)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: cmp.Or(e.Mode, 0o644), Size: int64(len(e.Body)), Typeflag: tar.TypeReg}
		switch {
		case e.Dir:
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		case e.Link != "" && e.Hard:
			h.Typeflag, h.Linkname, h.Size = tar.TypeLink, e.Link, 0
		case e.Link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.Link, 0
		}
		must(tw.WriteHeader(h))
		if h.Typeflag == tar.TypeReg {
			must2(tw.Write(e.Body))
		}
	}
	must(tw.Close())
	var control bytes.Buffer
	cw := tar.NewWriter(&control)
	must(cw.Close())

	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	member := func(name string, body []byte) {
		fmt.Fprintf(&ar, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", name, 0, 0, 0, "100644", len(body))
		ar.Write(body)
		if len(body)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	member("debian-binary", []byte("2.0\n"))
	member("control.tar.gz", Compress(control.Bytes(), ".gz"))
	member("data.tar"+compression, Compress(data.Bytes(), compression))
	return ar.Bytes()
}

// Package is one package of a fabricated archive.
type Package struct {
	Name, Version, Depends string
	Deb                    []byte
	// Fields are more lines of its index stanza ("Provides: fuse",
	// "Pre-Depends: libc6", "Essential: yes"), one per line.
	Fields string
}

// Suite is one suite of a fabricated archive.
type Suite struct {
	Name     string
	Packages []Package
	// Compression of the Packages index listed in InRelease: ".xz" (the
	// default) or ".gz".
	Compression string
	// ReleaseSuite and Codename are the Suite and Codename fields of
	// InRelease: "" is Name for the suite, none for the codename.
	ReleaseSuite, Codename string
	// ValidUntil, when not zero, is InRelease's Valid-Until.
	ValidUntil time.Time
	// PackagesFile, when set, is the Packages index served (already
	// compressed as Compression says) and listed in InRelease, instead
	// of one made from Packages.
	PackagesFile []byte
}

// Server serves a fabricated archive: suites whose names end in
// "-security" below /debian-security, the others below /debian.
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	files    map[string][]byte
	requests []string
	served   []Served
	cuts     map[string]int64
	ranges   RangeMode
}

// Served is one answer the server gave.
type Served struct {
	Path    string
	Range   string // the request's Range header
	IfRange string // the request's If-Range header
	Status  int
	Bytes   int64 // body bytes written
}

// RangeMode says how the server answers requests for part of a file.
type RangeMode int

const (
	// RangesHonoured answers as HTTP says: 206 with the part, 200 when
	// If-Range does not match, 416 when the range is past the end.
	RangesHonoured RangeMode = iota
	// RangesIgnored answers every request with the whole file (200), as
	// servers without range support do.
	RangesIgnored
	// RangesRefused answers every request carrying Range with 416.
	RangesRefused
)

// modTime is the Last-Modified date of every file served.
var modTime = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// ETag is the entity tag the server sends with body.
func ETag(body []byte) string {
	sum := sha256.Sum256(body)
	return fmt.Sprintf(`"%x"`, sum[:8])
}

// Serve starts a server for suites; it is closed when the test ends.
func Serve(t testing.TB, suites ...Suite) *Server {
	s := New(suites...)
	t.Cleanup(s.Close)
	return s
}

// New starts a server for suites on the loopback interface, outside a
// test (the fakemirror command); the caller closes it.
func New(suites ...Suite) *Server {
	s := &Server{files: map[string][]byte{}}
	for _, suite := range suites {
		s.addSuite(suite)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Mirror is the base URI of the main archive; the security archive is
// Mirror + "-security".
func (s *Server) Mirror() string { return s.URL + "/debian" }

func archiveFor(suite string) string {
	if strings.HasSuffix(suite, "-security") {
		return "/debian-security"
	}
	return "/debian"
}

// PoolPath is where the server serves a package's .deb.
func PoolPath(suite string, p Package) string {
	return archiveFor(suite) + "/pool/main/" + p.Name + "_" + p.Version + "_amd64.deb"
}

func (s *Server) addSuite(suite Suite) {
	base := archiveFor(suite.Name)
	var index bytes.Buffer
	for _, p := range suite.Packages {
		path := PoolPath(suite.Name, p)
		sum := sha256.Sum256(p.Deb)
		fmt.Fprintf(&index, "Package: %s\nVersion: %s\nArchitecture: amd64\n", p.Name, p.Version)
		if p.Depends != "" {
			fmt.Fprintf(&index, "Depends: %s\n", p.Depends)
		}
		if p.Fields != "" {
			fmt.Fprintf(&index, "%s\n", strings.TrimRight(p.Fields, "\n"))
		}
		fmt.Fprintf(&index, "Description: fabricated\n multi-line description\n .\n end\n")
		fmt.Fprintf(&index, "Filename: %s\nSize: %d\nSHA256: %x\n\n", strings.TrimPrefix(path, base+"/"), len(p.Deb), sum)
		s.files[path] = p.Deb
	}
	compression := suite.Compression
	if compression == "" {
		compression = ".xz"
	}
	packages := suite.PackagesFile
	if packages == nil {
		packages = Compress(index.Bytes(), compression)
	}
	dists := base + "/dists/" + suite.Name + "/"
	s.files[dists+"main/binary-amd64/Packages"+compression] = packages
	sum := sha256.Sum256(packages)
	var header strings.Builder
	fmt.Fprintf(&header, "Suite: %s\n", cmp.Or(suite.ReleaseSuite, suite.Name))
	if suite.Codename != "" {
		fmt.Fprintf(&header, "Codename: %s\n", suite.Codename)
	}
	fmt.Fprintf(&header, "Date: %s\n", modTime.Format(time.RFC1123))
	if !suite.ValidUntil.IsZero() {
		fmt.Fprintf(&header, "Valid-Until: %s\n", suite.ValidUntil.UTC().Format(time.RFC1123))
	}
	s.files[dists+"InRelease"] = Clearsign(Key(), fmt.Appendf(nil, `Origin: Debian
%sArchitectures: amd64
Components: main
MD5Sum:
 00000000000000000000000000000000 %d main/binary-amd64/Packages%s
SHA256:
 %s %d main/binary-amd64/Packages%s
 %s 0 main/binary-arm64/Packages%s
`, header.String(), len(packages), compression,
		hex.EncodeToString(sum[:]), len(packages), compression,
		strings.Repeat("0", 64), compression))
}

var (
	keyOnce sync.Once
	key     *openpgp.Entity
)

// Key is the key fabricated archives sign their InRelease files with,
// made once per test binary.
func Key() *openpgp.Entity {
	keyOnce.Do(func() { key = NewKey("fakearchive") })
	return key
}

// NewKey makes an OpenPGP signing key; Ed25519 keeps it fast.
func NewKey(name string) *openpgp.Entity {
	e, err := openpgp.NewEntity(name, "", name+"@fakearchive.invalid", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	must(err)
	return e
}

// Clearsign returns text clear-signed by e, as Debian's InRelease files
// are.
func Clearsign(e *openpgp.Entity, text []byte) []byte {
	var buf bytes.Buffer
	w, err := clearsign.Encode(&buf, e.PrivateKey, nil)
	must(err)
	must2(w.Write(text))
	must(w.Close())
	return buf.Bytes()
}

// Keyring writes the public part of keys to a binary keyring file in a
// temporary directory of t and returns its path.
func Keyring(t testing.TB, keys ...*openpgp.Entity) string {
	path := filepath.Join(t.TempDir(), "keyring.gpg")
	WriteKeyring(path, keys...)
	return path
}

// WriteKeyring writes the public keys to path as a binary keyring.
func WriteKeyring(path string, keys ...*openpgp.Entity) {
	var buf bytes.Buffer
	for _, e := range keys {
		must(e.Serialize(&buf))
	}
	must(os.WriteFile(path, buf.Bytes(), 0o644))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.URL.Path)
	body, ok := s.files[r.URL.Path]
	cut, cutting := s.cuts[r.URL.Path]
	delete(s.cuts, r.URL.Path)
	ranges := s.ranges
	// The answer is recorded before it is sent, and its bytes counted
	// before they are written, so that a client that received them finds
	// them in Served.
	s.served = append(s.served, Served{Path: r.URL.Path, Range: r.Header.Get("Range"), IfRange: r.Header.Get("If-Range")})
	cw := &countingWriter{ResponseWriter: w, s: s, i: len(s.served) - 1, limit: -1}
	s.mu.Unlock()
	if cutting {
		cw.limit = cut
		// Drop the connection with the body unfinished.
		defer panic(http.ErrAbortHandler)
	}
	switch {
	case !ok:
		http.NotFound(cw, r)
	case ranges == RangesRefused && r.Header.Get("Range") != "":
		cw.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
	case ranges == RangesIgnored:
		cw.Header().Set("Content-Length", fmt.Sprint(len(body)))
		cw.Write(body)
	default:
		cw.Header().Set("ETag", ETag(body))
		http.ServeContent(cw, r, path.Base(r.URL.Path), modTime, bytes.NewReader(body))
	}
}

// countingWriter records an answer's status and body bytes in s.served[i],
// and fails writes past limit when limit is not negative.
type countingWriter struct {
	http.ResponseWriter
	s      *Server
	i      int
	status bool
	n      int64
	limit  int64
}

func (c *countingWriter) update(f func(*Served)) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	f(&c.s.served[c.i])
}

func (c *countingWriter) WriteHeader(code int) {
	if !c.status {
		c.status = true
		c.update(func(s *Served) { s.Status = code })
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if !c.status {
		c.WriteHeader(http.StatusOK)
	}
	cut := false
	if c.limit >= 0 && c.n+int64(len(b)) > c.limit {
		b, cut = b[:c.limit-c.n], true
	}
	c.update(func(s *Served) { s.Bytes += int64(len(b)) })
	n, err := c.ResponseWriter.Write(b)
	if n < len(b) {
		c.update(func(s *Served) { s.Bytes -= int64(len(b) - n) })
	}
	c.n += int64(n)
	if err == nil && cut {
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		err = errors.New("fakearchive: connection cut")
	}
	return n, err
}

// Cut makes the next answer for path end after n body bytes, as a dropped
// connection does.
func (s *Server) Cut(path string, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cuts == nil {
		s.cuts = map[string]int64{}
	}
	s.cuts[path] = n
}

// SetRanges sets how the server answers Range requests from now on.
func (s *Server) SetRanges(m RangeMode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ranges = m
}

// Served returns the answers given so far, in order.
func (s *Server) Served() []Served {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.served)
}

// Replace changes what the server answers for path, leaving the indexes
// as they are (to serve a package that does not match its checksum).
func (s *Server) Replace(path string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = body
}

// Requests returns the paths requested so far, in order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}
