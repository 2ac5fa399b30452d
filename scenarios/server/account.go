package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// TaskIO is what the kernel accounts for the threads of a process: its
// read calls and the bytes they returned (/proc/<pid>/task/*/io), and its
// context switches (…/status). A daemon that serves a request pays a read
// of /dev/fuse (or a splice) and a wake-up for it; one whose reads the
// kernel passes through pays neither, which is how fusematrix tells the
// two apart without taking the daemon's word.
type TaskIO struct {
	Syscr, Rchar, Switches int64
	// Syscw counts write calls, which a daemon over io_uring does not
	// make either.
	Syscw int64
}

// Account is the kernel's accounting of every thread of each of pids that
// is still there, by pid; none left is an error.
func Account(pids []int) (map[int]TaskIO, error) {
	out := map[int]TaskIO{}
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
		var sum TaskIO
		seen := false
		for _, task := range tasks {
			io, err := os.ReadFile(filepath.Join(task, "io"))
			if err != nil {
				if errors.Is(err, os.ErrNotExist) && filepath.Base(task) == strconv.Itoa(pid) {
					if _, serr := os.Stat(task); serr == nil {
						return nil, fmt.Errorf("no %s: the kernel lacks CONFIG_TASK_IO_ACCOUNTING", filepath.Join(task, "io"))
					}
				}
				continue // a thread, or the process, that ended meanwhile
			}
			status, _ := os.ReadFile(filepath.Join(task, "status"))
			sum.Syscr += field(io, "syscr:")
			sum.Syscw += field(io, "syscw:")
			sum.Rchar += field(io, "rchar:")
			sum.Switches += field(status, "voluntary_ctxt_switches:") + field(status, "nonvoluntary_ctxt_switches:")
			seen = true
		}
		if seen {
			out[pid] = sum
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the daemon's processes %v: gone", pids)
	}
	return out, nil
}

// AccountSince is what the processes of after did since before. A process
// seen only after counts from its birth: a daemon that forks into the
// background may have a child born in between, which overcounts by its
// start-up alone.
func AccountSince(before, after map[int]TaskIO) TaskIO {
	var d TaskIO
	for pid, a := range after {
		b := before[pid]
		d.Syscr += a.Syscr - b.Syscr
		d.Syscw += a.Syscw - b.Syscw
		d.Rchar += a.Rchar - b.Rchar
		d.Switches += a.Switches - b.Switches
	}
	return d
}

// field is the number after name at the start of a line of text.
func field(text []byte, name string) int64 {
	for line := range strings.Lines(string(text)) {
		if v, ok := strings.CutPrefix(line, name); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
