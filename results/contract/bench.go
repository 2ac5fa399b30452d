package contract

import (
	"fmt"
	"strconv"
	"strings"
)

// BenchPrefix starts the id of every benchmark cell.
const BenchPrefix = "bench/"

// DefaultBenchRuns is how many times a cell measures unless told.
const DefaultBenchRuns = 5

// Op is what a benchmark cell does to its file.
type Op string

const (
	Read  Op = "read"
	Write Op = "write"
)

// Mode is what serves a benchmark cell's file.
type Mode string

const (
	Native Mode = "native"
	// LibfuseNoop is the C NOOP peer on libfuse, the reference for Noop.
	LibfuseNoop Mode = "libfuse-noop"
	Noop        Mode = "noop"
	Classic     Mode = "classic"
	Passthrough Mode = "passthrough"
	// PassthroughNoXattr is Passthrough answering xattr requests with
	// ENOSYS; only writes ask for xattrs, so it measures only writes.
	PassthroughNoXattr Mode = "passthrough-noxattr"
	// NoopURing and PassthroughURing are Noop and Passthrough served over
	// FUSE's io_uring transport, where the kernel has it.
	NoopURing        Mode = "noop-uring"
	PassthroughURing Mode = "passthrough-uring"
)

// Ops, Blocks and Modes span the benchmark table; Modes is in measuring
// order, so that a mode comes after those it is given as a ratio to.
var (
	Ops    = []Op{Read, Write}
	Blocks = []int{4 << 10, 128 << 10, 1 << 20}
	Modes  = []Mode{Native, LibfuseNoop, Noop, Classic, Passthrough, PassthroughNoXattr, NoopURing, PassthroughURing}
)

// Measures says whether mode has a cell for op.
func (m Mode) Measures(op Op) bool {
	return m != PassthroughNoXattr || op == Write
}

// Cell is one op at one block size through one mode.
type Cell struct {
	Op    Op
	Mode  Mode
	Block int
}

// ID is the cell's result id, bench/<op>/<mode>/<block>; a daemon's cell
// is daemon/<name>/bench/<op>/<block> (DaemonCellID).
func (c Cell) ID() ID {
	if name, ok := c.Mode.Daemon(); ok {
		return DaemonID(name, DaemonCellID(c.Op, c.Block))
	}
	return ID(fmt.Sprintf("%s%s/%s/%d", BenchPrefix, c.Op, c.Mode, c.Block))
}

// DaemonMode is the mode of the cells of the daemon called name.
func DaemonMode(name string) Mode { return Mode(DaemonPrefix + name) }

// Daemon returns the name of the daemon whose mode m is.
func (m Mode) Daemon() (string, bool) {
	name, ok := strings.CutPrefix(string(m), DaemonPrefix)
	return name, ok && name != "" && !strings.Contains(name, "/")
}

// DaemonCellID is the id, under a daemon's prefix, of its cell for op at
// block: bench/<op>/<block>. The daemon is the mode, so the id needs none.
func DaemonCellID(op Op, block int) ID {
	return ID(fmt.Sprintf("%s%s/%d", BenchPrefix, op, block))
}

// DaemonCells are the cells of the daemon called name, in run order: every
// op at every block size.
func DaemonCells(name string) []Cell {
	var out []Cell
	for _, op := range Ops {
		for _, block := range Blocks {
			out = append(out, Cell{Op: op, Mode: DaemonMode(name), Block: block})
		}
	}
	return out
}

// In is the same op and block size through another mode.
func (c Cell) In(m Mode) Cell { return Cell{Op: c.Op, Mode: m, Block: c.Block} }

// Cells lists every cell in run order: by op, then block size, then mode.
func Cells() []Cell {
	var out []Cell
	for _, op := range Ops {
		for _, block := range Blocks {
			for _, m := range Modes {
				if m.Measures(op) {
					out = append(out, Cell{Op: op, Mode: m, Block: block})
				}
			}
		}
	}
	return out
}

// ParseCell reads a cell id, a daemon's (daemon/<name>/bench/<op>/<block>)
// too. It accepts any op, mode and positive block size of the right form,
// so that results of a newer agent still render.
func ParseCell(id ID) (Cell, bool) {
	if rest, ok := strings.CutPrefix(string(id), DaemonPrefix); ok {
		name, cell, ok := strings.Cut(rest, "/")
		parts := strings.Split(strings.TrimPrefix(cell, BenchPrefix), "/")
		if !ok || !strings.HasPrefix(cell, BenchPrefix) || len(parts) != 2 {
			return Cell{}, false
		}
		c, ok := parseCell(parts[0], string(DaemonMode(name)), parts[1])
		if _, named := c.Mode.Daemon(); !named {
			return Cell{}, false
		}
		return c, ok
	}
	rest, ok := strings.CutPrefix(string(id), BenchPrefix)
	if !ok {
		return Cell{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return Cell{}, false
	}
	return parseCell(parts[0], parts[1], parts[2])
}

func parseCell(op, mode, block string) (Cell, bool) {
	n, err := strconv.Atoi(block)
	if err != nil || n <= 0 || op == "" || mode == "" {
		return Cell{}, false
	}
	return Cell{Op: Op(op), Mode: Mode(mode), Block: n}, true
}
