package cluster

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// reconcileLoop is a leader task: it makes the raft configuration follow
// gossip, as consul's leader does with serf. New members join as
// non-voters and are promoted once caught up. Configuration changes are
// raft calls on this node, which fail once it no longer leads.
func (s *Server) reconcileLoop(ctx context.Context, _ *Leadership) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.gossip.Events():
		}
	}
}

// removalSettles is how long after a removal the member's own gossip is
// surely newer than it (gossip spreads a change within a second or two).
const removalSettles = 10 * time.Second

// configChangeWait bounds how long a configuration change waits to be
// taken by raft's main loop. With timeout 0 the hand-over blocks until
// raft takes it, and if raft is itself stuck the reconcile task would
// never return, so its term would never end (see leaderState.notify).
const configChangeWait = 5 * time.Second

func (s *Server) reconcile(ctx context.Context) {
	f := s.node.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	servers := f.Configuration().Servers
	ours := s.node.FSM().ClusterID()
	for _, m := range s.gossip.Members() {
		if ctx.Err() != nil {
			return // the term ended: its configuration changes would fail
		}
		if m.ID == s.node.ID() || m.Raft == "" {
			continue
		}
		// An operator's removal holds, across restarts of the member and
		// changes of leader (the member itself says Removed), until the
		// member is re-joined on purpose: 'vsm cluster join' on it
		// (Rejoin) or an empty restart after 'vsm cluster forget-state'.
		// "No state" is believed only from a member removed a while ago:
		// a member that got its state moments before the removal (a
		// cluster forms in well under a second) may still be gossiping
		// that it has none.
		//
		// A mark on a member that is in the configuration a while after
		// the removal is stale (the removal failed, or another leader
		// re-added the member on purpose): it is dropped, so it cannot
		// keep the member out later. The mark is not dropped at the start
		// of a term: a removal this node accepts as leader may come before
		// its reconcile task starts, and dropping it then re-added the
		// removed member at once.
		i := slices.IndexFunc(servers, func(srv raft.Server) bool { return string(srv.ID) == m.ID })
		s.mu.Lock()
		at, wasRemoved := s.removed[m.ID]
		if wasRemoved && i >= 0 && time.Since(at) > removalSettles {
			delete(s.removed, m.ID)
			wasRemoved = false
		}
		if m.State == "alive" && (m.Rejoin || (!m.HasState && time.Since(at) > removalSettles)) {
			delete(s.removed, m.ID)
			wasRemoved = false
		}
		removed := (wasRemoved || m.Removed) && !m.Rejoin
		s.mu.Unlock()
		switch {
		case m.State == "alive" && m.ClusterID != "" && ours != "" && m.ClusterID != ours:
			// Gossip refuses such members; this only guards a race.
		case m.State == "alive" && i < 0 && removed:
			// An operator removed it while it still runs; leave it out.
		case m.State == "alive" && i < 0:
			s.addNonVoter(m)
		case m.State == "alive" && string(servers[i].Address) != m.Raft:
			// Same permanent id, new address: the node moved.
			s.log.Info("member changed its raft address", zap.String("member", m.ID), zap.String("old", string(servers[i].Address)), zap.String("new", m.Raft))
			if servers[i].Suffrage == raft.Voter {
				s.logErr("update voter address", s.node.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.Raft), 0, configChangeWait).Error())
			} else {
				s.addNonVoter(m)
			}
		case m.State == "alive" && servers[i].Suffrage == raft.Nonvoter && !m.NonVoter:
			s.maybePromote(ctx, m)
		case m.State == "left" && i >= 0:
			s.removeServer(m.ID, "left gossip")
		case m.State == "dead" && i >= 0:
			s.maybeRemoveDead(m, servers)
		}
	}
}

func (s *Server) addNonVoter(m Member) {
	s.log.Info("adding member to raft as a non-voter", zap.String("member", m.ID), zap.String("raft", m.Raft))
	s.logErr("add non-voter", s.node.raft.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.Raft), 0, configChangeWait).Error())
}

// maybePromote makes a non-voter a voter once it has been caught up for
// PromoteAfter: adding a voter that never comes up has wedged clusters.
func (s *Server) maybePromote(ctx context.Context, m Member) {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := s.cfg.Forwarder.Status(cctx, m.RPC)
	caughtUp := err == nil && st.AppliedIndex+64 >= s.node.raft.AppliedIndex() && st.LastContactMS < 2000
	s.mu.Lock()
	since, ok := s.healthy[m.ID]
	switch {
	case !caughtUp:
		delete(s.healthy, m.ID)
		s.mu.Unlock()
		return
	case !ok:
		s.healthy[m.ID] = time.Now()
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if time.Since(since) < s.cfg.PromoteAfter {
		return
	}
	s.log.Info("promoting caught-up member to voter", zap.String("member", m.ID))
	if err := s.node.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.Raft), 0, configChangeWait).Error(); err != nil {
		s.logErr("promote", err)
		return
	}
	s.mu.Lock()
	delete(s.healthy, m.ID)
	s.mu.Unlock()
}

// maybeRemoveDead removes a voter gossip has seen dead for
// DeadServerCleanup, but only while the voters left still form a quorum
// of the old configuration's alive members.
func (s *Server) maybeRemoveDead(m Member, servers []raft.Server) {
	if s.cfg.DeadServerCleanup <= 0 || m.Since.IsZero() || time.Since(m.Since) < s.cfg.DeadServerCleanup {
		return
	}
	voters, alive := 0, 0
	states := map[string]string{}
	for _, mm := range s.gossip.Members() {
		states[mm.ID] = mm.State
	}
	for _, srv := range servers {
		if srv.Suffrage != raft.Voter {
			continue
		}
		voters++
		if string(srv.ID) == s.node.ID() || states[string(srv.ID)] == "alive" {
			alive++
		}
	}
	after := voters - 1
	if alive < after/2+1 {
		s.log.Warn("not removing dead voter: the rest would not form a quorum", zap.String("member", m.ID))
		return
	}
	s.removeServer(m.ID, "dead for "+time.Since(m.Since).Round(time.Second).String())
}

func (s *Server) removeServer(id, why string) {
	s.log.Info("removing member from raft", zap.String("member", id), zap.String("why", why))
	s.logErr("remove server", s.node.raft.RemoveServer(raft.ServerID(id), 0, configChangeWait).Error())
}

func (s *Server) logErr(what string, err error) {
	if err != nil && !strings.Contains(err.Error(), "leadership lost") {
		s.log.Warn(what, zap.Error(err))
	}
}

// bootstrapExpect bootstraps a brand-new cluster once BootstrapExpect
// voters with no raft state have met. Every one of them computes the same
// configuration from the same gossip view, so they all bootstrap alike.
// A member that already has raft state means a cluster exists: then this
// node waits for its leader to add it instead.
func (s *Server) bootstrapExpect(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.node.raft.LastIndex() > 0 {
			return // bootstrapped, joined or restarted
		}
		var cand []raft.Server
		existing := false
		for _, m := range s.gossip.Members() {
			if m.State != "alive" || m.NonVoter {
				continue
			}
			if m.HasState {
				existing = true
				continue
			}
			if m.Expect != s.cfg.BootstrapExpect {
				if m.Expect != 0 {
					s.log.Error("member expects a different cluster size; fix --bootstrap-expect", zap.String("member", m.ID), zap.Int("theirs", m.Expect), zap.Int("ours", s.cfg.BootstrapExpect))
				}
				continue
			}
			cand = append(cand, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.Raft), Suffrage: raft.Voter})
		}
		if existing {
			s.log.Info("a member already has raft state; waiting to be added by its leader instead of bootstrapping")
			return
		}
		if len(cand) < s.cfg.BootstrapExpect {
			continue
		}
		if len(cand) > s.cfg.BootstrapExpect {
			s.log.Error("more members than --bootstrap-expect; not bootstrapping", zap.Int("members", len(cand)))
			continue
		}
		slices.SortFunc(cand, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
		s.log.Info("bootstrapping cluster with expected voters", zap.Int("voters", len(cand)))
		if err := s.node.raft.BootstrapCluster(raft.Configuration{Servers: cand}).Error(); err != nil {
			s.log.Warn("bootstrap", zap.Error(err))
		}
		return
	}
}
