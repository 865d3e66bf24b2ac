package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/fsm"
)

// ClusterBackend is what the cluster methods need from the member.
type ClusterBackend interface {
	ApplyLocal(ctx context.Context, cmd []byte) (int, error)
	ReadIndex(ctx context.Context) (uint64, error)
	Peers(ctx context.Context) ([]cluster.Peer, error)
	Members() []cluster.Member
	Join(addrs []string) (int, error)
	Leave(ctx context.Context) error
	RemovePeer(ctx context.Context, id string, force bool) error
	RemovePeerOnLeader(ctx context.Context, id string, force bool) error
	TransferLeader(ctx context.Context, to string) error
	TransferLeaderOnLeader(ctx context.Context, to string) error
	SetDraining(on bool) error
}

// RegisterCluster adds the VSM.Cluster* methods. afterLeave is called once
// this node has left, so the daemon can stop.
func RegisterCluster(m *Mux, b ClusterBackend, afterLeave func()) {
	c := &clusterAPI{b: b, afterLeave: afterLeave}
	m.Register(MethodClusterApply, PermAdmin, c.apply)
	m.Register(MethodClusterReadIndex, PermAdmin, c.readIndex)
	m.Register(MethodClusterPeers, PermAdmin, c.peers)
	m.Register(MethodClusterMembers, PermAdmin, c.members)
	m.Register(MethodClusterJoin, PermAdmin, c.join)
	m.Register(MethodClusterLeave, PermAdmin, c.leave)
	m.Register(MethodClusterRemovePeer, PermAdmin, c.removePeer)
	m.Register(MethodClusterTransferLeader, PermAdmin, c.transferLeader)
	m.Register(MethodClusterLeaderRemovePeer, PermAdmin, c.leaderRemovePeer)
	m.Register(MethodClusterLeaderTransfer, PermAdmin, c.leaderTransfer)
	m.Register(MethodClusterDrain, PermAdmin, c.drain)
}

type clusterAPI struct {
	b          ClusterBackend
	afterLeave func()
}

func (c *clusterAPI) apply(ctx context.Context, p []json.RawMessage) (any, error) {
	var cmd []byte
	if err := Params(p, 0, &cmd); err != nil {
		return nil, err
	}
	n, err := c.b.ApplyLocal(ctx, cmd)
	if err != nil {
		return nil, storeErr(err)
	}
	return Changed{Changed: n}, nil
}

func (c *clusterAPI) readIndex(ctx context.Context, _ []json.RawMessage) (any, error) {
	idx, err := c.b.ReadIndex(ctx)
	return idx, storeErr(err)
}

func (c *clusterAPI) peers(ctx context.Context, _ []json.RawMessage) (any, error) {
	ps, err := c.b.Peers(ctx)
	return ps, storeErr(err)
}

func (c *clusterAPI) members(context.Context, []json.RawMessage) (any, error) {
	return c.b.Members(), nil
}

func (c *clusterAPI) join(_ context.Context, p []json.RawMessage) (any, error) {
	var addrs []string
	if err := Params(p, 0, &addrs); err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, Errorf(CodeInvalidParams, "give at least one gossip address HOST:PORT")
	}
	n, err := c.b.Join(addrs)
	if err != nil {
		return nil, Errorf(CodeRejected, "%v", err)
	}
	return map[string]int{"contacted": n}, nil
}

func (c *clusterAPI) leave(ctx context.Context, _ []json.RawMessage) (any, error) {
	if err := c.b.Leave(ctx); err != nil {
		return nil, storeErr(err)
	}
	if c.afterLeave != nil {
		go c.afterLeave()
	}
	return true, nil
}

func (c *clusterAPI) removePeer(ctx context.Context, p []json.RawMessage) (any, error) {
	var id string
	var force bool
	if err := Params(p, 1, &id, &force); err != nil {
		return nil, err
	}
	return true, storeErr(c.b.RemovePeer(ctx, id, force))
}

func (c *clusterAPI) transferLeader(ctx context.Context, p []json.RawMessage) (any, error) {
	var to string
	if err := Params(p, 1, &to); err != nil {
		return nil, err
	}
	return true, storeErr(c.b.TransferLeader(ctx, to))
}

// leaderRemovePeer and leaderTransfer are what a follower forwards to: the
// leader acts or says it is not the leader, never forwarding again.
func (c *clusterAPI) leaderRemovePeer(ctx context.Context, p []json.RawMessage) (any, error) {
	var id string
	var force bool
	if err := Params(p, 1, &id, &force); err != nil {
		return nil, err
	}
	return true, storeErr(c.b.RemovePeerOnLeader(ctx, id, force))
}

func (c *clusterAPI) leaderTransfer(ctx context.Context, p []json.RawMessage) (any, error) {
	var to string
	if err := Params(p, 1, &to); err != nil {
		return nil, err
	}
	return true, storeErr(c.b.TransferLeaderOnLeader(ctx, to))
}

func (c *clusterAPI) drain(_ context.Context, p []json.RawMessage) (any, error) {
	var on bool
	if err := Params(p, 0, &on); err != nil {
		return nil, err
	}
	return on, c.b.SetDraining(on)
}

// Forwarder implements cluster.Forwarder over this API, with an admin
// token minted from the secret every member shares.
type Forwarder struct {
	token string
	mu    sync.Mutex
	conns map[string]*Client
}

// NewForwarder mints the admin token members use between themselves.
func NewForwarder(auth *Auth) (*Forwarder, error) {
	tok, err := auth.NewToken(PermAdmin)
	if err != nil {
		return nil, err
	}
	return &Forwarder{token: tok, conns: map[string]*Client{}}, nil
}

func (f *Forwarder) client(addr string) *Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.conns[addr]
	if !ok {
		c = NewClient(addr, f.token)
		f.conns[addr] = c
	}
	return c
}

// fromRemote turns the leader's JSON-RPC errors back into the errors
// in-process callers test for.
func fromRemote(addr string, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			// Nothing reached the node: the request was not submitted,
			// so the caller may send it to whoever leads next.
			return &cluster.NotLeaderError{LeaderID: "?", Msg: fmt.Sprintf("the leader at API %s is unreachable: %v", addr, err)}
		}
		// Sent, but no answer: the outcome is unknown.
		return fmt.Errorf("%w: no answer from the leader at API %s: %v", cluster.ErrTimeout, addr, err)
	}
	switch e.Code {
	case CodeRejected:
		return fmt.Errorf("%w: %s", fsm.ErrRejected, e.Message)
	case CodeNotLeader:
		return &cluster.NotLeaderError{LeaderID: "?", Msg: fmt.Sprintf("the node at API %s answered: %s", addr, e.Message)}
	case CodeUnavailable:
		return fmt.Errorf("%w: %s", cluster.ErrTimeout, e.Message)
	}
	return fmt.Errorf("forward to %s: %w", addr, err)
}

// Apply implements cluster.Forwarder.
func (f *Forwarder) Apply(ctx context.Context, addr string, cmd []byte) (int, error) {
	var res Changed
	if err := f.client(addr).Call(ctx, MethodClusterApply, &res, cmd); err != nil {
		return 0, fromRemote(addr, err)
	}
	return res.Changed, nil
}

// ReadIndex implements cluster.Forwarder.
func (f *Forwarder) ReadIndex(ctx context.Context, addr string) (uint64, error) {
	var idx uint64
	if err := f.client(addr).Call(ctx, MethodClusterReadIndex, &idx); err != nil {
		return 0, fromRemote(addr, err)
	}
	return idx, nil
}

// Status implements cluster.Forwarder.
func (f *Forwarder) Status(ctx context.Context, addr string) (cluster.Status, error) {
	var st cluster.Status
	if err := f.client(addr).Call(ctx, MethodStatus, &st); err != nil {
		return st, fromRemote(addr, err)
	}
	return st, nil
}

// RemovePeer implements cluster.Forwarder.
func (f *Forwarder) RemovePeer(ctx context.Context, addr, id string, force bool) error {
	if err := f.client(addr).Call(ctx, MethodClusterLeaderRemovePeer, nil, id, force); err != nil {
		return fromRemote(addr, err)
	}
	return nil
}

// TransferLeader implements cluster.Forwarder.
func (f *Forwarder) TransferLeader(ctx context.Context, addr, to string) error {
	if err := f.client(addr).Call(ctx, MethodClusterLeaderTransfer, nil, to); err != nil {
		return fromRemote(addr, err)
	}
	return nil
}
