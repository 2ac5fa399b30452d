package debian

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/fusematrix/fusematrix/kernels/internal/fakearchive"
)

// Fuzz targets for what the archive sends: the Packages index, InRelease,
// and the version order kernels are chosen by. Run one with
//
//	go test -run '^$' -fuzz '^FuzzParsePackages$' -fuzztime 10s ./kernels/debian/
//
// A plain `go test` runs each on its seed corpus.

// heapAllocated returns the bytes f allocated on the heap.
func heapAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// allocBound is what parsing n bytes may allocate: a fixed part (the
// parser's 256 KiB read buffer) and a small multiple of the input.
func allocBound(n int) uint64 { return 2<<20 + 16*uint64(n) }

// FuzzParsePackages: no input panics, allocation stays in proportion to
// the input, and every entry returned is whole and within the limits.
func FuzzParsePackages(f *testing.F) {
	f.Add([]byte(testIndex))
	f.Add([]byte("Package: a\nDescription: " + strings.Repeat("x", 300<<10) + "\nVersion: 1\n"))
	f.Add([]byte("Version: 1\n\n"))
	f.Add([]byte("Package: a\nSize: x\n"))
	f.Add([]byte("Package: a\nnonsense\n"))
	f.Add([]byte("Package: a\nDepends: b,\n c\n\t| d\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var (
			pkgs []Package
			err  error
		)
		n := heapAllocated(func() { pkgs, err = ParsePackages(bytes.NewReader(data), nil) })
		if n > allocBound(len(data)) {
			t.Errorf("parsing %d bytes allocated %d", len(data), n)
		}
		if err != nil {
			return
		}
		if len(pkgs) > bytes.Count(data, []byte("\n"))+1 {
			t.Errorf("%d entries from %d lines", len(pkgs), bytes.Count(data, []byte("\n"))+1)
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Size < 0 || len(p.Depends) > MaxLine {
				t.Errorf("bad entry %+v", p)
			}
			p.DependsOn()
		}
		kept, err := ParsePackages(bytes.NewReader(data), func(name string) bool { return strings.HasPrefix(name, "linux-") })
		if err != nil {
			t.Fatalf("parsed whole, but not when filtered: %v", err)
		}
		if len(kept) > len(pkgs) {
			t.Errorf("the filter kept %d of %d", len(kept), len(pkgs))
		}
	})
}

// FuzzParseInRelease: no input panics, allocation stays in proportion to
// the input, and a file that parses lists files with sizes.
func FuzzParseInRelease(f *testing.F) {
	f.Add([]byte(testRelease))
	f.Add(fakearchive.Clearsign(fakearchive.Key(), []byte(testRelease)))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n- Origin: Debian\nSHA256:\n 00 1 x\n-----BEGIN PGP SIGNATURE-----\n\nxyz\n-----END PGP SIGNATURE-----\n"))
	f.Add([]byte("Suite: oldstable-security\nCodename: bookworm-security\nValid-Until: Wed, 09 Dec 2026 23:13:43 UTC\nSHA256:\n 00 1 x\n"))
	f.Add([]byte("SHA256:\n 00 big x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var (
			r   *Release
			err error
		)
		n := heapAllocated(func() { r, err = ParseInRelease(data) })
		if n > allocBound(len(data)) {
			t.Errorf("parsing %d bytes allocated %d", len(data), n)
		}
		if err != nil {
			return
		}
		if len(r.SHA256) == 0 {
			t.Error("parsed without a SHA256 list")
		}
		for path, sum := range r.SHA256 {
			if sum.Size < 0 || path == "" {
				t.Errorf("bad entry %q %+v", path, sum)
			}
		}
		r.Check("bookworm", r.ValidUntil)
	})
}

// FuzzCompareVersions: CompareVersions is a total preorder on any
// strings: reflexive, antisymmetric, transitive, equal versions compare
// alike, and it never panics.
func FuzzCompareVersions(f *testing.F) {
	for i, tc := range versionCases {
		f.Add(tc.a, tc.b, versionCases[(i+1)%len(versionCases)].a)
	}
	f.Add("1:2.0~rc1-1", "2.0-1", "1:2.0")
	f.Add("a:b", ":-", "~~")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		for _, v := range []string{a, b, c} {
			if got := CompareVersions(v, v); got != 0 {
				t.Fatalf("CompareVersions(%q, %q) = %d", v, v, got)
			}
		}
		ab, ba := sign(CompareVersions(a, b)), sign(CompareVersions(b, a))
		bc, ac := sign(CompareVersions(b, c)), sign(CompareVersions(a, c))
		if ab != -ba {
			t.Fatalf("not antisymmetric: %q vs %q is %d, the other way %d", a, b, ab, ba)
		}
		// a <= b and b <= c imply a <= c, and a >= b, b >= c imply a >= c.
		if ab <= 0 && bc <= 0 && ac > 0 {
			t.Fatalf("not transitive: %q <= %q <= %q but %q > %q", a, b, c, a, c)
		}
		if ab >= 0 && bc >= 0 && ac < 0 {
			t.Fatalf("not transitive: %q >= %q >= %q but %q < %q", a, b, c, a, c)
		}
		if ab == 0 && bc == 0 && ac != 0 {
			t.Fatalf("equality not transitive: %q = %q = %q but %q vs %q is %d", a, b, c, a, c, ac)
		}
	})
}
