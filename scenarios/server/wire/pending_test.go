package wire

import (
	"errors"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestPendingSet keeps a request from its reading until it is answered:
// one answered (or needing no answer) is gone, one whose handling ended
// without a reply stays with the reason, one still being handled stays
// as it is; the oldest comes first, and an INTERRUPT read again under
// the same unique (answered EAGAIN) is a request of its own.
func TestPendingSet(t *testing.T) {
	type step struct {
		read   fuse.InHeader
		done   bool
		err    error
		redone int // done for the step with this index instead, when > 0
	}
	getxattr := fuse.InHeader{Opcode: opGetxattr, Unique: 10, NodeId: 2}
	write := fuse.InHeader{Opcode: opWrite, Unique: 12, NodeId: 2}
	interrupt := fuse.InHeader{Opcode: opInterrupt, Unique: 11}
	for _, tc := range []struct {
		name  string
		steps []step
		want  []Unanswered
	}{
		{name: "answered", steps: []step{{read: getxattr, done: true}}, want: []Unanswered{}},
		{name: "being handled", steps: []step{{read: getxattr}},
			want: []Unanswered{{Op: opGetxattr, Unique: 10, Node: 2}}},
		{name: "not answered", steps: []step{{read: getxattr, done: true, err: errors.New("reply: invalid argument")}},
			want: []Unanswered{{Op: opGetxattr, Unique: 10, Node: 2, Err: "reply: invalid argument"}}},
		{name: "oldest first", steps: []step{{read: getxattr}, {read: write}, {read: fuse.InHeader{Opcode: opRead, Unique: 14}, done: true}},
			want: []Unanswered{{Op: opGetxattr, Unique: 10, Node: 2}, {Op: opWrite, Unique: 12, Node: 2}}},
		{name: "interrupt read twice", steps: []step{{read: interrupt}, {read: interrupt}, {done: true, redone: 1}},
			want: []Unanswered{{Op: opInterrupt, Unique: 11}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p pendingSet
			var marks []uint64
			for _, s := range tc.steps {
				if s.redone > 0 {
					p.done(marks[s.redone-1], s.err)
					continue
				}
				mark := p.add(&s.read)
				marks = append(marks, mark)
				if s.done {
					p.done(mark, s.err)
				}
			}
			got := p.list()
			for i := range got {
				assert.Check(t, got[i].Wait >= 0)
				got[i].Wait = 0
			}
			assert.Check(t, is.DeepEqual(got, tc.want))
		})
	}
}
