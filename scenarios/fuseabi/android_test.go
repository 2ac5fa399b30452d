package fuseabi

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestABI(t *testing.T) {
	const initExt = InitExt
	for _, tc := range []struct {
		name  string
		flags uint64
		minor uint32
		want  string
	}{
		{name: "upstream", flags: initExt | Passthrough, minor: 40, want: ABIUpstream},
		{name: "upstream wins over an android bit", flags: initExt | Passthrough | AndroidPassthroughNew, minor: 40, want: ABIUpstream},
		{name: "android old: bit 31 before 7.36", flags: AndroidPassthroughOld | 1, minor: 32, want: ABIAndroid},
		{name: "android old at the last minor before the move", flags: AndroidPassthroughOld, minor: 35, want: ABIAndroid},
		{name: "android new: bit 63 from 7.36", flags: initExt | AndroidPassthroughNew, minor: 36, want: ABIAndroid},
		{name: "android new on a later protocol", flags: initExt | AndroidPassthroughNew, minor: 38, want: ABIAndroid},
		// From 7.36 bit 31 is FUSE_INIT_RESERVED: set, it is an unexplained
		// bit, not Android's flag, which had moved to bit 63 by then.
		{name: "bit 31 from 7.36 is not android", flags: initExt | AndroidPassthroughOld, minor: 36, want: ""},
		// Before 7.36 there is no flags2, so bit 63 cannot be Android's.
		{name: "bit 63 before 7.36 is not android", flags: AndroidPassthroughNew, minor: 35, want: ""},
		{name: "neither", flags: initExt | 1<<36, minor: 38, want: ""},
		{name: "nothing", flags: 0, minor: 31, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, ABI(tc.flags, tc.minor), tc.want)
		})
	}
}
