package fuseabi

import (
	"testing"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestFlagNames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags uint64
		want  []string
	}{
		{name: "none", flags: 0, want: []string{}},
		{name: "first bit", flags: 1, want: []string{"async_read"}},
		{name: "passthrough alone", flags: Passthrough, want: []string{"passthrough"}},
		{
			name:  "both words in bit order",
			flags: 1<<42 | 1<<37 | 1<<30 | 1<<13 | 1<<0,
			want:  []string{"async_read", "do_readdirplus", "init_ext", "passthrough", "request_timeout"},
		},
		{name: "unknown bits kept", flags: 1<<63 | 1<<43 | 1<<1, want: []string{"posix_locks", "bit 43", "bit 63"}},
		{
			// Bits 2, 26 and 27 clear, flags2 up to bit 36.
			name:  "dense",
			flags: InitFlags(0x73fffffb, 0x1f),
			want: []string{
				"async_read", "posix_locks", "atomic_o_trunc", "export_support", "big_writes", "dont_mask",
				"splice_write", "splice_move", "splice_read", "flock_locks", "has_ioctl_dir", "auto_inval_data",
				"do_readdirplus", "readdirplus_auto", "async_dio", "writeback_cache", "no_open_support",
				"parallel_dirops", "handle_killpriv", "posix_acl", "abort_error", "max_pages", "cache_symlinks",
				"no_opendir_support", "explicit_inval_data", "handle_killpriv_v2", "setxattr_ext",
				"init_ext", "security_ctx", "has_inode_dax", "create_supp_group", "has_expire_only",
				"direct_io_allow_mmap",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, FlagNames(tc.flags), tc.want)
		})
	}
}

func TestInitFlags(t *testing.T) {
	for _, tc := range []struct {
		name          string
		flags, flags2 uint32
		want          uint64
	}{
		{name: "flags2 counts with init_ext", flags: 1<<30 | 1, flags2: 1 << 5, want: 1<<37 | 1<<30 | 1},
		{name: "flags2 ignored without init_ext", flags: 1, flags2: 1 << 5, want: 1},
		{name: "all bits", flags: 0xffffffff, flags2: 0xffffffff, want: ^uint64(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, InitFlags(tc.flags, tc.flags2), tc.want)
		})
	}
}

func TestEveryBitNamedOnce(t *testing.T) {
	seen := map[string]int{}
	for n := 0; n < 64; n++ {
		name := FlagName(n)
		if prev, ok := seen[name]; ok {
			t.Errorf("bits %d and %d are both named %q", prev, n, name)
		}
		seen[name] = n
	}
	assert.Equal(t, FlagName(-1), "bit -1")
	assert.Equal(t, FlagName(64), "bit 64")
}

// TestBitsAgreeWithGoFuse cross-checks bit positions against go-fuse, an
// independent transcription of the same header (its CAP_ names differ in
// places, the positions must not).
func TestBitsAgreeWithGoFuse(t *testing.T) {
	for _, tc := range []struct {
		cap  uint64
		name string
	}{
		{fuse.CAP_ASYNC_READ, "async_read"},
		{fuse.CAP_IOCTL_DIR, "has_ioctl_dir"},
		{fuse.CAP_READDIRPLUS, "do_readdirplus"},
		{fuse.CAP_WRITEBACK_CACHE, "writeback_cache"},
		{fuse.CAP_CACHE_SYMLINKS, "cache_symlinks"},
		{fuse.CAP_NO_OPENDIR_SUPPORT, "no_opendir_support"},
		{fuse.CAP_SETXATTR_EXT, "setxattr_ext"},
		{fuse.CAP_INIT_EXT, "init_ext"},
		{fuse.CAP_INIT_RESERVED, "init_reserved"},
		{fuse.CAP_SECURITY_CTX, "security_ctx"},
		{fuse.CAP_DIRECT_IO_ALLOW_MMAP, "direct_io_allow_mmap"},
		{fuse.CAP_PASSTHROUGH, "passthrough"},
		{fuse.CAP_NO_EXPORT_SUPPORT, "no_export_support"},
		{fuse.CAP_HAS_RESEND, "has_resend"},
		{fuse.CAP_ALLOW_IDMAP, "allow_idmap"},
		{fuse.CAP_OVER_IO_URING, "over_io_uring"},
		{fuse.CAP_REQUEST_TIMEOUT, "request_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, FlagNames(tc.cap), []string{tc.name})
		})
	}
	assert.Equal(t, Passthrough, uint64(fuse.CAP_PASSTHROUGH))
	assert.Equal(t, WritebackCache, uint64(fuse.CAP_WRITEBACK_CACHE))
	assert.Equal(t, OverIOUring, uint64(fuse.CAP_OVER_IO_URING))
	assert.Equal(t, RequestTimeout, uint64(fuse.CAP_REQUEST_TIMEOUT))
	assert.Equal(t, InitExt, uint64(fuse.CAP_INIT_EXT))
	assert.Equal(t, FOpenPassthrough, uint32(fuse.FOPEN_PASSTHROUGH))
}

// ioctlW is the kernel's _IOW(type, nr, size) on x86 and arm64.
func ioctlW(typ, nr, size uintptr) uintptr {
	const write = 1
	return write<<30 | size<<16 | typ<<8 | nr
}

func TestIoctlNumbers(t *testing.T) {
	type backingMap = BackingMap // struct fuse_backing_map
	for _, tc := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"BACKING_OPEN", DevIocBackingOpen, ioctlW(DevIocMagic, 1, unsafe.Sizeof(backingMap{}))},
		{"BACKING_CLOSE", DevIocBackingClose, ioctlW(DevIocMagic, 2, unsafe.Sizeof(uint32(0)))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Check(t, is.Equal(tc.got, tc.want), "%#x != %#x", tc.got, tc.want)
		})
	}
	// go-fuse registers backing files with this struct; its size fixes
	// the ioctl number.
	assert.Equal(t, unsafe.Sizeof(fuse.BackingMap{}), unsafe.Sizeof(backingMap{}))
}

// TestBackingMapLayout pins BackingMap to the kernel's struct
// fuse_backing_map and to go-fuse's copy, since the server package hands
// one to go-fuse as the other.
func TestBackingMapLayout(t *testing.T) {
	var m BackingMap
	var g fuse.BackingMap
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"size", unsafe.Sizeof(m), 16},
		{"fd offset", unsafe.Offsetof(m.Fd), 0},
		{"flags offset", unsafe.Offsetof(m.Flags), 4},
		{"padding offset", unsafe.Offsetof(m.Padding), 8},
		{"go-fuse size", unsafe.Sizeof(g), 16},
		{"go-fuse fd offset", unsafe.Offsetof(g.Fd), 0},
		{"go-fuse flags offset", unsafe.Offsetof(g.Flags), 4},
		{"alignment", unsafe.Alignof(m), unsafe.Alignof(g)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.got, tc.want)
		})
	}
}
