package kernels

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// CacheKey names what the kernel's cache entry is made of, for caches
// kept outside fusematrix, such as a CI job's cache keyed per kernel: two
// resolutions get the same key exactly when they unpack the same package
// versions, so a selector that now resolves to a newer build misses the
// old entry instead of restoring a cache that lacks it. The key starts
// with the image package and version, to be readable in a list of
// caches, and ends with a hash of every part's name and version, since
// both the readable part's truncation and its character mapping lose
// information. Only [A-Za-z0-9._-] occur in it: keys travel through YAML,
// shells and file names.
func (r *Resolution) CacheKey() string {
	parts := make([]string, len(r.Parts))
	for i, p := range r.Parts {
		parts[i] = p.Name + "=" + p.Version
	}
	// The order parts are found in is not what makes them the same.
	slices.Sort(parts)
	sum := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	readable := KeySafe(r.Image.Name + "_" + r.Image.Version)
	if len(readable) > maxReadableKey {
		readable = readable[:maxReadableKey]
	}
	return readable + "_" + hex.EncodeToString(sum[:8])
}

// maxReadableKey bounds the readable part of a cache key; GitHub's cache
// keys, for one, may not exceed 512 characters.
const maxReadableKey = 120

// KeySafe replaces every character outside [A-Za-z0-9._-] with "-", for
// names that must be one plain word (cache keys, artifact names): Debian
// versions carry "+", "~" and ":", selectors "/" and "@".
func KeySafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, s)
}
