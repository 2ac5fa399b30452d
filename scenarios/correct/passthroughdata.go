package correct

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime/debug"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
)

// Passthrough correctness scenarios. Each runs against a loopback server
// process with passthrough negotiable, needs a kernel that offers
// FUSE_PASSTHROUGH (ptNeeds), and fails unless the server saw every open
// ask for passthrough and no READ or WRITE: the kernel must really have
// served the I/O from the backing file.

var ptIntegrity = scenarios.Scenario{
	ID:          contract.PtIntegrity,
	Description: "reads and writes at random offsets and sizes from several descriptors at once through passthrough match the backing file",
	Needs:       ptNeeds,
	AnyServer:   true,
	Run:         against(loopback.KindLoopback, ptIntegrityWith),
}

// The integrity file is a little over 1 MiB, so that offsets cross pages
// and readahead windows; each worker owns a stripe of it, so that what
// every read must return is known while the others write.
const (
	integritySize    = 1<<20 + 1234
	integrityWorkers = 4
	integrityOps     = 64
	integrityMaxOp   = 64 << 10
)

func ptIntegrityWith(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	r, _, model, err := seededRig(ctx, env, sub, "pi", "file", integritySize)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range integrityWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, p := range integrityWorker(ctx, r.m("file"), w, model) {
				mu.Lock()
				r.failf("descriptor %d: %s", w, p)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.compareBoth("after the workers", "file", model)
	r.requirePassthrough()
	r.facts["workers"] = fmt.Sprint(integrityWorkers)
	return r.result()
}

// integrityWorker does random preads and pwrites within its stripe of
// model on a descriptor of its own, keeping model up to date, and returns
// what went wrong (at most a few problems).
func integrityWorker(ctx context.Context, path string, w int, model []byte) []string {
	lo, hi := w*len(model)/integrityWorkers, (w+1)*len(model)/integrityWorkers
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return []string{fmt.Sprintf("open: %v", err)}
	}
	defer unix.Close(fd)
	rng := rand.New(rand.NewPCG(uint64(w), 0x66))
	var problems []string
	for i := 0; i < integrityOps && len(problems) < 3 && ctx.Err() == nil; i++ {
		off := lo + rng.IntN(hi-lo)
		n := 1 + rng.IntN(min(integrityMaxOp, hi-off))
		buf := make([]byte, n)
		if rng.IntN(2) == 0 {
			for j := range buf {
				buf[j] = byte(rng.Uint32())
			}
			got, err := unix.Pwrite(fd, buf, int64(off))
			if err != nil || got != n {
				problems = append(problems, fmt.Sprintf("pwrite of %d bytes at %d: wrote %d, %v", n, off, got, err))
				continue
			}
			copy(model[off:], buf)
			continue
		}
		got, err := unix.Pread(fd, buf, int64(off))
		if err != nil {
			problems = append(problems, fmt.Sprintf("pread of %d bytes at %d: %v", n, off, err))
			continue
		}
		if p := compareData(buf[:got], model[off:off+n]); p != "" {
			problems = append(problems, fmt.Sprintf("pread of %d bytes at %d: %s (relative to the read)", n, off, p))
		}
	}
	return problems
}

var ptSizeAfterWrite = scenarios.Scenario{
	ID:          contract.PtSizeAfterWrite,
	Description: "size and contents after an extending passthrough write, O_APPEND writes and ftruncate; copy_file_range and sendfile of the just-extended file",
	Needs:       ptNeeds,
	AnyServer:   true,
	Run:         against(loopback.KindLoopback, ptSizeWith),
}

func ptSizeWith(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	r, rng, model, err := seededRig(ctx, env, sub, "ps", "grow", 5000)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	if err := sizeSteps(env, r, rng, model); err != nil {
		r.failf("%v", err)
	}
	r.requirePassthrough()
	return r.result()
}

// sizeSteps grows, appends to and truncates r's file "grow", checking
// sizes and contents after each step. An error ends the steps.
func sizeSteps(env *scenarios.Env, r *rig, rng *rand.ChaCha8, model []byte) error {
	fd, err := unix.Open(r.m("grow"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)

	// A write past the end leaves a hole the kernel must report as zeros.
	ext := randomBytes(rng, 3000)
	if n, err := unix.Pwrite(fd, ext, 10000); err != nil || n != len(ext) {
		return fmt.Errorf("extending pwrite: wrote %d, %v", n, err)
	}
	model = append(append(model, make([]byte, 10000-len(model))...), ext...)
	r.checkSize("after an extending pwrite", fd, "grow", int64(len(model)))
	r.compareBoth("after an extending pwrite", "grow", model)

	afd, err := unix.Open(r.m("grow"), unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open O_APPEND: %w", err)
	}
	defer unix.Close(afd)
	for range 2 {
		chunk := randomBytes(rng, 777)
		if n, err := unix.Write(afd, chunk); err != nil || n != len(chunk) {
			return fmt.Errorf("O_APPEND write: wrote %d, %v", n, err)
		}
		model = append(model, chunk...)
	}
	r.checkSize("after O_APPEND writes", afd, "grow", int64(len(model)))
	r.compareBoth("after O_APPEND writes", "grow", model)

	for _, size := range []int{4321, 20000} {
		if err := unix.Ftruncate(fd, int64(size)); err != nil {
			return fmt.Errorf("ftruncate to %d: %w", size, err)
		}
		model = append(model[:min(size, len(model))], make([]byte, max(0, size-len(model)))...)
		step := fmt.Sprintf("after ftruncate to %d", size)
		r.checkSize(step, fd, "grow", int64(size))
		r.compareBoth(step, "grow", model)
	}

	// Extend once more and copy at once: the copy must see the new size.
	tailData := randomBytes(rng, 4096+17)
	if n, err := unix.Pwrite(fd, tailData, int64(len(model))); err != nil || n != len(tailData) {
		return fmt.Errorf("extending pwrite before the copies: wrote %d, %v", n, err)
	}
	model = append(model, tailData...)
	r.copyFileRange(fd, model)
	r.sendfile(env, fd, model)
	return nil
}

// copyFileRange copies the file behind src to a new file on the same
// mount, where the kernel asks the server (FUSE_COPY_FILE_RANGE) or
// splices.
func (r *rig) copyFileRange(src int, want []byte) {
	dst, err := unix.Open(r.m("copy"), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		r.failf("copy_file_range: create the copy: %v", err)
		return
	}
	defer unix.Close(dst)
	var off int64
	for off < int64(len(want)) {
		in := off
		n, err := unix.CopyFileRange(src, &in, dst, nil, len(want)-int(off), 0)
		if err != nil {
			r.failf("copy_file_range at %d: %v", off, err)
			return
		}
		if n == 0 {
			break
		}
		off += int64(n)
	}
	if off != int64(len(want)) {
		r.failf("copy_file_range of the just-extended file copied %d bytes, the file has %d", off, len(want))
		return
	}
	r.flush("copy")
	r.compareFile("copy_file_range: the copy's backing file", r.b("copy"), want)
}

// sendfile copies the file behind src to a file outside the mount.
func (r *rig) sendfile(env *scenarios.Env, src int, want []byte) {
	path := filepath.Join(env.Dir, "sendfile-copy")
	dst, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		r.failf("sendfile: create the copy: %v", err)
		return
	}
	defer unix.Close(dst)
	var off int64
	for off < int64(len(want)) {
		n, err := unix.Sendfile(dst, src, &off, len(want)-int(off))
		if err != nil {
			r.failf("sendfile at %d: %v", off, err)
			return
		}
		if n == 0 {
			break
		}
	}
	if off != int64(len(want)) {
		r.failf("sendfile of the just-extended file copied %d bytes, the file has %d", off, len(want))
		return
	}
	r.compareFile("sendfile: the copy", path, want)
}

var ptMmapShared = scenarios.Scenario{
	ID:          contract.PtMmapShared,
	Description: "MAP_SHARED mapping of a passthrough file: reads match, stores reach the backing file after msync, backing writes show in the mapping",
	Needs:       ptNeeds,
	AnyServer:   true,
	Run:         against(loopback.KindLoopback, ptMmapWith),
}

// mmapSize ends in a partial page.
const mmapSize = 256<<10 + 100

func ptMmapWith(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	r, rng, model, err := seededRig(ctx, env, sub, "pm", "map", mmapSize)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	if err := mmapSteps(r, rng, model); err != nil {
		r.failf("%v", err)
	}
	r.requirePassthrough()
	return r.result()
}

func mmapSteps(r *rig, rng *rand.ChaCha8, model []byte) error {
	fd, err := unix.Open(r.m("map"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	return mmapChecks(r, rng, fd, "map", model)
}

// mmapChecks maps fd, a descriptor of name holding model, MAP_SHARED and
// checks that the mapping reads model, that stores reach the backing file
// after msync and that a write to the backing file shows in the mapping.
// model is updated with the stores.
func mmapChecks(r *rig, rng *rand.ChaCha8, fd int, name string, model []byte) error {
	mem, err := unix.Mmap(fd, 0, len(model), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if errors.Is(err, unix.ENODEV) && r.foreign != "" {
		// FUSE refuses shared mappings of files opened with direct_io
		// (unless the daemon allows them, FUSE_DIRECT_IO_ALLOW_MMAP): the
		// daemon's choice, not a fault.
		r.skip = r.foreign + " opens its files so that they cannot be mapped MAP_SHARED (mmap: ENODEV; direct_io without FUSE_DIRECT_IO_ALLOW_MMAP)"
		return nil
	}
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	defer unix.Munmap(mem)
	if ferr := guardFault(func() { err = mmapTouch(r, rng, mem, name, model) }); ferr != nil {
		return fmt.Errorf("touching the MAP_SHARED mapping: %w", ferr)
	}
	return err
}

// errFault is what guardFault reports for a memory fault.
var errFault = errors.New("SIGBUS (memory fault)")

// guardFault runs fn, which touches a mapping, and turns a fault there
// (SIGBUS once the file behind the mapping cannot be read) into errFault
// instead of the end of the process.
func guardFault(fn func()) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(interface{ Addr() uintptr }); !ok {
				panic(p)
			}
			err = errFault
		}
	}()
	fn()
	return nil
}

func mmapTouch(r *rig, rng *rand.ChaCha8, mem []byte, name string, model []byte) error {
	if p := compareData(mem, model); p != "" {
		r.failf("the mapping differs from the backing file: %s", p)
	}
	pick := rand.New(rand.NewPCG(7, 7))
	for range 16 {
		off := pick.IntN(len(model) - 4096)
		chunk := randomBytes(rng, 1+pick.IntN(4096))
		copy(mem[off:], chunk)
		copy(model[off:], chunk)
	}
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		r.failf("msync: %v", err)
	}
	r.compareFile("after stores to the mapping and msync, the backing file", r.b(name), model)

	// A passthrough mapping maps the backing file itself, so a write to
	// the backing file shows in it at once. A daemon's mapping may be of
	// its own pages, which a write behind its back need not reach: what
	// happened is a fact, and whether the daemon passes its files through
	// is its passthrough check's to judge.
	bfd, err := unix.Open(r.b(name), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the backing file: %w", err)
	}
	defer unix.Close(bfd)
	off := len(model) / 2
	chunk := randomBytes(rng, 512)
	if n, err := unix.Pwrite(bfd, chunk, int64(off)); err != nil || n != len(chunk) {
		return fmt.Errorf("pwrite to the backing file: wrote %d, %v", n, err)
	}
	p := compareData(mem[off:off+len(chunk)], chunk)
	switch {
	case r.foreign != "" && p != "":
		r.facts["backing_write_in_mapping"] = "not shown: the mapping holds the daemon's pages, not the backing file's"
	case r.foreign != "":
		r.facts["backing_write_in_mapping"] = "shown at once: the mapping is of the backing file"
	case p != "":
		r.failf("a write to the backing file does not show in the mapping: %s (relative to offset %d)", p, off)
	}
	copy(model[off:], chunk)
	return nil
}

var ptFsync = scenarios.Scenario{
	ID:          contract.PtFsync,
	Description: "fsync and fdatasync of a file written through passthrough succeed and the data is in the backing file",
	Needs:       ptNeeds,
	AnyServer:   true,
	Run:         against(loopback.KindLoopback, ptFsyncWith),
}

func ptFsyncWith(ctx context.Context, env *scenarios.Env, sub scenarios.Subject) results.Result {
	r, rng, model, err := seededRig(ctx, env, sub, "pf", "sync", 64<<10)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	fd, err := unix.Open(r.m("sync"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		r.failf("open: %v", err)
		return r.result()
	}
	for _, step := range []struct {
		name string
		off  int
		sync func(int) error
	}{
		{"fsync", 1000, unix.Fsync},
		{"fdatasync", 30000, unix.Fdatasync},
	} {
		chunk := randomBytes(rng, 8192)
		if n, err := unix.Pwrite(fd, chunk, int64(step.off)); err != nil || n != len(chunk) {
			r.failf("pwrite before %s: wrote %d, %v", step.name, n, err)
			continue
		}
		copy(model[step.off:], chunk)
		if err := step.sync(fd); err != nil {
			r.failf("%s: %v", step.name, err)
		}
	}
	if err := unix.Close(fd); err != nil {
		r.failf("close: %v", err)
	}
	r.compareFile("after fsync and fdatasync, the backing file", r.b("sync"), model)
	r.requirePassthrough()
	if st := r.stats; st != nil {
		// The kernel forwards FSYNC to the daemon even for a passthrough
		// file; the daemon syncs its own descriptor of the backing file.
		r.facts["fsync_requests"] = fmt.Sprint(st.Fsyncs)
	}
	return r.result()
}
