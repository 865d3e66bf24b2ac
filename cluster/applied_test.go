package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vsm-project/vsm/fsm"
)

func TestAppliedIndexWaitFor(t *testing.T) {
	cases := []struct {
		name   string
		stores []uint64
		want   uint64
		ok     bool
	}{
		{"already applied", []uint64{7}, 5, true},
		{"woken by the store that reaches it", []uint64{3, 4, 5}, 5, true},
		{"a lower index does not release it", []uint64{3, 4}, 5, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var a appliedIndex
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- a.waitFor(ctx, func() bool { return a.Load() >= tc.want }, func() <-chan time.Time { return nil })
			}()
			for _, s := range tc.stores {
				time.Sleep(time.Millisecond)
				a.Store(s)
			}
			err := <-done
			if tc.ok && err != nil {
				t.Fatalf("wait for %d after stores %v: %v", tc.want, tc.stores, err)
			}
			if !tc.ok && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("wait for %d after stores %v returned %v, want the context's deadline", tc.want, tc.stores, err)
			}
		})
	}
}

// TestWaitAppliedWokenByApply waits for an index not yet written and
// checks that the write that fills it releases the wait, and that a wait
// nothing will fill ends with its context.
func TestWaitAppliedWokenByApply(t *testing.T) {
	ctx := context.Background()
	n := openNode(t, t.TempDir())
	defer n.Close(ctx)
	waitClusterID(t, n)
	next := n.raft.LastIndex() + 1
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		done <- n.WaitApplied(wctx, next)
	}()
	time.Sleep(20 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("WaitApplied(%d) returned before anything was written there: %v", next, err)
	default:
	}
	if _, err := n.Apply(ctx, fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("WaitApplied(%d) after the write applied: %v", next, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := n.WaitApplied(cctx, n.raft.LastIndex()+10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied for an index never written returned %v, want the context's deadline", err)
	}
}

// TestApplyBatch checks the batching FSM raft uses: command results come
// back in order, configuration entries count as applied, and the applied
// index ends at the batch's last entry.
func TestApplyBatch(t *testing.T) {
	tf := newTrackedFSM(fsm.New(nil))
	cmd := func(i uint64, c fsm.Command) *raft.Log {
		return &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: fsm.Encode(c)}
	}
	logs := []*raft.Log{
		cmd(1, fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}}),
		cmd(2, fsm.RemoveStorage{Name: "absent"}),
		{Index: 3, Term: 1, Type: raft.LogConfiguration},
	}
	res := tf.ApplyBatch(logs)
	if len(res) != len(logs) {
		t.Fatalf("%d results for %d entries", len(res), len(logs))
	}
	if r, ok := res[0].(fsm.Result); !ok || r.Err != nil || r.Changed != 1 {
		t.Fatalf("put miner: %#v", res[0])
	}
	if r, ok := res[1].(fsm.Result); !ok || !errors.Is(r.Err, fsm.ErrRejected) {
		t.Fatalf("removing an absent storage instance: %#v, want a rejection", res[1])
	}
	if res[2] != nil {
		t.Fatalf("configuration entry result %#v, want nil", res[2])
	}
	if got := tf.applied.Load(); got != 3 {
		t.Fatalf("applied index %d after a batch ending at 3", got)
	}
	ch, cancel := tf.watch(2, 1, logs[1].Data)
	defer cancel()
	if o := <-ch; !o.ours {
		t.Fatal("the outcome of entry 2 was not recorded as the write submitted there")
	}
}

// raft hands entries to the FSM before it advances its applied index. A
// wait for a barrier index (never signalled by the FSM) whose first check
// saw it undispatched must keep rechecking even if the index has moved by
// the time the timer is chosen; it used to read the index again there,
// see it dispatched, drop the timer and sleep until the next write.
func TestWaitAppliedBarrierDispatchedBetweenChecks(t *testing.T) {
	ctx := context.Background()
	n := openNode(t, t.TempDir())
	defer n.Close(ctx)
	waitClusterID(t, n)
	if err := n.raft.Barrier(0).Error(); err != nil {
		t.Fatal(err)
	}
	index := n.raft.LastIndex()
	if n.fsm.applied.Load() >= index {
		t.Fatalf("the FSM saw the barrier at %d", index)
	}
	calls := 0
	n.testDispatched = func() uint64 {
		calls++
		if calls == 1 {
			return index - 1 // the first check runs just before raft's update
		}
		return n.raft.AppliedIndex()
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := n.WaitApplied(wctx, index); err != nil {
		t.Fatalf("WaitApplied(barrier %d): %v after %v", index, err, time.Since(start))
	}
}
