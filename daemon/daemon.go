// Package daemon assembles a running vsm node from its configuration:
// the raft node, the HTTP API, metrics, and (with --ext-prover) the
// prover children. cmd/vsm parses flags and calls Run.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/config"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/rpc"
	"github.com/vsm-project/vsm/web"
)

// Options are the daemon's inputs after flags have overridden the config.
type Options struct {
	Home      config.Home
	Config    config.Node
	Bootstrap bool
	// BootstrapExpect, Join and NonVoter: see cluster.ServerConfig.
	BootstrapExpect   int
	Join              []string
	NonVoter          bool
	DeadServerCleanup time.Duration
	// ExtProver starts the children of ext-prover.cfg on this node.
	ExtProver bool
	// Poster runs the deadline runner on this node (needs ExtProver and a
	// chain); ChainAPI overrides Chain.API. See daemon/post.go.
	Poster   bool
	ChainAPI string
	// Proxy runs a proxy node (see daemon/proxy.go): not a raft member,
	// sector locations copied read-only from ProxySource (or, when that is
	// empty, from the node whose home holds the config files). With
	// ProxyIndexerOff the node uses its own home's store instead.
	Proxy           bool
	ProxySource     string
	ProxyIndexerOff bool
	Version         string
	Log             *zap.Logger
	// Ready, if set, is called once the API is serving.
	Ready func(apiAddr string)
	// Miner answers sophon-gateway's WinningPoSt requests (needs
	// ExtProver and Config.Gateway.API). See daemon/winning.go.
	Miner bool
	// Flags holds what was given on the command line itself, as opposed to
	// read from config.toml: a proxy whose config is the source's
	// (--conf-dir) must not take the source's id and addresses from it.
	Flags ExplicitFlags
}

// ExplicitFlags are daemon run flags as given ("" when absent).
type ExplicitFlags struct {
	NodeID, Listen, RaftAddr, GossipAddr string
}

// Run serves until ctx is cancelled, the node leaves the cluster, or it
// hits a fatal error.
func Run(ctx context.Context, o Options) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	// First of all: a second daemon on a home in use fails here, naming
	// the holder, instead of waiting forever on bolt's lock on raft.db.
	release, err := o.Home.Lock()
	if err != nil {
		return err
	}
	defer release()
	secret, err := o.Home.JWTSecret()
	if err != nil {
		return err
	}
	auth, err := rpc.NewAuth(secret)
	if err != nil {
		return err
	}
	var px *proxyNode
	switch {
	case o.Proxy && o.ProxyIndexerOff:
		o.Log.Info("--proxy-sector-indexer-off: sector locations come from this node's own home, as a single-node store")
		o.Bootstrap = true
	case o.Proxy:
		admin, err := auth.NewToken(rpc.PermAdmin)
		if err != nil {
			return err
		}
		if px, err = prepareProxy(ctx, &o, admin); err != nil {
			return err
		}
	}
	log := o.Log
	forwarder, err := rpc.NewForwarder(auth)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	mux := rpc.NewMux(auth, rpc.DefaultMaxBody, log.Named("rpc"))
	var server *cluster.Server
	srv, err := rpc.Listen(rpc.ServerConfig{
		Listen:   o.Config.Node.Listen,
		Mux:      mux,
		Registry: reg,
		Healthy: func() error {
			if px != nil {
				return px.ReadReady()
			}
			return healthy(server)
		},
		Detail: func() string {
			if px != nil {
				return px.detail()
			}
			return ""
		},
		Log: log,
	})
	if err != nil {
		return err
	}
	served := false
	defer releaseUnlessServed(srv, &served)
	sup, err := startProver(ctx, o, reg)
	if err != nil {
		return err
	}
	defer closeProver(sup, log)

	scfg := serverConfig(o, srv.Addr(), forwarder, sup)
	scfg.Proxy = px != nil
	server, err = cluster.OpenServer(ctx, scfg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := server.Close(cctx); err != nil {
			log.Warn("close raft", zap.Error(err))
		}
	}()
	// api is what the API and status page read and write through: the
	// member itself, or on a proxy the same with writes refused and the
	// source's freshness in its status.
	var api interface {
		rpc.Store
		web.Source
	} = server
	if px != nil {
		px.server = server
		api = proxyStore{Server: server, p: px}
		go px.watch(ctx)
		reg.MustRegister(px)
	}
	rpc.RegisterVSM(mux, api, o.Version)
	rpc.RegisterVenus(mux, api)
	rpc.RegisterCluster(mux, server, stop)
	srv.Handle(rpc.SnapshotPath, mux.SnapshotHandler(server))
	registerProving(mux, api, sup, o.Config.StoragePaths)
	post, err := startPoSt(ctx, o, mux, server, sup, reg)
	if err != nil {
		return err
	}
	if err := startWinning(ctx, o, server, sup, reg); err != nil {
		return err
	}
	srv.Handle("/", web.NewHandler(api, post.statusSchedule, log.Named("web")))
	reg.MustRegister(server.Collector())
	served = true
	serveErr, shutdown, err := serve(o.Home, srv, mux, reg, auth)
	if err != nil {
		return err
	}
	defer shutdown()
	log.Info("vsm node serving", zap.String("node", o.Config.Node.ID), zap.String("api", srv.Addr()), zap.String("raft", server.Node().RaftAddr()), zap.String("gossip", o.Config.Gossip.Addr), zap.String("home", o.Home.Dir))
	if o.Ready != nil {
		o.Ready(srv.Addr())
	}
	idErr := make(chan error, 1)
	go func() {
		if err := settleClusterID(ctx, server.Node(), log); err != nil {
			idErr <- err
		}
	}()

	select {
	case <-ctx.Done():
		log.Info("shutting down")
		if px != nil {
			px.shutdown()
		}
		return nil
	case err := <-server.Fatal():
		return err
	case err := <-serveErr:
		return err
	case err := <-idErr:
		return err
	}
}

func serverConfig(o Options, rpcAddr string, fwd cluster.Forwarder, sup *prover.Supervisor) cluster.ServerConfig {
	c := o.Config
	return cluster.ServerConfig{
		Raft: raftConfig(o),
		Gossip: cluster.GossipConfig{
			NodeID:    c.Node.ID,
			Bind:      c.Gossip.Addr,
			Advertise: c.Gossip.Advertise,
			Key:       c.Gossip.Key,
			Logger:    o.Log,
		},
		RPCAddr:           rpcAddr,
		NonVoter:          o.NonVoter,
		Poster:            o.Poster,
		BootstrapExpect:   o.BootstrapExpect,
		Join:              o.Join,
		DeadServerCleanup: o.DeadServerCleanup,
		Forwarder:         fwd,
		Capacity:          func() cluster.Capacity { return capacity(sup) },
	}
}

// capacity summarises the children for gossip; a node without
// --ext-prover advertises none, so the scheduler gives it no deadlines.
func capacity(sup *prover.Supervisor) cluster.Capacity {
	if sup == nil {
		return cluster.Capacity{}
	}
	c := sup.Capacity()
	out := cluster.Capacity{Slots: c.TotalSlots, BusySlots: c.TotalSlots - c.FreeSlots, SecondsPerPartition: c.SecondsPerPartition}
	// [[WinPost]] children take no deadlines, so they are not capacity.
	for _, ch := range c.Children {
		if ch.Kind != prover.KindWdPost {
			continue
		}
		out.GPUs++
		out.Children++
		if ch.State == prover.StateReady {
			out.ChildrenReady++
		}
	}
	return out
}

func raftConfig(o Options) cluster.Config {
	c := o.Config
	return cluster.Config{
		NodeID:             c.Node.ID,
		Dir:                o.Home.RaftDir(),
		RaftAddr:           c.Node.RaftAddr,
		RaftAdvertise:      c.Node.RaftAdvertise,
		Bootstrap:          o.Bootstrap,
		HeartbeatTimeout:   time.Duration(c.Raft.HeartbeatTimeout),
		ElectionTimeout:    time.Duration(c.Raft.ElectionTimeout),
		LeaderLeaseTimeout: time.Duration(c.Raft.LeaderLeaseTimeout),
		SnapshotThreshold:  c.Raft.SnapshotThreshold,
		SnapshotInterval:   time.Duration(c.Raft.SnapshotInterval),
		TrailingLogs:       c.Raft.TrailingLogs,
		SnapshotLogBytes:   c.Raft.SnapshotLogMB << 20,
		CommitTimeout:      time.Duration(c.Raft.CommitTimeout),
		LogStore:           c.Raft.LogStore,
		Logger:             o.Log,
	}
}

func healthy(s *cluster.Server) error {
	if s == nil {
		return errors.New("starting")
	}
	if id, _ := s.Node().Leader(); id == "" {
		return errors.New("no raft leader known")
	}
	return s.ReadReady()
}

// releaseUnlessServed closes the listener of a server that start-up
// abandoned before serving (deferred right after rpc.Listen).
func releaseUnlessServed(srv *rpc.Server, served *bool) {
	if !*served {
		_ = srv.Close()
	}
}

// serve registers the common collectors, starts serving HTTP and writes
// the local access files. shutdown stops the server gracefully.
func serve(h config.Home, srv *rpc.Server, mux *rpc.Mux, reg *prometheus.Registry, auth *rpc.Auth) (<-chan error, func(), error) {
	reg.MustRegister(mux.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()
	shutdown := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	if err := writeLocalAccess(h, srv.Addr(), auth); err != nil {
		shutdown()
		return nil, nil, err
	}
	return serveErr, shutdown, nil
}

// writeLocalAccess writes <home>/api and an admin <home>/token, so CLI
// commands on this machine need no flags (as Lotus does).
func writeLocalAccess(h config.Home, addr string, auth *rpc.Auth) error {
	token, err := auth.NewToken(rpc.PermAdmin)
	if err != nil {
		return err
	}
	if err := os.WriteFile(h.APIPath(), []byte(addr+"\n"), 0o644); err != nil {
		return fmt.Errorf("write api file: %w", err)
	}
	if err := os.WriteFile(h.TokenPath(), []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	return nil
}

// settleClusterID waits for a leader and then makes sure the cluster has
// an id and that it matches the one this home recorded. Only a mismatch
// is returned: it must stop the node; anything else is retried.
func settleClusterID(ctx context.Context, n *cluster.Node, log *zap.Logger) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		id, err := n.EnsureClusterID(ctx)
		switch {
		case errors.Is(err, cluster.ErrWrongCluster):
			return err
		case err != nil:
			log.Debug("cluster id not settled yet", zap.Error(err))
		case id != "":
			log.Info("cluster id", zap.String("cluster", id))
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
