package probe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/server/loopback"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
)

var requestsProbe = scenarios.Scenario{
	ID:          contract.Requests,
	Description: "runs a fixed workload through our own loopback, classic and passthrough, and records the requests the kernel sent: sizes, opcodes per operation, flags",
	Run: func(ctx context.Context, env *scenarios.Env) results.Result {
		return requestsWith(ctx, env, dropCachesPath)
	},
}

// dropCachesPath makes the kernel evict every unused inode, which it
// forgets to the server: the requests workload's way to make FORGETs
// happen at a known point. Tests point it elsewhere, not to drop the
// caches of the machine that runs them.
const dropCachesPath = "/proc/sys/vm/drop_caches"

// The workload's sizes. The directory holds enough entries with long
// names that a listing needs several READDIRPLUS of a page each.
const (
	reqDirEntries = 64
	reqNameLen    = 200
	reqSeqFile    = 1 << 20
	reqSmallFile  = 64 << 10
	reqCopyLen    = 16 << 10
	// reqCacheTimeout keeps every name and attribute the kernel looked up
	// cached for the whole probe, so that a LOOKUP or GETATTR in a phase
	// is the operation's own doing, never an expiry's.
	reqCacheTimeout = time.Hour
	// reqQuiet is how long a phase must see no new request before it
	// counts, once every file it opened is released: RELEASE comes after
	// close(2) returns, and readahead may still be in flight.
	reqQuiet = 30 * time.Millisecond
	// reqSettle bounds the wait for a phase to go quiet.
	reqSettle = 3 * time.Second
)

// reqMount is one mount of the workload: a loopback of its own backing
// directory, recorded.
type reqMount struct {
	m   *wire.Mount
	rec *wire.Recorder
}

func (rm *reqMount) path(name string) string { return filepath.Join(rm.m.Dir, name) }

// reqPhase is one operation of the workload: setup prepares (its requests
// are not counted), act is the operation, teardown closes what setup
// opened. Each returns an error only when the workload cannot go on.
type reqPhase struct {
	setup    func(rm *reqMount) (state any, err error)
	act      func(rm *reqMount, state any) error
	teardown func(state any)
}

func requestsWith(ctx context.Context, env *scenarios.Env, dropCaches string) results.Result {
	if err := wire.CanMount(); err != nil {
		return results.Result{Status: results.Error, Reason: err.Error()}
	}
	r := results.Result{Status: results.Pass, Facts: map[string]string{}}
	var notes []string
	modes := []string{"classic"}
	switch c := env.Capabilities; {
	case c == nil:
		notes = append(notes, "fuse-init did not report what the kernel offers: passthrough modes tried anyway")
		modes = append(modes, "passthrough")
	case c.Passthrough:
		modes = append(modes, "passthrough")
	}
	modes = append(modes, "classic_noxattr")
	if slices.Contains(modes, "passthrough") {
		modes = append(modes, "passthrough_noxattr")
	}
	for _, mode := range modes {
		if err := ctx.Err(); err != nil {
			return scenarios.ErrorResult("%s: %v", mode, err)
		}
		ph, err := runModeBounded(ctx, env, mode, dropCaches, r.Facts)
		notes = append(notes, ph...)
		if err != nil {
			r.Status, r.Reason = results.Error, strings.Join(append(notes, err.Error()), "; ")
			return r
		}
	}
	r.Reason = strings.Join(notes, "; ")
	return r
}

// reqModeLimit bounds one mode's mount and phases, a few seconds under
// TCG: a mode that outlasts it has a request its server never answered
// (a hang of fusematrix's own recording loop, seen once in a CI run on a
// loaded machine, not a fact of the kernel, its cause not known), or ran
// that slowly; its error says which requests were left unanswered
// (wedgeReport). Aborting the mount ends it.
var reqModeLimit = 15 * time.Second

// runModeBounded is runRequestMode within reqModeLimit, run once more on a
// fresh mount when the first attempt outlasted it; the facts are the
// attempt's that finished, and a note says the first was abandoned.
func runModeBounded(ctx context.Context, env *scenarios.Env, mode, dropCaches string, facts map[string]string) ([]string, error) {
	var notes []string
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, reqModeLimit)
		e := *env
		if attempt > 1 {
			e.Dir = filepath.Join(env.Dir, fmt.Sprintf("attempt-%d", attempt))
		}
		got := map[string]string{}
		ph, err := runMode(actx, &e, mode, dropCaches, got)
		timedOut := errors.Is(actx.Err(), context.DeadlineExceeded)
		cancel()
		if timedOut && err == nil {
			// A step that notes a failure rather than failing (interrupt,
			// notify, forget) ran on an aborted mount: its facts are not
			// the kernel's.
			err = fmt.Errorf("%s: %w", mode, context.DeadlineExceeded)
		}
		if err != nil && timedOut && ctx.Err() == nil && attempt == 1 {
			notes = append(notes, fmt.Sprintf("%s: abandoned after %s (%v); run again on a fresh mount", mode, reqModeLimit, err))
			continue
		}
		notes = append(notes, ph...)
		maps.Copy(facts, got)
		return notes, err
	}
}

// runMode is runRequestMode; tests replace it.
var runMode = runRequestMode

// runRequestMode mounts one mode, runs its phases and adds their facts;
// the classic mode adds the workload-wide facts too. It returns notes on
// what could not be measured, and an error when the mode failed.
func runRequestMode(ctx context.Context, env *scenarios.Env, mode, dropCaches string, facts map[string]string) (notes []string, err error) {
	base := filepath.Join(env.Dir, mode)
	backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("%s: %w", mode, err)
		}
	}
	if err := reqFiles(backing); err != nil {
		return nil, fmt.Errorf("%s: workload files: %w", mode, err)
	}
	rec := &wire.Recorder{}
	pt := strings.HasPrefix(mode, "passthrough")
	m, err := loopback.Mount(ctx, mnt, backing, wire.Options{
		Passthrough: pt, NoXattr: strings.HasSuffix(mode, "_noxattr"), Record: rec,
		CacheTimeout: reqCacheTimeout, Logf: env.Printf, Name: "fusematrix-requests",
	})
	if err != nil {
		return nil, fmt.Errorf("%s: mount: %w", mode, err)
	}
	rm := &reqMount{m: m, rec: rec}
	// A request the server never answers would hold the probe past its
	// time: aborting the connection fails every waiting call. What the
	// mount waited for then is said in the error, taken before the
	// abort, which ends every request.
	var wedged string
	reported := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(reported)
		wedged = wedgeReport(m, mnt)
		if conn, err := wire.Connection(mnt); err == nil {
			_ = wire.AbortConnection(conn)
		}
	})
	defer func() {
		if !stop() {
			<-reported
			if err == nil {
				err = fmt.Errorf("%s: %w", mode, ctx.Err())
			}
			err = fmt.Errorf("%w (when the time ran out: %s)", err, wedged)
		}
		if uerr := m.Unmount(); uerr != nil {
			err = errors.Join(err, fmt.Errorf("%s: %w", mode, uerr))
		}
	}()
	if err := rm.prime(); err != nil {
		return nil, fmt.Errorf("%s: %w", mode, err)
	}
	start := rec.Len()
	ops := contract.RequestOps
	if strings.HasSuffix(mode, "_noxattr") {
		ops = contract.RequestNoXattrOps
	}
	for _, op := range ops {
		if err := ctx.Err(); err != nil {
			return notes, fmt.Errorf("%s: %w", mode, err)
		}
		reqs, note, err := rm.run(ctx, reqPhases[op])
		if err != nil {
			return notes, fmt.Errorf("%s %s: %w", op, mode, err)
		}
		if note != "" {
			notes = append(notes, fmt.Sprintf("%s %s: %s", op, mode, note))
		}
		for k, v := range phaseFacts(op, mode, reqs) {
			facts[k] = v
		}
	}
	if pt {
		// Facts named passthrough must come from passthrough: go-fuse
		// falls back to classic FUSE, silently, when registration fails.
		opens := m.Observer.Opens()
		if !slices.ContainsFunc(opens, wire.OpenReply.Passthrough) {
			return notes, fmt.Errorf("%s: no OPEN reply used passthrough: %s", mode,
				strings.Join(scenarios.OpenProblems(opens, m.Observer.Registrations()), "; "))
		}
	}
	if mode != "classic" {
		return notes, nil
	}
	// The workload-wide facts: sizes over every phase above.
	all := rec.Since(start)
	for k, v := range sizeFacts(all) {
		facts[k] = v
	}
	if in := m.InitReply(); in != nil {
		facts[string(contract.FactReplyMaxWrite)] = fmt.Sprint(in.MaxWrite)
		facts[string(contract.FactReplyMaxPages)] = fmt.Sprint(in.MaxPages)
		facts[string(contract.FactReplyMaxReadahead)] = fmt.Sprint(in.MaxReadAhead)
	}
	if ra, err := readaheadOf(mnt); err != nil {
		notes = append(notes, err.Error())
		facts[string(contract.FactUsedMaxReadahead)] = "unknown"
	} else {
		facts[string(contract.FactUsedMaxReadahead)] = fmt.Sprint(ra)
	}
	interrupt, note, err := rm.interrupt(ctx)
	if err != nil {
		return notes, fmt.Errorf("interrupt: %w", err)
	}
	if note != "" {
		notes = append(notes, "interrupt: "+note)
	}
	facts[string(contract.FactInterrupt)] = interrupt
	// Before the forget step: a node the kernel forgot is one it no
	// longer caches, and a retrieve of it fails with ENOENT.
	replies, note := rm.notify(ctx)
	if note != "" {
		notes = append(notes, "notify: "+note)
	}
	facts[string(contract.FactNotifyReply)] = replies
	nodes, batched, note := rm.forget(ctx, dropCaches)
	if note != "" {
		notes = append(notes, "forget: "+note)
	}
	facts[string(contract.FactForgetNodes)] = fmt.Sprint(nodes)
	facts[string(contract.FactForgetBatched)] = batched
	return notes, nil
}

// wedgeReport says what the mount at mnt was waiting for: the requests
// its loop read and never answered, each with its opcode, unique and how
// long ago it was read, and how many requests the kernel counted as
// waiting on the connection (fusectl's waiting), which also counts those
// the loop never read.
func wedgeReport(m *wire.Mount, mnt string) string {
	var parts []string
	for _, q := range m.Unanswered() {
		p := fmt.Sprintf("%s (unique %d, node %d) read %s before", wire.OpcodeName(q.Op), q.Unique, q.Node, q.Wait.Round(time.Millisecond))
		if q.Err != "" {
			p += ", not answered: " + q.Err
		}
		parts = append(parts, p)
	}
	report := "no request read and left unanswered"
	if len(parts) > 0 {
		report = "unanswered: " + strings.Join(parts, "; ")
	}
	if conn, err := wire.Connection(mnt); err == nil {
		if b, err := os.ReadFile(filepath.Join(wire.FusectlDir, conn, "waiting")); err == nil {
			report += fmt.Sprintf("; the kernel counted %s waiting", strings.TrimSpace(string(b)))
		}
	}
	return report
}

// Workload file names, in the backing directory of every mode.
const (
	reqFile   = "file"     // open_close, stat_after_write, fsync, fallocate, lseek_data
	reqWrite  = "write"    // write_4k, write_128k
	reqSeq    = "seq"      // seq_read
	reqMmap   = "mmap"     // mmap_read
	reqTrunc  = "truncate" // truncate
	reqFrom   = "from"     // rename's source
	reqTo     = "to"       // rename's target, absent
	reqSrc    = "src"      // copy_file_range's source
	reqDst    = "dst"      // copy_file_range's target
	reqDirent = "dir"      // readdir
)

// reqFiles makes the workload's files in backing, directly: data the
// kernel has not cached yet, which the first read must fetch.
func reqFiles(backing string) error {
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}
	for name, n := range map[string]int{reqFile: reqSmallFile, reqWrite: 0, reqSeq: reqSeqFile, reqMmap: reqSmallFile,
		reqTrunc: reqSmallFile, reqFrom: 16, reqSrc: reqCopyLen, reqDst: 0} {
		if err := os.WriteFile(filepath.Join(backing, name), data(n), 0o644); err != nil {
			return err
		}
	}
	dir := filepath.Join(backing, reqDirent)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for i := range reqDirEntries {
		name := fmt.Sprintf("%03d-%s", i, strings.Repeat("n", reqNameLen-4))
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// prime looks every workload path up once, so that no phase pays its
// first LOOKUP.
func (rm *reqMount) prime() error {
	for _, name := range []string{reqFile, reqWrite, reqSeq, reqMmap, reqTrunc, reqFrom, reqSrc, reqDst, reqDirent} {
		var st unix.Stat_t
		if err := unix.Stat(rm.path(name), &st); err != nil {
			return fmt.Errorf("stat %s: %w", name, err)
		}
	}
	return nil
}

// run runs one phase and returns the requests its act caused.
func (rm *reqMount) run(ctx context.Context, p reqPhase) ([]wire.Request, string, error) {
	var state any
	if p.setup != nil {
		s, err := p.setup(rm)
		if err != nil {
			return nil, "", fmt.Errorf("setup: %w", err)
		}
		state = s
	}
	var notes []string
	// What setup opened stays open until teardown; its OPENs were sent
	// before open(2) returned.
	held := rm.rec.Unreleased()
	// Without a setup, the previous phase left the mount quiet.
	if p.setup != nil {
		if err := rm.settle(ctx, held); err != nil {
			notes = append(notes, "before: "+err.Error())
		}
	}
	mark := rm.rec.Len()
	actErr := p.act(rm, state)
	// The phase's own RELEASEs (open_close) are awaited.
	if err := rm.settle(ctx, held); err != nil {
		notes = append(notes, err.Error())
	}
	reqs := rm.rec.Since(mark)
	if p.teardown != nil {
		p.teardown(state)
		if err := rm.settle(ctx, 0); err != nil {
			notes = append(notes, "after: "+err.Error())
		}
	}
	if actErr != nil {
		return nil, "", actErr
	}
	return reqs, strings.Join(notes, "; "), nil
}

// settle waits until open files number open (those setup holds) and no
// request came for reqQuiet.
func (rm *reqMount) settle(ctx context.Context, open int) error {
	deadline := time.Now().Add(reqSettle)
	last, since := rm.rec.Len(), time.Now()
	for {
		n := rm.rec.Len()
		if n != last {
			last, since = n, time.Now()
		}
		if rm.rec.Unreleased() <= open && time.Since(since) >= reqQuiet {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("requests still coming after %s", reqSettle)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// fdState is a phase's open descriptors.
type fdState []int

func closeAll(state any) {
	for _, fd := range state.(fdState) {
		unix.Close(fd)
	}
}

func openSetup(name string, flags int) func(rm *reqMount) (any, error) {
	return func(rm *reqMount) (any, error) {
		fd, err := unix.Open(rm.path(name), flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		return fdState{fd}, nil
	}
}

// writeN writes n blocks of size bytes at the start of the file.
func writeN(n, size int) func(rm *reqMount, state any) error {
	return func(rm *reqMount, state any) error {
		buf := make([]byte, size)
		for i := range n {
			if _, err := unix.Pwrite(state.(fdState)[0], buf, int64(i*size)); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		return nil
	}
}

// reqWrites is how many 4 KiB writes write_4k makes: enough to tell a
// request per write from one per file.
const reqWrites = 4

// reqPhases are the workload's operations (contract.RequestOps), each
// run on a mount where the workload's files are looked up and nothing
// else is open.
var reqPhases = map[string]reqPhase{
	"open_close": {act: func(rm *reqMount, _ any) error {
		fd, err := unix.Open(rm.path(reqFile), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		return unix.Close(fd)
	}},
	"stat_after_write": {
		setup: func(rm *reqMount) (any, error) {
			s, err := openSetup(reqFile, unix.O_WRONLY)(rm)
			if err != nil {
				return nil, err
			}
			return s, writeN(1, 4096)(rm, s)
		},
		act: func(rm *reqMount, state any) error {
			var st unix.Stat_t
			return unix.Fstat(state.(fdState)[0], &st)
		},
		teardown: closeAll,
	},
	"write_4k":   {setup: openSetup(reqWrite, unix.O_WRONLY), act: writeN(reqWrites, 4096), teardown: closeAll},
	"write_128k": {setup: openSetup(reqWrite, unix.O_WRONLY), act: writeN(1, 128<<10), teardown: closeAll},
	"readdir": {act: func(rm *reqMount, _ any) error {
		_, err := os.ReadDir(rm.path(reqDirent))
		return err
	}},
	"seq_read": {setup: openSetup(reqSeq, unix.O_RDONLY), act: func(rm *reqMount, state any) error {
		buf := make([]byte, 128<<10)
		for {
			n, err := unix.Read(state.(fdState)[0], buf)
			if err != nil {
				return fmt.Errorf("read: %w", err)
			}
			if n == 0 {
				return nil
			}
		}
	}, teardown: closeAll},
	"mmap_read": {setup: openSetup(reqMmap, unix.O_RDONLY), act: mmapRead, teardown: closeAll},
	"truncate": {act: func(rm *reqMount, _ any) error {
		return unix.Truncate(rm.path(reqTrunc), 4096)
	}},
	"rename": {act: func(rm *reqMount, _ any) error {
		return unix.Rename(rm.path(reqFrom), rm.path(reqTo))
	}},
	"fsync": {
		setup: func(rm *reqMount) (any, error) {
			s, err := openSetup(reqFile, unix.O_WRONLY)(rm)
			if err != nil {
				return nil, err
			}
			return s, writeN(1, 4096)(rm, s)
		},
		act:      func(rm *reqMount, state any) error { return unix.Fsync(state.(fdState)[0]) },
		teardown: closeAll,
	},
	"fallocate": {setup: openSetup(reqFile, unix.O_RDWR), act: func(rm *reqMount, state any) error {
		return unix.Fallocate(state.(fdState)[0], 0, 0, reqSmallFile*2)
	}, teardown: closeAll},
	"copy_file_range": {
		setup: func(rm *reqMount) (any, error) {
			src, err := unix.Open(rm.path(reqSrc), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, err
			}
			dst, err := unix.Open(rm.path(reqDst), unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				unix.Close(src)
				return nil, err
			}
			return fdState{src, dst}, nil
		},
		act: func(rm *reqMount, state any) error {
			fds := state.(fdState)
			_, err := unix.CopyFileRange(fds[0], nil, fds[1], nil, reqCopyLen, 0)
			return err
		},
		teardown: closeAll,
	},
	"lseek_data": {setup: openSetup(reqFile, unix.O_RDONLY), act: func(rm *reqMount, state any) error {
		_, err := unix.Seek(state.(fdState)[0], 0, unix.SEEK_DATA)
		return err
	}, teardown: closeAll},
}

// mmapRead maps the file and reads it through the mapping. The pages are
// touched by write(2) to a memfd, inside a system call (not /dev/null,
// whose write(2) reads nothing): a page fault in
// Go code on a mount this very process serves would stop the world's
// next collection until the fault is answered, by a goroutine stopped
// with it.
func mmapRead(rm *reqMount, state any) error {
	mem, err := unix.Mmap(state.(fdState)[0], 0, reqSmallFile, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	defer unix.Munmap(mem)
	null, err := unix.MemfdCreate("fusematrix-mmap-read", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd: %w", err)
	}
	defer unix.Close(null)
	for off := 0; off < len(mem); {
		n, err := unix.Write(null, mem[off:])
		if err != nil {
			return fmt.Errorf("read through the mapping: %w", err)
		}
		off += n
	}
	return nil
}

// interrupt makes the kernel interrupt a request: a GETXATTR the server
// holds (wire.HoldXattr) while the probe signals the thread waiting for
// it. It says "sent" when an INTERRUPT reached the server.
func (rm *reqMount) interrupt(ctx context.Context) (string, string, error) {
	if err := rm.settle(ctx, 0); err != nil {
		return "", "", err
	}
	mark := rm.rec.Len()
	tids := make(chan int, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- unix.Gettid()
		buf := make([]byte, 64)
		_, _ = unix.Getxattr(rm.path(reqFile), wire.HoldXattr, buf)
	}()
	tid := <-tids
	note := ""
	// Signal only once the request reached the server: before that, the
	// kernel has nothing to interrupt.
	deadline := time.Now().Add(reqSettle)
	for count(rm.rec.Since(mark), opGetxattr) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// SIGURG is the signal Go's runtime preempts with: its handler
	// ignores one it did not ask for.
	if err := unix.Tgkill(unix.Getpid(), tid, unix.SIGURG); err != nil {
		note = fmt.Sprintf("tgkill: %v", err)
	}
	wg.Wait()
	if err := rm.settle(ctx, 0); err != nil {
		note = strings.TrimPrefix(note+"; "+err.Error(), "; ")
	}
	if count(rm.rec.Since(mark), opInterrupt) > 0 {
		return "sent", note, nil
	}
	return "not sent", note, nil
}

// forget drops the kernel's caches, which forgets every inode of the
// mount no one holds, and returns how many nodes the server was told to
// forget and whether any came batched.
func (rm *reqMount) forget(ctx context.Context, dropCaches string) (int, string, string) {
	if err := rm.settle(ctx, 0); err != nil {
		return 0, "unknown", err.Error()
	}
	mark := rm.rec.Len()
	var note string
	if err := os.WriteFile(dropCaches, []byte("2"), 0); err != nil {
		note = fmt.Sprintf("drop caches: %v", err)
	}
	if err := rm.settle(ctx, 0); err != nil {
		note = strings.TrimPrefix(note+"; "+err.Error(), "; ")
	}
	nodes, batched := 0, "no"
	for _, q := range rm.rec.Since(mark) {
		nodes += int(q.Nodes)
		if q.Op == opBatchForget {
			batched = "yes"
		}
	}
	return nodes, batched, note
}

// notify asks the kernel, with FUSE_NOTIFY_RETRIEVE, for the cached data
// of a file the workload read, and says whether a NOTIFY_REPLY came back.
func (rm *reqMount) notify(ctx context.Context) (string, string) {
	var node uint64
	for _, q := range rm.rec.Since(0) {
		if q.Op == opRead {
			node = q.Node
			break
		}
	}
	if node == 0 {
		return "unknown", "no READ reached the server: no node to ask about"
	}
	if err := rm.settle(ctx, 0); err != nil {
		return "unknown", err.Error()
	}
	mark := rm.rec.Len()
	if err := rm.m.RetrieveCache(node, 0, reqSmallFile); err != nil {
		return "unknown", err.Error()
	}
	note := ""
	if err := rm.settle(ctx, 0); err != nil {
		note = err.Error()
	}
	if count(rm.rec.Since(mark), opNotifyReply) > 0 {
		return "sent", note
	}
	return "not sent", note
}

// Opcodes the probe looks for (include/uapi/linux/fuse.h).
const (
	opLookup      = 1
	opForget      = 2
	opGetattr     = 3
	opOpen        = 14
	opRead        = 15
	opWrite       = 16
	opGetxattr    = 22
	opInterrupt   = 36
	opNotifyReply = 41
	opBatchForget = 42
	opReaddir     = 28
	opReaddirplus = 44
)

func count(reqs []wire.Request, op uint32) int {
	n := 0
	for _, q := range reqs {
		if q.Op == op {
			n++
		}
	}
	return n
}

// phaseFacts are the facts of one phase: the opcodes with their counts,
// in opcode order, and the flags the phase reports. FORGET, BATCH_FORGET
// and INTERRUPT are left out: when the kernel forgets an inode depends on
// memory, and a request is interrupted whenever a signal reaches the
// waiting thread, which Go's runtime sends itself (preemption); neither is
// the operation's doing. The forget and interrupt steps count them.
func phaseFacts(op, mode string, reqs []wire.Request) map[string]string {
	counts := map[uint32]int{}
	var opcodes []uint32
	var flags uint32
	flagOp := map[string]uint32{contract.PhaseOpenFlags: opOpen, contract.PhaseWriteFlags: opWrite, contract.PhaseGetattrFlags: opGetattr}
	fs := contract.RequestPhaseFacts(op, mode)
	var flagFact contract.Fact
	var flagName string
	if len(fs) > 1 {
		flagFact = fs[1]
		_, flagName, _ = strings.Cut(string(flagFact), ".")
	}
	for _, q := range reqs {
		if q.Op == opForget || q.Op == opBatchForget || q.Op == opInterrupt {
			continue
		}
		if counts[q.Op] == 0 {
			opcodes = append(opcodes, q.Op)
		}
		counts[q.Op]++
		if flagName != "" && q.Op == flagOp[flagName] {
			flags |= q.Flags
		}
	}
	slices.Sort(opcodes)
	parts := make([]string, len(opcodes))
	for i, o := range opcodes {
		parts[i] = fmt.Sprintf("%s:%d", wire.OpcodeName(o), counts[o])
	}
	out := map[string]string{string(fs[0]): cmp.Or(strings.Join(parts, ","), "none")}
	if flagName != "" {
		names := openFlagNames
		switch flagName {
		case contract.PhaseWriteFlags:
			names = writeFlagNames
		case contract.PhaseGetattrFlags:
			names = getattrFlagNames
		}
		out[string(flagFact)] = flagText(flags, names)
	}
	return out
}

// sizeFacts are the workload-wide sizes: READ and WRITE, READDIR and
// READDIRPLUS, the largest request, and the largest READ or WRITE in pages.
func sizeFacts(reqs []wire.Request) map[string]string {
	type span struct{ min, max uint32 }
	spans := map[uint32]*span{}
	var largest uint32
	for _, q := range reqs {
		largest = max(largest, q.Len)
		if q.Op != opRead && q.Op != opWrite && q.Op != opReaddir && q.Op != opReaddirplus {
			continue
		}
		s := spans[q.Op]
		if s == nil {
			spans[q.Op] = &span{q.Size, q.Size}
			continue
		}
		s.min, s.max = min(s.min, q.Size), max(s.max, q.Size)
	}
	get := func(op uint32) span {
		if s := spans[op]; s != nil {
			return *s
		}
		return span{}
	}
	page := uint32(os.Getpagesize())
	rw := max(get(opRead).max, get(opWrite).max)
	return map[string]string{
		string(contract.FactReadSizeMin):     fmt.Sprint(get(opRead).min),
		string(contract.FactReadSizeMax):     fmt.Sprint(get(opRead).max),
		string(contract.FactWriteSizeMin):    fmt.Sprint(get(opWrite).min),
		string(contract.FactWriteSizeMax):    fmt.Sprint(get(opWrite).max),
		string(contract.FactReaddirSize):     fmt.Sprint(get(opReaddir).max),
		string(contract.FactReaddirplusSize): fmt.Sprint(get(opReaddirplus).max),
		string(contract.FactRequestMax):      fmt.Sprint(largest),
		string(contract.FactUsedMaxPages):    fmt.Sprint((rw + page - 1) / page),
	}
}

// readaheadOf is the readahead the kernel set for the mount at dir, in
// bytes: its backing device's read_ahead_kb, which FUSE sets from the
// INIT reply's max_readahead.
func readaheadOf(dir string) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("readahead: %w", err)
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("readahead: %w", err)
	}
	kb, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("readahead %s: %w", path, err)
	}
	return kb << 10, nil
}

// flagText names the bits of v ("none" for 0), an unnamed bit as hex.
func flagText(v uint32, names []flagName) string {
	if v == 0 {
		return "none"
	}
	var parts []string
	for _, n := range names {
		if n.mask != 0 && v&n.mask == n.mask {
			parts = append(parts, n.name)
			v &^= n.mask
		}
	}
	if v != 0 {
		parts = append(parts, fmt.Sprintf("%#x", v))
	}
	return strings.Join(parts, "|")
}

type flagName struct {
	mask uint32
	name string
}

// openFlagNames are the open(2) flags on x86-64 (include/uapi/asm-generic
// /fcntl.h). O_RDONLY is 0: an open without O_WRONLY or O_RDWR is named
// by the others.
var openFlagNames = []flagName{
	{unix.O_WRONLY, "O_WRONLY"}, {unix.O_RDWR, "O_RDWR"}, {unix.O_CREAT, "O_CREAT"}, {unix.O_EXCL, "O_EXCL"},
	{unix.O_NOCTTY, "O_NOCTTY"}, {unix.O_TRUNC, "O_TRUNC"}, {unix.O_APPEND, "O_APPEND"}, {unix.O_NONBLOCK, "O_NONBLOCK"},
	{unix.O_DSYNC, "O_DSYNC"}, {unix.O_ASYNC, "FASYNC"}, {unix.O_DIRECT, "O_DIRECT"}, {0x8000, "O_LARGEFILE"},
	{unix.O_DIRECTORY, "O_DIRECTORY"}, {unix.O_NOFOLLOW, "O_NOFOLLOW"}, {unix.O_NOATIME, "O_NOATIME"},
	{unix.O_CLOEXEC, "O_CLOEXEC"}, {0x100000, "__O_SYNC"}, {unix.O_PATH, "O_PATH"}, {0x400000, "__O_TMPFILE"},
}

// writeFlagNames and getattrFlagNames are FUSE's (include/uapi/linux/fuse.h).
var (
	writeFlagNames   = []flagName{{1, "FUSE_WRITE_CACHE"}, {2, "FUSE_WRITE_LOCKOWNER"}, {4, "FUSE_WRITE_KILL_SUIDGID"}}
	getattrFlagNames = []flagName{{1, "FUSE_GETATTR_FH"}}
)
