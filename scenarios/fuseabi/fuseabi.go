// Package fuseabi holds facts of the Linux FUSE kernel uAPI
// (include/uapi/linux/fuse.h) that fusematrix reports on: the names of the
// FUSE_INIT flag bits, the passthrough open flag, the /dev/fuse ioctls
// that register backing files and their argument, and the INIT bits by
// which Android's out-of-tree passthrough variant makes itself known.
//
// The values are copied from the kernel header rather than from go-fuse so
// that a report names what the kernel offered, including bits go-fuse does
// not know about.
package fuseabi

import (
	"math/bits"
	"strconv"
)

// FUSE_INIT flags as 64-bit values: bits 0..31 travel in fuse_init_in.flags,
// bits 32..63 in fuse_init_in.flags2 (only when FUSE_INIT_EXT is set).
const (
	InitExt        uint64 = 1 << 30
	WritebackCache uint64 = 1 << 16
	Passthrough    uint64 = 1 << 37
	OverIOUring    uint64 = 1 << 41
	RequestTimeout uint64 = 1 << 42
)

// FOpenPassthrough is the fuse_open_out.open_flags bit a server sets,
// together with a backing id, to have the kernel do I/O on a backing file.
const FOpenPassthrough uint32 = 1 << 7

// /dev/fuse ioctls (magic 229). BACKING_OPEN is _IOW(229, 1, struct
// fuse_backing_map) and returns a backing id; BACKING_CLOSE is
// _IOW(229, 2, uint32_t) and takes one.
const (
	DevIocMagic        = 229
	DevIocBackingOpen  = 0x4010e501
	DevIocBackingClose = 0x4004e502
)

// initFlagNames maps bit numbers to the kernel's FUSE_* names without the
// prefix, lower case. The list ends at FUSE_REQUEST_TIMEOUT (bit 42, Linux
// 6.14): a bit is named once a released kernel's header names it, and a
// later one is reported as "bit N", so that a report never names a flag
// the kernel may yet define otherwise.
var initFlagNames = [...]string{
	0:  "async_read",
	1:  "posix_locks",
	2:  "file_ops",
	3:  "atomic_o_trunc",
	4:  "export_support",
	5:  "big_writes",
	6:  "dont_mask",
	7:  "splice_write",
	8:  "splice_move",
	9:  "splice_read",
	10: "flock_locks",
	11: "has_ioctl_dir",
	12: "auto_inval_data",
	13: "do_readdirplus",
	14: "readdirplus_auto",
	15: "async_dio",
	16: "writeback_cache",
	17: "no_open_support",
	18: "parallel_dirops",
	19: "handle_killpriv",
	20: "posix_acl",
	21: "abort_error",
	22: "max_pages",
	23: "cache_symlinks",
	24: "no_opendir_support",
	25: "explicit_inval_data",
	26: "map_alignment",
	27: "submounts",
	28: "handle_killpriv_v2",
	29: "setxattr_ext",
	30: "init_ext",
	31: "init_reserved",
	32: "security_ctx",
	33: "has_inode_dax",
	34: "create_supp_group",
	35: "has_expire_only",
	36: "direct_io_allow_mmap",
	37: "passthrough",
	38: "no_export_support",
	39: "has_resend",
	40: "allow_idmap",
	41: "over_io_uring",
	42: "request_timeout",
}

// FlagName returns the name of INIT flag bit n, or "bit N" when the kernel
// header this package follows has no name for it.
func FlagName(n int) string {
	if n >= 0 && n < len(initFlagNames) && initFlagNames[n] != "" {
		return initFlagNames[n]
	}
	return "bit " + strconv.Itoa(n)
}

// FlagNames names every set bit of flags (flags | flags2<<32) in bit order.
// Bits without a name are kept as "bit N" so that nothing the kernel
// offered disappears from a report.
func FlagNames(flags uint64) []string {
	names := make([]string, 0, bits.OnesCount64(flags))
	for flags != 0 {
		n := bits.TrailingZeros64(flags)
		names = append(names, FlagName(n))
		flags &^= 1 << n
	}
	return names
}

// InitFlags joins the two 32-bit INIT flag words the way the kernel means
// them: flags2 counts only when flags has FUSE_INIT_EXT, since a kernel
// without it sends a shorter request whose flags2 is not there to read.
func InitFlags(flags, flags2 uint32) uint64 {
	f := uint64(flags)
	if f&InitExt != 0 {
		f |= uint64(flags2) << 32
	}
	return f
}

// BackingMap is struct fuse_backing_map, the argument of BACKING_OPEN.
// Unlike go-fuse's copy its padding is exported, because a probe sets it
// on purpose to see whether the kernel refuses it.
type BackingMap struct {
	Fd      int32
	Flags   uint32
	Padding uint64
}
