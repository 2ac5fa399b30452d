package predicate

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		text string
		form Form
		id   contract.ID
		key  string
		op   Op
		val  string
	}{
		{"pt/integrity=fail", Status, contract.PtIntegrity, "", Eq, "fail"},
		{"passthrough-read != pass", Status, contract.PassthroughRead, "", Ne, "pass"},
		{"passthrough-ioctl.o_path=ok", Fact, contract.PassthroughIoctl, "o_path", Eq, "ok"},
		{"fuse-init.protocol>=7.41", Fact, contract.FuseInit, "protocol", Ge, "7.41"},
		{"fuse-init.fuse_minor<41", Fact, contract.FuseInit, "fuse_minor", Lt, "41"},
		{"fuse-init.flag.passthrough=offered", Fact, contract.FuseInit, "flag.passthrough", Eq, "offered"},
		{"fuse-features.param.max_user_bgreq>10", Fact, contract.FuseFeatures, "param.max_user_bgreq", Gt, "10"},
		{"expect/passthrough-works=fail", Status, contract.ExpectPassthroughWorks, "", Eq, "fail"},
		{"requests.readdirplus_size>4096", Fact, contract.Requests, "readdirplus_size", Gt, "4096"},
		{"classic/kill-mid-request.held_read=ENOTCONN", Fact, contract.ClassicKilled, "held_read", Eq, "ENOTCONN"},
		{"requests.write_4k_passthrough.opcodes=GETXATTR:4", Fact, contract.Requests, "write_4k_passthrough.opcodes", Eq, "GETXATTR:4"},
		{"requests.reply.max_pages<32", Fact, contract.Requests, "reply.max_pages", Lt, "32"},
		{"bench/read/passthrough/131072:ratio_native<0.8", Metric, "bench/read/passthrough/131072", "ratio_native", Lt, "0.8"},
		{"bench/write/noop/4096:mbps_median<=12.5", Metric, "bench/write/noop/4096", "mbps_median", Le, "12.5"},
		{"bench/read/noop/4096:ratio_libfuse_noop_min>0.5", Metric, "bench/read/noop/4096", "ratio_libfuse_noop_min", Gt, "0.5"},
		{"bench/write/passthrough-noxattr/1048576:ratio_passthrough<1", Metric, "bench/write/passthrough-noxattr/1048576", "ratio_passthrough", Lt, "1"},
		{"seq-read:passthrough_ratio<0.9", Metric, contract.SeqRead, "passthrough_ratio", Lt, "0.9"},
		{"bench/read/noop/4096:ratio_native>-1e-3", Metric, "bench/read/noop/4096", "ratio_native", Gt, "-1e-3"},
	} {
		t.Run(tc.text, func(t *testing.T) {
			p, err := Parse(tc.text)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(p.Form, tc.form))
			assert.Check(t, is.Equal(p.ID, tc.id))
			assert.Check(t, is.Equal(p.Key, tc.key))
			assert.Check(t, is.Equal(p.Op, tc.op))
			assert.Check(t, is.Equal(p.Value, tc.val))
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"pt/integrity", "no comparison"},
		{"=fail", "nothing on one side"},
		{"pt/integrity=", "nothing on one side"},
		{"pt/integrty=fail", `no check has the id "pt/integrty" (fusematrix matrix -list lists them)`},
		{"pt/integrity=broken", `"broken" is not a status`},
		{"pt/integrity<fail", "a status compares only with = or !="},
		{"passthrough-ioctl.o_pth=ok", `passthrough-ioctl reports no fact "o_pth"; it reports negotiated, backing_open`},
		{"pt/fsync.read_requests=0", "pt/fsync reports no facts a predicate can use"},
		{"classic/kill-mid-request.server_stop=x", `classic/kill-mid-request reports no fact "server_stop"; it reports held_read, stat_path`},
		{"requests.write_4k.opcodes=none", `requests reports no fact "write_4k.opcodes"; it reports read_size_min`},
		{"nosuch.fact=1", `no check has the id "nosuch"`},
		{"fuse-init.protocol>=new", "needs a whole number or a dotted version"},
		{"fuse-init:protocol<1", "fuse-init is a probe: only benchmarks report metrics"},
		{"bench/read/passthrough/131072:ratio_native<fast", `"fast" is not a number`},
		{"bench/read/nosuch/131072:ratio_native<1", `no check has the id "bench/read/nosuch/131072"`},
		// Issue 21 row 5: each of these was accepted, and a bisection
		// booted its ends before it could only say "old" everywhere.
		{"fuse-init.protocol=>7.41", `the value ">7.41" after = starts with an operator character`},
		{"fuse-init.protocol>==7.41", `the value "=7.41" after >= starts with an operator character`},
		{"fuse-init.protocol=<7.41", "starts with an operator character"},
		{"passthrough-ioctl.o_path=!ok", "starts with an operator character"},
		{"pt/integrity==fail", "starts with an operator character"},
		{"bench/read/passthrough/131072:ratio_native<>0.8", "starts with an operator character"},
		{"bench/read/passthrough/131072:no_such_metric<0.8", `bench/read/passthrough/131072 reports no metric "no_such_metric"; it reports mbps_median`},
		{"bench/read/native/4096:ratio_noop<1", `reports no metric "ratio_noop"`},
		{"bench/read/passthrough/131072:ratio_noop_min<1", `reports no metric "ratio_noop_min"`},
		{"seq-read:mbps_median<1", `seq-read reports no metric "mbps_median"; it reports native_mbps`},
		{"bench/read/passthrough/131072:ratio_native<NaN", `"NaN" is not a finite number`},
		{"bench/read/passthrough/131072:ratio_native<nan", "not a finite number"},
		{"bench/read/passthrough/131072:ratio_native<Inf", "not a finite number"},
		{"bench/read/passthrough/131072:ratio_native>-Infinity", "not a finite number"},
		{"bench/read/passthrough/131072:ratio_native<1e400", "is not a number"},
	} {
		t.Run(tc.text, func(t *testing.T) {
			_, err := Parse(tc.text)
			assert.ErrorIs(t, err, ErrSyntax)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func kernel(rs ...results.Result) *results.Kernel {
	return &results.Kernel{Status: results.Pass, Results: rs,
		Capabilities: &results.Capabilities{FuseMajor: 7, FuseMinor: 41, InitFlags: []string{"async_read", "passthrough"}}}
}

func TestJudge(t *testing.T) {
	ioctl := results.Result{ID: "passthrough-ioctl", Status: results.Pass, Facts: map[string]string{"o_path": "EBADF", "negotiated": "yes"}}
	init := results.Result{ID: "fuse-init", Status: results.Pass, Facts: map[string]string{"protocol": "7.41"}}
	cell := results.Result{ID: "bench/read/passthrough/131072", Status: results.Pass, Metrics: map[string]float64{"ratio_native": 0.75}}
	setupTimeout := results.Result{ID: "pt/integrity", Status: results.Error, Reason: "setup timed out"}
	reqs := results.Result{ID: "requests", Status: results.Pass, Facts: map[string]string{
		"readdirplus_size": "4096", "write_4k_passthrough.opcodes": "GETXATTR:4", "seq_read_classic.opcodes": "READ:8"}}
	killed := results.Result{ID: "uring/classic/kill-mid-request", Status: results.Pass, Facts: map[string]string{
		"held_read": "EIO (input/output error)", "umount": "ok"}}
	for _, tc := range []struct {
		pred string
		k    *results.Kernel
		want Verdict
		ev   string
	}{
		{"pt/integrity=fail", kernel(results.Result{ID: "pt/integrity", Status: results.Fail, Reason: "bytes differ"}), New, "pt/integrity: fail (bytes differ)"},
		{"pt/integrity=fail", kernel(results.Result{ID: "pt/integrity", Status: results.Pass}), Old, "pt/integrity: pass"},
		{"pt/integrity!=pass", kernel(results.Result{ID: "pt/integrity", Status: results.Skip}), New, "pt/integrity: skip"},
		{"pt/integrity=fail", kernel(), Unknown, "no result pt/integrity"},
		// Issue 21 row 7: a check that reported error (its setup timed
		// out) cannot say, unless the predicate is about errors.
		{"pt/integrity!=pass", kernel(setupTimeout), Unknown, "pt/integrity: error (setup timed out): an error says nothing of pt/integrity!=pass"},
		{"pt/integrity=fail", kernel(setupTimeout), Unknown, "an error says nothing"},
		{"pt/integrity=pass", kernel(setupTimeout), Unknown, "an error says nothing"},
		{"pt/integrity!=fail", kernel(setupTimeout), Unknown, "an error says nothing"},
		{"pt/integrity=error", kernel(setupTimeout), New, "pt/integrity: error (setup timed out)"},
		{"pt/integrity!=error", kernel(setupTimeout), Old, "pt/integrity: error"},
		{"pt/integrity=error", kernel(results.Result{ID: "pt/integrity", Status: results.Fail}), Old, "pt/integrity: fail"},
		{"pt/integrity!=error", kernel(results.Result{ID: "pt/integrity", Status: results.Pass}), New, "pt/integrity: pass"},
		{"pt/integrity=fail", &results.Kernel{Status: results.Error, Error: "guest panicked"}, Unknown, "did not run to completion: guest panicked"},
		{"passthrough-ioctl.o_path=ok", kernel(ioctl), Old, "passthrough-ioctl.o_path = EBADF"},
		{"passthrough-ioctl.o_path!=ok", kernel(ioctl), New, ""},
		{"passthrough-ioctl.backing_open=ok", kernel(ioctl), Unknown, "reported no backing_open"},
		// Versions compare by part: 7.41 is after 7.5.
		{"fuse-init.protocol>=7.5", kernel(init), New, "fuse-init.protocol = 7.41"},
		{"fuse-init.protocol>=7.42", kernel(init), Old, ""},
		{"fuse-init.fuse_minor>=41", kernel(init), New, "fuse-init.fuse_minor = 41"},
		{"fuse-init.flag.passthrough=offered", kernel(init), New, ""},
		{"fuse-init.flag.over_io_uring=offered", kernel(init), Old, "fuse-init.flag.over_io_uring = absent"},
		{"requests.readdirplus_size>4096", kernel(reqs), Old, "requests.readdirplus_size = 4096"},
		{"requests.readdirplus_size>=4096", kernel(reqs), New, ""},
		{"requests.write_4k_passthrough.opcodes=GETXATTR:4", kernel(reqs), New, "requests.write_4k_passthrough.opcodes = GETXATTR:4"},
		{"requests.write_4k_passthrough.opcodes!=GETXATTR:4", kernel(reqs), Old, ""},
		{"requests.write_4k_passthrough.opcodes>4", kernel(reqs), Unknown, "GETXATTR:4, not a number"},
		{"requests.write_128k_passthrough.opcodes=none", kernel(reqs), Unknown, "reported no write_128k_passthrough.opcodes"},
		// A scenario's answer, by its errno's name or its whole text.
		{"uring/classic/kill-mid-request.held_read=EIO", kernel(killed), New, "held_read = EIO (input/output error)"},
		{"uring/classic/kill-mid-request.held_read=EIO (input/output error)", kernel(killed), New, ""},
		{"uring/classic/kill-mid-request.held_read=ENOTCONN", kernel(killed), Old, ""},
		{"uring/classic/kill-mid-request.held_read!=EIO", kernel(killed), Old, ""},
		{"uring/classic/kill-mid-request.held_read=EIO (input", kernel(killed), Old, ""},
		{"uring/classic/kill-mid-request.umount=ok", kernel(killed), New, ""},
		{"bench/read/passthrough/131072:ratio_native<0.8", kernel(cell), New, "ratio_native = 0.75"},
		{"bench/read/passthrough/131072:ratio_native<0.7", kernel(cell), Old, ""},
		{"bench/read/passthrough/131072:mbps_median<0.7", kernel(cell), Unknown, "no metric mbps_median"},
		{"bench/read/passthrough/131072:ratio_native<0.8", kernel(results.Result{ID: "bench/read/passthrough/131072", Status: results.Skip, Reason: "no passthrough"}), Unknown, "skip (no passthrough)"},
	} {
		t.Run(tc.pred, func(t *testing.T) {
			p, err := Parse(tc.pred)
			assert.NilError(t, err)
			v, ev := p.Judge(tc.k)
			assert.Check(t, is.Equal(v, tc.want), ev)
			assert.Check(t, is.Contains(ev, tc.ev))
		})
	}
}

func TestRunPattern(t *testing.T) {
	for pred, want := range map[string]string{
		"pt/integrity=fail":                  `^pt/integrity$`,
		"fuse-init.protocol>=7.41":           `^fuse-init$`,
		"requests.readdirplus_size>4096":     `^requests$`,
		"expect/passthrough-works=fail":      contract.ProbesOnly,
		"bench/read/noop/4096:mbps_median<1": `^bench/read/noop/4096$`,
	} {
		p, err := Parse(pred)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(p.RunPattern(), want))
		checks, err := contract.Select(p.RunPattern())
		assert.NilError(t, err)
		if p.Kind != results.Expectation {
			assert.Check(t, is.Contains(checkIDs(checks), p.ID), "the pattern selects the check")
		}
	}
}

func checkIDs(cs []contract.Check) []contract.ID {
	var out []contract.ID
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"pt/integrity=fail", "fuse-init.protocol>=7.41", "bench/read/passthrough/131072:ratio_native<0.8",
		"fuse-features.param.x!=1", "a.b.c<=d", "==", "!<>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		// Whatever parses judges any kernel without panicking.
		p.Judge(kernel())
		p.Judge(&results.Kernel{Status: results.Pass})
		if _, err := contract.Select(p.RunPattern()); err != nil {
			t.Fatalf("%q: run pattern %q: %v", s, p.RunPattern(), err)
		}
	})
}
