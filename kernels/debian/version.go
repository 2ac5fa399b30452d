package debian

import "strings"

// CompareVersions orders two Debian package versions the way dpkg does
// (lib/dpkg/version.c: dpkg_version_compare): it returns a negative number
// when a sorts before b, zero when they are equal and a positive number
// otherwise. A version is [epoch:]upstream[-revision]; a missing epoch is 0
// and a missing revision sorts like "0". Strings that are not valid versions
// are still ordered, so a bad index entry cannot make selection fail.
func CompareVersions(a, b string) int {
	ea, ua, ra := splitVersion(a)
	eb, ub, rb := splitVersion(b)
	if c := compareEpoch(ea, eb); c != 0 {
		return c
	}
	if c := compareFragment(ua, ub); c != 0 {
		return c
	}
	return compareFragment(ra, rb)
}

func splitVersion(v string) (epoch, upstream, revision string) {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, ':'); i >= 0 {
		epoch, v = v[:i], v[i+1:]
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

// compareEpoch compares two runs of digits numerically without converting
// them, so an absurdly long epoch cannot overflow.
func compareEpoch(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// compareFragment is dpkg's verrevcmp: alternate non-digit runs (compared
// character by character with letters before other characters and '~' before
// everything, even the end of the string) and digit runs (compared as
// numbers).
func compareFragment(a, b string) int {
	for a != "" || b != "" {
		for (a != "" && !isDigit(a[0])) || (b != "" && !isDigit(b[0])) {
			ac, bc := charOrder(a), charOrder(b)
			if ac != bc {
				return ac - bc
			}
			a, b = a[1:], b[1:]
		}
		a = strings.TrimLeft(a, "0")
		b = strings.TrimLeft(b, "0")
		firstDiff := 0
		for a != "" && b != "" && isDigit(a[0]) && isDigit(b[0]) {
			if firstDiff == 0 {
				firstDiff = int(a[0]) - int(b[0])
			}
			a, b = a[1:], b[1:]
		}
		if a != "" && isDigit(a[0]) {
			return 1
		}
		if b != "" && isDigit(b[0]) {
			return -1
		}
		if firstDiff != 0 {
			return firstDiff
		}
	}
	return 0
}

// charOrder is dpkg's order(): the weight of the first character of s, where
// the end of the string and digits weigh 0.
func charOrder(s string) int {
	if s == "" {
		return 0
	}
	c := s[0]
	switch {
	case isDigit(c):
		return 0
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return int(c)
	case c == '~':
		return -1
	default:
		return int(c) + 256
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
