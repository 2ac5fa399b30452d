package report

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// Fabricated capability runs. The expectation results are written out by
// hand, as harness/expect would produce them: the renderers only show
// what a run holds.

func expectation(name string, status results.Status, reason, expected, observed, basis string) results.Result {
	return results.Result{ID: "expect/" + name, Kind: results.Expectation, Status: status, Reason: reason,
		Facts: map[string]string{"expected": expected, "observed": observed, "basis": basis}}
}

func probe(id string, status results.Status, reason string, kv ...string) results.Result {
	facts := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		facts[kv[i]] = kv[i+1]
	}
	return results.Result{ID: id, Kind: results.Probe, Status: status, Reason: reason, Facts: facts, Seconds: 0.1}
}

func noFeatures(virtiofs string) results.Result {
	return probe("fuse-features", results.Pass, "",
		"io_uring", "absent", "request_timeout", "absent", "virtiofs", virtiofs, "cuse", "no", "fusectl", "yes",
		"param.max_user_bgreq", "1638", "param.max_user_congthresh", "1228")
}

// capsKernel61 offers no passthrough at all: the backing ioctls do not
// exist, so every one of them answers ENOTTY.
func capsKernel61() results.Kernel {
	k := kernel61()
	k.AccelNote = ""
	k.Release = "6.1.0-56-cloud-amd64"
	k.Config = map[string]string{"CONFIG_FUSE_FS": "m", "CONFIG_CUSE": "m", "CONFIG_VIRTIO_FS": "m", "CONFIG_FUSE_DAX": "y", "CONFIG_IO_URING": "y"}
	k.Capabilities.FuseMinor = 38
	const basis = "no CONFIG_FUSE_PASSTHROUGH in the kernel's config (CONFIG_FUSE_FS=m)"
	k.Results = []results.Result{
		probe("fuse-init", results.Pass, "", "protocol", "7.38", "passthrough_abi", "none", "max_pages_limit", "0"),
		probe("passthrough-ioctl", results.Skip, "kernel does not offer FUSE_PASSTHROUGH",
			"not_negotiated", "ENOTTY", "bad_fd", "ENOTTY", "flags_nonzero", "ENOTTY", "padding_nonzero", "ENOTTY",
			"directory", "ENOTTY", "o_path", "ENOTTY", "close_unknown", "ENOTTY", "close_zero", "ENOTTY"),
		noFeatures("no"),
		expectation("passthrough-offered", results.Pass, "", "not offered", "not offered", basis),
		expectation("passthrough-works", results.Skip, "nothing to use: the kernel does not offer upstream passthrough",
			"BACKING_OPEN ok as root", "not offered", "upstream passthrough not offered"),
		expectation("io-uring", results.Pass, "", "absent", "absent", "no CONFIG_FUSE_IO_URING in the kernel's config (CONFIG_FUSE_FS=m)"),
		expectation("virtiofs", results.Skip, "CONFIG_VIRTIO_FS=m: a module the guest does not load (it loads only what fusematrix needs), so its absence says nothing",
			"yes once its module is loaded", "no", "CONFIG_VIRTIO_FS=m"),
	}
	return k
}

// capsKernel612 has upstream passthrough, and everything works.
func capsKernel612() results.Kernel {
	k := kernel612()
	k.Release = "6.12.117+deb12-cloud-amd64"
	k.Config = map[string]string{"CONFIG_FUSE_FS": "y", "CONFIG_CUSE": "m", "CONFIG_VIRTIO_FS": "y", "CONFIG_FUSE_DAX": "y",
		"CONFIG_FUSE_PASSTHROUGH": "y", "CONFIG_IO_URING": "y"}
	k.Capabilities.PassthroughABI = "upstream"
	k.Results = []results.Result{
		probe("fuse-init", results.Pass, "", "protocol", "7.41", "passthrough_abi", "upstream", "max_pages_limit", "0"),
		probe("passthrough-ioctl", results.Pass, "",
			"negotiated", "yes", "backing_open", "ok", "backing_id", "1", "backing_close", "ok",
			"not_negotiated", "EPERM", "bad_fd", "EBADF", "flags_nonzero", "EINVAL", "padding_nonzero", "EINVAL",
			"directory", "EOPNOTSUPP", "o_path", "EBADF", "stacked_too_deep", "ELOOP", "close_unknown", "ENOENT",
			"close_zero", "EINVAL", "writeback_cache", "refused"),
		noFeatures("yes"),
		{ID: "passthrough-read", Kind: results.Scenario, Status: results.Pass, Seconds: 0.4},
		expectation("passthrough-offered", results.Pass, "", "offered", "offered", "CONFIG_FUSE_PASSTHROUGH=y"),
		expectation("passthrough-works", results.Pass, "", "BACKING_OPEN ok as root, passthrough-read passes",
			"BACKING_OPEN ok; passthrough-read pass", "the kernel offers FUSE_PASSTHROUGH, CONFIG_FUSE_PASSTHROUGH=y"),
		expectation("io-uring", results.Pass, "", "absent", "absent", "no CONFIG_FUSE_IO_URING in the kernel's config (CONFIG_FUSE_FS=y)"),
		expectation("virtiofs", results.Pass, "", "yes", "yes", "CONFIG_VIRTIO_FS=y"),
	}
	return k
}

// capsKernel618 has FUSE over io_uring built in, off by default: the
// io-uring probe turned it on for itself and served a request over its
// ring.
func capsKernel618() results.Kernel {
	k := capsKernel612()
	k.Name = "debian:6.18/cloud"
	k.Release = "6.18.15+deb13-cloud-amd64"
	k.Config["CONFIG_FUSE_IO_URING"] = "y"
	const cfg = "CONFIG_FUSE_IO_URING=y"
	var rs []results.Result
	for _, r := range k.Results {
		switch r.ID {
		case "fuse-features":
			r.Facts["io_uring"] = "disabled"
			r.Facts["param.enable_uring"] = "N"
			rs = append(rs, r, probe("io-uring", results.Pass, "",
				"param_default", "N", "param_set", "Y", "offered_param_off", "absent", "offered_param_on", "offered",
				"queues", "2", "register", "ok", "serves", "ok", "transport", "works",
				"param_off", "EOPNOTSUPP", "before_init", "EAGAIN", "not_negotiated", "ok", "no_sqe128", "EINVAL",
				"qid_out_of_range", "EINVAL", "header_short", "EINVAL", "payload_short", "EINVAL",
				"register_twice", "ok", "commit_unknown", "ENOENT"))
		case "expect/io-uring":
			rs = append(rs, expectation("io-uring", results.Pass, "", "offered or disabled", "disabled", cfg),
				expectation("io-uring-works", results.Pass, "", "works once enabled", "works", cfg))
		default:
			rs = append(rs, r)
		}
	}
	k.Results = rs
	return k
}

// androidKernel offers the out-of-tree Android passthrough and came
// without a config.
func androidKernel() results.Kernel {
	const andObs = "android passthrough ABI offered, upstream not offered"
	const v61 = "version 6.1 < 6.9 (upstream FUSE passthrough arrived in 6.9), config unknown"
	return results.Kernel{
		Name: "./android-6.1.bzImage", Source: "file /src/android-6.1.bzImage", Release: "6.1.75-android14-11-g9b8c3a2",
		Accel: "tcg", Status: results.Pass, Seconds: 30.2,
		Capabilities: &results.Capabilities{FuseMajor: 7, FuseMinor: 38, PassthroughABI: "android",
			InitFlags: []string{"ASYNC_READ", "bit 63"}, Flags: 1<<63 | 1},
		Results: []results.Result{
			probe("fuse-init", results.Pass, "", "protocol", "7.38", "passthrough_abi", "android", "max_pages_limit", "0"),
			probe("passthrough-ioctl", results.Skip, "kernel offers the Android passthrough ABI, not upstream's", "not_negotiated", "EINVAL"),
			noFeatures("no"),
			expectation("passthrough-offered", results.Pass, "", "not offered", andObs, v61),
			expectation("passthrough-works", results.Skip, "the kernel offers the Android passthrough ABI, whose ioctl fusematrix does not exercise",
				"BACKING_OPEN ok as root", andObs, "upstream passthrough not offered"),
			expectation("io-uring", results.Pass, "", "absent", "absent", "version 6.1 < 6.14 (FUSE over io_uring arrived in 6.14), config unknown"),
			expectation("virtiofs", results.Skip, "without the kernel's config, a kernel built without virtiofs cannot be told from a broken one",
				"yes unless configured out", "no", "version 6.1 >= 5.4, config unknown"),
		},
	}
}

// failingKernel was built with passthrough but does not offer it, and its
// feature probe hung.
func failingKernel() results.Kernel {
	const cfgY = "CONFIG_FUSE_PASSTHROUGH=y"
	return results.Kernel{
		Name: "debian:6.12/cloud", Source: "linux-image-6.12.90+deb12-cloud-amd64 6.12.90-1 (bookworm)", Release: "6.12.90+deb12-cloud-amd64",
		Accel: "tcg", Status: results.Pass, Seconds: 52.7,
		Config:       map[string]string{"CONFIG_FUSE_FS": "y", "CONFIG_FUSE_PASSTHROUGH": "y", "CONFIG_VIRTIO_FS": "y"},
		Capabilities: &results.Capabilities{FuseMajor: 7, FuseMinor: 41, MaxPagesLimit: 256},
		Results: []results.Result{
			probe("fuse-init", results.Pass, "", "protocol", "7.41", "passthrough_abi", "none"),
			probe("passthrough-ioctl", results.Skip, "kernel does not offer FUSE_PASSTHROUGH", "not_negotiated", "EPERM"),
			probe("fuse-features", results.Error, "timed out after 30s waiting for INIT; connection 42 aborted"),
			expectation("passthrough-offered", results.Fail, "expected offered, observed not offered ("+cfgY+")", "offered", "not offered", cfgY),
			expectation("passthrough-works", results.Skip, "nothing to use: the kernel does not offer upstream passthrough",
				"BACKING_OPEN ok as root", "not offered", "upstream passthrough not offered"),
			expectation("io-uring", results.Skip, "fuse-features reported no io_uring (status error: timed out after 30s waiting for INIT; connection 42 aborted)",
				"absent", "-", "no CONFIG_FUSE_IO_URING in the kernel's config (CONFIG_FUSE_FS=y)"),
			expectation("virtiofs", results.Skip, "fuse-features reported no virtiofs (status error: timed out after 30s waiting for INIT; connection 42 aborted)",
				"yes", "-", "CONFIG_VIRTIO_FS=y"),
		},
	}
}

// capsHostile is a completed kernel whose facts and reasons try to break
// the capability renderers.
func capsHostile() results.Kernel {
	k := capsKernel612()
	k.Name = "hostile|\x1b[2J"
	k.Config["CONFIG_FUSE_PASSTHROUGH"] = "y\n| x |"
	k.Results = []results.Result{
		probe("passthrough-ioctl", results.Error, "crash\n```\n</details> \x1b]0;pwned\x07",
			"negotiated", "yes|no", "backing_open", "\x1b[31mEPERM\u202e", "bad_fd", strings.Repeat("E", 300),
			"writeback_cache", "<b>refused</b>"),
		expectation("virtiofs", results.Fail, "line\none | <script>", "yes\t| no", "*no*", "`basis`"),
	}
	return k
}

var capsCases = []struct {
	name string
	run  *results.Run
}{
	{"caps-default", run(capsKernel61(), capsKernel612())},
	{"caps-mixed", run(androidKernel(), failingKernel(), brokenKernel())},
	{"caps-empty", &results.Run{Schema: results.SchemaVersion}},
	{"caps-uring", run(capsKernel612(), capsKernel618())},
}

func TestCapsGolden(t *testing.T) {
	for _, tc := range capsCases {
		t.Run(tc.name, func(t *testing.T) {
			golden.Assert(t, render(t, Caps, tc.run), tc.name+".table.golden")
			golden.Assert(t, render(t, CapsMarkdown, tc.run), tc.name+".md.golden")
			golden.Assert(t, render(t, CapsJSON, tc.run), tc.name+".json.golden")
		})
	}
}

// TestCapsCells checks the cells that carry meaning beyond a copied fact.
func TestCapsCells(t *testing.T) {
	row := func(k results.Kernel) map[string]string {
		raw, _ := capsRows(run(k))
		m := map[string]string{}
		for i, h := range raw[0] {
			m[h] = raw[1][i]
		}
		return m
	}
	for _, tc := range []struct {
		name string
		k    results.Kernel
		want map[string]string
	}{
		{"no passthrough, option absent from the config", capsKernel61(), map[string]string{
			"passthrough": "no", "max_pages_limit": "absent", "CONFIG_FUSE_PASSTHROUGH": "absent",
			"expectations": "2/4 ok, 2 skip", "backing_open": "", "fuse": "7.38"}},
		{"upstream", capsKernel612(), map[string]string{
			"passthrough": "upstream", "CONFIG_FUSE_PASSTHROUGH": "y", "expectations": "4/4 ok",
			"backing_open": "ok", "negotiated": "yes", "writeback+passthrough": "refused", "virtiofs": "yes"}},
		{"io_uring works once enabled", capsKernel618(), map[string]string{
			"io_uring": "works", "expectations": "5/5 ok"}},
		{"io_uring absent", capsKernel612(), map[string]string{"io_uring": "absent"}},
		{"android is not 'no'", androidKernel(), map[string]string{
			"passthrough": "android", "CONFIG_FUSE_PASSTHROUGH": "", "expectations": "2/4 ok, 2 skip"}},
		{"failing expectation, errored probe", failingKernel(), map[string]string{
			"passthrough": "no", "expectations": "1 FAIL", "io_uring": "", "virtiofs": "",
			"max_pages_limit": "256"}},
		{"did not run", brokenKernel(), map[string]string{
			"fuse": "", "passthrough": "", "expectations": "-", "CONFIG_FUSE_PASSTHROUGH": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := row(tc.k)
			for h, v := range tc.want {
				assert.Check(t, is.Equal(got[h], v), "column %s", h)
			}
		})
	}
}

func TestCapsJSON(t *testing.T) {
	r := run(capsKernel61(), failingKernel(), brokenKernel())
	var doc struct {
		Schema  int
		Kernels []struct {
			Name         string
			Status       results.Status
			Config       map[string]string
			Facts        map[string]map[string]string
			Probes       map[string]struct{ Status, Reason string }
			Expectations []struct{ ID, Status, Expected, Observed, Basis string }
		}
	}
	assert.NilError(t, json.Unmarshal([]byte(render(t, CapsJSON, r)), &doc))
	assert.Equal(t, doc.Schema, results.SchemaVersion)
	assert.Equal(t, len(doc.Kernels), 3)
	k61 := doc.Kernels[0]
	assert.Equal(t, k61.Facts["passthrough-ioctl"]["not_negotiated"], "ENOTTY")
	assert.Equal(t, k61.Config["CONFIG_VIRTIO_FS"], "m")
	assert.Equal(t, len(k61.Expectations), 4)
	assert.Equal(t, k61.Expectations[3].Basis, "CONFIG_VIRTIO_FS=m")
	_, scenario := k61.Facts["seq-read"]
	assert.Check(t, !scenario, "only probes' facts")
	failing := doc.Kernels[1]
	assert.Equal(t, failing.Probes["fuse-features"].Status, "error")
	assert.Equal(t, failing.Expectations[0].Status, "fail")
	assert.Equal(t, doc.Kernels[2].Status, results.Error)
	assert.Check(t, doc.Kernels[2].Config == nil)
}

func TestCapsColor(t *testing.T) {
	for _, tc := range capsCases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			assert.NilError(t, CapsWith(&b, tc.run, Options{Color: true}))
			if len(tc.run.Kernels) > 0 {
				assert.Assert(t, ansi.MatchString(b.String()))
			}
			assert.Equal(t, ansi.ReplaceAllString(b.String(), ""), render(t, Caps, tc.run))
		})
	}
}

func TestCapsWidth(t *testing.T) {
	runs := append(capsCases, struct {
		name string
		run  *results.Run
	}{"hostile", run(capsHostile())})
	for _, tc := range runs {
		for _, width := range []int{DefaultWidth, 80} {
			var b bytes.Buffer
			assert.NilError(t, CapsWith(&b, tc.run, Options{Width: width}))
			for line := range strings.Lines(b.String()) {
				n := utf8.RuneCountInString(strings.TrimSuffix(line, "\n"))
				assert.Assert(t, n <= width, "%s at %d: line of %d runes: %q", tc.name, width, n, line)
			}
		}
	}
}

// TestCapsInert checks that guest text cannot act in the terminal or the
// Markdown, and that every Markdown table row keeps its cell count.
func TestCapsInert(t *testing.T) {
	r := run(capsHostile(), capsKernel61())
	for name, f := range map[string]func(io.Writer, *results.Run) error{"table": Caps, "markdown": CapsMarkdown} {
		out := render(t, f, r)
		for i, c := range []byte(out) {
			assert.Assert(t, c >= 0x20 && c != 0x7f || c == '\n', "%s: byte %#x at %d", name, c, i)
		}
		assert.Assert(t, utf8.ValidString(out), name)
		assert.Assert(t, !strings.Contains(out, "\u202e"), name)
		if name == "markdown" {
			assert.Assert(t, !strings.Contains(out, "<b>") && !strings.Contains(out, "<script>"), name)
		}
	}
	unescapedPipe := regexp.MustCompile(`(^|[^\\])\|`)
	var counts []int
	for line := range strings.Lines(render(t, CapsMarkdown, r)) {
		if strings.HasPrefix(line, "|") {
			counts = append(counts, len(unescapedPipe.FindAllString(line, -1)))
		}
	}
	// Two tables of 4 rows each (header, rule, two kernels).
	assert.Equal(t, len(counts), 8)
	for i, n := range counts {
		want := 2 + len(capsColumns) + 1 + 1 // kernel, release, columns, expectations
		if i >= 4 {
			want = 1 + len(contract.MisuseCases) + 1
		}
		assert.Equal(t, n, want, "row %d", i)
	}
}

func TestCapsNilAndWriteErrors(t *testing.T) {
	for name, f := range map[string]func(io.Writer, *results.Run) error{
		"table": Caps, "markdown": CapsMarkdown, "json": CapsJSON,
	} {
		assert.Check(t, f(io.Discard, nil) != nil, name)
		assert.Check(t, is.ErrorIs(f(brokenWriter{}, capsCases[0].run), errBroken), name)
	}
}
