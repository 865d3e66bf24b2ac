package cluster

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/logging"
)

// Capacity is a member's proving capacity, gossiped to the leader's
// scheduler. Kept compact: memberlist node meta is limited to 512 bytes.
type Capacity struct {
	GPUs                int     `json:"g"`
	Children            int     `json:"ch"`
	ChildrenReady       int     `json:"chr"`
	Slots               int     `json:"sl"`
	BusySlots           int     `json:"bs"`
	SecondsPerPartition float64 `json:"spp,omitempty"`
}

// Meta is what each member tells the others about itself.
type Meta struct {
	ID        string `json:"id"`
	ClusterID string `json:"c,omitempty"`
	RPC       string `json:"rpc"`
	Raft      string `json:"raft"`
	NonVoter  bool   `json:"nv,omitempty"`
	Expect    int    `json:"exp,omitempty"`
	HasState  bool   `json:"st,omitempty"`
	Draining  bool   `json:"dr,omitempty"`
	// Poster says the node runs the deadline runner (daemon run --poster);
	// only posters are given deadlines, whatever children they have.
	Poster bool `json:"pst,omitempty"`
	// Removed: this node's own raft configuration no longer lists it (an
	// operator removed it). Leaders do not add it back through gossip
	// until it asks to rejoin (Rejoin, set by 'vsm cluster join' on it)
	// or comes back empty (its raft data moved aside by forget-state).
	Removed bool `json:"rm,omitempty"`
	Rejoin  bool `json:"rj,omitempty"`
	// Proxy: a proxy node (daemon run --proxy), always a non-voter; shown
	// as such and never promoted.
	Proxy bool `json:"px,omitempty"`
	// Leaving is set just before a graceful leave: memberlist hands
	// NotifyLeave a copy of the node whose State still says alive, so the
	// others could not tell a leave from a death without it.
	Leaving bool `json:"lv,omitempty"`
	// FencedAssignments: this build applies fenced SetAssignments (log
	// type 10). Older builds do not say it, so they read as false; a
	// leader writes type 10 only once every voter says it (see
	// Server.votersApplyFenced).
	FencedAssignments bool     `json:"fsa,omitempty"`
	Capacity          Capacity `json:"cap"`
}

// Member is one gossip member as this node sees it.
type Member struct {
	Meta
	Gossip string `json:"gossip"`
	State  string `json:"state"` // alive, suspect, dead, left
	// Since is when this node last saw the member change state.
	Since time.Time `json:"since"`
}

// GossipConfig configures memberlist.
type GossipConfig struct {
	NodeID    string
	Bind      string // HOST:PORT for UDP and TCP
	Advertise string
	// Key is the base64 AES key (16, 24 or 32 bytes); empty: no encryption.
	Key string
	// ProbeInterval and SuspicionMult decide how fast a dead member is
	// declared dead (about SuspicionMult*ProbeInterval for small clusters).
	ProbeInterval time.Duration
	SuspicionMult int
	Logger        *zap.Logger
}

// Gossip is the memberlist side of a member: it carries Meta and tells the
// leader when members come, change or go.
type Gossip struct {
	ml     *memberlist.Memberlist
	log    *zap.Logger
	events chan struct{}
	// self is the address this node advertises, to tell itself from
	// another node that claims the same id.
	self string

	mu     sync.Mutex
	meta   Meta
	states map[string]memberState
	// subs are Subscribe's channels, under their own lock: notify runs
	// inside memberlist callbacks that hold memberlist's node lock, and
	// Members takes mu and then that lock.
	subsMu sync.Mutex
	subs   []chan struct{}
}

type memberState struct {
	state string
	since time.Time
	last  Member // as last seen, so dead members keep their addresses
}

// ErrGossipKey explains the usual cause of undecryptable gossip.
var ErrGossipKey = errors.New("gossip key mismatch")

// ErrDuplicateID means another live member already uses this node's id.
var ErrDuplicateID = errors.New("duplicate node id")

// ErrNotGossip means a join address answered, but not as a gossip member.
var ErrNotGossip = errors.New("not a gossip address")

// Check validates the configuration without starting anything, so a bad
// key or address is refused before the node writes raft state.
func (c GossipConfig) Check() error {
	_, err := (&Gossip{log: zap.NewNop()}).memberlistConfig(c)
	return err
}

// OpenGossip starts memberlist on cfg.Bind with meta as this node's meta.
func OpenGossip(cfg GossipConfig, meta Meta) (*Gossip, error) {
	g := &Gossip{log: cfg.Logger, meta: meta, events: make(chan struct{}, 1), states: map[string]memberState{}}
	if g.log == nil {
		g.log = zap.NewNop()
	}
	mc, err := g.memberlistConfig(cfg)
	if err != nil {
		return nil, err
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.Bind, err)
	}
	g.ml = ml
	return g, nil
}

func (g *Gossip) memberlistConfig(cfg GossipConfig) (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeID
	host, port, err := splitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", cfg.Bind, err)
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	if cfg.Advertise != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(cfg.Advertise); err != nil {
			return nil, fmt.Errorf("gossip advertise address %q: %w", cfg.Advertise, err)
		}
	}
	if ip := net.ParseIP(mc.AdvertiseAddr); ip != nil && ip.IsUnspecified() {
		return nil, fmt.Errorf("gossip address %q: other members cannot reach an unspecified address; set Gossip.Advertise", cfg.Bind)
	}
	if cfg.Key != "" {
		key, err := base64.StdEncoding.DecodeString(cfg.Key)
		if err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
			return nil, errors.New("Gossip.Key in config.toml must be base64 of 16, 24 or 32 bytes; copy the whole secrets file of a member ('vsm cluster secrets export FILE', then 'vsm daemon init --secrets FILE' on a fresh home) instead of editing the key")
		}
		mc.SecretKey = key
	}
	g.self = net.JoinHostPort(mc.AdvertiseAddr, strconv.Itoa(mc.AdvertisePort))
	// Faster failure detection than the LAN default: a dead member is
	// reported in a few seconds, long before raft would notice a follower.
	mc.ProbeInterval = cfg.ProbeInterval
	if mc.ProbeInterval == 0 {
		mc.ProbeInterval = 500 * time.Millisecond
	}
	mc.ProbeTimeout = mc.ProbeInterval / 2
	mc.SuspicionMult = cfg.SuspicionMult
	if mc.SuspicionMult == 0 {
		mc.SuspicionMult = 3
	}
	mc.GossipInterval = 100 * time.Millisecond
	mc.PushPullInterval = 15 * time.Second
	mc.Logger = logging.StdLog(g.log.Named("gossip"))
	mc.Delegate = (*gossipDelegate)(g)
	mc.Events = (*gossipEvents)(g)
	mc.Merge = (*gossipMerge)(g)
	mc.Alive = (*gossipMerge)(g)
	mc.Conflict = (*gossipMerge)(g)
	return mc, nil
}

func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, port, nil
}

// Join contacts existing members at addrs (HOST:PORT gossip addresses).
// Its errors say which of the usual mistakes it was: another cluster's
// key, an API or raft port given instead of the gossip port, or this
// node's id already taken by another member.
func (g *Gossip) Join(addrs []string) (int, error) {
	n, err := g.ml.Join(addrs)
	if err == nil {
		return n, nil
	}
	msg := err.Error()
	// A port that is not gossip answers memberlist with bytes it cannot
	// read ("not encrypted": an HTTP reply) or hangs up (EOF: raft). Only
	// then is it worth asking what listens there; a real member that
	// refuses us hangs up too, so a key error is recognised first.
	nonGossip := func() []string {
		var wrong []string
		for _, a := range addrs {
			if kind := probeNonGossip(a); kind != "" {
				wrong = append(wrong, a+" ("+kind+")")
			}
		}
		return wrong
	}
	switch {
	case strings.Contains(msg, ErrDuplicateID.Error()):
		return n, fmt.Errorf("%w: %v", ErrDuplicateID, err)
	case strings.Contains(msg, "no installed keys could decrypt") || strings.Contains(msg, "Remote state is encrypted"):
		return n, fmt.Errorf("%w: the members at %s use another Gossip.Key; start this node's home with 'vsm daemon init --secrets FILE' from a member: %v", ErrGossipKey, strings.Join(addrs, ","), err)
	case strings.Contains(msg, "remote state is not encrypted") || strings.Contains(msg, "EOF"):
		if wrong := nonGossip(); len(wrong) > 0 {
			return n, fmt.Errorf("%w: %s answered, but not as gossip; give a member's gossip address (Gossip.Addr, by default port 1791), not its API or raft address: %v", ErrNotGossip, strings.Join(wrong, ", "), err)
		}
		if strings.Contains(msg, "not encrypted") {
			return n, fmt.Errorf("%w: the members at %s do not encrypt gossip but this node does (Gossip.Key); start this node's home with 'vsm daemon init --secrets FILE' from a member: %v", ErrGossipKey, strings.Join(addrs, ","), err)
		}
	}
	return n, fmt.Errorf("join gossip at %s: %w", strings.Join(addrs, ","), err)
}

// probeNonGossip says what else listens at addr: "an HTTP server, likely
// the API port" or "a raft port"; "" if it cannot tell.
func probeNonGossip(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("GET /healthz HTTP/1.0\r\n\r\n")); err != nil {
		return ""
	}
	buf := make([]byte, 5)
	_, err = io.ReadFull(c, buf)
	if err == nil && string(buf) == "HTTP/" {
		return "an HTTP server, likely a vsm API port"
	}
	// raft's transport reads a one-byte rpc type and drops the
	// connection on an unknown one ('G'): EOF with nothing written back.
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "it hung up without a word, as a raft port does"
	}
	return ""
}

// Events fires (coalesced) whenever membership or a member's meta changes.
func (g *Gossip) Events() <-chan struct{} { return g.events }

// Subscribe returns another coalesced event channel like Events, for a
// second consumer (the scheduler loop) that must not steal Events' wake-ups.
func (g *Gossip) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	g.subsMu.Lock()
	g.subs = append(g.subs, ch)
	g.subsMu.Unlock()
	return ch
}

func (g *Gossip) notify() {
	select {
	case g.events <- struct{}{}:
	default:
	}
	g.subsMu.Lock()
	subs := g.subs
	g.subsMu.Unlock()
	for _, ch := range subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Local returns this node's meta.
func (g *Gossip) Local() Meta {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.meta
}

// UpdateMeta changes this node's meta and gossips it.
func (g *Gossip) UpdateMeta(update func(*Meta)) error {
	g.mu.Lock()
	update(&g.meta)
	g.mu.Unlock()
	if err := g.ml.UpdateNode(5 * time.Second); err != nil {
		return fmt.Errorf("gossip meta update: %w", err)
	}
	return nil
}

// Members lists every member memberlist knows, including dead and left
// ones until memberlist forgets them, sorted by id.
func (g *Gossip) Members() []Member {
	// memberlist calls our delegates (NotifyAlive, NotifyJoin, ...) while
	// holding its node lock, and they take g.mu; so its node list is read
	// before g.mu is taken, never under it (that order deadlocked).
	nodes := g.ml.Members()
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Member
	for _, n := range nodes {
		out = append(out, g.member(n))
	}
	// memberlist.Members lists only live and suspect nodes; add the ones
	// this node saw fail or leave so operators see them.
	for id, st := range g.states {
		if st.state == "dead" || st.state == "left" {
			if !slices.ContainsFunc(out, func(m Member) bool { return m.ID == id }) {
				m := st.last
				m.ID, m.State, m.Since = id, st.state, st.since
				out = append(out, m)
			}
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (g *Gossip) member(n *memberlist.Node) Member {
	m := Member{Gossip: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))}
	if err := json.Unmarshal(n.Meta, &m.Meta); err != nil || m.ID == "" {
		m.ID = n.Name
	}
	switch n.State {
	case memberlist.StateAlive:
		m.State = "alive"
	case memberlist.StateSuspect:
		m.State = "suspect"
	case memberlist.StateDead:
		m.State = "dead"
	case memberlist.StateLeft:
		m.State = "left"
	}
	if st, ok := g.states[m.ID]; ok {
		m.Since = st.since
	}
	return m
}

// Leave tells the others this node is going, then stops gossip.
func (g *Gossip) Leave(timeout time.Duration) error {
	if err := g.UpdateMeta(func(m *Meta) { m.Leaving = true }); err != nil {
		g.log.Warn("could not tell the others this node is leaving (they may show it as dead)", zap.Error(err))
	}
	if err := g.ml.Leave(timeout); err != nil {
		return fmt.Errorf("gossip leave: %w", err)
	}
	return g.ml.Shutdown()
}

// Shutdown stops gossip without telling anyone (as a crash would).
func (g *Gossip) Shutdown() error { return g.ml.Shutdown() }

type gossipDelegate Gossip

func (d *gossipDelegate) NodeMeta(limit int) []byte {
	g := (*Gossip)(d)
	b, err := json.Marshal(g.Local())
	if err != nil || len(b) > limit {
		g.log.Error("gossip meta too large; capacity not advertised", zap.Int("bytes", len(b)), zap.Int("limit", limit))
		m := g.Local()
		m.Capacity = Capacity{}
		b, _ = json.Marshal(m)
	}
	return b
}
func (d *gossipDelegate) NotifyMsg([]byte)                       {}
func (d *gossipDelegate) GetBroadcasts(int, int) [][]byte        { return nil }
func (d *gossipDelegate) LocalState(bool) []byte                 { return nil }
func (d *gossipDelegate) MergeRemoteState(buf []byte, join bool) {}

type gossipEvents Gossip

func (e *gossipEvents) record(n *memberlist.Node, state string) {
	g := (*Gossip)(e)
	g.mu.Lock()
	g.states[n.Name] = memberState{state: state, since: time.Now(), last: g.member(n)}
	g.mu.Unlock()
	g.log.Info("gossip member "+state, zap.String("member", n.Name), zap.String("addr", n.Address()))
	g.notify()
}

func (e *gossipEvents) NotifyJoin(n *memberlist.Node) { e.record(n, "alive") }
func (e *gossipEvents) NotifyLeave(n *memberlist.Node) {
	state := "dead"
	var meta Meta
	if n.State == memberlist.StateLeft || (json.Unmarshal(n.Meta, &meta) == nil && meta.Leaving) {
		state = "left"
	}
	e.record(n, state)
}
func (e *gossipEvents) NotifyUpdate(*memberlist.Node) { (*Gossip)(e).notify() }

// gossipMerge refuses members of another cluster, whether they arrive one
// by one (NotifyAlive) or in a whole-cluster merge (NotifyMerge).
type gossipMerge Gossip

func (m *gossipMerge) check(n *memberlist.Node) error {
	g := (*Gossip)(m)
	local := g.Local()
	if n.Name == local.ID && n.Address() != g.self {
		return fmt.Errorf("%w: node id %s is already used by the member at %s (this node is %s); give every node its own Node.ID ('vsm daemon init --node-id' on a fresh home)", ErrDuplicateID, n.Name, n.Address(), g.self)
	}
	var meta Meta
	if err := json.Unmarshal(n.Meta, &meta); err != nil {
		return fmt.Errorf("member %s sent unreadable meta; is it a vsm node? %v", n.Name, err)
	}
	if meta.ClusterID != "" && local.ClusterID != "" && meta.ClusterID != local.ClusterID {
		return fmt.Errorf("%w: member %s belongs to cluster %s, this node to cluster %s", ErrWrongCluster, n.Name, meta.ClusterID, local.ClusterID)
	}
	return nil
}

func (m *gossipMerge) NotifyAlive(n *memberlist.Node) error { return m.check(n) }

func (m *gossipMerge) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if err := m.check(p); err != nil {
			return err
		}
	}
	return nil
}

// NotifyConflict is memberlist telling a member that two nodes claim one
// id; without it the only trace is a low-level gossip log line.
func (m *gossipMerge) NotifyConflict(existing, other *memberlist.Node) {
	(*Gossip)(m).log.Error("two nodes claim the same node id; the second is ignored. Give every node its own Node.ID",
		zap.String("id", existing.Name), zap.String("known_at", existing.Address()), zap.String("claimed_by", other.Address()))
}
