package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap/zaptest"

	"github.com/vsm-project/vsm/fsm"
)

// taskLog records what a leader task saw on one node.
type taskLog struct {
	mu      sync.Mutex
	starts  []*Leadership
	running int
}

func (tl *taskLog) task(ctx context.Context, l *Leadership) {
	tl.mu.Lock()
	tl.starts = append(tl.starts, l)
	tl.running++
	tl.mu.Unlock()
	<-ctx.Done()
	tl.mu.Lock()
	tl.running--
	tl.mu.Unlock()
}

func (tl *taskLog) state() (starts, running int, last *Leadership) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.starts) > 0 {
		last = tl.starts[len(tl.starts)-1]
	}
	return len(tl.starts), tl.running, last
}

func openVoters(t *testing.T, n int) []*Node {
	t.Helper()
	var nodes []*Node
	for i := range n {
		nd, err := Open(Config{NodeID: fmt.Sprintf("n%d", i+1), Dir: t.TempDir(), RaftAddr: "127.0.0.1:0", Bootstrap: i == 0,
			HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond, Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = nd.Close(ctx)
		})
		nodes = append(nodes, nd)
	}
	waitClusterID(t, nodes[0])
	for _, nd := range nodes[1:] {
		if err := nodes[0].raft.AddVoter(raft.ServerID(nd.ID()), raft.ServerAddress(nd.RaftAddr()), 0, 0).Error(); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func transferTo(t *testing.T, from, to *Node) {
	t.Helper()
	if err := from.raft.LeadershipTransferToServer(raft.ServerID(to.ID()), raft.ServerAddress(to.RaftAddr())).Error(); err != nil {
		t.Fatalf("transfer leadership %s -> %s: %v", from.ID(), to.ID(), err)
	}
}

func assignAt(term uint64) fsm.SetAssignments {
	return fsm.SetAssignments{Assignments: []fsm.Assignment{{DeadlineKey: fsm.DeadlineKey{Miner: 1000, Deadline: 1}, Node: "n1"}}, Term: term}
}

// Leader tasks run on the leader only, are stopped (and waited for) when
// it loses leadership, and start again with a new term when it regains it;
// a deposed term's handle cannot write, and a deposed leader's decision
// that reaches the log in a later term is refused on every member.
func TestLeaderTasksFollowLeadership(t *testing.T) {
	ctx := context.Background()
	nodes := openVoters(t, 3)
	logs := make([]*taskLog, len(nodes))
	for i, nd := range nodes {
		logs[i] = &taskLog{}
		nd.RegisterLeaderTask("test", logs[i].task)
	}
	eventually(t, "n1 runs the task", func() bool { s, r, _ := logs[0].state(); return s == 1 && r == 1 })
	_, _, first := logs[0].state()
	if _, err := first.Apply(ctx, fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Apply(ctx, assignAt(first.Term())); err != nil {
		t.Fatalf("a write in its own term: %v", err)
	}

	// Hand leadership to n2: n1's task is stopped, n2's starts in a later term.
	transferTo(t, nodes[0], nodes[1])
	eventually(t, "n1's task stopped and n2's started", func() bool {
		_, r1, _ := logs[0].state()
		s2, r2, _ := logs[1].state()
		return r1 == 0 && s2 == 1 && r2 == 1
	})
	_, _, second := logs[1].state()
	if second.Term() <= first.Term() {
		t.Fatalf("new leader's term %d not after %d", second.Term(), first.Term())
	}
	if s3, _, _ := logs[2].state(); s3 != 0 {
		t.Fatalf("a follower ran the leader task %d times", s3)
	}

	// The deposed handle writes nothing, locally or anywhere else.
	before := nodes[1].FSM().Assignments()
	_, err := first.Apply(ctx, assignAt(first.Term()))
	var nl *NotLeaderError
	if !errors.Is(err, ErrDeposed) || !errors.As(err, &nl) || nodes[0].leader.refused.Load() != 1 {
		t.Fatalf("deposed write: %v (refused %d); want ErrDeposed with the leader named, counted once", err, nodes[0].leader.refused.Load())
	}

	// The same decision forwarded to the new leader (what the old
	// scheduler did) is appended in the new term and refused by every FSM.
	_, err = nodes[1].Apply(ctx, assignAt(first.Term()))
	if !errors.Is(err, fsm.ErrFenced) {
		t.Fatalf("forwarded stale write: %v, want fsm.ErrFenced", err)
	}
	for _, nd := range nodes {
		eventually(t, nd.ID()+" counts the fenced entry", func() bool { return nd.FSM().Fenced() == 1 })
		if got := nd.FSM().Assignments(); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Fatalf("%s: assignments changed by a stale write: %v -> %v", nd.ID(), before, got)
		}
	}

	// Regaining leadership starts a new task instance with a new handle.
	transferTo(t, nodes[1], nodes[0])
	eventually(t, "n1 runs the task again", func() bool {
		s1, r1, _ := logs[0].state()
		_, r2, _ := logs[1].state()
		return s1 == 2 && r1 == 1 && r2 == 0
	})
	if _, _, third := logs[0].state(); third.Term() <= second.Term() || third == first {
		t.Fatalf("regained leadership reused a handle or term: %d after %d", third.Term(), second.Term())
	}
}

// A task registered while the node already leads starts at once, and
// Close stops it before raft shuts down.
func TestLeaderTaskRegisteredWhileLeading(t *testing.T) {
	n := openNode(t, t.TempDir())
	waitClusterID(t, n)
	tl := &taskLog{}
	n.RegisterLeaderTask("late", tl.task)
	eventually(t, "the late task started", func() bool { s, r, _ := tl.state(); return s == 1 && r == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, r, _ := tl.state(); r != 0 {
		t.Fatal("the leader task still runs after Close")
	}
}

// While the monitor waits seconds for a task that is slow to stop, raft's
// leadership notifications keep coming (a flapping link). raft blocks on
// its notify channel, so they must be taken at once whatever the monitor
// does: with a fixed buffer, the 17th blocked raft's main loop and every
// later transfer (or configuration change) hung. Once the slow task ends,
// the monitor starts the tasks again with the term that is current then.
func TestFlappingLeadershipWhileTaskIsSlowToStop(t *testing.T) {
	nodes := openVoters(t, 3)
	release := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var terms []uint64
	nodes[0].RegisterLeaderTask("slow", func(ctx context.Context, l *Leadership) {
		mu.Lock()
		terms = append(terms, l.Term())
		mu.Unlock()
		first := false
		once.Do(func() { first = true })
		<-ctx.Done()
		if first {
			<-release // the first instance ignores the end of its term
		}
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	eventually(t, "n1 runs the task", func() bool { mu.Lock(); defer mu.Unlock(); return len(terms) == 1 })
	for i := range 10 {
		done := make(chan error, 1)
		go func() { // not t.Fatal: this is not the test's goroutine
			err := flap(nodes[0], nodes[1])
			if err == nil {
				err = flap(nodes[1], nodes[0])
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("flap %d: %v", i, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("flap %d: leadership transfers hang (raft blocked on its notify channel?)", i)
		}
	}
	close(release)
	eventually(t, "n1 runs the task again in its current term", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(terms) == 2 && terms[1] == nodes[0].raft.CurrentTerm() && nodes[0].LeaderReady()
	})
}

// flap hands leadership from one node to the other and waits until it leads.
func flap(from, to *Node) error {
	if err := from.raft.LeadershipTransferToServer(raft.ServerID(to.ID()), raft.ServerAddress(to.RaftAddr())).Error(); err != nil {
		return fmt.Errorf("transfer leadership %s -> %s: %w", from.ID(), to.ID(), err)
	}
	for deadline := time.Now().Add(15 * time.Second); to.raft.State() != raft.Leader; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not lead after the transfer", to.ID())
		}
	}
	return nil
}

// A leader task's write gives up with its context, so the monitor's wait
// for the task's return is not stretched to leaderWriteWait.
func TestLeaderWriteHonoursContext(t *testing.T) {
	n := openNode(t, t.TempDir())
	defer n.Close(context.Background())
	waitClusterID(t, n)
	tl := &taskLog{}
	n.RegisterLeaderTask("w", tl.task)
	eventually(t, "the task started", func() bool { s, _, _ := tl.state(); return s == 1 })
	_, _, l := tl.state()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := l.Apply(ctx, fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("write with a cancelled context: %v, want context.Canceled", err)
	}
}

// A refused transfer-in-progress stays recognisable through applyErr, so
// Leadership.Apply reports it retryable, not deposed.
func TestTransferInProgressIsNotDeposed(t *testing.T) {
	n := openNode(t, t.TempDir())
	defer n.Close(context.Background())
	err := n.applyErr(raft.ErrLeadershipTransferInProgress)
	var nl *NotLeaderError
	if !errors.Is(err, raft.ErrLeadershipTransferInProgress) || !errors.As(err, &nl) {
		t.Fatalf("applyErr(transfer in progress) = %v: want both the raft error and a NotLeaderError", err)
	}
}

// Fenced SetAssignments (type 10) are written only once every voter
// applies them; until then the leader writes the unfenced type 8 an old
// member understands.
func TestFencedAssignmentsOnlyOnceVotersSupportThem(t *testing.T) {
	ctx := context.Background()
	n := openNode(t, t.TempDir())
	defer n.Close(ctx)
	waitClusterID(t, n)
	tl := &taskLog{}
	n.RegisterLeaderTask("w", tl.task)
	eventually(t, "the task started", func() bool { s, _, _ := tl.state(); return s == 1 })
	_, _, l := tl.state()
	if _, err := l.Apply(ctx, fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PartitionSize: 2}}); err != nil {
		t.Fatal(err)
	}
	lastType := func() fsm.CommandType {
		var e raft.Log
		if err := n.logs.GetLog(n.raft.LastIndex(), &e); err != nil {
			t.Fatal(err)
		}
		return fsm.CommandType(e.Data[0])
	}
	for _, c := range []struct {
		all  bool
		want fsm.CommandType
	}{{false, fsm.TypeSetAssignments}, {true, fsm.TypeSetAssignmentsFenced}} {
		n.SetFencingCheck(func() bool { return c.all })
		// The caller leaves the term out: the handle fences with its own.
		if _, err := l.Apply(ctx, assignAt(0)); err != nil {
			t.Fatal(err)
		}
		if got := lastType(); got != c.want {
			t.Fatalf("all voters support fencing=%v: wrote type %d, want %d", c.all, got, c.want)
		}
	}
}

func TestVotersApplyFenced(t *testing.T) {
	servers := []raft.Server{{ID: "n1", Suffrage: raft.Voter}, {ID: "n2", Suffrage: raft.Voter}, {ID: "n3", Suffrage: raft.Nonvoter}}
	m := func(id string, ok bool) Member { return Member{Meta: Meta{ID: id, FencedAssignments: ok}} }
	for _, c := range []struct {
		name    string
		members []Member
		want    bool
	}{
		{"old voter", []Member{m("n2", false), m("n3", true)}, false},
		{"voter unknown to gossip", []Member{m("n3", true)}, false},
		{"all voters new, old non-voter", []Member{m("n2", true), m("n3", false)}, true},
	} {
		if got := votersApplyFenced(servers, c.members, "n1"); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
