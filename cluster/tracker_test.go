package cluster

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vsm-project/vsm/fsm"
)

// TestTrackedFSMSettlesWritesInFlight: a leader that lost its leadership
// with a write in flight learns from its FSM whether the entry at the
// write's index is that write (and its result), whether the apply came
// before or after it asked.
func TestTrackedFSMSettlesWritesInFlight(t *testing.T) {
	tf := newTrackedFSM(fsm.New(nil))
	mine := fsm.Encode(fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}})
	other := fsm.Encode(fsm.PutMiner{Miner: fsm.Miner{ID: 1001, SectorSize: 2048, PartitionSize: 2}})
	refused := fsm.Encode(fsm.RemoveStorage{Name: "none"})

	// Applied before the question: answered from the recent outcomes.
	tf.Apply(&raft.Log{Index: 5, Term: 3, Type: raft.LogCommand, Data: mine})
	ch, cancel := tf.watch(5, 3, mine)
	cancel()
	if o := <-ch; !o.ours || o.res.(fsm.Result).Changed != 1 {
		t.Fatalf("applied write not recognised: %+v", o)
	}
	// Another entry at the index, or one from an older term: not ours.
	ch, _ = tf.watch(5, 3, other)
	if o := <-ch; o.ours {
		t.Fatal("another command at the index was taken for ours")
	}
	ch, _ = tf.watch(5, 4, mine)
	if o := <-ch; o.ours {
		t.Fatal("an entry from an older term was taken for ours")
	}
	// Asked before the apply: answered when it comes, with the FSM's
	// refusal passed on.
	ch, cancel = tf.watch(6, 3, refused)
	defer cancel()
	select {
	case o := <-ch:
		t.Fatalf("answered before the apply: %+v", o)
	default:
	}
	tf.Apply(&raft.Log{Index: 6, Term: 4, Type: raft.LogCommand, Data: refused})
	select {
	case o := <-ch:
		if !o.ours || o.res.(fsm.Result).Err == nil {
			t.Fatalf("refused write: %+v", o)
		}
	case <-time.After(time.Second):
		t.Fatal("no answer after the apply")
	}
	if !tf.matches(&raft.Log{Index: 7, Term: 4, Type: raft.LogCommand, Data: mine}, 4, mine) ||
		tf.matches(&raft.Log{Index: 7, Term: 4, Type: raft.LogNoop}, 4, mine) {
		t.Fatal("matches")
	}
}
