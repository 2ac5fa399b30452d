package probe

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios/internal/scentest"
)

// hostUringEnv, set to 1, lets TestIOUring switch this machine's
// fuse.enable_uring on for the few seconds the probe runs (it restores
// the value). Without it the probe writes a copy of the parameter, so
// that the kernel keeps its own setting and other tests on the machine
// see nothing change.
const hostUringEnv = "FUSEMATRIX_HOST_URING"

// TestIOUring runs the probe on this machine's kernel and checks each
// answer against fs/fuse/dev_uring.c (fuse_uring_cmd, fuse_uring_register,
// fuse_uring_create_ring_ent, fuse_uring_commit_fetch), Linux 6.14 on.
func TestIOUring(t *testing.T) {
	scentest.NeedMount(t)
	paths := systemUring()
	if _, err := os.Stat(paths.param); err != nil {
		t.Skipf("this kernel has no fuse.enable_uring: %v", err)
	}
	real := os.Getenv(hostUringEnv) == "1"
	if !real {
		def, err := os.ReadFile(paths.param)
		assert.NilError(t, err)
		if string(def) != "N\n" {
			t.Skipf("enable_uring is %q on this machine; the test knows the answers of a kernel whose parameter is off", def)
		}
		paths.param = filepath.Join(t.TempDir(), "enable_uring")
		assert.NilError(t, os.WriteFile(paths.param, def, 0o644))
	}
	r := ioUringIn(context.Background(), scentest.Env(t), paths)
	t.Logf("%s %s facts: %v", r.Status, r.Reason, r.Facts)
	want := map[contract.Fact]string{
		contract.FactURingOfferedOff: "absent",
		contract.FactURingParamOff:   "EOPNOTSUPP", // !enable_uring && !fc->io_uring
	}
	if real {
		assert.Equal(t, r.Status, results.Pass, r.Reason)
		for f, v := range map[contract.Fact]string{
			contract.FactURingOfferedOn: "offered",
			contract.FactURingRegister:  "ok",
			contract.FactURingServes:    "ok",
			contract.FactURingTransport: "works",
			"before_init":               "EAGAIN", // !fc->initialized
			"no_sqe128":                 "EINVAL", // !(issue_flags & IO_URING_F_SQE128)
			"qid_out_of_range":          "EINVAL", // qid >= ring->nr_queues
			"header_short":              "EINVAL", // iov[0].iov_len < sizeof(struct fuse_uring_req_header)
			"payload_short":             "EINVAL", // payload_size < ring->max_payload_sz
			"commit_unknown":            "ENOENT", // fuse_request_find finds nothing
			"register_twice":            "ok",     // nothing checks an entry's buffers against another's
			"not_negotiated":            "ok",     // enable_uring alone lets the command through
		} {
			want[f] = v
		}
		data, err := os.ReadFile(systemUring().param)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(string(data), r.Facts[string(contract.FactURingParamDefault)]+"\n"), "parameter restored")
	} else {
		// The kernel's parameter stays off: every command meets
		// EOPNOTSUPP and nothing is served.
		assert.Equal(t, r.Status, results.Fail, r.Reason)
		want[contract.FactURingOfferedOn] = "absent"
		want[contract.FactURingRegister] = "EOPNOTSUPP"
		want[contract.FactURingTransport] = "fails"
	}
	for f, v := range want {
		assert.Check(t, is.Equal(r.Facts[string(f)], v), "fact %s", f)
	}
}

// The misuses the probe measures are the contract's, which the host
// lists in its capability map.
func TestURingCasesAreContract(t *testing.T) {
	var got []contract.Fact
	for _, c := range uringCases {
		got = append(got, c.fact)
	}
	assert.DeepEqual(t, append([]contract.Fact{contract.FactURingParamOff}, got...), contract.URingMisuseCases)
}
