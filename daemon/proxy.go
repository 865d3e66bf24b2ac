package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/rpc"
)

// A proxy node (daemon run --proxy) is a raft non-voter of its source's
// cluster. The earlier proxy copied the source's whole state whenever its
// applied index moved, polled every 500 ms: half a second of lag, and a
// second of copying per change at 1M sectors. As a non-voter the proxy
// instead
//   - receives each committed entry as the leader replicates it (the lag is
//     one append, plus at most Raft.CommitTimeout to learn of the commit),
//   - installs a snapshot when it is too far behind for the log (the first
//     start at 1M sectors, or after a long outage), with the same FSM code
//     every member runs, so it is exact;
//   - never votes, never counts for quorum and is never promoted (its gossip
//     says Proxy), so a proxy that dies costs the cluster nothing;
//   - serves consistent reads through the leader's read index, and with
//     --poster it is a member the scheduler can give deadlines to, whose
//     runner records outcomes through raft like anyone's.
//
// A change feed of our own over the API would have needed its own resume
// points, snapshot transfer and ordering: raft already has all three.
// What it costs: the leader must reach the proxy's raft port, so the proxy
// listens on the interface it reaches the source through (not on every
// interface), and it needs the cluster's gossip key and token secret, which
// --conf-dir SOURCE_HOME or 'daemon init --secrets' give it.

// proxyFile keeps a proxy's identity across restarts, so it comes back as
// the same non-voter at the same addresses (the source's raft configuration
// still lists it) and knows how old its data is before it hears from the
// source again.
const proxyFile = "proxy.json"

// proxyCurrentWithin: a proxy that heard from the leader this recently (the
// leader's heartbeats come every HeartbeatTimeout/10, 30 ms by default) and
// has applied the commit index it was told is current.
const proxyCurrentWithin = 1500 * time.Millisecond

// ErrProxyReadOnly refuses the API's writes on a proxy node.
var ErrProxyReadOnly = errors.New("read-only proxy")

type proxyIdentity struct {
	NodeID string `json:"node_id"`
	Raft   string `json:"raft"`
	Gossip string `json:"gossip"`
	// Join is the source cluster's gossip addresses, as last learned.
	Join []string `json:"join"`
	// AsOf is the last time this proxy was current (see ProxyStatus).
	AsOf time.Time `json:"as_of,omitempty"`
}

func readProxyIdentity(home string) (proxyIdentity, error) {
	var id proxyIdentity
	b, err := os.ReadFile(filepath.Join(home, proxyFile))
	if errors.Is(err, os.ErrNotExist) {
		return id, nil
	}
	if err != nil {
		return id, err
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return id, fmt.Errorf("%s: %w (delete it to let the proxy pick a new identity; the source then adds it as a new non-voter)", filepath.Join(home, proxyFile), err)
	}
	return id, nil
}

func writeProxyIdentity(home string, id proxyIdentity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(home, proxyFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(home, proxyFile))
}

// proxySource resolves --proxy: an address, or "" for the node whose home
// holds the config files (--conf-dir, else this home), as the original's
// `--proxy=""` meant "the node on this machine".
func proxySource(o Options) (string, error) {
	if o.ProxySource != "" {
		return o.ProxySource, nil
	}
	path := filepath.Join(o.Home.ConfDir, "api")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--proxy=\"\" reads the source node's address from %s: %w (is the source running with that home? give --conf-dir SOURCE_HOME or --proxy HOST:PORT)", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// prepareProxy turns o into a non-voting member's options: the proxy's own
// id and addresses (never the source's, which --conf-dir hands it in
// config.toml) and the source cluster's gossip addresses to join.
func prepareProxy(ctx context.Context, o *Options, token string) (*proxyNode, error) {
	source, err := proxySource(*o)
	if err != nil {
		return nil, err
	}
	if o.Flags.Listen == "" && o.Home.ConfDir != o.Home.Dir {
		return nil, fmt.Errorf("a proxy that reads its config from another node's directory (--conf-dir %s) would listen on that node's address %s: give it its own --listen HOST:PORT", o.Home.ConfDir, o.Config.Node.Listen)
	}
	id, err := readProxyIdentity(o.Home.Dir)
	if err != nil {
		return nil, err
	}
	if o.Flags.NodeID != "" {
		id.NodeID = o.Flags.NodeID
	}
	if id.NodeID == "" {
		id.NodeID = newProxyID()
	}
	log := o.Log.Named("proxy")
	client := rpc.NewClient(source, token)
	joins, local, err := locateSource(ctx, client, source)
	for err != nil {
		if len(id.Join) > 0 {
			// It has been a proxy of this cluster before: serve what it
			// has (saying how old it is) and rejoin when the source is back.
			log.Warn("source unreachable; serving the data this proxy already has and rejoining when the source answers", zap.String("source", source), zap.Error(err))
			joins = id.Join
			if local, _, err = net.SplitHostPort(id.Raft); err != nil {
				return nil, fmt.Errorf("%s: raft address %q: %w", proxyFile, id.Raft, err)
			}
			break
		}
		log.Warn("waiting for the source: a new proxy has nothing to serve until it can join", zap.String("source", source), zap.Error(err))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped while waiting for the source %s: %w", source, err)
		case <-time.After(2 * time.Second):
		}
		joins, local, err = locateSource(ctx, client, source)
	}
	if id.Raft, err = pickAddr(o.Flags.RaftAddr, id.Raft, local); err != nil {
		return nil, fmt.Errorf("proxy raft address: %w", err)
	}
	if id.Gossip, err = pickAddr(o.Flags.GossipAddr, id.Gossip, local); err != nil {
		return nil, fmt.Errorf("proxy gossip address: %w", err)
	}
	id.Join = joins
	if err := writeProxyIdentity(o.Home.Dir, id); err != nil {
		return nil, fmt.Errorf("write %s: %w", proxyFile, err)
	}
	o.Config.Node.ID = id.NodeID
	o.Config.Node.RaftAddr, o.Config.Node.RaftAdvertise = id.Raft, ""
	o.Config.Gossip.Addr, o.Config.Gossip.Advertise = id.Gossip, ""
	o.NonVoter, o.Join, o.Bootstrap, o.BootstrapExpect = true, joins, false, 0
	log.Info("proxy node: following the source's cluster as a raft non-voter", zap.String("source", source), zap.String("node", id.NodeID), zap.String("raft", id.Raft), zap.String("gossip", id.Gossip), zap.Strings("join", joins))
	return &proxyNode{source: source, home: o.Home.Dir, id: id, log: log, asOf: id.AsOf}, nil
}

// newProxyID names a proxy by its host, so `vsm cluster members` on the
// source says where each proxy runs.
func newProxyID() string {
	host, _ := os.Hostname()
	if i := strings.IndexByte(host, '.'); i > 0 {
		host = host[:i]
	}
	if host == "" {
		host = "host"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "proxy-" + host + "-" + hex.EncodeToString(b)
}

// locateSource asks the source for its cluster's gossip addresses and finds
// the local address that reaches it: the leader must dial the proxy back on
// that interface.
func locateSource(ctx context.Context, c *rpc.Client, source string) (joins []string, local string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", source)
	if err != nil {
		return nil, "", fmt.Errorf("reach the source %s: %w", source, err)
	}
	local = conn.LocalAddr().(*net.TCPAddr).IP.String()
	conn.Close()
	var members []cluster.Member
	if err := c.Call(ctx, rpc.MethodClusterMembers, &members); err != nil {
		return nil, "", fmt.Errorf("ask the source %s for its cluster's members: %w (a proxy needs the source's token secret and gossip key: share them with --conf-dir SOURCE_HOME or 'daemon init --secrets')", source, err)
	}
	for _, m := range members {
		if m.State == "alive" && m.Gossip != "" {
			joins = append(joins, m.Gossip)
		}
	}
	if len(joins) == 0 {
		return nil, "", fmt.Errorf("the source %s lists no live member to join", source)
	}
	return joins, local, nil
}

// pickAddr is the flag if given, else the address used last time if it is
// still on the interface that reaches the source and free, else a free
// port on that interface.
func pickAddr(flag, last, localIP string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if host, port, err := net.SplitHostPort(last); err == nil && host == localIP {
		if p, _ := strconv.Atoi(port); p > 0 && portFree(localIP, p) {
			return last, nil
		}
	}
	for tries := 0; tries < 50; tries++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(localIP, "0"))
		if err != nil {
			return "", err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if portFree(localIP, p) {
			return net.JoinHostPort(localIP, strconv.Itoa(p)), nil
		}
	}
	return "", fmt.Errorf("no free port on %s; give --raft-addr and --gossip-addr", localIP)
}

// portFree: gossip needs the port for both TCP and UDP.
func portFree(ip string, p int) bool {
	addr := net.JoinHostPort(ip, strconv.Itoa(p))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// proxyNode tracks how current a proxy's data is and keeps it in the
// source's cluster.
type proxyNode struct {
	source string
	home   string
	id     proxyIdentity
	log    *zap.Logger
	server *cluster.Server

	mu      sync.Mutex
	asOf    time.Time
	current bool
	saved   time.Time // AsOf last written to proxy.json
}

// watch updates the data's age every 100 ms and rejoins the source's
// cluster when this proxy is cut off: gossip does not reconnect to a
// member it declared dead, and a proxy the source removed must ask again.
func (p *proxyNode) watch(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var lastJoin time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := p.server.Status()
		contact := st.LeaderID != "" && st.LastContactMS >= 0 && st.LastContactMS < proxyCurrentWithin.Milliseconds()
		caughtUp := st.AppliedIndex >= st.CommitIndex && st.CommitIndex > 0
		p.mu.Lock()
		// Becoming current needs the commit index applied; staying current
		// needs only fresh contact with the leader: under a stream of
		// writes an entry is almost always in flight, and that is not a
		// lost source.
		current := contact && (caughtUp || p.current)
		if current {
			p.asOf = time.Now().Add(-time.Duration(st.LastContactMS) * time.Millisecond)
		}
		if current != p.current {
			if current {
				p.log.Info("proxy is current with its source", zap.String("leader", st.LeaderID))
			} else {
				p.log.Warn("proxy lost its source; serving its data and saying how old it is", zap.String("source", p.source), zap.Time("data_as_of", p.asOf))
			}
		}
		p.current = current
		p.mu.Unlock()
		p.persist(false)
		if !current && time.Since(lastJoin) > 3*time.Second && p.cutOff() {
			lastJoin = time.Now()
			p.rejoin()
		}
	}
}

// cutOff: no other live gossip member, or the source's raft removed us.
func (p *proxyNode) cutOff() bool {
	if in, known := p.server.InConfiguration(); known && !in {
		return true
	}
	for _, m := range p.server.Members() {
		if m.ID != p.id.NodeID && m.State == "alive" {
			return false
		}
	}
	return true
}

// rejoin contacts the gossip addresses learned from the source. Server.Join
// also lifts a removal: a proxy wants to follow its source for as long as
// it runs (stop the proxy to take it out for good).
func (p *proxyNode) rejoin() {
	addrs := p.id.Join
	if _, err := p.server.Join(addrs); err != nil {
		p.log.Debug("rejoin the source's cluster", zap.Strings("join", addrs), zap.Error(err))
		return
	}
	p.log.Info("rejoined the source's cluster", zap.Strings("join", addrs))
}

// shutdown keeps what a proxy needs to serve after a restart while its
// source is still gone: raft applies log entries only once a leader says
// they are committed, so without a snapshot a restarted proxy would start
// empty. A snapshot taken now (a second at 1M sectors) is restored at the
// next start; after a kill -9 the proxy has the data of its last automatic
// snapshot. The data's age goes to proxy.json.
func (p *proxyNode) shutdown() {
	p.persist(true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.server.SnapshotNow(ctx); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		p.log.Info("no snapshot at shutdown", zap.Error(err))
	}
}

// persist writes AsOf now and then, so a restarted proxy whose source is
// gone still knows how old its data is.
func (p *proxyNode) persist(force bool) {
	p.mu.Lock()
	asOf := p.asOf
	due := force || time.Since(p.saved) > 5*time.Second
	if due {
		p.saved = time.Now()
	}
	p.mu.Unlock()
	if !due || asOf.IsZero() || asOf.Equal(p.id.AsOf) {
		return
	}
	p.id.AsOf = asOf
	if err := writeProxyIdentity(p.home, p.id); err != nil {
		p.log.Warn("save the proxy's data age", zap.Error(err))
	}
}

// status is what the status page, VSM.Status and /healthz say.
func (p *proxyNode) status() cluster.ProxyStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := cluster.ProxyStatus{Source: p.source, Current: p.current, AsOf: p.asOf}
	if !p.current && !p.asOf.IsZero() {
		ps.AgeMS = time.Since(p.asOf).Milliseconds()
	}
	return ps
}

// ReadReady serves reads once the proxy has caught up with its source, as
// a member does; and when the source is gone, it goes on serving what it
// has (status and /healthz say how old), including right after a restart,
// when it has data from an earlier run.
func (p *proxyNode) ReadReady() error {
	if p.server == nil {
		return errors.New("starting")
	}
	err := p.server.ReadReady()
	if err == nil {
		return nil
	}
	ps := p.status()
	if st := p.server.Status(); st.LeaderID == "" && !ps.AsOf.IsZero() && st.AppliedIndex > 0 {
		return nil
	}
	return err
}

// detail is /healthz's line after "ok".
func (p *proxyNode) detail() string {
	ps := p.status()
	switch {
	case ps.Current:
		return fmt.Sprintf("proxy of %s: current", p.source)
	case ps.AsOf.IsZero():
		return fmt.Sprintf("proxy of %s: not caught up yet", p.source)
	default:
		return fmt.Sprintf("proxy of %s: source unreachable; data as of %s (%s old)", p.source, ps.AsOf.UTC().Format(time.RFC3339), (time.Duration(ps.AgeMS) * time.Millisecond).Round(time.Second))
	}
}

var (
	descProxyAge     = prometheus.NewDesc("vsm_proxy_data_age_seconds", "How old a proxy node's data may be: 0 while it follows its source, else the time since it last did.", nil, nil)
	descProxyCurrent = prometheus.NewDesc("vsm_proxy_current", "1 while a proxy node follows its source's leader and has applied what it committed.", nil, nil)
)

func (p *proxyNode) Describe(ch chan<- *prometheus.Desc) { ch <- descProxyAge; ch <- descProxyCurrent }

func (p *proxyNode) Collect(ch chan<- prometheus.Metric) {
	ps := p.status()
	cur := 0.0
	if ps.Current {
		cur = 1
	}
	ch <- prometheus.MustNewConstMetric(descProxyAge, prometheus.GaugeValue, float64(ps.AgeMS)/1000)
	ch <- prometheus.MustNewConstMetric(descProxyCurrent, prometheus.GaugeValue, cur)
}

// proxyStore is what the API and the status page see on a proxy: the
// member's state, its status with the proxy's, and writes refused. The
// node's own runner still records outcomes through the server itself.
type proxyStore struct {
	*cluster.Server
	p *proxyNode
}

func (s proxyStore) Apply(context.Context, fsm.Command) (int, error) {
	leader := ""
	if _, addr := s.Server.Node().Leader(); addr != "" {
		if m, ok := s.leaderMember(); ok {
			leader = " (the cluster's leader is " + m + ")"
		}
	}
	return 0, fmt.Errorf("%w: %w: this node proxies %s; send writes there%s", fsm.ErrRejected, ErrProxyReadOnly, s.p.source, leader)
}

func (s proxyStore) leaderMember() (string, bool) {
	id, _ := s.Server.Node().Leader()
	for _, m := range s.Server.Members() {
		if m.ID == id && m.RPC != "" && m.RPC != s.p.source {
			return m.RPC, true
		}
	}
	return "", false
}

func (s proxyStore) ReadReady() error { return s.p.ReadReady() }

func (s proxyStore) Status() cluster.Status {
	st := s.Server.Status()
	ps := s.p.status()
	st.Proxy = &ps
	return st
}
