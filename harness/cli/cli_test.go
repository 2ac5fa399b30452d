package cli

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/harness"
	"github.com/fusematrix/fusematrix/kernels"
)

// Every -append reaches the guest: a second one adds to the first, in
// the boot flags and a bisection step's alike.
func TestAppend(t *testing.T) {
	for _, register := range map[string]func(*flag.FlagSet, *harness.Options){
		"boot": func(fs *flag.FlagSet, o *harness.Options) { BootFlags(fs, o, "out") },
		"step": func(fs *flag.FlagSet, o *harness.Options) { StepFlags(fs, o) },
	} {
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{name: "none", want: ""},
			{name: "one", args: []string{"-append", "fuse.x=1"}, want: "fuse.x=1"},
			{name: "two", args: []string{"-append", "fuse.x=1", "-append", "GOGC=off quiet"}, want: "fuse.x=1 GOGC=off quiet"},
			{name: "empty ones add nothing", args: []string{"-append", "", "-append", "a=b"}, want: "a=b"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				fs := flag.NewFlagSet("test", flag.ContinueOnError)
				var o harness.Options
				register(fs, &o)
				assert.NilError(t, fs.Parse(tc.args))
				assert.Equal(t, o.Append, tc.want)
			})
		}
	}
}

// -matrix and -catalog select a matrix of the catalog given, or the
// kernels named instead, and leave that catalog in the options.
func TestSelect(t *testing.T) {
	catalog := filepath.Join(t.TempDir(), "my.conf")
	assert.NilError(t, os.WriteFile(catalog, []byte("mine = ./bzImage\n[local]\nmine\n"), 0o644))
	t.Setenv(kernels.CatalogEnv, "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, tc := range []struct {
		name    string
		args    []string
		want    []string
		source  string
		wantErr string
	}{
		{name: "a matrix", args: []string{"-catalog", catalog, "-matrix", "local"}, want: []string{"mine"}, source: "matrix local from " + catalog},
		{name: "names replace it", args: []string{"-catalog", catalog, "-matrix", "local", "mine", "./other"}, want: []string{"mine", "./other"}},
		{name: "no such matrix", args: []string{"-catalog", catalog, "-matrix", "nosuch"}, wantErr: `no kernel matrix "nosuch"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			k := MatrixFlags(fs)
			assert.NilError(t, fs.Parse(tc.args))
			var o kernels.Options
			names, source, err := k.Select(fs.Args(), &o)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, names, tc.want)
			assert.Check(t, is.Equal(source, tc.source))
			assert.Check(t, o.Catalog != nil)
		})
	}
}

func TestIsSet(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	SourceFlags(fs, &kernels.Options{})
	assert.NilError(t, fs.Parse([]string{"-q"}))
	assert.Check(t, IsSet(fs, "q"))
	assert.Check(t, !IsSet(fs, "mirror"), "a flag left at its default is not set")
}

// Every command that fetches kernels takes -insecure-unsigned, and only
// that flag turns off the need for a keyring (what a missing keyring does
// then: fusematrix TestInsecureUnsignedFlag).
func TestInsecureUnsignedFlag(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var o harness.Options
	BootFlags(fs, &o, "out")
	assert.NilError(t, fs.Parse(nil))
	assert.Check(t, !o.Kernel.InsecureUnsigned)
	assert.NilError(t, fs.Parse([]string{"-insecure-unsigned"}))
	assert.Check(t, o.Kernel.InsecureUnsigned)

	_, ko, _, err := SelectKernels(flag.NewFlagSet("kernels list", flag.ContinueOnError), []string{"-insecure-unsigned", "debian:6.1"})
	assert.NilError(t, err)
	assert.Check(t, ko.InsecureUnsigned)
}
