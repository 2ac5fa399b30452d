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
)

// Ops, Blocks and Modes span the benchmark table; Modes is in measuring
// order, so that a mode comes after those it is given as a ratio to.
var (
	Ops    = []Op{Read, Write}
	Blocks = []int{4 << 10, 128 << 10, 1 << 20}
	Modes  = []Mode{Native, LibfuseNoop, Noop, Classic, Passthrough, PassthroughNoXattr}
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

// ID is the cell's result id, bench/<op>/<mode>/<block>.
func (c Cell) ID() ID {
	return ID(fmt.Sprintf("%s%s/%s/%d", BenchPrefix, c.Op, c.Mode, c.Block))
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

// ParseCell reads a cell id. It accepts any op, mode and positive block
// size of the right form, so that results of a newer agent still render.
func ParseCell(id ID) (Cell, bool) {
	rest, ok := strings.CutPrefix(string(id), BenchPrefix)
	if !ok {
		return Cell{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return Cell{}, false
	}
	block, err := strconv.Atoi(parts[2])
	if err != nil || block <= 0 {
		return Cell{}, false
	}
	return Cell{Op: Op(parts[0]), Mode: Mode(parts[1]), Block: block}, true
}
