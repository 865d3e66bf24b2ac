// Package cluster wires vsm's replicated state into a raft node: on-disk
// log and stable store (raft-boltdb/v2), file snapshots, TCP transport,
// leader-side writes and linearizable reads.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/logging"
)

// Config is what a node needs to open its raft state.
type Config struct {
	NodeID string
	// Dir holds raft.db, snapshots/ and cluster-id.
	Dir string
	// RaftAddr is where the transport listens; Advertise is what peers
	// dial (defaults to RaftAddr, which must then not be 0.0.0.0).
	RaftAddr      string
	RaftAdvertise string
	// Bootstrap makes a fresh node a single-voter cluster. It is ignored
	// when the node already has raft state, so one command line serves
	// first boot and every restart.
	Bootstrap bool

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64
	// SnapshotLogBytes: a snapshot is also taken once the log holds more
	// bytes than half the newest snapshot, or than this if more (boundLog).
	SnapshotLogBytes uint64
	// LogStore is where the raft log is kept: LogStoreWAL (the default)
	// or LogStoreBolt (see openLogStore).
	LogStore string
	// CommitTimeout bounds how long a follower waits to learn that an entry
	// it holds is committed when no new entry follows it: raft sends the
	// leader's commit index with the next append, or after a random
	// CommitTimeout..2*CommitTimeout. raft's 50 ms default alone gives a
	// proxy or follower up to 100 ms of lag; see withDefaults.
	CommitTimeout time.Duration

	Logger *zap.Logger
}

func (c *Config) withDefaults() {
	// The daemon's defaults (config.Defaults) are the same; see
	// docs/configuration.md for why.
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 300 * time.Millisecond
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = 300 * time.Millisecond
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = 300 * time.Millisecond
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 2 * time.Minute
	}
	if c.TrailingLogs == 0 {
		// Large enough that a follower restoring a 1M-sector snapshot
		// (seconds) does not fall behind the log it resumes from.
		c.TrailingLogs = 10240
	}
	if c.SnapshotLogBytes == 0 {
		c.SnapshotLogBytes = defaultSnapshotLogBytes
	}
	if c.CommitTimeout == 0 {
		// 10 ms keeps a change visible on every follower and proxy within
		// about 20 ms of its commit (the p99 target for proxies is 50 ms,
		// issue 12) at the cost of an empty append per follower every
		// 10-20 ms while the cluster is idle: a few hundred small packets
		// a second on a LAN.
		c.CommitTimeout = 10 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.RaftAdvertise == "" {
		c.RaftAdvertise = c.RaftAddr
	}
}

// Node is one member's raft node and the FSM it drives.
type Node struct {
	cfg       Config
	raft      *raft.Raft
	fsm       *trackedFSM
	store     *raftboltdb.BoltStore
	logCloser io.Closer // the log store, when it is not store
	logs      raft.LogStore
	sized     *sizedLogStore
	leaderLog *leaderLog
	snaps     *raft.FileSnapshotStore
	transport *raft.NetworkTransport
	log       *zap.Logger
	fatal     chan error
	// leaderReady is set once this node, as leader, has applied everything
	// earlier leaders committed (a barrier) and the cluster has its id.
	// Until then its writes wait, so nothing is written before the id.
	leaderReady atomic.Uint64 // the term it was established in; 0: not
	ready       atomic.Bool   // ReadReady has succeeded once
	leader      *leaderState  // see leader.go
	done        chan struct{}
	// fencingCheck says whether every voter applies fenced commands.
	fencingCheck atomic.Pointer[func() bool]
	// testDispatched, if set, replaces raft.AppliedIndex in WaitApplied.
	testDispatched func() uint64
}

// Open starts the node. It returns once raft is running, not once a leader
// is known; use WaitLeader for that.
func Open(cfg Config) (*Node, error) {
	cfg.withDefaults()
	if cfg.NodeID == "" {
		return nil, errors.New("open raft: node id is empty")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("open raft: %w", err)
	}
	adv, err := net.ResolveTCPAddr("tcp", cfg.RaftAdvertise)
	if err != nil {
		return nil, fmt.Errorf("raft advertise address %q: %w", cfg.RaftAdvertise, err)
	}
	if adv.IP == nil || adv.IP.IsUnspecified() {
		return nil, fmt.Errorf("raft advertise address %q: peers cannot dial an unspecified address; set raft advertise", cfg.RaftAdvertise)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, fatal: make(chan error, 1), leader: newLeaderState(), done: make(chan struct{})}
	n.fsm = newTrackedFSM(fsm.New(n.onFatal))
	if err := n.open(adv); err != nil {
		n.closeStores()
		return nil, err
	}
	return n, nil
}

func (n *Node) open(adv *net.TCPAddr) (err error) {
	hlog := logging.HCLog(n.log.Named("raft"))
	if err := preflight(n.cfg.Dir); err != nil {
		return err
	}
	dbPath := filepath.Join(n.cfg.Dir, raftDBFile)
	// bolt reads raft.db through a memory map: damage the preflight cannot
	// see faults inside bolt. Turn such a fault into an error naming the
	// file for as long as this goroutine reads the store, instead of a
	// crash with a bolt stack trace.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = damaged("raft-db-corrupt", "reading %s failed inside bolt (%v); the file is damaged", dbPath, r)
		}
	}()
	store, err := raftboltdb.New(raftboltdb.Options{Path: dbPath, BoltOptions: boltOptions()})
	if err != nil {
		return fmt.Errorf("open raft log %s: %w; if the file is damaged see %s#raft-db-corrupt", dbPath, err, Runbook)
	}
	n.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.cfg.Dir, 2, hlog)
	if err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}
	n.snaps = snaps
	valid, _, err := scanSnapshots(n.cfg.Dir)
	if err != nil {
		return err
	}
	// The snapshot raft restores first: entries at or below it are not
	// needed (see dropBelowSnapshot).
	var snapIndex uint64
	if len(valid) > 0 {
		snapIndex = valid[0].Index
	}
	stores, err := openLogStore(n.cfg.Dir, n.cfg.LogStore, store, snapIndex, hlog, n.log)
	if err != nil {
		return err
	}
	n.logCloser = stores.closer
	if err := lostState(n.cfg.Dir, stores.logs, stores.stable, valid); err != nil {
		return err
	}
	var advertise net.Addr = adv
	if adv.Port == 0 { // tests bind port 0: advertise what was bound
		advertise = nil
	}
	trans, err := raft.NewTCPTransportWithLogger(n.cfg.RaftAddr, advertise, 3, 10*time.Second, hlog)
	if err != nil {
		return fmt.Errorf("listen for raft on %s: %w", n.cfg.RaftAddr, err)
	}
	n.transport = trans
	if n.sized, err = newSizedLogStore(stores.logs); err != nil {
		return err
	}
	n.leaderLog = newLeaderLog(n.sized, func(err error) {
		n.onFatal(fmt.Errorf("the leader could not sync its raft log: %w", err))
	})
	n.fsm.durable = n.leaderLog.waitDurable
	logs, err := raft.NewLogCache(logCacheEntries, n.leaderLog)
	if err != nil {
		return err
	}
	n.logs = logs
	rc := n.raftConfig()
	if err := n.recoverFromPeersJSON(rc, logs, stores.stable, snaps, trans); err != nil {
		return err
	}
	existing, err := raft.HasExistingState(logs, stores.stable, snaps)
	if err != nil {
		return fmt.Errorf("inspect raft state: %w", err)
	}
	if n.cfg.Bootstrap && !existing {
		n.log.Info("bootstrapping a new single-voter cluster", zap.String("node", n.cfg.NodeID))
		boot := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: trans.LocalAddr()}}}
		if err := raft.BootstrapCluster(rc, logs, stores.stable, snaps, trans, boot); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	clamped := &clampedTransport{NetworkTransport: trans, synced: n.leaderLog.syncedCommit}
	r, err := raft.NewRaft(rc, n.fsm, logs, stores.stable, snaps, clamped)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	n.leaderLog.attach(r)
	go n.drainNotify()
	go n.monitorLeadership()
	go n.boundLog()
	return nil
}

// LeaderReady reports whether this node leads and has established its
// leadership in the current term (a barrier done in this term, so its FSM
// holds everything earlier leaders committed).
func (n *Node) LeaderReady() bool {
	t := n.leaderReady.Load()
	return t != 0 && t == n.raft.CurrentTerm() && n.raft.State() == raft.Leader
}

// waitLeaderReady waits until this leader has established leadership.
func (n *Node) waitLeaderReady(ctx context.Context) error {
	for !n.LeaderReady() {
		if n.raft.State() != raft.Leader {
			id, addr := n.Leader()
			return &NotLeaderError{LeaderID: id, LeaderAddr: addr}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for leadership to be established: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// ErrCatchingUp means the node's replica may still lack writes the
// cluster had acknowledged when it started or joined.
var ErrCatchingUp = errors.New("catching up")

// ReadReady says whether local reads may be served. Once true it stays
// true. A leader is ready when its leadership is established (its barrier
// has applied everything earlier leaders committed). Followers become
// ready through CaughtUpTo, against the leader's index (Server.ReadReady):
// a node's own log says nothing about what the cluster wrote while it was
// down, and a joining node's empty FSM would answer "no location" for
// sectors that exist.
func (n *Node) ReadReady() error {
	if n.ready.Load() {
		return nil
	}
	if n.LeaderReady() {
		n.ready.Store(true)
		return nil
	}
	return fmt.Errorf("%w: not yet caught up with the leader (applied %d)", ErrCatchingUp, n.raft.AppliedIndex())
}

// CaughtUpTo marks the node ready for reads if it has already applied
// everything up to a read index the leader gave, without waiting.
func (n *Node) CaughtUpTo(readIndex uint64) bool {
	if n.raft.AppliedIndex() < readIndex {
		return false
	}
	target, err := n.lastAppliableAtOrBefore(readIndex)
	if err != nil || n.fsm.applied.Load() < target {
		return false
	}
	n.ready.Store(true)
	return true
}

// boltOptions are raft.db's: bbolt's defaults, except that the freelist
// is not written at every commit (bbolt rebuilds it when it opens the
// file, as etcd configures its own bbolt). Every raft append is one bbolt
// commit on the write path, and BenchmarkLogStoreAppend measures it.
func boltOptions() *bbolt.Options {
	o := *bbolt.DefaultOptions
	o.NoFreelistSync = true
	o.FreelistType = bbolt.FreelistMapType
	return &o
}

func (n *Node) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.CommitTimeout = n.cfg.CommitTimeout
	// Pre-vote is raft's default (PreVoteDisabled false): a node cut off
	// and back does not depose a healthy leader with a raised term.
	// BatchApplyCh buffers Apply so concurrent writes wait in one queue
	// and the leader stores and sends them together (up to
	// MaxAppendEntries) instead of handing them over one by one; the FSM
	// takes them as one batch too (trackedFSM.ApplyBatch).
	rc.BatchApplyCh = true
	rc.Logger = logging.HCLog(n.log.Named("raft"))
	rc.NotifyCh = n.leader.notify
	return rc
}

func (n *Node) onFatal(err error) {
	n.log.Error("cannot apply the replicated log; stopping this node so it does not diverge", zap.Error(err))
	select {
	case n.fatal <- err:
	default:
	}
}

// Fatal delivers an error that must stop the daemon (an unknown command
// in the log). The FSM has stopped applying by then.
func (n *Node) Fatal() <-chan error { return n.fatal }

// FSM is the local replicated state, for reads.
func (n *Node) FSM() *fsm.FSM { return n.fsm.FSM }

// ID is this node's raft id.
func (n *Node) ID() string { return n.cfg.NodeID }

// RaftAddr is the address peers dial.
func (n *Node) RaftAddr() string { return string(n.transport.LocalAddr()) }

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the current leader's id and raft address, empty if none.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// WaitLeader blocks until some node is leader (this one or another).
func (n *Node) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if id, _ := n.Leader(); id != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for a raft leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// NotLeaderError says the request must go to the leader. A write or
// read index that gets it was not submitted to raft, so trying again
// cannot apply anything twice.
type NotLeaderError struct {
	LeaderID string
	// LeaderAddr is the leader's raft address, for this package only:
	// operators and clients reach a node by its API address, LeaderAPI
	// (known through gossip; filled in by Server).
	LeaderAddr string
	LeaderAPI  string
	// Msg, when set, is the whole message (a remote node's answer).
	Msg string
}

func (e *NotLeaderError) Error() string {
	switch {
	case e.Msg != "":
		return e.Msg
	case e.LeaderID == "":
		return "no raft leader is known; the cluster may be electing or have lost quorum"
	case e.LeaderAPI != "":
		return fmt.Sprintf("this node is not the leader; the leader is %s (API %s)", e.LeaderID, e.LeaderAPI)
	}
	return fmt.Sprintf("this node is not the leader; the leader is %s (its API address is not known through gossip yet)", e.LeaderID)
}

// ErrWrongCluster means a node's data belongs to another cluster.
var ErrWrongCluster = errors.New("wrong cluster")

// ErrTimeout wraps raft's enqueue timeout so callers can retry.
var ErrTimeout = errors.New("raft apply timed out")

func timeoutFrom(ctx context.Context, def time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return def
}

// Apply commits c through raft on this node, which must be the leader, and
// returns the FSM's answer. A rejected command is an fsm.ErrRejected error.
func (n *Node) Apply(ctx context.Context, c fsm.Command) (int, error) {
	return n.ApplyRaw(ctx, fsm.Encode(c))
}

// ApplyRaw is Apply for an already encoded command (forwarded writes).
func (n *Node) ApplyRaw(ctx context.Context, data []byte) (int, error) {
	if err := n.waitLeaderReady(ctx); err != nil {
		return 0, err
	}
	return n.applyRaw(ctx, data)
}

func (n *Node) applyRaw(ctx context.Context, data []byte) (int, error) {
	if n.raft.State() != raft.Leader {
		id, addr := n.Leader()
		return 0, &NotLeaderError{LeaderID: id, LeaderAddr: addr}
	}
	// Entries get the current term when raft dispatches them; one from an
	// earlier term cannot be ours.
	term := n.raft.CurrentTerm()
	f := n.raft.Apply(data, timeoutFrom(ctx, 30*time.Second))
	if err := waitFuture(ctx, f); err != nil {
		if errors.Is(err, raft.ErrLeadershipLost) {
			return n.settleLost(ctx, f.Index(), term, data)
		}
		return 0, n.applyErr(err)
	}
	return fsmResult(f.Response())
}

func fsmResult(r any) (int, error) {
	res, ok := r.(fsm.Result)
	if !ok {
		return 0, fmt.Errorf("apply: unexpected FSM response %T", r)
	}
	return res.Changed, res.Err
}

// settleLostWait bounds how long a write whose leader stepped down waits
// to learn its fate: an election or a transfer takes well under it.
const settleLostWait = 10 * time.Second

// settleLost finds out what became of a write that was in raft's log when
// this node stopped leading (a leadership transfer, an election). raft
// answers ErrLeadershipLost: the entry may still be committed by the next
// leader. This node stays in the cluster and follows the log, so it waits
// until its FSM applies that index: if the entry there is this write, the
// write's own result is returned (it succeeded or was refused); if another
// entry took the index, the write was never applied and a NotLeaderError
// says it is safe to send again. Only if neither can be known in time is
// the outcome reported unknown.
func (n *Node) settleLost(ctx context.Context, index, term uint64, data []byte) (int, error) {
	unknown := fmt.Errorf("%w: leadership was lost while the write was in flight and its fate is not known yet; it may or may not have been applied", ErrTimeout)
	if index == 0 {
		return 0, unknown
	}
	ch, cancel := n.fsm.watch(index, term, data)
	defer cancel()
	ctx, stop := context.WithTimeout(ctx, settleLostWait)
	defer stop()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	notApplied := func() error {
		id, addr := n.Leader()
		return &NotLeaderError{LeaderID: id, LeaderAddr: addr, Msg: "leadership changed before the write was committed; it was not applied (safe to send again)"}
	}
	for {
		select {
		case o := <-ch:
			if o.ours {
				n.log.Info("a write in flight when leadership changed was committed by the next leader; returning its result", zap.Uint64("index", index))
				return fsmResult(o.res)
			}
			n.log.Info("a write in flight when leadership changed was not committed; it will be sent again", zap.Uint64("index", index))
			return 0, notApplied()
		case <-ctx.Done():
			return 0, unknown
		case <-t.C:
		}
		// The FSM only sees commands: if the next leader put a no-op or a
		// configuration at this index, no apply will ever come for it.
		if n.raft.AppliedIndex() < index {
			continue
		}
		var l raft.Log
		if err := n.logs.GetLog(index, &l); err != nil {
			return 0, unknown // compacted or unreadable: cannot tell
		}
		if !n.fsm.matches(&l, term, data) {
			return 0, notApplied()
		}
	}
}

func (n *Node) applyErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrLeadershipLost):
		// The entry may already be on a majority and be committed by the
		// next leader: the outcome is unknown, so it must not be retried
		// as if nothing had been submitted.
		return fmt.Errorf("%w: leadership was lost while the write was in flight; it may or may not have been applied", ErrTimeout)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		id, addr := n.Leader()
		// Both wrapped: Leadership.Apply tells a transfer (retry) from a
		// lost leadership (deposed).
		return fmt.Errorf("%w (raft: %w)", &NotLeaderError{LeaderID: id, LeaderAddr: addr}, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return fmt.Errorf("raft apply: %w", err)
}

func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The entry may still commit; the caller only stops waiting.
		return fmt.Errorf("waiting for raft: %w", ctx.Err())
	}
}

// ConsistentRead makes the local FSM safe for a linearizable read on the
// leader: see ReadIndex and WaitApplied.
func (n *Node) ConsistentRead(ctx context.Context) error {
	idx, err := n.ReadIndex(ctx)
	if err != nil {
		return err
	}
	return n.WaitApplied(ctx, idx)
}

// ReadIndex is raft's read index, served by the leader: its commit index
// when the read arrived, returned once a quorum has confirmed this node is
// still the leader. Any write acknowledged before the read is at or below
// it (leader completeness). The commit index is a valid read index only
// once the leader has committed an entry of its own term (before that it
// may lag what an earlier leader committed); waitLeaderReady ensures that,
// as leadership is established by a barrier in this term. The last index
// would also be safe but makes the read wait for writes still in flight,
// which it need not see.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	// A new leader serves reads only once its leadership is established
	// (its barrier applied what earlier leaders committed), as writes
	// wait; then a read that succeeded leaves the node ReadReady too.
	if err := n.waitLeaderReady(ctx); err != nil {
		return 0, err
	}
	idx := n.raft.CommitIndex()
	if err := waitFuture(ctx, n.raft.VerifyLeader()); err != nil {
		if errors.Is(err, raft.ErrLeadershipLost) {
			// A read wrote nothing: the caller may ask the next leader.
			id, addr := n.Leader()
			return 0, &NotLeaderError{LeaderID: id, LeaderAddr: addr}
		}
		return 0, n.applyErr(err)
	}
	return idx, nil
}

// WaitApplied blocks until this node's FSM has applied every entry up to
// index. raft's own applied index is not enough: raft advances it when it
// hands entries to the FSM goroutine, not when they are applied; and no-op
// entries never reach the FSM. So it is done when the FSM has applied index
// or a later entry, or when raft has dispatched index and the FSM has
// applied the newest command or configuration entry at or below it.
//
// It waits on the FSM's apply signal, not a timer: the apply that satisfies
// a read wakes it at once. Only while raft has not dispatched index yet is
// the check also repeated every CommitTimeout, because an index that is a
// no-op or a barrier (right after an election) is never signalled by the
// FSM.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	var target uint64
	var lookErr error
	// dispatched is what the last done() saw of raft's applied index, and
	// recheck decides from it rather than reading the index again: raft
	// hands a batch to the FSM before it advances that index, so a second
	// read could see "dispatched" where done() saw "not yet", and for a
	// no-op or barrier index no FSM signal would then ever come.
	dispatched := false
	done := func() bool {
		if n.fsm.applied.Load() >= index {
			return true
		}
		if dispatched = n.dispatchedIndex() >= index; !dispatched {
			return false
		}
		if target == 0 {
			if target, lookErr = n.lastAppliableAtOrBefore(index); lookErr != nil || target == 0 {
				return true
			}
		}
		return n.fsm.applied.Load() >= target
	}
	var tick *time.Ticker
	recheck := func() <-chan time.Time {
		if dispatched {
			return nil // done() now waits for an FSM apply, which signals
		}
		if tick == nil {
			tick = time.NewTicker(n.cfg.CommitTimeout)
		}
		return tick.C
	}
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	if err := n.fsm.applied.waitFor(ctx, done, recheck); err != nil {
		return fmt.Errorf("wait for index %d to apply: %w", index, err)
	}
	return lookErr
}

// dispatchedIndex is raft's applied index (what it has handed to the FSM);
// a variable only so tests can make it move between two reads.
func (n *Node) dispatchedIndex() uint64 {
	if n.testDispatched != nil {
		return n.testDispatched()
	}
	return n.raft.AppliedIndex()
}

// lastAppliableAtOrBefore walks back from index to the newest entry the
// FSM is handed. It stops at the latest snapshot: raft keeps TrailingLogs
// entries below it, but the FSM holds them through the snapshot and will
// not see them applied again (after a restart from a snapshot, waiting for
// one would wait forever).
func (n *Node) lastAppliableAtOrBefore(index uint64) (uint64, error) {
	snap := parseUint(n.raft.Stats()["last_snapshot_index"])
	for i := index; i > snap && i > 0; i-- {
		var l raft.Log
		if err := n.logs.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				return 0, nil
			}
			return 0, fmt.Errorf("read log %d: %w", i, err)
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i, nil
		}
	}
	return 0, nil
}

// SnapshotNow asks raft for a snapshot and log compaction.
func (n *Node) SnapshotNow(ctx context.Context) error {
	if err := waitFuture(ctx, n.raft.Snapshot()); err != nil {
		if errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return nil
		}
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// EnsureClusterID gives a freshly bootstrapped cluster its id and checks
// the home's recorded id against the replicated one, so a home directory
// pointed at another cluster's data is refused.
// Only the leader, while establishing leadership, gives the cluster its
// id; on other calls an id not yet replicated returns "".
func (n *Node) EnsureClusterID(ctx context.Context) (string, error) {
	return n.ensureClusterID(ctx, false)
}

func (n *Node) ensureClusterID(ctx context.Context, mayAssign bool) (string, error) {
	path := filepath.Join(n.cfg.Dir, "cluster-id")
	recorded, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	id := n.fsm.ClusterID()
	if id == "" && mayAssign {
		if len(recorded) > 0 {
			id = string(recorded)
		} else {
			id = newClusterID()
		}
		if _, err := n.applyRaw(ctx, fsm.Encode(fsm.SetClusterID{ID: id})); err != nil {
			return "", fmt.Errorf("set cluster id: %w", err)
		}
	}
	if id == "" {
		return "", nil // a joining node learns it from the log
	}
	if len(recorded) > 0 && string(recorded) != id {
		return "", fmt.Errorf("%w: this home belongs to cluster %s but its raft data says cluster %s; point --home at the right directory", ErrWrongCluster, recorded, id)
	}
	if len(recorded) == 0 {
		if err := os.WriteFile(path, []byte(id), 0o600); err != nil {
			return "", fmt.Errorf("record cluster id: %w", err)
		}
	}
	return id, nil
}

func newClusterID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux.
	return hex.EncodeToString(b)
}

// Close stops raft and closes the stores. A leader hands leadership over
// first when it has peers, so writes pause for milliseconds, not an
// election.
func (n *Node) Close(ctx context.Context) error {
	if n.IsLeader() && n.voterCount() > 1 {
		if err := waitFuture(ctx, n.raft.LeadershipTransfer()); err != nil {
			n.log.Warn("leadership transfer before shutdown failed", zap.Error(err))
		}
	}
	close(n.done)
	// Leader tasks stop before raft does, so none writes into a closed node.
	select {
	case <-n.leader.stopped:
	case <-ctx.Done():
	}
	err := n.raft.Shutdown().Error()
	n.closeStores()
	if err != nil {
		return fmt.Errorf("raft shutdown: %w", err)
	}
	return nil
}

func (n *Node) closeStores() {
	if n.transport != nil {
		n.transport.Close()
	}
	if n.leaderLog != nil {
		if err := n.leaderLog.Close(); err != nil {
			n.log.Error("closing the raft log", zap.Error(err))
		}
	}
	if n.logCloser != nil {
		n.logCloser.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
}

func (n *Node) voterCount() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			c++
		}
	}
	return c
}
