package main

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
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

// -list prints what a selection runs, a daemon's checks under its prefix,
// and boots nothing; a pattern that selects nothing is a usage error.
func TestList(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		want, not []string
	}{
		{"matrix", []string{"matrix", "-list"}, []string{"fuse-init ", "pt/integrity "}, []string{"bench/"}},
		{"bench", []string{"bench", "-list", "-run", "^bench/read/.*/4096$"}, []string{"fuse-init ", "bench/read/noop/4096 ", "bench/read/native/4096 "},
			[]string{"pt/integrity", "131072", "write"}},
		{"bench with a daemon", []string{"bench", "-list", "-daemon", "/bin/true", "-daemon-name", "t"},
			[]string{"bench/read/noop/4096 ", "daemon/t/bench/read/4096 ", "daemon/t/bench/write/1048576 "}, []string{"daemon/t/pt/"}},
		{"matrix with a daemon", []string{"matrix", "-list", "-daemon", "/bin/true", "-daemon-name", "t", "-run", "^pt/integrity$"},
			[]string{"pt/integrity ", "daemon/t/pt/integrity "}, []string{"bench", "daemon/t/passthrough"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := fusematrixStreams(t, append(tc.args, "-qemu", "/nonexistent/qemu")...)
			assert.Equal(t, code, 0, stderr)
			for _, w := range tc.want {
				assert.Check(t, is.Contains(stdout, w))
			}
			for _, n := range tc.not {
				assert.Check(t, !strings.Contains(stdout, n), "%q in\n%s", n, stdout)
			}
		})
	}
	code, _, stderr := fusematrixStreams(t, "matrix", "-list", "-run", "^nothing$")
	assert.Equal(t, code, 2)
	assert.Check(t, is.Contains(stderr, `scenario pattern "^nothing$" matches no check`))
}
