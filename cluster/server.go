package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fsm"
)

// Forwarder reaches another member's API. The rpc package implements it;
// cluster only needs these calls, made to the leader or a peer.
type Forwarder interface {
	Apply(ctx context.Context, rpcAddr string, cmd []byte) (int, error)
	ReadIndex(ctx context.Context, rpcAddr string) (uint64, error)
	Status(ctx context.Context, rpcAddr string) (Status, error)
	RemovePeer(ctx context.Context, rpcAddr, id string, force bool) error
	TransferLeader(ctx context.Context, rpcAddr, to string) error
}

// ServerConfig is everything a member needs.
type ServerConfig struct {
	Raft   Config
	Gossip GossipConfig
	// RPCAddr is this node's API address, gossiped so members can forward.
	RPCAddr  string
	NonVoter bool
	// Proxy marks a proxy node (see Meta.Proxy); it implies NonVoter.
	Proxy bool
	// Poster: this node proves the deadlines it is given.
	Poster bool
	// BootstrapExpect bootstraps a new cluster once this many voters that
	// have no raft state have met through gossip.
	BootstrapExpect int
	// Join lists gossip addresses tried (and retried) at start.
	Join []string
	// DeadServerCleanup removes a voter gossip has seen dead this long
	// (never below quorum). Zero disables it.
	DeadServerCleanup time.Duration
	// PromoteAfter is how long a non-voter must be caught up before the
	// leader makes it a voter.
	PromoteAfter time.Duration
	Forwarder    Forwarder
	// Capacity reports this node's proving capacity for gossip.
	Capacity func() Capacity
}

// Server is a cluster member: a raft node, its gossip, and the loops that
// keep raft membership in step with gossip.
type Server struct {
	cfg    ServerConfig
	node   *Node
	gossip *Gossip
	log    *zap.Logger

	fatal   chan error
	mu      sync.Mutex
	healthy map[string]time.Time // non-voter id -> caught up since
	// removed are members an operator removed while this node led; the
	// reconcile loop does not add them back while they stay alive in
	// gossip (they are re-added once they leave or fail and come back).
	removed map[string]time.Time // id -> when

	// catchUp is the leader's index this node must apply before it serves
	// local reads (see ReadReady); 0 until the leader has been asked.
	catchUp struct {
		sync.Mutex
		target uint64
	}
}

// OpenServer starts raft and gossip and the background loops. It does
// not wait for a leader.
func OpenServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.BootstrapExpect > 0 && cfg.Raft.Bootstrap {
		return nil, errors.New("give --bootstrap or --bootstrap-expect, not both")
	}
	if cfg.BootstrapExpect > 0 && cfg.NonVoter {
		return nil, errors.New("a non-voter cannot count toward --bootstrap-expect")
	}
	if cfg.PromoteAfter == 0 {
		cfg.PromoteAfter = 3 * time.Second
	}
	// Checked before raft opens: a node refused for its gossip settings
	// must leave no raft state behind.
	if err := cfg.Gossip.Check(); err != nil {
		return nil, fmt.Errorf("%w (nothing was written)", err)
	}
	node, err := Open(cfg.Raft)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, node: node, log: node.log, healthy: map[string]time.Time{}, removed: map[string]time.Time{}, fatal: make(chan error, 1)}
	node.SetFencingCheck(s.votersApplyFenced)
	recorded, _ := os.ReadFile(filepath.Join(cfg.Raft.Dir, "cluster-id"))
	meta := Meta{
		ID:        node.ID(),
		ClusterID: string(recorded),
		RPC:       cfg.RPCAddr,
		Raft:      node.RaftAddr(),
		NonVoter:  cfg.NonVoter || cfg.Proxy,
		Proxy:     cfg.Proxy,
		Poster:    cfg.Poster,
		Expect:    cfg.BootstrapExpect,
		HasState:  node.raft.LastIndex() > 0,

		FencedAssignments: true,
	}
	// Said from the first gossip message on: a removed node that restarts
	// must not look like a fresh joiner to a leader that did not remove it.
	in, known := s.selfInConfiguration()
	meta.Removed = meta.HasState && known && !in
	if cfg.Gossip.Logger == nil {
		cfg.Gossip.Logger = node.log
	}
	if cfg.Gossip.NodeID == "" {
		cfg.Gossip.NodeID = node.ID()
	}
	g, err := OpenGossip(cfg.Gossip, meta)
	if err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = node.Close(cctx)
		return nil, err
	}
	s.gossip = g
	go s.forwardFatal(ctx)
	go s.retryJoin(ctx)
	go s.refreshMeta(ctx)
	s.RegisterLeaderTask("membership", s.reconcileLoop)
	if cfg.BootstrapExpect > 0 {
		go s.bootstrapExpect(ctx)
	}
	return s, nil
}

// Node is the raft node.
func (s *Server) Node() *Node { return s.node }

// Gossip is the memberlist side.
func (s *Server) Gossip() *Gossip { return s.gossip }

// FSM is the local replicated state.
func (s *Server) FSM() *fsm.FSM { return s.node.FSM() }

// ReadReady refuses local reads until this node has caught up with the
// cluster: a follower asks the leader once for its index (raft's read
// index: everything acknowledged before is at or below it) and is ready
// when it has applied that far. The target is kept, so a follower that
// lags a busy leader by a few entries still gets there.
func (s *Server) ReadReady() error {
	err := s.node.ReadReady()
	if err == nil {
		return nil
	}
	if s.node.IsLeader() {
		return fmt.Errorf("%w: this node has just been elected and is applying what earlier leaders committed", ErrCatchingUp)
	}
	target, terr := s.catchUpTarget()
	if terr != nil {
		return terr
	}
	if s.node.CaughtUpTo(target) {
		return nil
	}
	return fmt.Errorf("%w: applied %d of %d, the leader's index when this node started or joined; local reads are refused until then (use --consistent, or another member)", ErrCatchingUp, s.node.raft.AppliedIndex(), target)
}

// catchUpTarget returns the leader's read index, asked once.
func (s *Server) catchUpTarget() (uint64, error) {
	s.catchUp.Lock()
	defer s.catchUp.Unlock()
	if s.catchUp.target > 0 {
		return s.catchUp.target, nil
	}
	addr, err := s.leaderRPC()
	if err != nil {
		return 0, fmt.Errorf("%w: no leader reachable yet to learn how far to catch up: %v", ErrCatchingUp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	idx, err := s.cfg.Forwarder.ReadIndex(ctx, addr)
	if err != nil {
		return 0, fmt.Errorf("%w: asking the leader at %s how far to catch up: %v", ErrCatchingUp, addr, err)
	}
	s.catchUp.target = idx
	return idx, nil
}

// Status is Node.Status.
func (s *Server) Status() Status { return s.node.Status() }

// SnapshotNow is Node.SnapshotNow.
func (s *Server) SnapshotNow(ctx context.Context) error { return s.node.SnapshotNow(ctx) }

// Fatal delivers an error that must stop the daemon: Node.Fatal's, or a
// membership error retrying cannot fix (a duplicate node id).
func (s *Server) Fatal() <-chan error { return s.fatal }

func (s *Server) stopWith(err error) {
	select {
	case s.fatal <- err:
	default:
	}
}

func (s *Server) forwardFatal(ctx context.Context) {
	select {
	case <-ctx.Done():
	case err := <-s.node.Fatal():
		s.stopWith(err)
	}
}

// notLeader is the error for a request that reached a follower, naming
// the leader by id and API address.
func (s *Server) notLeader() error {
	id, addr := s.node.Leader()
	return s.withLeaderAPI(&NotLeaderError{LeaderID: id, LeaderAddr: addr})
}

// withLeaderAPI fills in the leader's API address on a NotLeaderError
// coming from the raft node, which only knows raft addresses.
func (s *Server) withLeaderAPI(err error) error {
	var nl *NotLeaderError
	if errors.As(err, &nl) && nl.LeaderID != "" && nl.LeaderAPI == "" && nl.Msg == "" {
		if m, ok := s.member(nl.LeaderID); ok {
			nl.LeaderAPI = m.RPC
		}
	}
	return err
}

// leaderRPC finds the leader's API address through gossip.
func (s *Server) leaderRPC() (string, error) {
	id, addr := s.node.Leader()
	if id == "" {
		return "", &NotLeaderError{}
	}
	if m, ok := s.member(id); ok && m.RPC != "" {
		return m.RPC, nil
	}
	return "", &NotLeaderError{LeaderID: id, LeaderAddr: addr}
}

func (s *Server) member(id string) (Member, bool) {
	for _, m := range s.gossip.Members() {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// leaderWait bounds how long a write waits for an election to produce a
// leader before the caller is told there is none (lost quorum, say).
const leaderWait = 5 * time.Second

// Apply commits c, on this node if it leads, else on the leader. A
// NotLeaderError, from this node or the one it forwarded to, means the
// write was not submitted or provably not applied (an election, a
// leadership transfer, a stale leader view): it is sent again, to the
// current leader, for up to leaderWait, so clients do not see leadership
// changes. An unknown outcome (ErrTimeout) is never retried.
func (s *Server) Apply(ctx context.Context, c fsm.Command) (int, error) {
	data := fsm.Encode(c)
	giveUp := time.Now().Add(leaderWait)
	for {
		n, err := s.applyOnce(ctx, data)
		var nl *NotLeaderError
		if err == nil || !errors.As(err, &nl) || time.Now().After(giveUp) {
			return n, s.withLeaderAPI(err)
		}
		select {
		case <-ctx.Done():
			return 0, err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) applyOnce(ctx context.Context, data []byte) (int, error) {
	if s.node.IsLeader() {
		return s.node.ApplyRaw(ctx, data)
	}
	addr, err := s.leaderRPC()
	if err != nil {
		return 0, err
	}
	return s.cfg.Forwarder.Apply(ctx, addr, data)
}

// ApplyLocal applies a forwarded command; it never forwards again, so a
// stale leader view cannot bounce a write around.
func (s *Server) ApplyLocal(ctx context.Context, data []byte) (int, error) {
	if _, err := fsm.Decode(data); err != nil {
		return 0, fmt.Errorf("%w: forwarded command: %v", fsm.ErrRejected, err)
	}
	n, err := s.node.ApplyRaw(ctx, data)
	return n, s.withLeaderAPI(err)
}

// ReadIndex serves a follower's consistent read (leader only).
func (s *Server) ReadIndex(ctx context.Context) (uint64, error) {
	idx, err := s.node.ReadIndex(ctx)
	return idx, s.withLeaderAPI(err)
}

// ConsistentRead makes the local replica linearizable for one read: the
// leader confirms its read index with a quorum and this node waits until it
// has applied up to that index (raft's read index, followers included).
// A read writes nothing, so during a leader change it simply asks again,
// for up to leaderWait.
func (s *Server) ConsistentRead(ctx context.Context) error {
	giveUp := time.Now().Add(leaderWait)
	for {
		err := s.consistentReadOnce(ctx)
		var nl *NotLeaderError
		if err == nil || !errors.As(err, &nl) || time.Now().After(giveUp) {
			return s.withLeaderAPI(err)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) consistentReadOnce(ctx context.Context) error {
	if s.node.IsLeader() {
		return s.node.ConsistentRead(ctx)
	}
	addr, err := s.leaderRPC()
	if err != nil {
		return err
	}
	idx, err := s.cfg.Forwarder.ReadIndex(ctx, addr)
	if err != nil {
		return fmt.Errorf("read index from the leader at API %s: %w", addr, err)
	}
	return s.node.WaitApplied(ctx, idx)
}

// Peer is one server in the raft configuration, with what it reports.
type Peer struct {
	ID       string  `json:"id"`
	Address  string  `json:"address"`
	Voter    bool    `json:"voter"`
	Leader   bool    `json:"leader"`
	Status   *Status `json:"status,omitempty"`
	Error    string  `json:"error,omitempty"`
	Gossip   string  `json:"gossip_state,omitempty"`
	Draining bool    `json:"draining,omitempty"`
}

// Peers lists the raft configuration and asks each peer for its status.
func (s *Server) Peers(ctx context.Context) ([]Peer, error) {
	f := s.node.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	leaderID, _ := s.node.Leader()
	servers := f.Configuration().Servers
	peers := make([]Peer, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		p := Peer{ID: string(srv.ID), Address: string(srv.Address), Voter: srv.Suffrage == raft.Voter, Leader: string(srv.ID) == leaderID}
		m, known := s.member(p.ID)
		if known {
			p.Gossip, p.Draining = m.State, m.Draining
		}
		peers[i] = p
		if p.ID == s.node.ID() {
			st := s.node.Status()
			peers[i].Status = &st
			continue
		}
		if !known || m.RPC == "" || m.State != "alive" {
			peers[i].Error = "not reachable through gossip"
			continue
		}
		wg.Add(1)
		go func(i int, addr string) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			st, err := s.cfg.Forwarder.Status(cctx, addr)
			if err != nil {
				peers[i].Error = err.Error()
				return
			}
			peers[i].Status = &st
		}(i, m.RPC)
	}
	wg.Wait()
	return peers, nil
}

// selfInConfiguration reports whether this node's latest raft
// configuration lists it; known is false while it has none.
func (s *Server) selfInConfiguration() (in, known bool) {
	f := s.node.raft.GetConfiguration()
	if f.Error() != nil || len(f.Configuration().Servers) == 0 {
		return false, false
	}
	return s.inConfiguration(s.node.ID()), true
}

// InConfiguration reports whether this node's latest raft configuration
// lists it; known is false while it has none (a proxy uses it to rejoin
// after a removal).
func (s *Server) InConfiguration() (in, known bool) { return s.selfInConfiguration() }

// Members is the gossip view.
func (s *Server) Members() []Member { return s.gossip.Members() }

// Join contacts the gossip addresses; the leader then adds this node. It
// is the operator's explicit request, so it also lifts an earlier
// removal (see Meta.Rejoin).
func (s *Server) Join(addrs []string) (int, error) {
	n, err := s.gossip.Join(addrs)
	if err != nil {
		return n, err
	}
	if in, _ := s.selfInConfiguration(); !in {
		if err := s.gossip.UpdateMeta(func(m *Meta) { m.Rejoin, m.Removed = true, false }); err != nil {
			return n, err
		}
	}
	return n, nil
}

// SetDraining sets the drain flag the scheduler reads from gossip.
func (s *Server) SetDraining(on bool) error {
	return s.gossip.UpdateMeta(func(m *Meta) { m.Draining = on })
}

// RemovePeer removes a server from the raft configuration, on the leader
// (a follower forwards once; the leader's side is RemovePeerOnLeader).
// Without force, a removal that would leave the remaining voters without
// a reachable quorum is refused.
func (s *Server) RemovePeer(ctx context.Context, id string, force bool) error {
	if !s.node.IsLeader() {
		addr, err := s.leaderRPC()
		if err != nil {
			return err
		}
		return s.cfg.Forwarder.RemovePeer(ctx, addr, id, force)
	}
	return s.RemovePeerOnLeader(ctx, id, force)
}

// RemovePeerOnLeader is RemovePeer on the node that must be the leader; it
// never forwards a request it received, so two nodes with stale leader
// views cannot bounce it between them. Removing the leader itself hands
// leadership over first and then asks the new leader, in the same call.
func (s *Server) RemovePeerOnLeader(ctx context.Context, id string, force bool) error {
	if !s.node.IsLeader() {
		return s.notLeader()
	}
	f := s.node.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("raft configuration: %w", err)
	}
	servers := f.Configuration().Servers
	if !slices.ContainsFunc(servers, func(srv raft.Server) bool { return string(srv.ID) == id }) {
		return fmt.Errorf("%w: %s is not in the raft configuration (see 'vsm cluster peers')", fsm.ErrRejected, id)
	}
	if !force {
		if err := s.quorumAfterRemoval(servers, id); err != nil {
			return err
		}
	}
	if id == s.node.ID() {
		return s.removeLeader(ctx, id, force)
	}
	// Marked before the change is submitted: this leader's configuration
	// omits id as soon as the entry is appended, long before the future
	// returns (or after ctx has given up on it), and a reconcile in that
	// gap would add the member straight back through gossip.
	s.mu.Lock()
	prev, had := s.removed[id]
	s.removed[id] = time.Now()
	s.mu.Unlock()
	if err := waitFuture(ctx, s.node.raft.RemoveServer(raft.ServerID(id), 0, 0)); err != nil {
		if removalNotApplied(err) {
			s.mu.Lock()
			if had {
				s.removed[id] = prev
			} else {
				delete(s.removed, id)
			}
			s.mu.Unlock()
		}
		return fmt.Errorf("remove %s: %w", id, err)
	}
	s.log.Info("removed raft peer", zap.String("peer", id), zap.Bool("forced", force))
	return nil
}

// removalNotApplied says whether a RemoveServer error means the change
// surely did not happen. Giving up waiting (ctx), a lost leadership (the
// next leader may still commit it) and a shutdown leave it unknown, and
// then the mark stays: it only keeps gossip from re-adding the member.
func removalNotApplied(err error) bool {
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, raft.ErrLeadershipLost) && !errors.Is(err, raft.ErrRaftShutdown)
}

// votersApplyFenced says whether every voter in the raft configuration
// advertises, in gossip, that it applies fenced SetAssignments. A voter
// gossip does not know (or not yet) counts as not: writing an entry type
// an old voter cannot skip would stop it, and enough of them lose quorum.
func (s *Server) votersApplyFenced() bool {
	if s.gossip == nil {
		return false
	}
	f := s.node.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	return votersApplyFenced(f.Configuration().Servers, s.gossip.Members(), s.node.ID())
}

func votersApplyFenced(servers []raft.Server, members []Member, self string) bool {
	says := map[string]bool{self: true}
	for _, m := range members {
		says[m.ID] = m.FencedAssignments
	}
	for _, srv := range servers {
		if srv.Suffrage == raft.Voter && !says[string(srv.ID)] {
			return false
		}
	}
	return true
}

// quorumAfterRemoval refuses a removal after which the voters left could
// not elect a leader with the members gossip sees alive: removing a live
// voter while another is down has left clusters leaderless.
func (s *Server) quorumAfterRemoval(servers []raft.Server, id string) error {
	alive := map[string]bool{s.node.ID(): true}
	for _, m := range s.gossip.Members() {
		if m.State == "alive" {
			alive[m.ID] = true
		}
	}
	var left, up []string
	var down []string
	for _, srv := range servers {
		sid := string(srv.ID)
		if srv.Suffrage != raft.Voter || sid == id {
			continue
		}
		left = append(left, sid)
		if alive[sid] {
			up = append(up, sid)
		} else {
			down = append(down, sid)
		}
	}
	if i := slices.IndexFunc(servers, func(srv raft.Server) bool { return string(srv.ID) == id }); servers[i].Suffrage != raft.Voter {
		return nil // a non-voter does not count toward quorum
	}
	need := len(left)/2 + 1
	if len(left) == 0 {
		return fmt.Errorf("%w: %s is the only voter; removing it would leave no cluster (stop the node instead)", fsm.ErrRejected, id)
	}
	if len(up) >= need {
		return nil
	}
	return fmt.Errorf("%w: removing %s would leave %d voters of which only %d are alive (%s down); they need %d to elect a leader, so the cluster would stop taking writes. Bring %s back or remove it first; to remove %s anyway, give --force (see docs/runbooks/cluster.md#remove-a-node)",
		fsm.ErrRejected, id, len(left), len(up), strings.Join(down, ", "), need, strings.Join(down, ", "), id)
}

// removeLeader hands leadership to another voter, waits for the new leader
// to be known with its API address, and asks it to remove this node.
func (s *Server) removeLeader(ctx context.Context, id string, force bool) error {
	if err := s.transfer(ctx, ""); err != nil {
		return fmt.Errorf("remove the leader %s: hand over leadership first: %w", id, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		err := s.removeOnNewLeader(ctx, id, force)
		var nl *NotLeaderError
		if err == nil || !errors.As(err, &nl) {
			return err
		}
		// The new leader is not known yet, or not established: nothing
		// was removed, so asking again is safe.
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove %s: leadership was handed over but no new leader took the request: %w", id, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) removeOnNewLeader(ctx context.Context, id string, force bool) error {
	if s.node.IsLeader() {
		return s.notLeader() // leadership came back; the loop asks again
	}
	addr, err := s.leaderRPC()
	if err != nil {
		return err
	}
	return s.cfg.Forwarder.RemovePeer(ctx, addr, id, force)
}

func (s *Server) inConfiguration(id string) bool {
	f := s.node.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	return slices.ContainsFunc(f.Configuration().Servers, func(srv raft.Server) bool { return string(srv.ID) == id })
}

// TransferLeader hands leadership to `to` (any up-to-date voter if empty).
func (s *Server) TransferLeader(ctx context.Context, to string) error {
	if !s.node.IsLeader() {
		addr, err := s.leaderRPC()
		if err != nil {
			return err
		}
		return s.cfg.Forwarder.TransferLeader(ctx, addr, to)
	}
	return s.TransferLeaderOnLeader(ctx, to)
}

// TransferLeaderOnLeader is TransferLeader without forwarding.
func (s *Server) TransferLeaderOnLeader(ctx context.Context, to string) error {
	if !s.node.IsLeader() {
		return s.notLeader()
	}
	return s.transfer(ctx, to)
}

func (s *Server) transfer(ctx context.Context, to string) error {
	var fut raft.Future
	if to == "" {
		fut = s.node.raft.LeadershipTransfer()
	} else {
		f := s.node.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			return err
		}
		i := slices.IndexFunc(f.Configuration().Servers, func(srv raft.Server) bool { return string(srv.ID) == to })
		if i < 0 {
			return fmt.Errorf("%w: %s is not in the raft configuration", fsm.ErrRejected, to)
		}
		srv := f.Configuration().Servers[i]
		fut = s.node.raft.LeadershipTransferToServer(srv.ID, srv.Address)
	}
	if err := waitFuture(ctx, fut); err != nil {
		return fmt.Errorf("leadership transfer: %w", err)
	}
	return nil
}

// Leave removes this node from the cluster gracefully: leadership is
// handed over first, the leader removes it from raft, then it leaves
// gossip. The caller shuts the node down afterwards.
func (s *Server) Leave(ctx context.Context) error {
	if s.node.IsLeader() && s.node.voterCount() > 1 {
		if err := s.transfer(ctx, ""); err != nil {
			return err
		}
	}
	if s.inConfiguration(s.node.ID()) {
		if s.node.IsLeader() {
			return fmt.Errorf("%w: this node is the only voter; stop it instead of leaving", fsm.ErrRejected)
		}
		if err := s.removeSelf(ctx); err != nil {
			return fmt.Errorf("leave: %w", err)
		}
	}
	return s.gossip.Leave(5 * time.Second)
}

// removeSelf asks the leader to remove this node, waiting out the
// election that follows a leadership hand-over.
func (s *Server) removeSelf(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		err := s.RemovePeer(ctx, s.node.ID(), false)
		var nl *NotLeaderError
		if err == nil || !errors.As(err, &nl) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops gossip and raft (a leader hands over first).
func (s *Server) Close(ctx context.Context) error {
	_ = s.gossip.Shutdown()
	return s.node.Close(ctx)
}

func (s *Server) retryJoin(ctx context.Context) {
	if len(s.cfg.Join) == 0 {
		return
	}
	for attempt := 1; ; attempt++ {
		n, err := s.gossip.Join(s.cfg.Join)
		if err == nil {
			s.log.Info("joined gossip", zap.Int("contacted", n), zap.Strings("join", s.cfg.Join))
			return
		}
		if errors.Is(err, ErrDuplicateID) {
			// Retrying cannot help and the operator must act: stop.
			s.stopWith(fmt.Errorf("join: %w", err))
			return
		}
		level := s.log.Warn
		if errors.Is(err, ErrGossipKey) || errors.Is(err, ErrWrongCluster) || errors.Is(err, ErrNotGossip) {
			level = s.log.Error
		}
		level("join failed; retrying", zap.Int("attempt", attempt), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// refreshMeta keeps the gossiped cluster id, raft-state flag and capacity
// current. It looks often (gossip only carries a change): with raft's
// 300 ms timeouts a cluster forms well within a second, and until a member
// says it has raft state the leader takes it for a fresh node (which lifts
// an operator's removal of it).
func (s *Server) refreshMeta(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := s.gossip.Local()
		next := cur
		if id := s.node.FSM().ClusterID(); id != "" {
			next.ClusterID = id
		}
		next.HasState = s.node.raft.LastIndex() > 0
		if next.HasState && !cur.HasState {
			clearAcceptMarker(s.cfg.Raft.Dir)
		}
		in, known := s.selfInConfiguration()
		next.Removed = next.HasState && known && !in
		if in {
			next.Rejoin = false // re-added: a later removal holds again
		}
		if s.cfg.Capacity != nil {
			next.Capacity = s.cfg.Capacity()
		}
		if next != cur {
			// Only the fields this loop owns are written: a whole-Meta
			// copy would undo a change made since cur was read (Leave's
			// Leaving flag, which made a graceful leave show as dead).
			err := s.gossip.UpdateMeta(func(m *Meta) {
				m.ClusterID, m.HasState, m.Removed, m.Capacity = next.ClusterID, next.HasState, next.Removed, next.Capacity
				if in {
					m.Rejoin = false
				}
			})
			if err != nil {
				s.log.Warn("gossip meta update", zap.Error(err))
			}
		}
	}
}
