package debian

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
)

// SignatureCheck verifies the OpenPGP signature of a suite's InRelease file
// and returns an error when it does not come from a trusted archive key.
type SignatureCheck func(suite string, inRelease []byte) error

// SignatureNotChecked accepts every InRelease file. Everything below
// InRelease (Packages indexes, .deb files) is still verified by SHA256,
// but nothing then ties the chain to Debian's keys.
func SignatureNotChecked(suite string, inRelease []byte) error { return nil }

// FileSum is what a Release file says about one index file.
type FileSum struct {
	Size   int64
	SHA256 string
}

// Release is what a Release or InRelease file says about its suite.
type Release struct {
	// Suite and Codename name the suite ("oldstable" and "bookworm", or
	// "bookworm-backports" twice).
	Suite, Codename string
	// ValidUntil is when the file stops being valid; zero when it does
	// not say (Debian's security suites and backports do).
	ValidUntil time.Time
	// SHA256 lists the index files by path relative to the suite
	// directory (for example "main/binary-amd64/Packages.xz").
	SHA256 map[string]FileSum
}

// ParseRelease returns the SHA256 list of a Release or InRelease file
// (see ParseInRelease).
func ParseRelease(data []byte) (map[string]FileSum, error) {
	r, err := ParseInRelease(data)
	if err != nil {
		return nil, err
	}
	return r.SHA256, nil
}

// Check returns an error unless the file is for suite (its Suite or its
// Codename says so: an archive answering for one suite with another's
// file, or an old file, is a replay) and still valid at now. A file that
// names no suite at all is refused too.
func (r *Release) Check(suite string, now time.Time) error {
	if r.Suite != suite && r.Codename != suite {
		return fmt.Errorf("InRelease is for suite %q (codename %q), not %q as asked", r.Suite, r.Codename, suite)
	}
	if !r.ValidUntil.IsZero() && now.After(r.ValidUntil) {
		return fmt.Errorf("InRelease of %s has expired: Valid-Until %s, now %s",
			suite, r.ValidUntil.UTC().Format(time.RFC1123), now.UTC().Format(time.RFC1123))
	}
	return nil
}

// parseReleaseDate reads a date as Release files write it
// ("Sat, 11 Jul 2026 10:16:37 UTC").
func parseReleaseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC1123, time.RFC1123Z, "Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("date %q: want the form %q", s, time.RFC1123)
}

// ParseInRelease reads a Release or InRelease file. An InRelease file's
// clear-signed wrapping is removed first; its signature is not looked at
// here.
func ParseInRelease(data []byte) (*Release, error) {
	body := clearsignedBody(data)
	r := &Release{}
	sums := map[string]FileSum{}
	inSHA256 := false
	sc := bufio.NewScanner(bytes.NewReader(body))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || line[0] != ' ' && line[0] != '\t' {
			inSHA256 = strings.HasPrefix(line, "SHA256:")
			key, value, _ := strings.Cut(line, ":")
			value = strings.TrimSpace(value)
			switch key {
			case "Suite":
				r.Suite = value
			case "Codename":
				r.Codename = value
			case "Valid-Until":
				t, err := parseReleaseDate(value)
				if err != nil {
					return nil, fmt.Errorf("release line %d: Valid-Until: %w", n, err)
				}
				r.ValidUntil = t
			}
			continue
		}
		if !inSHA256 {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("release line %d: want %q", n, "sha256 size path")
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("release line %d: size: %w", n, err)
		}
		if size < 0 {
			return nil, fmt.Errorf("release line %d: size: negative", n)
		}
		sums[f[2]] = FileSum{Size: size, SHA256: strings.ToLower(f[0])}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(sums) == 0 {
		return nil, fmt.Errorf("release file has no SHA256 list")
	}
	r.SHA256 = sums
	return r, nil
}

// clearsignedBody returns the signed text of an OpenPGP clear-signed message
// (RFC 4880 section 7), or data itself when it is not one.
//
// It decodes the message the way KeyringCheck does, so that the text parsed
// is the text whose signature was checked; the hand-written reading below
// only serves messages that do not decode, which no check accepts.
func clearsignedBody(data []byte) []byte {
	if block, _ := clearsign.Decode(data); block != nil {
		return append(block.Plaintext, '\n')
	}
	const begin = "-----BEGIN PGP SIGNED MESSAGE-----"
	if !bytes.HasPrefix(bytes.TrimLeft(data, "\r\n"), []byte(begin)) {
		return data
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	state := 0 // 0: before the armor headers end, 1: body
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case state == 0:
			if line == "" {
				state = 1
			}
		case strings.HasPrefix(line, "-----BEGIN PGP SIGNATURE-----"):
			return out.Bytes()
		default:
			out.WriteString(strings.TrimPrefix(line, "- "))
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}
