// Package schedule decides which cluster member proves each miner deadline.
//
// It is the scheduling algorithm only: a pure, deterministic function of its
// Input. It reads no clock (Input.Now is the time), does no I/O and keeps no
// state between calls, so the raft leader can call it on every tick and a new
// leader computes the same answer from the replicated assignments.
//
// The model: every (miner, deadline) is one unit of work, Partitions SNARKs,
// that must run inside the deadline's proving window (from the challenge epoch
// plus a confidence to shortly before the window closes). A node offers GPUs
// GPUs, each proving one partition in PartitionTime. GPU demand is modelled as
// a fluid: a deadline owned by a node uses Partitions*PartitionTime of GPU time
// spread evenly over its usable window, so its demand is a rate in GPUs; a node
// fits when the sum of the rates of the windows it owns never exceeds its GPUs
// at any epoch of the next 24 hours. See docs/scheduler.md for the operator's
// view and Compute for the order of decisions.
package schedule

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Filecoin protocol constants (DESIGN.md section 1).
const (
	// EpochDuration is the length of one chain epoch.
	EpochDuration = 30 * time.Second
	// PeriodEpochs is WPoStProvingPeriod: every deadline comes back once per period.
	PeriodEpochs = 2880
	// Deadlines is WPoStPeriodDeadlines.
	Deadlines = 48
	// WindowEpochs is WPoStChallengeWindow: how long a deadline is open.
	WindowEpochs = 60
	// ChallengeLookback is WPoStChallengeLookback: the challenge epoch is Open-20.
	ChallengeLookback = 20
)

// Epoch is a chain height.
type Epoch int64

// Key names one of a miner's 48 deadlines. It has the same shape as
// fsm.DeadlineKey, so the two convert with a plain type conversion.
type Key struct {
	Miner    uint64 `json:"miner"`
	Deadline uint8  `json:"deadline"`
}

func (k Key) String() string { return fmt.Sprintf("f0%d/%d", k.Miner, k.Deadline) }

func (k Key) compare(o Key) int {
	switch {
	case k.Miner < o.Miner:
		return -1
	case k.Miner > o.Miner:
		return 1
	case k.Deadline < o.Deadline:
		return -1
	case k.Deadline > o.Deadline:
		return 1
	}
	return 0
}

// Miner is one storage provider actor and the work in each of its deadlines.
type Miner struct {
	ID uint64 `json:"id"`
	// PeriodStart is any epoch at which deadline 0 opens (the chain's
	// proving-period start); only its value modulo PeriodEpochs matters.
	PeriodStart Epoch `json:"period_start"`
	// Partitions is the number of partitions (one SNARK each) per deadline.
	// An empty deadline still gets an owner so that sectors added later have
	// one; it costs no GPU time.
	Partitions [Deadlines]int `json:"partitions"`
}

// Node is a cluster member as the leader sees it through gossip.
type Node struct {
	ID   string `json:"id"`
	GPUs int    `json:"gpus"`
	// PartitionTime is the measured GPU time of one partition's SNARK on this
	// node. Zero means not measured yet: Config.DefaultPartitionTime is used.
	PartitionTime time.Duration `json:"partition_time"`
	// Alive is false once gossip declares the node failed.
	Alive bool `json:"alive"`
	// Draining nodes keep running but are given nothing and lose what they own.
	Draining bool `json:"draining"`
}

// Owner is the current owner of a deadline.
type Owner struct {
	Node string `json:"node"`
	// Since is the epoch at which Node became the owner. It matters only when
	// that was inside the deadline's open proving window: the owner then had
	// less time than the full window, and the scheduler must count its GPU
	// demand as higher. Zero means "long ago". Since can lie in the future:
	// a deadline handed over too late to prove its open window is owned from
	// the end of that window, and its owner must not try to prove it.
	Since Epoch `json:"since"`
}

// Config holds the timing assumptions. Zero fields take the defaults listed.
type Config struct {
	// Confidence is how many epochs after the challenge epoch proving starts
	// (default 4): the randomness must be final before a proof can use it.
	Confidence Epoch
	// SubmitMargin is how many epochs before the window closes the proof must
	// be ready so that the message lands on chain in time (default 4).
	SubmitMargin Epoch
	// StartDelay is how many epochs a new owner needs before it starts proving
	// a deadline handed over while already open: the raft commit, the runner
	// noticing, the vanilla reads (default 2).
	StartDelay Epoch
	// DefaultPartitionTime stands in for a node's unmeasured PartitionTime
	// (default 5 min, slower than a 32 GiB partition on an RTX 3090).
	DefaultPartitionTime time.Duration
	// MoveMargin is how far ahead a proving window must start for its
	// deadline to be moved for balance or to make room (default 60 epochs,
	// 30 minutes): an owner about to prove is left alone.
	MoveMargin Epoch
	// RebalanceMoves caps the deadlines one plan moves for balance or to make
	// room (default 32; negative: never). Moves forced by a lost owner are
	// not counted.
	RebalanceMoves int
	// RebalanceSlack is the hysteresis of rebalancing, a fraction of the
	// lower bound (default 0.08): a plan moves deadlines only when the
	// busiest node's peak share is above (1+slack) times the lower bound of
	// the windows that may move, and then until it is at most (1+slack/2)
	// times, or no move helps, or RebalanceMoves is reached.
	RebalanceSlack float64
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{Confidence: 4, SubmitMargin: 4, StartDelay: 2, DefaultPartitionTime: 5 * time.Minute,
		MoveMargin: 60, RebalanceMoves: 32, RebalanceSlack: 0.08}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Confidence = cmp.Or(c.Confidence, d.Confidence)
	c.SubmitMargin = cmp.Or(c.SubmitMargin, d.SubmitMargin)
	c.StartDelay = cmp.Or(c.StartDelay, d.StartDelay)
	c.DefaultPartitionTime = cmp.Or(c.DefaultPartitionTime, d.DefaultPartitionTime)
	c.MoveMargin = cmp.Or(c.MoveMargin, d.MoveMargin)
	c.RebalanceMoves = cmp.Or(c.RebalanceMoves, d.RebalanceMoves)
	c.RebalanceSlack = cmp.Or(c.RebalanceSlack, d.RebalanceSlack)
	return c
}

// usableFrom and usableTo bound the proving window relative to the open epoch.
func (c Config) usableFrom() Epoch { return -ChallengeLookback + c.Confidence }
func (c Config) usableTo() Epoch   { return WindowEpochs - c.SubmitMargin }

// UsableEpochs is the length of a full proving window under c.
func (c Config) UsableEpochs() Epoch {
	c = c.withDefaults()
	return c.usableTo() - c.usableFrom()
}

func (c Config) validate() error {
	if c.Confidence < 0 || c.SubmitMargin < 0 || c.StartDelay < 0 || c.DefaultPartitionTime < 0 || c.MoveMargin < 0 || c.RebalanceSlack < 0 {
		return fmt.Errorf("schedule: negative config value in %+v", c)
	}
	if c.usableTo()-c.usableFrom() < 1 {
		return fmt.Errorf("schedule: confidence %d and submit margin %d leave no proving time", c.Confidence, c.SubmitMargin)
	}
	if c.MoveMargin >= PeriodEpochs {
		return fmt.Errorf("schedule: move margin %d epochs is not shorter than the proving period (%d): nothing could ever move; use at most a few hundred", c.MoveMargin, PeriodEpochs)
	}
	if c.StartDelay >= c.usableTo()-c.usableFrom() {
		return fmt.Errorf("schedule: start delay %d is not shorter than the proving window", c.StartDelay)
	}
	return nil
}

// Input is everything a plan depends on.
type Input struct {
	// Now is the current chain epoch. The plan covers [Now, Now+PeriodEpochs).
	Now    Epoch
	Miners []Miner
	Nodes  []Node
	// Current holds the existing assignments (from the replicated state), in
	// any order; each key at most once.
	Current []Assignment
	Config  Config
}

// Assignment is the owner of one deadline. It flattens to the same fields
// as fsm.Assignment (miner, deadline, node) plus Since.
type Assignment struct {
	Key
	Owner
}

// MoveReason says why a deadline changes owner.
type MoveReason string

// Move reasons.
const (
	MoveNew         MoveReason = "new"          // had no owner
	MoveOwnerDead   MoveReason = "owner-dead"   // owner failed (gossip)
	MoveOwnerGone   MoveReason = "owner-gone"   // owner is not a member any more
	MoveDraining    MoveReason = "owner-drain"  // owner is draining
	MoveOverloaded  MoveReason = "owner-full"   // owner no longer has room for it
	MoveMinerGone   MoveReason = "miner-gone"   // miner is no longer scheduled; To is empty
	MoveUnplaceable MoveReason = "unplaceable"  // nowhere to go: the old assignment is dropped; To is empty
	MoveBadDeadline MoveReason = "bad-deadline" // deadline index >= 48 in Current; To is empty
	// MoveRebalance: the owner was the busiest node and the deadline's
	// window is not open nor about to open (Config.MoveMargin); see rebalance.
	MoveRebalance MoveReason = "rebalance"
	// MoveMakeRoom: moved so that a deadline no node had room for fits on
	// the old owner; its window is not open nor about to open either.
	MoveMakeRoom MoveReason = "make-room"
)

// Move is one change of owner. From or To is empty for an assignment that is
// created or removed.
type Move struct {
	Key    Key        `json:"key"`
	From   string     `json:"from"`
	To     string     `json:"to"`
	Reason MoveReason `json:"reason"`
}

// UnplacedReason says why a deadline could not be given a fitting owner.
type UnplacedReason string

// Unplaced reasons.
const (
	// UnplacedNoCapacity: live nodes exist that could prove it, but none has
	// room left in this window. Add nodes or GPUs.
	UnplacedNoCapacity UnplacedReason = "no-capacity"
	// UnplacedTooBig: no live node could prove it inside the window even if it
	// had nothing else to do. Needs a node with more GPUs or faster GPUs.
	UnplacedTooBig UnplacedReason = "too-big"
	// UnplacedTooLate: the deadline is open and its owner was lost too late for
	// any node to finish this period's proof. This period's proof is lost; the
	// deadline is assigned (Owner) from the next period on.
	UnplacedTooLate UnplacedReason = "too-late"
)

// Unplaced reports a deadline without a fitting owner.
type Unplaced struct {
	Key    Key            `json:"key"`
	Reason UnplacedReason `json:"reason"`
	// Owner is who holds it anyway: the next period's owner for TooLate, or
	// the previous owner that keeps an over-full deadline because no one else
	// can take it. Empty when the deadline has no owner.
	Owner  string `json:"owner,omitempty"`
	Detail string `json:"detail"`
}

// NodeLoad summarises one node's share of the plan over the next 24 hours.
type NodeLoad struct {
	ID        string `json:"id"`
	GPUs      int    `json:"gpus"`
	Eligible  bool   `json:"eligible"` // alive and not draining
	Deadlines int    `json:"deadlines"`
	// Partitions is the sum of partitions over the owned deadlines.
	Partitions int `json:"partitions"`
	// Peak is the highest concurrent GPU demand (in GPUs) at any epoch, and
	// PeakAt the first epoch where it occurs.
	Peak   float64 `json:"peak"`
	PeakAt Epoch   `json:"peak_at"`
	// GPUHours is the GPU time owned over the next 24 hours.
	GPUHours float64 `json:"gpu_hours"`
	// PartitionTime is the time per partition the plan counted for this
	// node: its measured speed, or Config.DefaultPartitionTime when it has
	// not measured one yet (SpeedAssumed).
	PartitionTime time.Duration `json:"partition_time"`
	SpeedAssumed  bool          `json:"speed_assumed"`
}

// Utilization is Peak as a fraction of the node's GPUs (0 without GPUs).
func (l NodeLoad) Utilization() float64 {
	if l.GPUs <= 0 {
		return 0
	}
	return l.Peak / float64(l.GPUs)
}

// Plan is the result of Compute.
type Plan struct {
	Now Epoch `json:"now"`
	// Assignments holds the owner of every deadline that has one, sorted by
	// key. A deadline moved by this plan has Since == Now (or the end of its
	// open window, see Owner.Since). Feeding Assignments back as
	// Input.Current with the same Input yields no moves.
	Assignments []Assignment `json:"assignments"`
	// Moves lists every difference from Input.Current, sorted by key.
	Moves []Move `json:"moves"`
	// Unplaced lists deadlines without a fitting owner, sorted by key.
	Unplaced []Unplaced `json:"unplaced"`
	// Nodes is the per-node load summary, sorted by id.
	Nodes []NodeLoad `json:"nodes"`
	// PeakUtilization is the highest Utilization of any eligible node.
	PeakUtilization float64 `json:"peak_utilization"`
	// LowerBound is a floor under PeakUtilization no placement can beat: the
	// highest total demand at any epoch, as a fraction of all eligible GPUs
	// (demand counted at the fastest node's speed and full windows). The
	// ratio PeakUtilization/LowerBound says how well the load is balanced.
	LowerBound float64 `json:"lower_bound"`
}

// Owner returns the owner of k in the plan.
func (p Plan) Owner(k Key) (Owner, bool) { return lookup(p.Assignments, k) }

// lookup finds k in assignments sorted by key.
func lookup(as []Assignment, k Key) (Owner, bool) {
	i, ok := slices.BinarySearchFunc(as, k, func(a Assignment, k Key) int { return a.Key.compare(k) })
	if !ok {
		return Owner{}, false
	}
	return as[i].Owner, true
}
