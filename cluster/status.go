package cluster

import (
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Status is the node's raft view, for `vsm cluster status --json`,
// runbooks and metrics.
type Status struct {
	NodeID       string `json:"node_id"`
	State        string `json:"state"`
	LeaderID     string `json:"leader_id"`
	LeaderAddr   string `json:"leader_addr"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LastIndex    uint64 `json:"last_index"`
	ClusterID    string `json:"cluster_id"`
	// LastContactMS is how long ago a follower last heard from the leader
	// (0 on the leader).
	LastContactMS int64 `json:"last_contact_ms"`
	NumPeers      int   `json:"num_peers"`
	// Proxy is set on a proxy node (daemon run --proxy): whom it follows
	// and how old its data is.
	Proxy *ProxyStatus `json:"proxy,omitempty"`
}

// ProxyStatus is a proxy node's view of its source.
type ProxyStatus struct {
	// Source is the --proxy address the node was started with.
	Source string `json:"source"`
	// Current: the node hears from the cluster's leader and has applied
	// everything the leader told it was committed.
	Current bool `json:"current"`
	// AsOf is the last time the node was current; zero if never.
	AsOf time.Time `json:"as_of"`
	// AgeMS is how old the data may be: now - AsOf (0 while current).
	AgeMS int64 `json:"age_ms"`
}

// Status reads the node's raft statistics.
func (n *Node) Status() Status {
	st := n.raft.Stats()
	id, addr := n.Leader()
	s := Status{
		NodeID:       n.cfg.NodeID,
		State:        n.raft.State().String(),
		LeaderID:     id,
		LeaderAddr:   addr,
		Term:         parseUint(st["term"]),
		CommitIndex:  parseUint(st["commit_index"]),
		AppliedIndex: n.raft.AppliedIndex(),
		LastIndex:    n.raft.LastIndex(),
		ClusterID:    n.fsm.ClusterID(),
		NumPeers:     int(parseUint(st["num_peers"])),
	}
	if n.raft.State() != raft.Leader {
		if lc := n.raft.LastContact(); !lc.IsZero() {
			s.LastContactMS = time.Since(lc).Milliseconds()
		}
	}
	return s
}

func parseUint(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

// Collector exports raft and FSM gauges, read at scrape time from
// raft.Stats() (the reliable route; see DESIGN.md on go-metrics).
func (n *Node) Collector() prometheus.Collector { return &collector{n: n} }

type collector struct{ n *Node }

var (
	descState   = prometheus.NewDesc("vsm_raft_state", "Raft state of this node (1 for the current state).", []string{"state"}, nil)
	descTerm    = prometheus.NewDesc("vsm_raft_term", "Current raft term.", nil, nil)
	descCommit  = prometheus.NewDesc("vsm_raft_commit_index", "Raft commit index.", nil, nil)
	descApplied = prometheus.NewDesc("vsm_raft_applied_index", "Raft index applied to the FSM.", nil, nil)
	descLast    = prometheus.NewDesc("vsm_raft_last_contact_seconds", "Seconds since a follower last heard from the leader.", nil, nil)
	descPeers   = prometheus.NewDesc("vsm_raft_peers", "Other voters in the raft configuration.", nil, nil)
	descFSM     = prometheus.NewDesc("vsm_fsm_items", "Items held in the replicated state.", []string{"kind"}, nil)
	descLogSize = prometheus.NewDesc("vsm_raft_log_bytes", "Raft log size: what its entries hold (entries), the size that triggers a snapshot (budget), the files on disk: raft.db and the WAL segments (file).", []string{"kind"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descTerm, descCommit, descApplied, descLast, descPeers, descFSM, descRefused, descFenced, descLogSize} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.Status()
	for _, state := range []string{"Follower", "Candidate", "Leader", "Shutdown"} {
		v := 0.0
		if s.State == state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, state)
	}
	ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(s.Term))
	ch <- prometheus.MustNewConstMetric(descCommit, prometheus.GaugeValue, float64(s.CommitIndex))
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(s.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(descLast, prometheus.GaugeValue, float64(s.LastContactMS)/1000)
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(s.NumPeers))
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(c.n.leader.refused.Load()))
	ch <- prometheus.MustNewConstMetric(descFenced, prometheus.CounterValue, float64(c.n.fsm.Fenced()))
	fs := c.n.fsm.Stats()
	for kind, v := range map[string]int{"miners": fs.Miners, "storage": fs.Storage, "sectors": fs.Sectors, "assignments": fs.Assignments} {
		ch <- prometheus.MustNewConstMetric(descFSM, prometheus.GaugeValue, float64(v), kind)
	}
	for kind, v := range c.n.logSizes() {
		ch <- prometheus.MustNewConstMetric(descLogSize, prometheus.GaugeValue, float64(v), kind)
	}
}

var descMembers = prometheus.NewDesc("vsm_gossip_members", "Gossip members this node sees, by state.", []string{"state"}, nil)

// Collector exports the raft and FSM gauges plus gossip members by state.
func (s *Server) Collector() prometheus.Collector {
	return &serverCollector{s: s, node: s.node.Collector()}
}

type serverCollector struct {
	s    *Server
	node prometheus.Collector
}

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	c.node.Describe(ch)
	ch <- descMembers
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	c.node.Collect(ch)
	counts := map[string]int{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, m := range c.s.Members() {
		counts[m.State]++
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(n), state)
	}
}
