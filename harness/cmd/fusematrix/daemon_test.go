package main

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "{mnt}", want: []string{"{mnt}"}},
		{in: "  -f  -o ro {mnt}\t{backing} ", want: []string{"-f", "-o", "ro", "{mnt}", "{backing}"}},
		{in: `-o 'source={backing},name=a b' "{mnt}"`, want: []string{"-o", "source={backing},name=a b", "{mnt}"}},
		{in: `a\ b "c\"d" 'e\f' ''`, want: []string{"a b", `c"d`, `e\f`, ""}},
		{in: "", want: nil},
		{in: `'open`, err: true},
		{in: `end\`, err: true},
	} {
		got, err := splitArgs(tc.in)
		if tc.err {
			assert.Check(t, err != nil, "%q", tc.in)
			continue
		}
		assert.Check(t, err, "%q", tc.in)
		assert.DeepEqual(t, got, tc.want)
	}
}
