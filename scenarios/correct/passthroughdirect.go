package correct

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
)

// pt/direct-io checks FOPEN_PASSTHROUGH together with FOPEN_DIRECT_IO.
// fs/fuse/file.c routes read_iter and write_iter (and splice) to the
// server when FOPEN_DIRECT_IO is set ("FOPEN_DIRECT_IO overrides
// FOPEN_PASSTHROUGH", fuse_file_read_iter / fuse_file_write_iter) and mmap
// to the backing file whenever the file has one (fuse_file_mmap calls
// fuse_passthrough_mmap before it looks at FOPEN_DIRECT_IO);
// fs/fuse/iomode.c lists FOPEN_DIRECT_IO among the flags allowed with
// FOPEN_PASSTHROUGH and says so: "read/write operations go directly to
// the server, but mmap is done on the backing file". The same holds from
// 6.9, where passthrough arrived, to the FUSE tree after 6.18.
var ptDirectIO = scenarios.Scenario{
	ID:          contract.PtDirectIO,
	Description: "FOPEN_PASSTHROUGH with FOPEN_DIRECT_IO: read(2) and write(2) reach the server, a MAP_SHARED mapping is the backing file's",
	Needs:       ptNeeds,
	Run:         against(loopback.KindDirectIO, ptDirectIOWith),
}

func ptDirectIOWith(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	r, rng, model, err := seededRig(ctx, env, sub, "pd", "map", mmapSize)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	if err := directIOSteps(r, rng, model); err != nil {
		r.failf("%v", err)
	}
	st := r.stop()
	if st == nil {
		r.failf("the server reported nothing: where the I/O went is unknown")
		return r.result()
	}
	for i, o := range st.Opens {
		r.facts[fmt.Sprintf("open%d", i+1)] = fmt.Sprintf("%s, open_flags %#x", describeReply(o), o.OpenFlags)
		if !o.Passthrough() || o.OpenFlags&fuse.FOPEN_DIRECT_IO == 0 {
			r.failf("not exercised: open reply %d of %d is %s with open_flags %#x, not FOPEN_PASSTHROUGH|FOPEN_DIRECT_IO", i+1, len(st.Opens), describeReply(o), o.OpenFlags)
		}
	}
	if len(st.Opens) == 0 {
		r.failf("no OPEN reached the server")
	}
	// With FOPEN_DIRECT_IO, read(2) and write(2) must be the server's.
	if st.Reads == 0 {
		r.failf("no READ reached the server: with FOPEN_DIRECT_IO the kernel sends read(2) to it (fuse_file_read_iter)")
	}
	if st.Writes == 0 {
		r.failf("no WRITE reached the server: with FOPEN_DIRECT_IO the kernel sends write(2) to it (fuse_file_write_iter)")
	}
	return r.result()
}

// directIOSteps reads and writes "map" with read(2) and write(2), then
// maps it.
func directIOSteps(r *rig, rng *rand.ChaCha8, model []byte) error {
	fd, err := unix.Open(r.m("map"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	r.compareFd("read(2) through the mount", fd, model)
	chunk := randomBytes(rng, 5000)
	if n, err := unix.Pwrite(fd, chunk, 7000); err != nil || n != len(chunk) {
		return fmt.Errorf("pwrite: wrote %d, %v", n, err)
	}
	copy(model[7000:], chunk)
	r.compareFile("after pwrite, the backing file", r.b("map"), model)
	if err := mmapChecks(r, rng, fd, "map", model); err != nil {
		return err
	}
	// read(2), served by the server from the backing file, sees what the
	// mapping stored.
	r.compareFd("read(2) after the stores to the mapping", fd, model)
	return nil
}
