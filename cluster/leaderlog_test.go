package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/vsm-project/vsm/fsm"
)

// gatedStore is an in-memory log store whose writes wait for the test to
// let them through, and which records the batches it was given in order.
type gatedStore struct {
	*raft.InmemStore
	gate chan error // each write takes one value: nil writes, an error fails

	mu      sync.Mutex
	batches [][]uint64
}

func newGatedStore() *gatedStore {
	return &gatedStore{InmemStore: raft.NewInmemStore(), gate: make(chan error, 64)}
}

func (g *gatedStore) StoreLogs(logs []*raft.Log) error {
	if err := <-g.gate; err != nil {
		return err
	}
	var idx []uint64
	for _, l := range logs {
		idx = append(idx, l.Index)
	}
	g.mu.Lock()
	g.batches = append(g.batches, idx)
	g.mu.Unlock()
	return g.InmemStore.StoreLogs(logs)
}

func (g *gatedStore) written() [][]uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([][]uint64(nil), g.batches...)
}

func entries(from, to uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
	}
	return out
}

func newTestLeaderLog(t *testing.T, leading bool) (*leaderLog, *gatedStore, *atomic.Bool, chan error) {
	t.Helper()
	store := newGatedStore()
	failed := make(chan error, 1)
	l := newLeaderLog(store, func(err error) { failed <- err })
	var lead atomic.Bool
	lead.Store(leading)
	l.setLeading(lead.Load)
	t.Cleanup(func() {
		close(store.gate) // let anything still queued through
		_ = l.Close()
	})
	return l, store, &lead, failed
}

// returnsWithin runs f and reports whether it returned within d; if not,
// it is left to finish in the background.
func returnsWithin(d time.Duration, f func()) (bool, <-chan struct{}) {
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
		return true, done
	case <-time.After(d):
		return false, done
	}
}

func TestLeaderLogQueuesTheLeadersWritesUntilSynced(t *testing.T) {
	l, store, _, _ := newTestLeaderLog(t, true)
	if err := l.StoreLogs(entries(1, 3)); err != nil {
		t.Fatal(err)
	}
	// The write is held at the gate, yet raft can read the entries back.
	var got raft.Log
	if err := l.GetLog(2, &got); err != nil || got.Index != 2 || got.Data[0] != 2 {
		t.Fatalf("GetLog(2) of a queued entry = %+v, %v", got, err)
	}
	if last, _ := l.LastIndex(); last != 3 {
		t.Fatalf("LastIndex with 1-3 queued = %d, want 3", last)
	}
	if first, _ := l.FirstIndex(); first != 1 {
		t.Fatalf("FirstIndex with 1-3 queued on an empty store = %d, want 1", first)
	}
	if c := l.syncedCommit(3); c != 0 {
		t.Fatalf("commit 3 told to followers while 1-3 are not synced = %d, want 0", c)
	}
	ok, done := returnsWithin(100*time.Millisecond, func() { _ = l.waitDurable(2) })
	if ok {
		t.Fatal("waitDurable(2) returned before entry 2 was written")
	}
	store.gate <- nil
	<-done
	if c := l.syncedCommit(3); c != 3 {
		t.Fatalf("commit 3 after 1-3 synced = %d, want 3", c)
	}
	if err := store.InmemStore.GetLog(3, &got); err != nil {
		t.Fatalf("entry 3 not in the store after it synced: %v", err)
	}
}

// Entries queued while a sync is under way go to disk together in the
// next write, in index order.
func TestLeaderLogWritesWhatQueuedDuringASyncTogether(t *testing.T) {
	l, store, _, _ := newTestLeaderLog(t, true)
	for i := uint64(1); i <= 4; i++ {
		if err := l.StoreLogs(entries(i, i)); err != nil {
			t.Fatal(err)
		}
		// The writer took entry 1 before 2 came; wait for that once.
		if i == 1 {
			eventually(t, "writer takes entry 1", func() bool {
				l.mu.Lock()
				defer l.mu.Unlock()
				return len(l.writing) == 1
			})
		}
	}
	if c := l.syncedCommit(4); c != 0 {
		t.Fatalf("synced commit = %d with 1-4 unsynced, want 0", c)
	}
	store.gate <- nil
	store.gate <- nil
	if err := l.waitDurable(4); err != nil {
		t.Fatal(err)
	}
	want := [][]uint64{{1}, {2, 3, 4}}
	if got := store.written(); len(got) != 2 || len(got[1]) != 3 || got[0][0] != 1 || got[1][0] != 2 {
		t.Fatalf("batches written = %v, want %v", got, want)
	}
}

// Writes that are not the leader's new commands are made before StoreLogs
// returns, after everything queued earlier.
func TestLeaderLogWritesOthersInOrderAndAtOnce(t *testing.T) {
	cases := []struct {
		name    string
		leading bool // at the second write
		second  []*raft.Log
	}{
		{"a deposed leader's follower write", false, entries(3, 3)},
		{"a configuration entry", true, []*raft.Log{{Index: 3, Term: 1, Type: raft.LogConfiguration}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, store, lead, _ := newTestLeaderLog(t, true)
			if err := l.StoreLogs(entries(1, 2)); err != nil {
				t.Fatal(err)
			}
			lead.Store(tc.leading)
			var err error
			ok, done := returnsWithin(100*time.Millisecond, func() { err = l.StoreLogs(tc.second) })
			if ok {
				t.Fatal("the second write returned while the queued 1-2 were not written")
			}
			store.gate <- nil // 1-2
			store.gate <- nil // 3
			<-done
			if err != nil {
				t.Fatal(err)
			}
			got := store.written()
			if len(got) != 2 || got[0][0] != 1 || got[1][0] != 3 {
				t.Fatalf("batches written = %v, want [[1 2] [3]]", got)
			}
		})
	}
}

// A deposed leader's conflicting suffix is deleted only once it is on
// disk; compaction below the queue does not wait.
func TestLeaderLogDeleteRange(t *testing.T) {
	l, store, _, _ := newTestLeaderLog(t, true)
	store.gate <- nil
	if err := l.StoreLogs(entries(1, 5)); err != nil {
		t.Fatal(err)
	}
	if err := l.waitDurable(5); err != nil {
		t.Fatal(err)
	}
	if err := l.StoreLogs(entries(6, 8)); err != nil {
		t.Fatal(err)
	}
	if ok, _ := returnsWithin(time.Second, func() { _ = l.DeleteRange(1, 3) }); !ok {
		t.Fatal("compaction of 1-3 waited for the queued 6-8")
	}
	ok, done := returnsWithin(100*time.Millisecond, func() { _ = l.DeleteRange(7, 8) })
	if ok {
		t.Fatal("deleting the queued 7-8 did not wait for them to be written")
	}
	store.gate <- nil
	<-done
	if last, _ := l.LastIndex(); last != 6 {
		t.Fatalf("LastIndex after deleting 7-8 = %d, want 6", last)
	}
}

// A failed sync is fatal: the node hears of it, nothing waiting on the
// entries is told they are durable, and nothing more is accepted.
func TestLeaderLogWriteFailureStopsEverything(t *testing.T) {
	l, store, _, failed := newTestLeaderLog(t, true)
	if err := l.StoreLogs(entries(1, 2)); err != nil {
		t.Fatal(err)
	}
	disk := errors.New("input/output error")
	store.gate <- disk
	select {
	case err := <-failed:
		if !errors.Is(err, disk) {
			t.Fatalf("onFail got %v, want the disk's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("onFail not called after a failed write")
	}
	if err := l.waitDurable(1); !errors.Is(err, disk) {
		t.Fatalf("waitDurable after a failed write = %v", err)
	}
	if err := l.StoreLogs(entries(3, 3)); !errors.Is(err, disk) {
		t.Fatalf("StoreLogs after a failed write = %v", err)
	}
	if c := l.syncedCommit(10); c != 0 {
		t.Fatalf("commit told to followers after entries 1-2 were lost = %d, want 0", c)
	}
}

// raft skips an index when it restores a backup; the next entries wait
// for the queue to empty, so queued runs stay consecutive for GetLog.
func TestLeaderLogQueueStaysConsecutive(t *testing.T) {
	l, store, _, _ := newTestLeaderLog(t, true)
	if err := l.StoreLogs(entries(1, 2)); err != nil {
		t.Fatal(err)
	}
	ok, done := returnsWithin(100*time.Millisecond, func() { _ = l.StoreLogs(entries(4, 5)) })
	if ok {
		t.Fatal("entries 4-5 were queued behind 1-2 with 3 missing")
	}
	store.gate <- nil
	<-done
	var got raft.Log
	if err := l.GetLog(5, &got); err != nil || got.Index != 5 {
		t.Fatalf("GetLog(5) = %+v, %v", got, err)
	}
}

func TestLeaderLogCloseWritesTheQueue(t *testing.T) {
	store := newGatedStore()
	l := newLeaderLog(store, nil)
	l.setLeading(func() bool { return true })
	if err := l.StoreLogs(entries(1, 2)); err != nil {
		t.Fatal(err)
	}
	store.gate <- nil
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if last, _ := store.InmemStore.LastIndex(); last != 2 {
		t.Fatalf("store's last index after Close = %d, want 2", last)
	}
	if err := l.StoreLogs(entries(3, 3)); !errors.Is(err, errLogClosed) {
		t.Fatalf("StoreLogs after Close = %v", err)
	}
}

// The FSM applies a batch only once the local log holds it on disk.
func TestTrackedFSMWaitsForDurableEntries(t *testing.T) {
	release := make(chan struct{})
	tf := newTrackedFSM(fsm.New(func(error) {}))
	tf.durable = func(index uint64) error { <-release; return nil }
	put := fsm.Encode(fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}})
	ok, done := returnsWithin(100*time.Millisecond, func() {
		tf.ApplyBatch([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: put}})
	})
	if ok || tf.applied.Load() != 0 {
		t.Fatal("the FSM applied an entry before it was durable")
	}
	if _, known := tf.FSM.Miner(1000); known {
		t.Fatal("the FSM state changed before the entry was durable")
	}
	close(release)
	<-done
	if tf.applied.Load() != 1 {
		t.Fatalf("applied = %d after the entry became durable, want 1", tf.applied.Load())
	}
}

// The transport lowers the commit index a leader sends to what it has
// synced, both on single calls and on the pipeline, and leaves everything
// else alone.
func TestClampedTransportSendsOnlySyncedCommit(t *testing.T) {
	a, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	seen := make(chan uint64, 4)
	go func() {
		for rpc := range b.Consumer() {
			req := rpc.Command.(*raft.AppendEntriesRequest)
			seen <- req.LeaderCommitIndex
			rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, Success: true}, nil)
		}
	}()
	clamped := &clampedTransport{NetworkTransport: a, synced: func(c uint64) uint64 { return min(c, 7) }}
	var _ raft.WithPreVote = clamped // pre-vote stays on
	req := &raft.AppendEntriesRequest{Term: 1, LeaderCommitIndex: 10, Entries: entries(1, 1)}
	var resp raft.AppendEntriesResponse
	if err := clamped.AppendEntries("b", b.LocalAddr(), req, &resp); err != nil {
		t.Fatal(err)
	}
	if c := <-seen; c != 7 {
		t.Fatalf("follower was told commit %d, want 7", c)
	}
	p, err := clamped.AppendEntriesPipeline("b", b.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	req = &raft.AppendEntriesRequest{Term: 1, LeaderCommitIndex: 5, Entries: entries(2, 2)}
	f, err := p.AppendEntries(req, &raft.AppendEntriesResponse{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if c := <-seen; c != 5 {
		t.Fatalf("pipelined follower was told commit %d, want 5 (below the synced 7)", c)
	}
}

// Across real nodes: while the leader's own sync is held back, a write
// is on the followers' disks and raft on the leader counts it committed,
// yet no member applies it and the writer is not answered; once the sync
// is let through, all of them do.
func TestNothingAppliedBeforeTheLeaderSynced(t *testing.T) {
	ctx := context.Background()
	nodes := openVoters(t, 3)
	leader := nodes[0]
	if _, err := leader.Apply(ctx, fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}}); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	var held atomic.Bool
	held.Store(true)
	wait := func() error {
		if held.Load() {
			<-hold
		}
		return nil
	}
	leader.leaderLog.testBeforeWrite.Store(&wait)
	release := func() {
		if held.Swap(false) {
			close(hold)
		}
	}
	t.Cleanup(release) // before the nodes close, which waits for the sync
	target := leader.raft.LastIndex() + 1
	answered := make(chan error, 1)
	go func() {
		_, err := leader.Apply(ctx, fsm.PutMiner{Miner: fsm.Miner{ID: 1001, SectorSize: 2048, PartitionSize: 2}})
		answered <- err
	}()
	eventually(t, "followers store the write and the leader counts it committed", func() bool {
		return nodes[1].raft.LastIndex() >= target && nodes[2].raft.LastIndex() >= target && leader.raft.CommitIndex() >= target
	})
	time.Sleep(300 * time.Millisecond) // several commit timeouts: followers would have heard
	for _, n := range nodes[1:] {
		if c := n.raft.CommitIndex(); c >= target {
			t.Fatalf("%s was told commit %d while the leader had not synced %d", n.ID(), c, target)
		}
	}
	for _, n := range nodes {
		if _, ok := n.FSM().Miner(1001); ok {
			t.Fatalf("%s applied the write before the leader had it on disk", n.ID())
		}
	}
	select {
	case err := <-answered:
		t.Fatalf("the writer was answered (%v) before the leader had the write on disk", err)
	default:
	}
	release()
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		eventually(t, n.ID()+" applies the write", func() bool { _, ok := n.FSM().Miner(1001); return ok })
	}
}

// A leader whose disk falls behind stops taking entries at the bound
// instead of queueing without end.
func TestLeaderLogBoundsTheQueue(t *testing.T) {
	l, store, _, _ := newTestLeaderLog(t, true)
	big := bytes.Repeat([]byte{1}, maxQueuedBytes)
	if err := l.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: big}}); err != nil {
		t.Fatal(err)
	}
	ok, done := returnsWithin(100*time.Millisecond, func() { _ = l.StoreLogs(entries(2, 2)) })
	if ok {
		t.Fatalf("a write past %d queued bytes was taken at once", maxQueuedBytes)
	}
	store.gate <- nil
	<-done
}

// Across real nodes: when the leader cannot sync a write, no member
// applies it, the writer is told its fate is unknown (the followers hold
// it, and the next leader may commit it), the node reports a fatal error,
// and its FSM refuses to snapshot a state that skipped the entry.
func TestLeaderSyncFailureAppliesNothing(t *testing.T) {
	ctx := context.Background()
	nodes := openVoters(t, 3)
	leader := nodes[0]
	if _, err := leader.Apply(ctx, fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}}); err != nil {
		t.Fatal(err)
	}
	disk := errors.New("no space left on device")
	fail := func() error { return disk }
	leader.leaderLog.testBeforeWrite.Store(&fail)
	target := leader.raft.LastIndex() + 1
	_, err := leader.Apply(ctx, fsm.PutMiner{Miner: fsm.Miner{ID: 1001, SectorSize: 2048, PartitionSize: 2}})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "may or may not have been applied") {
		t.Fatalf("write whose leader could not sync it: %v, want an unknown outcome", err)
	}
	select {
	case err := <-leader.Fatal():
		if !errors.Is(err, disk) {
			t.Fatalf("fatal error = %v, want the disk's", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the node did not report the failed sync as fatal")
	}
	time.Sleep(300 * time.Millisecond)
	for _, n := range nodes {
		if _, ok := n.FSM().Miner(1001); ok {
			t.Fatalf("%s applied a write the leader could not sync", n.ID())
		}
	}
	for _, n := range nodes[1:] {
		if c := n.raft.CommitIndex(); c >= target {
			t.Fatalf("%s was told commit %d, at or past the lost entry %d", n.ID(), c, target)
		}
	}
	if err := leader.SnapshotNow(ctx); err == nil {
		t.Fatal("the leader took a snapshot of a state that skipped the lost entry")
	}
	snaps, err := leader.snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range snaps {
		if m.Index >= target {
			t.Fatalf("the leader saved snapshot %s at index %d, past the lost entry %d", m.ID, m.Index, target)
		}
	}
}

// A leader that hands over leadership while its own sync is held back
// becomes a follower with entries still queued and takes the new leader's
// entries behind them (the order itself is TestLeaderLogWritesOthersInOrderAndAtOnce's):
// nothing deadlocks, the write in flight ends one way or the other, an
// acknowledged one is on the new leader, and every member ends with the
// same state.
func TestStepDownWithQueuedEntries(t *testing.T) {
	ctx := context.Background()
	nodes := openVoters(t, 3)
	old := nodes[0]
	if _, err := old.Apply(ctx, fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}}); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	var held atomic.Bool
	held.Store(true)
	wait := func() error {
		if held.Load() {
			<-hold
		}
		return nil
	}
	old.leaderLog.testBeforeWrite.Store(&wait)
	release := func() {
		if held.Swap(false) {
			close(hold)
		}
	}
	t.Cleanup(release)
	target := old.raft.LastIndex() + 1
	answered := make(chan error, 1)
	go func() {
		_, err := old.Apply(ctx, fsm.PutMiner{Miner: fsm.Miner{ID: 1001, SectorSize: 2048, PartitionSize: 2}})
		answered <- err
	}()
	eventually(t, "followers store the write", func() bool {
		return nodes[1].raft.LastIndex() >= target && nodes[2].raft.LastIndex() >= target
	})
	transferTo(t, old, nodes[1])
	eventually(t, "n2 leads", func() bool { return nodes[1].IsLeader() })
	// The new leader writes while the old one still holds its queue: the
	// old leader's follower write of it must wait behind the queue.
	newWrite := make(chan error, 1)
	go func() {
		_, err := nodes[1].Apply(ctx, fsm.PutMiner{Miner: fsm.Miner{ID: 1002, SectorSize: 2048, PartitionSize: 2}})
		newWrite <- err
	}()
	time.Sleep(200 * time.Millisecond)
	release()
	if err := <-newWrite; err != nil {
		t.Fatalf("the new leader's write: %v", err)
	}
	err := <-answered
	if err != nil && !errors.Is(err, ErrTimeout) {
		var nl *NotLeaderError
		if !errors.As(err, &nl) {
			t.Fatalf("the deposed leader's write in flight: %v, want success, unknown or not-leader", err)
		}
	}
	_, applied := nodes[1].FSM().Miner(1001)
	if err == nil && !applied {
		t.Fatal("the deposed leader acknowledged a write the new leader does not have")
	}
	for _, n := range nodes {
		eventually(t, n.ID()+" converges", func() bool {
			_, has1001 := n.FSM().Miner(1001)
			_, has1002 := n.FSM().Miner(1002)
			return has1001 == applied && has1002
		})
	}
}
