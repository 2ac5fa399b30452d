package agent

import (
	"flag"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
)

func TestFromCmdline(t *testing.T) {
	defaults := Config{
		Params:    contract.Params{Port: contract.PortName, BenchMiB: scenarios.DefaultBenchBytes >> 20},
		BlockSize: scenarios.DefaultBlockSize,
		PortWait:  5 * time.Second,
		Modules:   contract.ModuleList,
	}
	with := func(f func(c *Config)) Config {
		c := defaults
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name    string
		cmdline string
		want    Config
		wantErr string
	}{
		{name: "host", cmdline: "console=ttyS0 quiet panic=1", want: defaults},
		{
			name:    "guest",
			cmdline: "console=ttyS0 fusematrix.run=^passthrough fusematrix.bench_mib=64 fusematrix.port=fm.1 fusematrix.count=5 fusematrix.bench_runs=3 fusematrix.profile=1 panic=-1",
			want: with(func(c *Config) {
				c.Run, c.BenchMiB, c.Port, c.PowerOff, c.Count, c.BenchRuns, c.Profile = "^passthrough", 64, "fm.1", true, 5, 3, true
			}),
		},
		{
			name:    "bad values keep defaults",
			cmdline: "fusematrix.bench_mib=lots fusematrix.count=0 fusematrix.bench_runs=0 fusematrix.profile=yes fusematrix.colour=red",
			want:    with(func(c *Config) { c.PowerOff = true }),
			wantErr: `kernel command line: fusematrix.bench_mib="lots" is not a size in MiB` + "\n" +
				`kernel command line: fusematrix.count="0" is not a count from 1 to 1000` + "\n" +
				`kernel command line: fusematrix.bench_runs="0" is not a run count from 1 to 1000` + "\n" +
				`kernel command line: fusematrix.profile="yes" is not a boolean` + "\n" +
				"kernel command line: unknown key fusematrix.colour",
		},
		{name: "init arguments ignored", cmdline: "quiet -- fusematrix.run=x", want: defaults},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromCmdline(tc.cmdline)
			if tc.wantErr == "" {
				assert.NilError(t, err)
			} else {
				assert.Error(t, err, tc.wantErr)
			}
			assert.DeepEqual(t, got, tc.want, cmpopts.IgnoreUnexported(Config{}))
		})
	}
}

func TestFlagsOverrideCmdline(t *testing.T) {
	c, err := FromCmdline("fusematrix.run=seq fusematrix.bench_mib=64")
	assert.NilError(t, err)
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	c.RegisterFlags(fs)
	assert.NilError(t, fs.Parse([]string{"-run", "passthrough", "-out", "-", "-poweroff=false"}))
	assert.Check(t, is.Equal(c.Run, "passthrough"))
	assert.Check(t, is.Equal(c.BenchMiB, 64), "an unset flag kept the command line's value")
	assert.Check(t, is.Equal(c.Out, "-"))
	assert.Check(t, !c.PowerOff)

	assert.NilError(t, fs.Parse([]string{"-bench-mib", "3"}))
	assert.Check(t, is.Equal(c.BenchMiB, 3))
	assert.Check(t, fs.Parse([]string{"-bench-mib", "0"}) != nil)
}
