package scheduler

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/dline"

	"go.uber.org/zap/zaptest"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/cluster/schedule"
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
)

func TestDiffAssignments(t *testing.T) {
	k := func(m uint64, d uint8) fsm.DeadlineKey { return fsm.DeadlineKey{Miner: m, Deadline: d} }
	sk := func(m uint64, d uint8) schedule.Key { return schedule.Key{Miner: m, Deadline: d} }
	tests := []struct {
		name    string
		current []fsm.Assignment
		planned []schedule.Assignment
		want    []fsm.Assignment
	}{
		{name: "nothing", want: nil},
		{name: "same owner and since: no write",
			current: []fsm.Assignment{{DeadlineKey: k(1, 0), Node: "a", Generation: 4, Since: 10}},
			planned: []schedule.Assignment{{Key: sk(1, 0), Owner: schedule.Owner{Node: "a", Since: 10}}},
		},
		{name: "new deadlines, sorted by key",
			planned: []schedule.Assignment{{Key: sk(2, 1), Owner: schedule.Owner{Node: "b"}}, {Key: sk(1, 5), Owner: schedule.Owner{Node: "a", Since: 7}}},
			want:    []fsm.Assignment{{DeadlineKey: k(1, 5), Node: "a", Since: 7}, {DeadlineKey: k(2, 1), Node: "b"}},
		},
		{name: "moved owner carries the plan's since",
			current: []fsm.Assignment{{DeadlineKey: k(1, 0), Node: "a", Generation: 1}},
			planned: []schedule.Assignment{{Key: sk(1, 0), Owner: schedule.Owner{Node: "b", Since: 300}}},
			want:    []fsm.Assignment{{DeadlineKey: k(1, 0), Node: "b", Since: 300}},
		},
		{name: "since change alone is written",
			current: []fsm.Assignment{{DeadlineKey: k(1, 0), Node: "a", Since: 5}},
			planned: []schedule.Assignment{{Key: sk(1, 0), Owner: schedule.Owner{Node: "a", Since: 6}}},
			want:    []fsm.Assignment{{DeadlineKey: k(1, 0), Node: "a", Since: 6}},
		},
		{name: "dropped deadline is unassigned; already unassigned ones are left alone",
			current: []fsm.Assignment{{DeadlineKey: k(3, 2), Node: "a"}, {DeadlineKey: k(3, 3), Node: "", Generation: 2}},
			want:    []fsm.Assignment{{DeadlineKey: k(3, 2)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diffAssignments(tt.current, tt.planned)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("diff\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestNodesFromMembers(t *testing.T) {
	now := time.Unix(1000, 0)
	cap2 := cluster.Capacity{GPUs: 2, Children: 2, ChildrenReady: 2, SecondsPerPartition: 1.5}
	tests := []struct {
		name    string
		member  cluster.Member
		suspect map[string]time.Time
		want    []schedule.Node
	}{
		{name: "alive with children",
			member: cluster.Member{Meta: cluster.Meta{ID: "a", Poster: true, Capacity: cap2}, State: "alive"},
			want:   []schedule.Node{{ID: "a", GPUs: 2, PartitionTime: 1500 * time.Millisecond, Alive: true}}},
		{name: "not a poster means no capacity",
			member: cluster.Member{Meta: cluster.Meta{ID: "a", Capacity: cap2}, State: "alive"},
			want:   []schedule.Node{{ID: "a", PartitionTime: 1500 * time.Millisecond, Alive: true}}},
		{name: "no ready children means no capacity",
			member: cluster.Member{Meta: cluster.Meta{ID: "a", Poster: true, Capacity: cluster.Capacity{GPUs: 2, Children: 2}}, State: "alive"},
			want:   []schedule.Node{{ID: "a", Alive: true}}},
		{name: "dead", member: cluster.Member{Meta: cluster.Meta{ID: "a", Poster: true, Capacity: cap2}, State: "dead"},
			want: []schedule.Node{{ID: "a", GPUs: 2, PartitionTime: 1500 * time.Millisecond}}},
		{name: "draining", member: cluster.Member{Meta: cluster.Meta{ID: "a", Poster: true, Draining: true, Capacity: cap2}, State: "alive"},
			want: []schedule.Node{{ID: "a", GPUs: 2, PartitionTime: 1500 * time.Millisecond, Alive: true, Draining: true}}},
		{name: "suspect briefly is still alive", member: cluster.Member{Meta: cluster.Meta{ID: "a", Poster: true, Capacity: cap2}, State: "suspect"},
			suspect: map[string]time.Time{"a": now.Add(-time.Second)},
			want:    []schedule.Node{{ID: "a", GPUs: 2, PartitionTime: 1500 * time.Millisecond, Alive: true}}},
		{name: "suspect for long counts as dead", member: cluster.Member{Meta: cluster.Meta{ID: "a", Poster: true, Capacity: cap2}, State: "suspect"},
			suspect: map[string]time.Time{"a": now.Add(-3 * time.Second)},
			want:    []schedule.Node{{ID: "a", GPUs: 2, PartitionTime: 1500 * time.Millisecond}}},
		{name: "left is not a node", member: cluster.Member{Meta: cluster.Meta{ID: "a", Poster: true, Capacity: cap2}, State: "left"}, want: []schedule.Node{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sus := tt.suspect
			if sus == nil {
				sus = map[string]time.Time{}
			}
			got := nodesFromMembers([]cluster.Member{tt.member}, now, sus, 2*time.Second)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("nodes\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// fakeChain serves a fixed head and per-miner deadlines.
type fakeChain struct {
	mu          sync.Mutex
	head        int64
	periodStart map[uint64]int64
	parts       map[uint64][48]int
	calls       int
}

func (c *fakeChain) ChainHead(context.Context) (*fullnode.TipSet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &fullnode.TipSet{Height: abi.ChainEpoch(c.head)}, nil
}

func (c *fakeChain) StateMinerProvingDeadline(_ context.Context, maddr address.Address, _ fullnode.TipSetKey) (*dline.Info, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, ok := c.periodStart[must(fullnode.ActorID(maddr))]
	if !ok {
		return nil, fmt.Errorf("actor not found")
	}
	return fullnode.DeadlineAt(abi.ChainEpoch(ps), abi.ChainEpoch(c.head), fullnode.MainnetPolicy()), nil
}

func (c *fakeChain) StateMinerPartitions(_ context.Context, maddr address.Address, dl uint64, _ fullnode.TipSetKey) ([]fullnode.Partition, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return make([]fullnode.Partition, c.parts[must(fullnode.ActorID(maddr))][dl]), nil
}

// fakeHost is a leader over a plain FSM with a settable member list.
type fakeHost struct {
	f       *fsm.FSM
	members []cluster.Member
	applies int
}

func (h *fakeHost) FSM() *fsm.FSM             { return h.f }
func (h *fakeHost) Members() []cluster.Member { return h.members }
func (h *fakeHost) Term() uint64              { return 1 }
func (h *fakeHost) Apply(_ context.Context, c fsm.Command) (int, error) {
	h.applies++
	r := h.f.ApplyCommand(c)
	return r.Changed, r.Err
}

func TestSchedulerRounds(t *testing.T) {
	ctx := context.Background()
	f := fsm.New(nil)
	for _, id := range []uint64{1000, 1001, 1002} {
		if r := f.ApplyCommand(fsm.PutMiner{Miner: fsm.Miner{ID: id, SectorSize: 2048, PoStProof: 10, PartitionSize: 2, Enabled: id != 1002}}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	var ones [48]int
	for i := range ones {
		ones[i] = 1
	}
	chain := &fakeChain{head: 5000, periodStart: map[uint64]int64{1000: 17, 1001: 1300, 1002: 0}, parts: map[uint64][48]int{1000: ones, 1001: ones, 1002: ones}}
	capa := cluster.Capacity{GPUs: 2, Children: 2, ChildrenReady: 2, SecondsPerPartition: 60}
	h := &fakeHost{f: f, members: []cluster.Member{
		{Meta: cluster.Meta{ID: "a", Poster: true, Capacity: capa}, State: "alive"},
		{Meta: cluster.Meta{ID: "b", Poster: true, Capacity: capa}, State: "alive"},
		{Meta: cluster.Meta{ID: "c", Poster: true}, State: "alive"}, // no children: gets nothing
	}}
	s := NewScheduler(h, chain, SchedulerConfig{BatchSize: 40, Logger: zaptest.NewLogger(t)})

	owners := func() map[string]int {
		n := map[string]int{}
		for _, a := range f.Assignments() {
			n[a.Node]++
		}
		return n
	}

	// Cold start: every deadline of the two enabled miners gets an owner,
	// written in batches of 40.
	res, err := s.Round(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != 96 || h.applies != 3 {
		t.Fatalf("cold start wrote %d in %d applies, want 96 in 3", res.Written, h.applies)
	}
	if o := owners(); o["a"]+o["b"] != 96 || o["c"] != 0 || o["a"] < 30 || o["b"] < 30 {
		t.Fatalf("owners after cold start %v", o)
	}
	if chain.calls != 96 {
		t.Fatalf("partitions read %d times, want 96 (48 per enabled miner)", chain.calls)
	}

	// Nothing changed: nothing is written and the chain cache is used.
	if res, err := s.Round(ctx, h); err != nil || res.Written != 0 {
		t.Fatalf("steady round wrote %d (%v)", res.Written, err)
	}
	if chain.calls != 96 {
		t.Fatalf("partition counts re-read: %d calls", chain.calls)
	}

	// A new leader (a fresh loop over the same replicated state) resumes
	// without moving anything.
	s2 := NewScheduler(h, chain, SchedulerConfig{Logger: zaptest.NewLogger(t)})
	if res, err := s2.Round(ctx, h); err != nil || res.Written != 0 {
		t.Fatalf("new leader wrote %d (%v), want 0", res.Written, err)
	}

	// b dies: exactly its deadlines move to a, with Since set for the
	// one whose window is open; a's stay untouched.
	before := f.Assignments()
	h.members[1].State = "dead"
	chain.head = 5010
	res, err = s2.Round(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	after := f.Assignments()
	moved := 0
	for i, a := range after {
		b := before[i]
		switch {
		case b.Node == "a" && (a.Node != "a" || a.Generation != b.Generation):
			t.Fatalf("%v moved off a healthy owner: %+v -> %+v", a.DeadlineKey, b, a)
		case b.Node == "b":
			moved++
			if a.Node != "a" || a.Generation != b.Generation+1 {
				t.Fatalf("%v of dead b: %+v -> %+v", a.DeadlineKey, b, a)
			}
		}
	}
	if moved == 0 || res.Written != moved {
		t.Fatalf("moved %d, wrote %d", moved, res.Written)
	}
	for _, m := range res.Plan.Moves {
		if m.Reason != schedule.MoveOwnerDead {
			t.Fatalf("move %+v, want reason owner-dead", m)
		}
	}

	// Disabling a miner unassigns its deadlines.
	if r := f.ApplyCommand(fsm.PutMiner{Miner: fsm.Miner{ID: 1001, SectorSize: 2048, PoStProof: 10, PartitionSize: 2}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if res, err := s2.Round(ctx, h); err != nil || res.Written != 48 {
		t.Fatalf("disabling t01001 wrote %d (%v), want 48 unassignments", res.Written, err)
	}
	if o := owners(); o["a"] != 48 || o[""] != 48 {
		t.Fatalf("owners after disabling %v", o)
	}
}

func TestSchedulerChainFailureWritesNothing(t *testing.T) {
	f := fsm.New(nil)
	f.ApplyCommand(fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PoStProof: 10, PartitionSize: 2, Enabled: true}})
	h := &fakeHost{f: f, members: []cluster.Member{{Meta: cluster.Meta{ID: "a", Poster: true, Capacity: cluster.Capacity{GPUs: 1, ChildrenReady: 1}}, State: "alive"}}}
	chain := &fakeChain{head: 10, periodStart: map[uint64]int64{}}
	s := NewScheduler(h, chain, SchedulerConfig{Logger: zaptest.NewLogger(t)})
	if _, err := s.Round(context.Background(), h); err == nil || h.applies != 0 {
		t.Fatalf("round with an unreadable miner: err %v, %d applies", err, h.applies)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestWarmLeavesTheCacheToTheLeader: Warm reads the chain on a member that
// does not lead, and not while Lead runs, whose rounds read it themselves.
func TestWarmLeavesTheCacheToTheLeader(t *testing.T) {
	f := fsm.New(nil)
	if r := f.ApplyCommand(fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PoStProof: 10, PartitionSize: 2, Enabled: true}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	chain := &fakeChain{head: 5000, periodStart: map[uint64]int64{1000: 17}}
	calls := func() int { chain.mu.Lock(); defer chain.mu.Unlock(); return chain.calls }
	s := NewScheduler(&fakeHost{f: f}, chain, SchedulerConfig{Interval: 5 * time.Millisecond, PartitionsTTL: time.Nanosecond, Logger: zaptest.NewLogger(t)})
	warm := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		s.Warm(ctx)
	}

	s.leading.Store(true)
	warm()
	if n := calls(); n != 0 {
		t.Fatalf("Warm read the chain %d times while this node led", n)
	}
	s.leading.Store(false)
	warm()
	if calls() == 0 {
		t.Fatal("Warm did not read the chain on a member that does not lead")
	}
}
