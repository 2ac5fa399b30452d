package fuseabi

// Android's out-of-tree passthrough (the Android common kernels' fuse.h, as
// bionic's uapi headers carry it) announces itself with its own INIT bit.
// Which bit depends on the protocol: up to 7.35 Android used flags bit 31;
// upstream 7.36 took bits 30 and 31 for FUSE_INIT_EXT and
// FUSE_INIT_RESERVED, so Android moved its flag to flags2 bit 31.
const (
	AndroidPassthroughOld uint64 = 1 << 31 // FUSE_PASSTHROUGH, protocol < 7.36
	AndroidPassthroughNew uint64 = 1 << 63 // FUSE_PASSTHROUGH, protocol >= 7.36
	// androidMovedMinor is the protocol minor from which bit 31 is
	// upstream's FUSE_INIT_RESERVED and Android uses bit 63.
	androidMovedMinor = 36
)

// Passthrough ABIs as ABI names them.
const (
	ABIUpstream = "upstream"
	ABIAndroid  = "android"
)

// ABI names the passthrough ABI a kernel offers in FUSE_INIT, given the
// offered flags (flags | flags2<<32, as InitFlags joins them) and the
// protocol minor: ABIUpstream, ABIAndroid or "" for none.
//
// The upstream bit wins when present: BACKING_OPEN is what such a kernel
// serves, whatever else it sets. Otherwise the Android bit must be the one
// that matches the protocol:
//   - bit 31 below 7.36 is Android's flag (upstream had no bit 31 then);
//   - bit 31 from 7.36 on is upstream's FUSE_INIT_RESERVED, which upstream
//     never sets and Android no longer uses for passthrough: an unexplained
//     bit, not a passthrough ABI;
//   - bit 63 from 7.36 on is Android's flag;
//   - bit 63 below 7.36 cannot be there at all (flags2 arrived with
//     FUSE_INIT_EXT in 7.36), so it claims nothing.
func ABI(flags uint64, minor uint32) string {
	switch {
	case flags&Passthrough != 0:
		return ABIUpstream
	case minor < androidMovedMinor && flags&AndroidPassthroughOld != 0:
		return ABIAndroid
	case minor >= androidMovedMinor && flags&AndroidPassthroughNew != 0:
		return ABIAndroid
	}
	return ""
}
