// Package scheduler is the leader's deadline scheduling loop: it feeds the
// pure planner (cluster/schedule) from the chain, the replicated state and
// gossip, and writes the differences through raft.
package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/dline"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/cluster/schedule"
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
)

// SchedulerChain is what the scheduler loop reads from the chain: the head,
// each miner's proving period, and the partitions of each deadline.
// *fullnode.Client implements it.
type SchedulerChain interface {
	ChainHead(ctx context.Context) (*fullnode.TipSet, error)
	StateMinerProvingDeadline(ctx context.Context, maddr address.Address, tsk fullnode.TipSetKey) (*dline.Info, error)
	StateMinerPartitions(ctx context.Context, maddr address.Address, dlIdx uint64, tsk fullnode.TipSetKey) ([]fullnode.Partition, error)
}

// State is what the scheduler reads on any member: the replicated state
// and the gossiped members. *cluster.Server implements it.
type State interface {
	FSM() *fsm.FSM
	Members() []cluster.Member
}

// Writer is how a round writes: the leadership handle of the term the
// round was decided in (*cluster.Leadership). Its writes go through this
// node's raft only, and each carries the term (see fsm.SetAssignments).
type Writer interface {
	Term() uint64
	Apply(ctx context.Context, c fsm.Command) (int, error)
}

// SchedulerConfig tunes the leader's scheduler loop. Zero fields take the
// defaults listed.
type SchedulerConfig struct {
	// Interval between rounds (default 2s); gossip membership events start
	// a round at once.
	Interval time.Duration
	// PartitionsTTL is how long a miner's partition counts and period
	// start are cached (default 10m): they change rarely.
	PartitionsTTL time.Duration
	// SuspectGrace is how long a member may stay suspect before it loses
	// its deadlines as a dead one would (default 1s).
	SuspectGrace time.Duration
	// BatchSize bounds the assignments in one SetAssignments entry
	// (default 2000).
	BatchSize int
	// Schedule holds the scheduler's timing assumptions.
	Schedule schedule.Config
	// Events wakes the leader's loop at once (gossip membership changes);
	// may be nil.
	Events <-chan struct{}
	// DebugWriteDelay holds every round that has changes to write for this
	// long between deciding and writing, even past the end of the term
	// (VSM_DEBUG_SCHEDULER_WRITE_DELAY). Tests use it to pause a leader in
	// the middle of a round; never set it in production.
	DebugWriteDelay time.Duration
	Logger          *zap.Logger
	// Metrics, if set, gets the vsm_scheduler_* families.
	Metrics prometheus.Registerer
}

func (c *SchedulerConfig) withDefaults() {
	if c.Interval <= 0 {
		c.Interval = 2 * time.Second
	}
	if c.PartitionsTTL <= 0 {
		c.PartitionsTTL = 10 * time.Minute
	}
	if c.SuspectGrace <= 0 {
		c.SuspectGrace = time.Second
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 2000
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Scheduler is the leader's deadline scheduler loop. Lead runs as a
// leader task (cluster.LeaderTask) while this member leads: each round it
// plans with schedule.Compute from the replicated
// assignments, the enabled miners, their partition counts from the chain
// and the members' gossiped capacity, and writes the differences through
// raft. A new leader starts from the replicated assignments, so nothing
// moves that need not.
type Scheduler struct {
	cfg   SchedulerConfig
	chain SchedulerChain
	host  State
	log   *zap.Logger
	met   *schedulerMetrics
	// leading is set while Lead runs, so that Warm leaves the cache to
	// the rounds instead of fetching the same miners beside them.
	leading atomic.Bool

	mu        sync.Mutex
	works     map[uint64]minerWork // miner -> cached chain view
	suspect   map[string]time.Time // member -> first seen suspect
	unplaced  map[schedule.Key]schedule.UnplacedReason
	lastPlan  schedule.Plan
	lastRound time.Time
}

type minerWork struct {
	miner   schedule.Miner
	fetched time.Time
}

// NewScheduler builds the loop over st; register Lead as a leader task
// and run Warm on every member.
func NewScheduler(st State, chain SchedulerChain, cfg SchedulerConfig) *Scheduler {
	cfg.withDefaults()
	return &Scheduler{
		cfg: cfg, chain: chain, host: st, log: cfg.Logger, met: newSchedulerMetrics(cfg.Metrics, cfg.Logger),
		works: map[uint64]minerWork{}, suspect: map[string]time.Time{}, unplaced: map[schedule.Key]schedule.UnplacedReason{},
	}
}

// Lead plays rounds until ctx ends (the end of w's term). It is a leader
// task: it starts after the new leader's barrier, so it resumes from the
// replicated assignments.
func (s *Scheduler) Lead(ctx context.Context, w Writer) {
	s.log.Info("scheduler: this node leads; resuming from the replicated assignments", zap.Uint64("term", w.Term()), zap.Int("assignments", len(s.host.FSM().Assignments())))
	s.leading.Store(true)
	defer s.leading.Store(false)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := s.Round(ctx, w); err != nil && ctx.Err() == nil {
			s.log.Warn("scheduler round", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.cfg.Events:
		}
	}
}

// Warm keeps the chain cache fresh on every member, so that a new leader
// acts at once instead of first reading every deadline. While this node
// leads, its rounds keep the cache fresh and Warm does nothing.
func (s *Scheduler) Warm(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if !s.leading.Load() {
			if _, err := s.refreshWork(ctx, s.enabledMiners()); err != nil && ctx.Err() == nil {
				s.log.Debug("scheduler: warming the chain cache", zap.Error(err))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RoundResult says what one round did.
type RoundResult struct {
	Plan    schedule.Plan
	Written int // assignments written through raft
}

// Round plans once and writes the changes through w, fenced with w's
// term: if that term has ended, they are refused, not forwarded.
func (s *Scheduler) Round(ctx context.Context, w Writer) (RoundResult, error) {
	plan, current, err := s.plan(ctx)
	if err != nil {
		return RoundResult{}, err
	}
	changes := diffAssignments(current, plan.Assignments)
	s.logPlan(plan, changes)
	s.met.observe(plan)
	s.debugDelay(w, len(changes))
	written := 0
	for lo := 0; lo < len(changes); lo += s.cfg.BatchSize {
		batch := changes[lo:min(lo+s.cfg.BatchSize, len(changes))]
		if _, err := w.Apply(ctx, fsm.SetAssignments{Assignments: batch}); err != nil {
			return RoundResult{Plan: plan, Written: written}, fmt.Errorf("write %d assignments through raft: %w", len(batch), err)
		}
		written += len(batch)
	}
	s.mu.Lock()
	s.lastPlan, s.lastRound = plan, time.Now()
	s.mu.Unlock()
	return RoundResult{Plan: plan, Written: written}, nil
}

// debugDelay is DebugWriteDelay. It ignores the end of the term on
// purpose: what a deposed leader's late write meets is what it is for.
func (s *Scheduler) debugDelay(w Writer, changes int) {
	if s.cfg.DebugWriteDelay <= 0 || changes == 0 {
		return
	}
	s.log.Warn("scheduler: debug write delay: round decided, holding its writes", zap.Uint64("term", w.Term()), zap.Int("changes", changes), zap.Duration("delay", s.cfg.DebugWriteDelay))
	time.Sleep(s.cfg.DebugWriteDelay)
	s.log.Warn("scheduler: debug write delay over; writing the round", zap.Uint64("term", w.Term()), zap.Int("changes", changes))
}

// Preview computes the plan a round would make now, without writing it.
func (s *Scheduler) Preview(ctx context.Context) (schedule.Plan, []schedule.Miner, error) {
	plan, _, err := s.plan(ctx)
	if err != nil {
		return schedule.Plan{}, nil, err
	}
	s.mu.Lock()
	miners := make([]schedule.Miner, 0, len(s.works))
	for _, w := range s.works {
		miners = append(miners, w.miner)
	}
	s.mu.Unlock()
	slices.SortFunc(miners, func(a, b schedule.Miner) int { return cmp.Compare(a.ID, b.ID) })
	return plan, miners, nil
}

func (s *Scheduler) enabledMiners() []uint64 {
	var ids []uint64
	for _, m := range s.host.FSM().Miners() {
		if m.Enabled {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// plan gathers the input and computes a plan.
func (s *Scheduler) plan(ctx context.Context) (schedule.Plan, []fsm.Assignment, error) {
	head, err := s.chain.ChainHead(ctx)
	if err != nil {
		return schedule.Plan{}, nil, fmt.Errorf("chain head: %w", err)
	}
	miners, err := s.refreshWork(ctx, s.enabledMiners())
	if err != nil {
		return schedule.Plan{}, nil, err
	}
	current := s.host.FSM().Assignments()
	s.mu.Lock()
	nodes := nodesFromMembers(s.host.Members(), time.Now(), s.suspect, s.cfg.SuspectGrace)
	s.mu.Unlock()
	in := schedule.Input{
		Now:     schedule.Epoch(head.Height),
		Miners:  miners,
		Nodes:   nodes,
		Current: toScheduleAssignments(current),
		Config:  s.cfg.Schedule,
	}
	plan, err := schedule.Compute(in)
	if err != nil {
		return schedule.Plan{}, nil, fmt.Errorf("compute schedule at epoch %d: %w", head.Height, err)
	}
	return plan, current, nil
}

// refreshWork returns the scheduling view of the miners, reading from the
// chain those not cached or cached longer than PartitionsTTL. A miner the
// chain cannot answer for is left out of this round with a warning (its
// assignments stay: schedule.Compute keeps what it is not told about only
// if the miner is listed, so a failing miner keeps its cached view when
// there is one).
func (s *Scheduler) refreshWork(ctx context.Context, ids []uint64) ([]schedule.Miner, error) {
	now := time.Now()
	out := make([]schedule.Miner, 0, len(ids))
	var errs []error
	for _, id := range ids {
		s.mu.Lock()
		w, ok := s.works[id]
		s.mu.Unlock()
		if !ok || now.Sub(w.fetched) > s.cfg.PartitionsTTL {
			m, err := fetchMinerWork(ctx, s.chain, id)
			switch {
			case err == nil:
				w = minerWork{miner: m, fetched: now}
				s.mu.Lock()
				s.works[id] = w
				s.mu.Unlock()
				ok = true
			case ctx.Err() != nil:
				return nil, ctx.Err()
			default:
				errs = append(errs, err)
			}
		}
		if ok {
			out = append(out, w.miner)
		}
	}
	if len(errs) > 0 && len(out) < len(ids) {
		// Planning without a miner would unassign its deadlines.
		return nil, fmt.Errorf("read miners from the chain: %w", errors.Join(errs...))
	}
	for _, err := range errs {
		s.log.Warn("scheduler: keeping a cached miner view", zap.Error(err))
	}
	return out, nil
}

// fetchMinerWork reads a miner's period start and the partition count of
// each of its deadlines.
func fetchMinerWork(ctx context.Context, chain SchedulerChain, id uint64) (schedule.Miner, error) {
	maddr := fullnode.IDAddress(id)
	di, err := chain.StateMinerProvingDeadline(ctx, maddr, nil)
	if err != nil {
		return schedule.Miner{}, fmt.Errorf("miner t0%d proving deadline: %w", id, err)
	}
	if di.WPoStPeriodDeadlines != schedule.Deadlines || di.WPoStChallengeWindow != schedule.WindowEpochs {
		return schedule.Miner{}, fmt.Errorf("miner t0%d: the chain has %d deadlines of %d epochs; the scheduler plans the Filecoin policy of %d x %d", id, di.WPoStPeriodDeadlines, di.WPoStChallengeWindow, schedule.Deadlines, schedule.WindowEpochs)
	}
	m := schedule.Miner{ID: id, PeriodStart: schedule.Epoch(di.PeriodStart)}
	for d := range schedule.Deadlines {
		parts, err := chain.StateMinerPartitions(ctx, maddr, uint64(d), nil)
		if err != nil {
			return schedule.Miner{}, fmt.Errorf("miner t0%d deadline %d partitions: %w", id, d, err)
		}
		m.Partitions[d] = len(parts)
	}
	return m, nil
}

// nodesFromMembers turns gossip members into scheduler nodes. A member
// that is not a poster, or has no ready children, has no GPUs (a node
// running only --miner must not be given deadlines it never proves); a dead member, or one suspect for
// longer than grace, is not alive; a member that left is not listed at
// all (its deadlines move as "owner-gone"). suspect remembers when each
// member was first seen suspect and is updated in place.
func nodesFromMembers(members []cluster.Member, now time.Time, suspect map[string]time.Time, grace time.Duration) []schedule.Node {
	nodes := make([]schedule.Node, 0, len(members))
	seen := map[string]bool{}
	for _, m := range members {
		if m.ID == "" || seen[m.ID] || m.State == "left" {
			continue
		}
		seen[m.ID] = true
		alive := m.State == "alive"
		if m.State == "suspect" {
			first, ok := suspect[m.ID]
			if !ok {
				first = now
				suspect[m.ID] = now
			}
			alive = now.Sub(first) < grace
		} else {
			delete(suspect, m.ID)
		}
		gpus := 0
		if m.Poster && m.Capacity.ChildrenReady > 0 {
			gpus = m.Capacity.GPUs
		}
		nodes = append(nodes, schedule.Node{
			ID:            m.ID,
			GPUs:          gpus,
			PartitionTime: time.Duration(m.Capacity.SecondsPerPartition * float64(time.Second)),
			Alive:         alive,
			Draining:      m.Draining,
		})
	}
	return nodes
}

func toScheduleAssignments(as []fsm.Assignment) []schedule.Assignment {
	out := make([]schedule.Assignment, 0, len(as))
	for _, a := range as {
		if a.Node == "" {
			continue
		}
		out = append(out, schedule.Assignment{
			Key:   schedule.Key(a.DeadlineKey),
			Owner: schedule.Owner{Node: a.Node, Since: schedule.Epoch(a.Since)},
		})
	}
	return out
}

// diffAssignments returns the SetAssignments entries that turn current
// into planned: every planned owner or start epoch that differs, and an
// unassignment (empty Node) for each owned deadline the plan drops. Both
// inputs may be in any order; the result is sorted by key.
func diffAssignments(current []fsm.Assignment, planned []schedule.Assignment) []fsm.Assignment {
	cur := make(map[fsm.DeadlineKey]fsm.Assignment, len(current))
	for _, a := range current {
		if a.Node != "" {
			cur[a.DeadlineKey] = a
		}
	}
	var out []fsm.Assignment
	for _, p := range planned {
		k := fsm.DeadlineKey(p.Key)
		c, had := cur[k]
		delete(cur, k)
		if had && c.Node == p.Node && c.Since == int64(p.Since) {
			continue
		}
		out = append(out, fsm.Assignment{DeadlineKey: k, Node: p.Node, Since: int64(p.Since)})
	}
	for k := range cur {
		out = append(out, fsm.Assignment{DeadlineKey: k})
	}
	slices.SortFunc(out, func(a, b fsm.Assignment) int {
		return cmp.Or(cmp.Compare(a.Miner, b.Miner), cmp.Compare(a.Deadline, b.Deadline))
	})
	return out
}

// logPlan logs every move with its reason, and unplaced deadlines when
// their reason changes (not on every round).
func (s *Scheduler) logPlan(plan schedule.Plan, changes []fsm.Assignment) {
	for _, m := range plan.Moves {
		o, _ := plan.Owner(m.Key)
		s.log.Info("scheduler: deadline reassigned", zap.String("deadline", m.Key.String()), zap.String("from", m.From), zap.String("to", m.To),
			zap.String("reason", string(m.Reason)), zap.Int64("since", int64(o.Since)), zap.Int64("epoch", int64(plan.Now)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[schedule.Key]schedule.UnplacedReason, len(plan.Unplaced))
	for _, u := range plan.Unplaced {
		next[u.Key] = u.Reason
		if s.unplaced[u.Key] != u.Reason {
			s.log.Warn("scheduler: deadline has no fitting owner", zap.String("deadline", u.Key.String()), zap.String("reason", string(u.Reason)),
				zap.String("owner", u.Owner), zap.String("detail", u.Detail))
		}
	}
	for k, r := range s.unplaced {
		if _, still := next[k]; !still {
			s.log.Info("scheduler: deadline has a fitting owner again", zap.String("deadline", k.String()), zap.String("was", string(r)))
		}
	}
	s.unplaced = next
	if len(changes) > 0 {
		s.log.Info("scheduler: writing assignments", zap.Int("changes", len(changes)), zap.Int("moves", len(plan.Moves)), zap.Int64("epoch", int64(plan.Now)))
	}
}
