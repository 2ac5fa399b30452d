package contract

// Requests is the probe that runs a fixed workload through fusematrix's
// own loopback, classic and passthrough, and records what requests reached
// the server: their sizes, which ones each operation caused, and the flags
// they carried (docs/checks.md#requests).
const Requests ID = "requests"

// Facts of requests over the whole workload of the classic mount: the
// smallest and largest READ and WRITE, the largest READDIR and READDIRPLUS
// (0 when none was sent), the largest request of any kind (headers
// included), the server's reply to INIT, what the kernel made of it, and
// whether INTERRUPT, BATCH_FORGET and NOTIFY_REPLY occurred when the
// workload provoked them ("sent" or "not sent", "yes" or "no").
const (
	FactReadSizeMin       Fact = "read_size_min"
	FactReadSizeMax       Fact = "read_size_max"
	FactWriteSizeMin      Fact = "write_size_min"
	FactWriteSizeMax      Fact = "write_size_max"
	FactReaddirSize       Fact = "readdir_size"
	FactReaddirplusSize   Fact = "readdirplus_size"
	FactRequestMax        Fact = "request_max"
	FactReplyMaxWrite     Fact = "reply.max_write"
	FactReplyMaxPages     Fact = "reply.max_pages"
	FactReplyMaxReadahead Fact = "reply.max_readahead"
	FactUsedMaxPages      Fact = "used.max_pages"
	FactUsedMaxReadahead  Fact = "used.max_readahead"
	FactInterrupt         Fact = "interrupt"
	FactForgetNodes       Fact = "forget.nodes"
	FactForgetBatched     Fact = "forget.batched"
	FactNotifyReply       Fact = "notify_reply"
)

// RequestOps are the operations of the requests workload, in the order it
// runs them; each is a phase whose requests are recorded apart.
var RequestOps = []string{
	"open_close", "stat_after_write", "write_4k", "write_128k", "readdir", "seq_read", "mmap_read",
	"truncate", "rename", "fsync", "fallocate", "copy_file_range", "lseek_data",
}

// RequestModes are the mounts the requests workload runs on: every
// operation on the classic and the passthrough loopback (the latter only
// where the kernel offers passthrough), the writes also on both with a
// server that answers xattr requests with ENOSYS.
var RequestModes = []string{"classic", "passthrough", "classic_noxattr", "passthrough_noxattr"}

// RequestNoXattrOps are the operations run on the noxattr modes.
var RequestNoXattrOps = []string{"write_4k", "write_128k"}

// Suffixes of a phase's facts, after "<op>_<mode>.": the opcodes that
// reached the server with their counts ("OPEN:1,FLUSH:1,RELEASE:1", or
// "none"), and for the phases where they matter the open flags of its
// OPEN, the write flags of its WRITEs and the getattr flags of its
// GETATTRs, as names joined by "|" ("none" when 0).
const (
	PhaseOpcodes      = "opcodes"
	PhaseOpenFlags    = "open_flags"
	PhaseWriteFlags   = "write_flags"
	PhaseGetattrFlags = "getattr_flags"
)

// RequestPhase names the fact suffix of operation op on mode.
func RequestPhase(op, mode, suffix string) Fact { return Fact(op + "_" + mode + "." + suffix) }

// requestPhaseFlags are the phases that report flags besides opcodes.
var requestPhaseFlags = map[string]string{
	"open_close":       PhaseOpenFlags,
	"write_4k":         PhaseWriteFlags,
	"stat_after_write": PhaseGetattrFlags,
}

// RequestPhaseFacts lists the facts of one phase.
func RequestPhaseFacts(op, mode string) []Fact {
	out := []Fact{RequestPhase(op, mode, PhaseOpcodes)}
	if s, ok := requestPhaseFlags[op]; ok {
		out = append(out, RequestPhase(op, mode, s))
	}
	return out
}

// RequestFacts are every fact requests reports, in the order the reports
// list them.
func RequestFacts() []Fact {
	out := []Fact{FactReadSizeMin, FactReadSizeMax, FactWriteSizeMin, FactWriteSizeMax, FactReaddirSize,
		FactReaddirplusSize, FactRequestMax, FactReplyMaxWrite, FactReplyMaxPages, FactReplyMaxReadahead,
		FactUsedMaxPages, FactUsedMaxReadahead, FactInterrupt, FactForgetNodes, FactForgetBatched, FactNotifyReply}
	for _, mode := range RequestModes {
		ops := RequestOps
		if mode != "classic" && mode != "passthrough" {
			ops = RequestNoXattrOps
		}
		for _, op := range ops {
			out = append(out, RequestPhaseFacts(op, mode)...)
		}
	}
	return out
}
