package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fsm"
)

// LeaderTask is a loop that must run only while this node leads (membership
// reconciliation, the deadline scheduler). It is started once leadership is
// established and its context is cancelled when leadership is lost; it must
// return soon after, because the next term's tasks start only once every
// task of this one has returned.
type LeaderTask func(ctx context.Context, l *Leadership)

// Leadership is a leader task's handle on the one term it was started in.
type Leadership struct {
	n    *Node
	term uint64
	ctx  context.Context // cancelled when the term ends
}

// Term is the raft term this leadership was established in.
func (l *Leadership) Term() uint64 { return l.term }

// ErrDeposed means a leader task's write was refused because this node no
// longer leads in the term the task was started for.
var ErrDeposed = errors.New("deposed")

// leaderWriteWait bounds how long a leader task's write waits to settle.
const leaderWriteWait = 15 * time.Second

// Apply commits c through this node's raft, never through another node:
// a leader task's decisions belong to its term, and forwarding a deposed
// leader's decision to its successor is exactly what must not happen. It
// fails with ErrDeposed (and a NotLeaderError) once the term has passed.
//
// Once submitted, a write is waited for even if ctx or the term ends
// meanwhile (for up to leaderWriteWait): raft then tells whether the entry
// was committed or overwritten (see Node.settleLost), where giving up
// would leave its fate unknown.
func (l *Leadership) Apply(ctx context.Context, c fsm.Command) (int, error) {
	n := l.n
	if l.ctx.Err() != nil || n.raft.State() != raft.Leader || n.raft.CurrentTerm() != l.term {
		return 0, n.refuseStale(c, l.term)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaderWriteWait)
	defer cancel()
	res, err := n.applyRaw(wctx, fsm.Encode(c))
	var nl *NotLeaderError
	if errors.Is(err, fsm.ErrFenced) || errors.As(err, &nl) {
		return res, n.refuseStale(c, l.term)
	}
	return res, err
}

// refuseStale counts and logs a leader task's write that cannot land.
func (n *Node) refuseStale(c fsm.Command, term uint64) error {
	n.leader.refused.Add(1)
	id, addr := n.Leader()
	n.log.Warn("dropping a write decided while this node led: it no longer leads in that term", zap.String("command", fmt.Sprintf("%T", c)), zap.Uint64("decided_term", term), zap.Uint64("current_term", n.raft.CurrentTerm()), zap.String("leader", id))
	return fmt.Errorf("%w: decided in raft term %d, this node now follows in term %d: %w", ErrDeposed, term, n.raft.CurrentTerm(), &NotLeaderError{LeaderID: id, LeaderAddr: addr})
}

// leaderState is the node's one leadership lifecycle, in the manner of
// nomad's monitorLeadership/establishLeadership/revokeLeadership.
type leaderState struct {
	// notify is raft's Config.NotifyCh. raft blocks on it rather than
	// overwriting a pending value as it does with LeaderCh, so a lost and
	// regained leadership is seen as false then true, never as one
	// collapsed "true" that would keep the old term's tasks running.
	notify chan bool

	mu    sync.Mutex
	tasks []namedTask
	cur   *term // the established term whose tasks run, if any

	refused atomic.Uint64 // writes refused by Leadership.Apply
	stopped chan struct{} // closed when the monitor has returned
}

type namedTask struct {
	name string
	run  LeaderTask
}

// term is one leadership, from its notification to its loss.
type term struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	handle *Leadership
}

func newLeaderState() *leaderState {
	return &leaderState{notify: make(chan bool, 16), stopped: make(chan struct{})}
}

// RegisterLeaderTask adds a task to every future term, and to the current
// one if leadership is already established.
func (n *Node) RegisterLeaderTask(name string, run LeaderTask) {
	ls := n.leader
	ls.mu.Lock()
	defer ls.mu.Unlock()
	t := namedTask{name: name, run: run}
	ls.tasks = append(ls.tasks, t)
	if ls.cur != nil {
		n.startTask(ls.cur, t)
	}
}

func (n *Node) startTask(t *term, task namedTask) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		task.run(t.ctx, t.handle)
	}()
}

// monitorLeadership is the only place leader-only work starts and stops.
func (n *Node) monitorLeadership() {
	defer close(n.leader.stopped)
	var cur *term
	var established sync.WaitGroup
	stop := func() {
		if cur == nil {
			return
		}
		start := time.Now()
		cur.cancel()
		established.Wait()
		n.revokeLeadership(cur)
		n.log.Info("leadership lost; leader tasks stopped", zap.Duration("took", time.Since(start)))
		cur = nil
	}
	for {
		select {
		case <-n.done:
			stop()
			return
		case leader := <-n.leader.notify:
			stop()
			if leader {
				ctx, cancel := context.WithCancel(context.Background())
				cur = &term{ctx: ctx, cancel: cancel}
				established.Add(1)
				go func(t *term) {
					defer established.Done()
					n.establishLeadership(t)
				}(cur)
			}
		}
	}
}

// establishLeadership runs a barrier (so the FSM holds everything earlier
// leaders committed), settles the cluster id, and only then starts the
// leader tasks. It retries until it succeeds or the term ends.
func (n *Node) establishLeadership(t *term) {
	for t.ctx.Err() == nil {
		tm := n.raft.CurrentTerm()
		ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
		err := waitFuture(ctx, n.raft.Barrier(0))
		if err == nil {
			_, err = n.ensureClusterID(ctx, true)
		}
		cancel()
		if err == nil && n.raft.State() == raft.Leader && n.raft.CurrentTerm() == tm {
			n.leaderReady.Store(tm)
			t.handle = &Leadership{n: n, term: tm, ctx: t.ctx}
			n.log.Info("leadership established", zap.String("node", n.cfg.NodeID), zap.Uint64("term", tm))
			// A restart from an accepted snapshot is complete once this
			// node leads again (its term is on disk): drop the marker so a
			// later loss is judged afresh.
			clearAcceptMarker(n.cfg.Dir)
			n.leader.mu.Lock()
			n.leader.cur = t
			for _, task := range n.leader.tasks {
				n.startTask(t, task)
			}
			n.leader.mu.Unlock()
			return
		}
		if errors.Is(err, ErrWrongCluster) {
			n.onFatal(err)
			return
		}
		if err != nil && t.ctx.Err() == nil {
			n.log.Warn("establishing leadership", zap.Error(err))
		}
		select {
		case <-t.ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// revokeLeadership waits for the term's tasks (their context is already
// cancelled) so none of them outlives the leadership it was started for.
func (n *Node) revokeLeadership(t *term) {
	n.leaderReady.Store(0)
	n.leader.mu.Lock()
	if n.leader.cur == t {
		n.leader.cur = nil
	}
	n.leader.mu.Unlock()
	t.wg.Wait()
}

// RegisterLeaderTask is Node.RegisterLeaderTask.
func (s *Server) RegisterLeaderTask(name string, run LeaderTask) {
	s.node.RegisterLeaderTask(name, run)
}

var (
	descRefused = prometheus.NewDesc("vsm_leader_stale_writes_dropped_total",
		"Writes this node's leader tasks decided in a term it no longer leads, dropped before or as they reached raft.", nil, nil)
	descFenced = prometheus.NewDesc("vsm_fsm_fenced_commands_total",
		"Log entries this member's FSM refused because the term they were decided in is not the entry's term (a deposed leader's write); the same on every member.", nil, nil)
)
