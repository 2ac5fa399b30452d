/*
 * fusematrix-nullfs: a NOOP FUSE file system written in C on libfuse3's
 * low-level API, the reference peer for fusematrix's Go NOOP server
 * (scenarios/server/wire/noop.go).
 *
 * Why it exists: the throughput bench claims to measure what FUSE itself
 * costs. That only holds if the Go server is not the bottleneck, and the
 * way to show it is to run a C server that does the same nothing in the
 * same guest and compare. This one mirrors the Go server request for
 * request, so a difference in throughput is a difference in the servers,
 * not in what the kernel was asked to do:
 *
 *   - one regular file, NAME, of SIZE bytes, mode 0644, inode 2, in the
 *     root directory; READ returns the requested length of zeros from a
 *     buffer nobody writes; WRITE is acknowledged and discarded; SETATTR
 *     (truncation included) changes nothing;
 *   - entry and attribute timeouts of 1 s, no negative entry caching;
 *   - max_write = max_read = 128 KiB, hence max_pages = 32, the same
 *     MaxWrite the Go server uses (wire.MaxWrite), max_background 12
 *     and congestion threshold 9 (go-fuse's defaults), the kernel's own
 *     max_readahead;
 *   - the INIT flags go-fuse asks for and no others: libfuse's defaults
 *     (ATOMIC_O_TRUNC, HANDLE_KILLPRIV, ASYNC_DIO, ...) would change the
 *     requests the kernel sends, e.g. a SETATTR after open(O_TRUNC). The
 *     one go-fuse flag left out is READDIRPLUS: this root has READDIR
 *     only, which no file I/O touches;
 *   - GETXATTR answers ENODATA rather than ENOSYS, FLUSH and ACCESS
 *     succeed, FSYNC answers EOPNOTSUPP, as go-fuse's node bridge does:
 *     an ENOSYS would make the kernel stop sending the request, and the
 *     kernel asks for security.capability before every write(2);
 *     -x answers xattr requests with ENOSYS instead, as the Go server
 *     does under Options.NoXattr;
 *   - requests are served by libfuse's multi-threaded loop (at most 10
 *     workers, libfuse's default), as go-fuse serves them concurrently;
 *     -s serves them from one thread.
 *
 * -c counts requests by opcode (the names wire.OpcodeName uses) and the
 * bytes READ and WRITE asked for, and prints them on one line to stderr at
 * exit, so a test can check that the kernel sends this server the same
 * requests it sends the Go one. Without -c the counters are one
 * predictable branch per request.
 *
 * Mounting: as root, libfuse's fuse_session_mount opens /dev/fuse and
 * calls mount(2) itself (type fuse.fusematrix-nullfs, nosuid,nodev, the
 * same flags and kernel options as go-fuse's direct mount), so no
 * fusermount3 is needed; guests have none. Only when mount(2) says EPERM
 * does libfuse try fusermount3. A MOUNTPOINT of the form /dev/fd/N
 * instead serves an already mounted /dev/fuse descriptor N and leaves
 * mounting and unmounting to the caller.
 *
 * Usage: fusematrix-nullfs [-s] [-x] [-c] MOUNTPOINT NAME SIZE
 *        fusematrix-nullfs -V   (prints the libfuse version it was built with)
 *
 * Apart from -c and -V it prints nothing unless something fails. SIGTERM, SIGINT or SIGHUP, or
 * an unmount from outside, end the loop; the file system is then
 * unmounted (if this process mounted it) and the process exits 0.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Same value as wire.MaxWrite in scenarios/server/wire/mount.go. */
#define NULLFS_MAX_WRITE (128 * 1024)
#define NULLFS_TIMEOUT 1.0
#define FILE_INO 2

static const char *file_name;
static off_t file_size;
static int no_xattr;

enum {
	OP_LOOKUP,
	OP_GETATTR,
	OP_SETATTR,
	OP_OPEN,
	OP_READ,
	OP_WRITE,
	OP_FLUSH,
	OP_RELEASE,
	OP_FSYNC,
	OP_GETXATTR,
	OP_LISTXATTR,
	OP_ACCESS,
	OP_OPENDIR,
	OP_READDIR,
	OP_COUNT
};

/* Opcode names of include/uapi/linux/fuse.h without FUSE_. */
static const char *const op_names[OP_COUNT] = {
	"LOOKUP", "GETATTR", "SETATTR",   "OPEN",      "READ",   "WRITE",   "FLUSH",
	"RELEASE", "FSYNC",  "GETXATTR", "LISTXATTR", "ACCESS", "OPENDIR", "READDIR",
};

static int counting;
static unsigned long long op_counts[OP_COUNT];
static unsigned long long read_bytes, write_bytes, read_max, write_max;

static void count(int op)
{
	if (counting)
		__atomic_fetch_add(&op_counts[op], 1, __ATOMIC_RELAXED);
}

static void count_bytes(int op, size_t size)
{
	unsigned long long *total = op == OP_READ ? &read_bytes : &write_bytes;
	unsigned long long *max = op == OP_READ ? &read_max : &write_max;
	unsigned long long seen;

	if (!counting)
		return;
	__atomic_fetch_add(&op_counts[op], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(total, size, __ATOMIC_RELAXED);
	seen = __atomic_load_n(max, __ATOMIC_RELAXED);
	while (size > seen &&
	       !__atomic_compare_exchange_n(max, &seen, size, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void print_counts(void)
{
	int i;

	fprintf(stderr, "fusematrix-nullfs: counts");
	for (i = 0; i < OP_COUNT; i++)
		fprintf(stderr, " %s=%llu", op_names[i], op_counts[i]);
	fprintf(stderr, " read_bytes=%llu write_bytes=%llu read_max=%llu write_max=%llu\n",
		read_bytes, write_bytes, read_max, write_max);
}

/*
 * READ replies point into this; it stays in .bss and is never written,
 * so it costs no memory and every reply is zeros. It is larger than any
 * READ the kernel sends under max_read = 128 KiB.
 */
static const char zeros[1 << 20];

static void file_attr(struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FILE_INO;
	st->st_mode = S_IFREG | 0644;
	st->st_nlink = 1;
	st->st_size = file_size;
	st->st_blocks = (file_size + 511) / 512;
}

static void root_attr(struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
}

static void nullfs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* go-fuse's request set (fuse/opcode.go, doInit), as far as this
	 * file system has the operations behind it. BIG_WRITES and
	 * MAX_PAGES libfuse sets by itself. */
	conn->want = conn->capable & (FUSE_CAP_ASYNC_READ | FUSE_CAP_PARALLEL_DIROPS |
				      FUSE_CAP_AUTO_INVAL_DATA);
	conn->max_write = NULLFS_MAX_WRITE;
	/* Must equal the max_read mount option passed to fuse_session_new. */
	conn->max_read = NULLFS_MAX_WRITE;
	conn->max_background = 12;
	conn->congestion_threshold = 9;
}

static void nullfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;

	count(OP_LOOKUP);
	if (parent != FUSE_ROOT_ID || strcmp(name, file_name) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = FILE_INO;
	e.attr_timeout = NULLFS_TIMEOUT;
	e.entry_timeout = NULLFS_TIMEOUT;
	file_attr(&e.attr);
	fuse_reply_entry(req, &e);
}

/* GETATTR and SETATTR answer alike: the two inodes never change. */
static void reply_attr(fuse_req_t req, fuse_ino_t ino)
{
	struct stat st;

	switch (ino) {
	case FUSE_ROOT_ID:
		root_attr(&st);
		break;
	case FILE_INO:
		file_attr(&st);
		break;
	default:
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_reply_attr(req, &st, NULLFS_TIMEOUT);
}

static void nullfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	count(OP_GETATTR);
	(void)fi;
	reply_attr(req, ino);
}

/* Every change, truncation included, is accepted and ignored. */
static void nullfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			   struct fuse_file_info *fi)
{
	(void)attr;
	(void)to_set;
	(void)fi;
	count(OP_SETATTR);
	reply_attr(req, ino);
}

static void nullfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	count(OP_OPEN);
	if (ino != FILE_INO) {
		fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
		return;
	}
	/* Page cache as usual, no keep_cache, no direct_io: what the Go
	 * server's open reply (flags 0) gives. */
	fuse_reply_open(req, fi);
}

static void nullfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	size_t n;

	(void)ino;
	(void)fi;
	count_bytes(OP_READ, size);
	if (off >= file_size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	n = size;
	if ((off_t)n > file_size - off)
		n = (size_t)(file_size - off);
	if (n > sizeof(zeros)) {
		/* Larger than max_read allows; never sent by the kernel. */
		fuse_reply_err(req, EIO);
		return;
	}
	fuse_reply_buf(req, zeros, n);
}

static void nullfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
			 off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)buf;
	(void)off;
	(void)fi;
	count_bytes(OP_WRITE, size);
	fuse_reply_write(req, size);
}

static void nullfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	count(OP_FLUSH);
	fuse_reply_err(req, 0);
}

static void nullfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	count(OP_RELEASE);
	fuse_reply_err(req, 0);
}

static void nullfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
			 struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	count(OP_FSYNC);
	fuse_reply_err(req, EOPNOTSUPP);
}

static void nullfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	(void)ino;
	(void)name;
	(void)size;
	count(OP_GETXATTR);
	fuse_reply_err(req, no_xattr ? ENOSYS : ENODATA);
}

static void nullfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	(void)ino;
	count(OP_LISTXATTR);
	if (no_xattr)
		fuse_reply_err(req, ENOSYS);
	else if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

static void nullfs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	(void)ino;
	(void)mask;
	count(OP_ACCESS);
	fuse_reply_err(req, 0);
}

static void nullfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	count(OP_OPENDIR);
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fuse_reply_open(req, fi);
}

static void nullfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	/* ".", ".." and the file: each entry's offset is its index + 1. */
	const char *names[] = {".", "..", file_name};
	const fuse_ino_t inos[] = {FUSE_ROOT_ID, FUSE_ROOT_ID, FILE_INO};
	char buf[4096];
	size_t used = 0;
	off_t i;

	(void)ino;
	(void)fi;
	count(OP_READDIR);
	if (size > sizeof(buf))
		size = sizeof(buf);
	for (i = off; i < 3; i++) {
		struct stat st;
		size_t need;

		memset(&st, 0, sizeof(st));
		st.st_ino = inos[i];
		st.st_mode = inos[i] == FILE_INO ? S_IFREG : S_IFDIR;
		need = fuse_add_direntry(req, buf + used, size - used, names[i], &st, i + 1);
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
}

static const struct fuse_lowlevel_ops nullfs_ops = {
	.init = nullfs_init,
	.lookup = nullfs_lookup,
	.getattr = nullfs_getattr,
	.setattr = nullfs_setattr,
	.open = nullfs_open,
	.read = nullfs_read,
	.write = nullfs_write,
	.flush = nullfs_flush,
	.release = nullfs_release,
	.fsync = nullfs_fsync,
	.getxattr = nullfs_getxattr,
	.listxattr = nullfs_listxattr,
	.access = nullfs_access,
	.opendir = nullfs_opendir,
	.readdir = nullfs_readdir,
};

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-s] [-x] [-c] MOUNTPOINT NAME SIZE\n"
			"  -s  serve requests from one thread (default: libfuse's multi-threaded loop)\n"
			"  -x  answer xattr requests with ENOSYS (default: no such attribute)\n"
			"  -c  count requests and print the counts to stderr at exit\n"
			"  -V  print the libfuse version and exit\n",
		prog);
}

int main(int argc, char *argv[])
{
	const char *prog = argc > 0 ? argv[0] : "fusematrix-nullfs";
	int single = 0, opt, ret = 1;
	char *end;
	unsigned long long size;
	const char *mountpoint;
	char mount_opts[64];
	struct fuse_session *se;

	while ((opt = getopt(argc, argv, "sxcVh")) != -1) {
		switch (opt) {
		case 's':
			single = 1;
			break;
		case 'x':
			no_xattr = 1;
			break;
		case 'c':
			counting = 1;
			break;
		case 'V':
			printf("libfuse %s\n", fuse_pkgversion());
			return 0;
		case 'h':
			usage(prog);
			return 0;
		default:
			usage(prog);
			return 2;
		}
	}
	if (argc - optind != 3) {
		usage(prog);
		return 2;
	}
	mountpoint = argv[optind];
	file_name = argv[optind + 1];
	if (file_name[0] == '\0' || strchr(file_name, '/') != NULL || strcmp(file_name, ".") == 0 ||
	    strcmp(file_name, "..") == 0) {
		fprintf(stderr, "%s: file name %s: want one path component\n", prog, file_name);
		return 2;
	}
	errno = 0;
	size = strtoull(argv[optind + 2], &end, 10);
	if (errno != 0 || end == argv[optind + 2] || *end != '\0' || argv[optind + 2][0] == '-' ||
	    size > (unsigned long long)LLONG_MAX) {
		fprintf(stderr, "%s: size %s: want a byte count\n", prog, argv[optind + 2]);
		return 2;
	}
	file_size = (off_t)size;

	/* fuse_session_new wants argv[0] followed by options only. */
	snprintf(mount_opts, sizeof(mount_opts), "max_read=%d", NULLFS_MAX_WRITE);
	char *fuse_argv[] = {(char *)prog, "-o", mount_opts, "-o",
			     "fsname=fusematrix-nullfs,subtype=fusematrix-nullfs", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(5, fuse_argv);

	se = fuse_session_new(&args, &nullfs_ops, sizeof(nullfs_ops), NULL);
	if (se == NULL)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_destroy;
	if (fuse_session_mount(se, mountpoint) != 0)
		goto out_signals;

	if (single) {
		ret = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();

		if (cfg == NULL) {
			fprintf(stderr, "%s: out of memory\n", prog);
			ret = 1;
		} else {
			fuse_loop_cfg_set_clone_fd(cfg, 0);
			ret = fuse_session_loop_mt(se, cfg);
			fuse_loop_cfg_destroy(cfg);
		}
	}
	/* A signal makes the loop return its number; that is a clean end. */
	if (ret > 0)
		ret = 0;
	fuse_session_unmount(se);
	if (counting)
		print_counts();
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
out:
	return ret == 0 ? 0 : 1;
}
