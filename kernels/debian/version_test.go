package debian

import (
	"testing"

	"gotest.tools/v3/assert"
)

// versionCases are pairs of versions with the sign of CompareVersions
// (also fuzzing seeds).
var versionCases = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0},
	{"1.0", "1.1", -1},
	{"1.2.10", "1.2.9", 1},
	{"10", "9", 1},
	{"1.0-1", "1.0-2", -1},
	{"1.0-1", "1.0-01", 0},
	{"1.0", "1.0-0", 0},     // a missing revision is "0"
	{"0:1.0", "1.0", 0},     // a missing epoch is 0
	{"1:0.1", "9.9", 1},     // the epoch wins over everything
	{"2:1.0", "10:0.1", -1}, // epochs compare as numbers
	{"1.0~rc1", "1.0", -1},  // '~' sorts before the end of the string
	{"1.0~~", "1.0~", -1},
	{"1.0~~a", "1.0~", -1},
	{"1.0~", "1.0", -1},
	{"1.0a", "1.0", 1},   // letters sort after the end
	{"1.0a", "1.0+", -1}, // and before other characters
	{"1.0+b1", "1.0", 1},
	{"1.0-1.1", "1.0-1", 1},
	{"1.0-a", "1.0-b", -1},
	{"001.0", "1.0", 0},
	{"1-2-3", "1-2-4", -1}, // the revision starts after the last '-'
	{"1-2-3", "1-3", 1},    // upstream "1-2" is longer than "1"
	// Kernel versions met in the archive.
	{"6.1.176-1", "6.1.192-2", -1},
	{"6.12.117-1~deb12u1", "6.12.95-1~bpo12+1", 1},
	{"6.12.117-1~deb12u1", "6.12.117-1", -1},
	{"6.12.117-1~bpo12+1", "6.12.117-1~deb12u1", -1},
	{"7.3.4-1~bpo13+1", "7.3.4-1", -1},
}

func TestCompareVersions(t *testing.T) {
	// want is the sign of CompareVersions(a, b); each case is also checked
	// the other way round.
	for _, tc := range versionCases {
		got := sign(CompareVersions(tc.a, tc.b))
		assert.Check(t, got == tc.want, "CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		back := sign(CompareVersions(tc.b, tc.a))
		assert.Check(t, back == -tc.want, "CompareVersions(%q, %q) = %d, want %d", tc.b, tc.a, back, -tc.want)
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
