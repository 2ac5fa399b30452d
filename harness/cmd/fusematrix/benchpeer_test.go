package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestBenchPeer(t *testing.T) {
	dir := t.TempDir()
	built := filepath.Join(dir, "fusematrix-nullfs")
	assert.NilError(t, os.WriteFile(built, nil, 0o755))
	absent := filepath.Join(dir, "absent")
	for _, tc := range []struct {
		name string
		args []string // after the default is set to def
		def  string
		src  string
		want string
		err  string
	}{
		{name: "default built", def: built, want: built},
		{name: "default in the source checkout", def: "fusematrix-nullfs", src: dir, want: built},
		{name: "default not in the source checkout", def: "fusematrix-nullfs", src: t.TempDir(), want: ""},
		{name: "default absent", def: absent, want: ""},
		{name: "named", def: absent, args: []string{"-peer", built}, want: built},
		{name: "named absent", def: built, args: []string{"-peer", absent}, err: "-peer"},
		{name: "none", def: built, args: []string{"-peer", ""}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("bench", flag.ContinueOnError)
			peer := fs.String("peer", tc.def, "")
			assert.NilError(t, fs.Parse(tc.args))
			got, err := benchPeer(fs, *peer, tc.src, true)
			if tc.err != "" {
				assert.Check(t, is.ErrorContains(err, tc.err))
				return
			}
			assert.NilError(t, err)
			assert.Check(t, is.Equal(got, tc.want))
		})
	}
}
