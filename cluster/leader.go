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

// ErrTransferInProgress means a leader task's write was not submitted
// because this node is handing leadership over. It is not deposed (the
// transfer may fail and the term go on), so the write may be retried; if
// the transfer succeeds, the retry is refused as stale.
var ErrTransferInProgress = errors.New("leadership transfer in progress; retry")

// leaderWriteWait bounds how long a leader task's write waits to settle.
const leaderWriteWait = 15 * time.Second

// Apply commits c through this node's raft, never through another node:
// a leader task's decisions belong to its term, and forwarding a deposed
// leader's decision to its successor is exactly what must not happen. It
// fails with ErrDeposed (and a NotLeaderError) once the term has passed.
//
// A write is waited for (up to leaderWriteWait) while ctx lasts, so that
// raft tells whether the entry was committed or overwritten (see
// Node.settleLost). It does not outlive ctx: the monitor cancels the
// term's context and then waits for its tasks, and while it waits it acts
// on no leadership change; an entry still in flight then has an unknown
// fate, reported as an error (the next term's round recomputes from the
// replicated state either way).
func (l *Leadership) Apply(ctx context.Context, c fsm.Command) (int, error) {
	n := l.n
	if l.ctx.Err() != nil || n.raft.State() != raft.Leader || n.raft.CurrentTerm() != l.term {
		return 0, n.refuseStale(c, l.term)
	}
	// Every SetAssignments a leader task writes is fenced with this term,
	// here rather than by each caller, so no writer can forget it. But
	// members older than the fenced SetAssignments (log type 10) stop on
	// an entry type they do not know, and type 10 cannot be skipped (it
	// has no IgnoreIfUnknown bit): until every voter says it applies
	// them, write the unfenced type 8 so a leader upgraded first in a
	// rolling upgrade does not stop a quorum of old members.
	if sa, ok := c.(fsm.SetAssignments); ok {
		sa.Term = 0
		if n.fencingAllowed() {
			sa.Term = l.term
		}
		c = sa
	}
	wctx, cancel := context.WithTimeout(ctx, leaderWriteWait)
	defer cancel()
	res, err := n.applyRaw(wctx, fsm.Encode(c))
	if errors.Is(err, raft.ErrLeadershipTransferInProgress) {
		// Nothing was submitted and the term may go on.
		return 0, fmt.Errorf("%w: %w", ErrTransferInProgress, err)
	}
	var nl *NotLeaderError
	if errors.Is(err, fsm.ErrFenced) || errors.As(err, &nl) {
		return res, n.refuseStale(c, l.term)
	}
	return res, err
}

// fencingAllowed says whether leader tasks may write fenced commands (see
// Leadership.Apply). A bare Node has no gossip to learn its peers'
// versions from and allows them; a Server installs its voter check right
// after opening the node, before any leader task is registered.
func (n *Node) fencingAllowed() bool {
	if f := n.fencingCheck.Load(); f != nil {
		return (*f)()
	}
	return true
}

// SetFencingCheck installs the check fencingAllowed consults.
func (n *Node) SetFencingCheck(f func() bool) { n.fencingCheck.Store(&f) }

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
	// notify is raft's Config.NotifyCh. raft's main goroutine blocks on
	// it (runLeader sends true/false without a default), and while it is
	// blocked no configuration change, apply or heartbeat is processed.
	// So drainNotify empties it at once, whatever the monitor is doing
	// (stop() may wait seconds for a task), and folds the values into
	// latest/changed for the monitor.
	notify chan bool

	// Coalesced notifications. The monitor only needs the current
	// leadership and whether it changed since it last looked: any
	// notification after a "true" it acted on means that term ended
	// (raft sends false before a later true), so "changed" makes it stop
	// the running term, and "latest" says whether to start a new one;
	// establishLeadership reads the term afresh, so a lost-then-regained
	// leadership collapsed into one "true" still restarts the tasks with
	// the new term. Unlike a queue, this stays bounded however often the
	// link flaps while the monitor is busy.
	pmu     sync.Mutex
	latest  bool
	changed bool
	wake    chan struct{} // capacity 1: "changed" was set

	mu    sync.Mutex
	tasks []namedTask
	cur   *term // the established term whose tasks run, if any

	refused atomic.Uint64 // writes refused by Leadership.Apply
	stopped chan struct{} // closed when the monitor has returned
}

// push records a leadership notification; it never blocks.
func (ls *leaderState) push(leader bool) {
	ls.pmu.Lock()
	ls.latest, ls.changed = leader, true
	ls.pmu.Unlock()
	select {
	case ls.wake <- struct{}{}:
	default: // a wake-up is already pending; it will see this value
	}
}

// take returns the latest leadership and whether it changed since the
// last take, and clears the change.
func (ls *leaderState) take() (leader, changed bool) {
	ls.pmu.Lock()
	defer ls.pmu.Unlock()
	leader, changed = ls.latest, ls.changed
	ls.changed = false
	return leader, changed
}

// drainNotify forwards raft's notifications into the coalesced state
// until the node closes, so raft never waits on the monitor.
func (n *Node) drainNotify() {
	for {
		select {
		case <-n.done:
			return
		case v := <-n.leader.notify:
			n.leader.push(v)
		}
	}
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
	return &leaderState{notify: make(chan bool, 16), wake: make(chan struct{}, 1), stopped: make(chan struct{})}
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
		case <-n.leader.wake:
			leader, changed := n.leader.take()
			if !changed {
				continue
			}
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
		"Log entries this member's FSM refused because the term they were decided in is not the entry's term (a deposed leader's write). Counted since this process started and only for entries it applied itself: a restart or a snapshot restore does not replay what came before, so members may differ.", nil, nil)
)
