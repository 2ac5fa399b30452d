package probe

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
	"github.com/fusematrix/fusematrix/scenarios"
	"github.com/fusematrix/fusematrix/scenarios/fuseabi"
	"github.com/fusematrix/fusematrix/scenarios/server/wire"
	"github.com/fusematrix/fusematrix/scenarios/uring"
)

var ioUringProbe = scenarios.Scenario{
	ID:          contract.IOUring,
	Description: "turns fuse.enable_uring on for itself, registers FUSE io_uring ring entries, correctly and in each wrong way, serves one request over the ring, and records the kernel's answers",
	Run: func(ctx context.Context, env *scenarios.Env) results.Result {
		return ioUringIn(ctx, env, systemUring())
	},
}

// uringPaths are the files io-uring reads and writes; tests point them
// elsewhere.
type uringPaths struct {
	// param is fuse's enable_uring module parameter
	// (scenarios.EnableURing).
	param string
	// possible lists the CPUs the kernel may ever run: it makes one
	// ring queue for each (num_possible_cpus in fuse_uring_create).
	possible string
}

// systemUring are the system's files; the parameter is the one the
// uring/* checks switch too, so that a test that runs the agent on a
// host points both elsewhere at once.
func systemUring() uringPaths {
	return uringPaths{param: scenarios.EnableURing, possible: wire.PossibleCPUs}
}

// uringSettle is how long a command is given to fail before it counts as
// queued: the kernel answers a refused command at once, inline or from
// an io-wq worker after EAGAIN, and keeps an accepted REGISTER until it
// has a request for the entry.
const uringSettle = 300 * time.Millisecond

// uringServeWait bounds the wait for a request to arrive over the ring
// and for the stat(2) that caused it to return.
const uringServeWait = 10 * time.Second

// uringRig is what every case of io-uring works with.
type uringRig struct {
	env    *scenarios.Env
	queues int
	n      int // mount points made
	// entries are those of the connection withConnRaw has open, freed
	// once it and its ring are closed; entryErr is why one could not be
	// made.
	entries  []*uring.Entry
	entryErr error
}

// entry makes a ring entry that lives as long as the connection open in
// withConnRaw; nil when it could not be made (entryErr says why).
func (r *uringRig) entry(headerLen, payloadLen int) *uring.Entry {
	e, err := uring.NewEntry(headerLen, payloadLen)
	if err != nil {
		r.entryErr = err
		return nil
	}
	r.entries = append(r.entries, e)
	return e
}

// uringCase measures one misuse: "ok" when the kernel accepted the
// command (it stayed queued), else the errno name of its completion.
type uringCase struct {
	fact contract.Fact
	run  func(r *uringRig) (string, error)
}

var uringCases = []uringCase{
	{"before_init", func(r *uringRig) (string, error) {
		return r.withConn(false, fuseabi.OverIOUring, true, func(c *wire.Unserved, ring *uring.Ring) string {
			return r.register(ring, c, r.entry(uring.HeaderSize, wire.MaxWrite), 0)
		})
	}},
	{"not_negotiated", func(r *uringRig) (string, error) {
		return r.withConn(true, 0, true, func(c *wire.Unserved, ring *uring.Ring) string {
			return r.register(ring, c, r.entry(uring.HeaderSize, wire.MaxWrite), 0)
		})
	}},
	{"no_sqe128", func(r *uringRig) (string, error) {
		return r.withConn(true, fuseabi.OverIOUring, false, func(c *wire.Unserved, ring *uring.Ring) string {
			e := r.entry(uring.HeaderSize, wire.MaxWrite)
			if e == nil {
				return ""
			}
			sqe, _ := e.RegisterSQE(c.Fd, 0, 0)
			// fuse_uring_cmd_req does not fit a 16-byte command area:
			// the kernel refuses before reading it.
			return r.outcome(ring, sqe, nil)
		})
	}},
	{"qid_out_of_range", func(r *uringRig) (string, error) {
		return r.withConn(true, fuseabi.OverIOUring, true, func(c *wire.Unserved, ring *uring.Ring) string {
			return r.register(ring, c, r.entry(uring.HeaderSize, wire.MaxWrite), uint16(r.queues))
		})
	}},
	{"header_short", func(r *uringRig) (string, error) {
		return r.withConn(true, fuseabi.OverIOUring, true, func(c *wire.Unserved, ring *uring.Ring) string {
			return r.register(ring, c, r.entry(uring.HeaderSize-1, wire.MaxWrite), 0)
		})
	}},
	{"payload_short", func(r *uringRig) (string, error) {
		// The kernel wants room for the largest request: max_write, or
		// max_pages pages, whichever is more (here both are MaxWrite).
		return r.withConn(true, fuseabi.OverIOUring, true, func(c *wire.Unserved, ring *uring.Ring) string {
			return r.register(ring, c, r.entry(uring.HeaderSize, wire.MaxWrite-1), 0)
		})
	}},
	{"register_twice", func(r *uringRig) (string, error) {
		return r.withConn(true, fuseabi.OverIOUring, true, func(c *wire.Unserved, ring *uring.Ring) string {
			e := r.entry(uring.HeaderSize, wire.MaxWrite)
			if v := r.register(ring, c, e, 0); v != "ok" {
				return "first: " + v
			}
			return r.register(ring, c, e, 0)
		})
	}},
	{"commit_unknown", func(r *uringRig) (string, error) {
		return r.withConn(true, fuseabi.OverIOUring, true, func(c *wire.Unserved, ring *uring.Ring) string {
			e := r.entry(uring.HeaderSize, wire.MaxWrite)
			if v := r.register(ring, c, e, 0); v != "ok" {
				return "register: " + v
			}
			// Unique ids count up from 1 (by 2 since 6.x): this one was
			// never handed out on a new connection.
			sqe, cmd := e.CommitSQE(c.Fd, 0, 1<<62, 1)
			return r.outcome(ring, sqe, cmd)
		})
	}},
}

// ioUringIn runs io-uring with the files paths names.
func ioUringIn(ctx context.Context, env *scenarios.Env, paths uringPaths) results.Result {
	if err := wire.CanMount(); err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	facts := map[string]string{}
	orig, err := os.ReadFile(paths.param)
	if errors.Is(err, fs.ErrNotExist) {
		facts[string(contract.FactURingTransport)] = "absent"
		return results.Result{Status: results.Skip, Reason: "fuse has no enable_uring parameter: kernel built without CONFIG_FUSE_IO_URING", Facts: facts}
	}
	if err != nil {
		return scenarios.ErrorResult("enable_uring: %v", err)
	}
	def := strings.TrimSpace(string(orig))
	facts[string(contract.FactURingParamDefault)] = def
	queues, err := uring.PossibleCPUs(paths.possible)
	if err != nil {
		return scenarios.ErrorResult("%v", err)
	}
	facts[string(contract.FactURingQueues)] = strconv.Itoa(queues)
	// The ring's completions of a command run as task work of the thread
	// that submitted it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := &uringRig{env: env, queues: queues}

	// The kernel's default first, then the other setting: a connection
	// reads the parameter at INIT and at every command.
	var problems []string
	restore := func() {
		if err := os.WriteFile(paths.param, []byte(def), 0); err != nil {
			problems = append(problems, fmt.Sprintf("restore enable_uring=%s: %v", def, err))
		}
	}
	defer func() {
		if len(problems) > 0 {
			env.Printf("io-uring: %s", strings.Join(problems, "; "))
		}
	}()
	for _, v := range []string{"N", "Y"} {
		if err := os.WriteFile(paths.param, []byte(v), 0); err != nil {
			return scenarios.ErrorResult("set enable_uring=%s: %v", v, err)
		}
		offered, param, err := r.offeredAndParamOff()
		if err != nil {
			restore()
			return scenarios.ErrorResult("enable_uring=%s: %v", v, err)
		}
		key := contract.FactURingOfferedOff
		if v == "Y" {
			key = contract.FactURingOfferedOn
		} else {
			facts[string(contract.FactURingParamOff)] = param
		}
		facts[string(key)] = offered
	}
	facts[string(contract.FactURingParamSet)] = "Y"
	defer restore()

	if _, err := uring.Setup(1, true); err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) && (errno == unix.ENOSYS || errno == unix.EPERM) {
			facts[string(contract.FactURingTransport)] = "no io_uring"
			return results.Result{Status: results.Skip, Reason: fmt.Sprintf("the kernel refuses io_uring_setup (%s): io_uring is off (kernel.io_uring_disabled) or not built", errnoName(errno)), Facts: facts}
		}
		return scenarios.ErrorResult("%v", err)
	}

	served, why, err := r.serve()
	if err != nil {
		return scenarios.ErrorResult("serve: %v", err)
	}
	facts[string(contract.FactURingRegister)] = served.register
	facts[string(contract.FactURingServes)] = served.serves
	var broken []string
	for _, c := range uringCases {
		v, err := c.run(r)
		if err != nil {
			broken = append(broken, fmt.Sprintf("%s: %v", c.fact, err))
			continue
		}
		facts[string(c.fact)] = v
	}
	res := results.Result{Status: results.Pass, Facts: facts}
	switch {
	case len(broken) > 0:
		res.Status, res.Reason = results.Error, strings.Join(broken, "; ")
	case why != "":
		facts[string(contract.FactURingTransport)] = "fails"
		res.Status, res.Reason = results.Fail, why
	default:
		facts[string(contract.FactURingTransport)] = "works"
	}
	return res
}

// offeredAndParamOff mounts a connection under the parameter as it is
// now and says whether its INIT offered FUSE_OVER_IO_URING, and what a
// REGISTER on it answers after a reply that asks for io_uring anyway.
func (r *uringRig) offeredAndParamOff() (offered, register string, err error) {
	register, err = r.withConnInit(fuseabi.OverIOUring, true, func(c *wire.Unserved) {
		offered = "absent"
		if c.Offered()&fuseabi.OverIOUring != 0 {
			offered = "offered"
		}
	}, func(c *wire.Unserved, ring *uring.Ring) string {
		return r.register(ring, c, r.entry(uring.HeaderSize, wire.MaxWrite), 0)
	})
	return offered, register, err
}

type served struct{ register, serves string }

// serve registers one entry on every queue, which makes the ring ready,
// then stats the mount's root and answers each request that arrives
// over the ring with EXDEV, which no other path of the kernel returns
// for a stat(2) of a FUSE root. It returns why the ring did not serve,
// or "".
func (r *uringRig) serve() (served, string, error) {
	s := served{register: "-", serves: "-"}
	var why string
	_, err := r.withConn(true, fuseabi.OverIOUring, true, func(c *wire.Unserved, ring *uring.Ring) string {
		entries := make([]*uring.Entry, r.queues)
		for q := range entries {
			entries[q] = r.entry(uring.HeaderSize, wire.MaxWrite)
			v := r.register(ring, c, entries[q], uint16(q))
			if q == 0 || v != "ok" {
				s.register = v
			}
			if v != "ok" {
				why = fmt.Sprintf("REGISTER on queue %d: %s", q, v)
				return ""
			}
		}
		statErr := make(chan error, 1)
		go func() {
			var st unix.Stat_t
			statErr <- unix.Stat(c.Dir, &st)
		}()
		deadline := time.Now().Add(uringServeWait)
		var ops []string
		for {
			select {
			case err := <-statErr:
				switch {
				case errors.Is(err, unix.EXDEV) && len(ops) > 0:
					s.serves = "ok"
				case len(ops) == 0:
					s.serves = "no request"
					why = fmt.Sprintf("stat(2) of the mount returned %v without a request over the ring", err)
				default:
					s.serves = "wrong answer"
					why = fmt.Sprintf("stat(2) returned %v, not the EXDEV committed over the ring (requests %s)", err, strings.Join(ops, ","))
				}
				return ""
			default:
			}
			if time.Now().After(deadline) {
				s.serves = "timeout"
				why = fmt.Sprintf("stat(2) did not return within %s (requests over the ring: %s)", uringServeWait, strings.Join(ops, ","))
				return ""
			}
			cqe, err := ring.Wait(50 * time.Millisecond)
			if errors.Is(err, uring.ErrTimeout) {
				continue
			}
			if err != nil {
				s.serves, why = "wait failed", err.Error()
				return ""
			}
			if cqe.Res < 0 {
				s.serves = kernelErrno(cqe.Errno())
				why = fmt.Sprintf("a command on queue %d completed with %s", cqe.UserData, kernelErrno(cqe.Errno()))
				return ""
			}
			if int(cqe.UserData) >= len(entries) {
				continue
			}
			e := entries[cqe.UserData]
			h := (*fuse.InHeader)(unsafe.Pointer(&e.Header.InOut[0]))
			ops = append(ops, strconv.Itoa(int(h.Opcode)))
			*(*fuse.OutHeader)(unsafe.Pointer(&e.Header.InOut[0])) = fuse.OutHeader{
				Length: uint32(unsafe.Sizeof(fuse.OutHeader{})),
				Status: -int32(unix.EXDEV),
				Unique: h.Unique,
			}
			e.Header.RingEntInOut.PayloadSz = 0
			sqe, cmd := e.CommitSQE(c.Fd, uint16(cqe.UserData), e.Header.RingEntInOut.CommitID, cqe.UserData)
			if err := ring.Submit(sqe, cmd); err != nil {
				s.serves, why = "commit failed", err.Error()
				return ""
			}
		}
	})
	return s, why, err
}

// withConn mounts a connection, replies to its INIT with flags when
// init is set, and gives f a ring (with 128-byte SQEs when sqe128) and
// the connection. Both are closed after: the connection first, which
// ends every command the ring still holds.
func (r *uringRig) withConn(init bool, flags uint64, sqe128 bool, f func(*wire.Unserved, *uring.Ring) string) (string, error) {
	return r.withConnRaw(init, flags, sqe128, nil, f)
}

func (r *uringRig) withConnInit(flags uint64, sqe128 bool, seen func(*wire.Unserved), f func(*wire.Unserved, *uring.Ring) string) (string, error) {
	return r.withConnRaw(true, flags, sqe128, seen, f)
}

func (r *uringRig) withConnRaw(init bool, flags uint64, sqe128 bool, seen func(*wire.Unserved), f func(*wire.Unserved, *uring.Ring) string) (string, error) {
	r.n++
	dir := filepath.Join(r.env.Dir, fmt.Sprintf("uring%d", r.n))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("mount point: %w", err)
	}
	c, err := wire.MountUnserved(dir, "fusematrix-uring")
	if err != nil {
		return "", err
	}
	if seen != nil {
		seen(c)
	}
	ring, err := uring.Setup(8, sqe128)
	if err != nil {
		c.Close()
		return "", err
	}
	defer func() {
		if err := c.Close(); err != nil {
			r.env.Printf("io-uring: close %s: %v", dir, err)
		}
		ring.Close()
		for _, e := range r.entries {
			e.Free()
		}
		r.entries = nil
	}()
	if init {
		if err := c.ReplyInit(flags & (c.Offered() | fuseabi.OverIOUring)); err != nil {
			return "", err
		}
	}
	v := f(c, ring)
	if r.entryErr != nil {
		err, r.entryErr = r.entryErr, nil
		return "", err
	}
	return v, nil
}

// register submits REGISTER of e on queue qid and returns its outcome.
func (r *uringRig) register(ring *uring.Ring, c *wire.Unserved, e *uring.Entry, qid uint16) string {
	if e == nil {
		return "no entry"
	}
	sqe, cmd := e.RegisterSQE(c.Fd, qid, uint64(qid))
	return r.outcome(ring, sqe, cmd)
}

// outcome submits sqe with cmd and returns "ok" if no completion came
// within uringSettle or one came with success, else the errno name.
func (r *uringRig) outcome(ring *uring.Ring, sqe uring.SQE, cmd []byte) string {
	if err := ring.Submit(sqe, cmd); err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return kernelErrno(errno)
		}
		return "submit failed"
	}
	c, err := ring.Wait(uringSettle)
	if errors.Is(err, uring.ErrTimeout) {
		return "ok"
	}
	if err != nil {
		return "wait failed"
	}
	return kernelErrno(c.Errno())
}

// kernelErrno names e as fs/fuse does: EOPNOTSUPP, which Linux numbers
// as ENOTSUP too, is the name dev_uring.c returns.
func kernelErrno(e syscall.Errno) string {
	if e == unix.EOPNOTSUPP {
		return "EOPNOTSUPP"
	}
	return errnoName(e)
}
