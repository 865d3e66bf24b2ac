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
	"github.com/vsm-project/vsm/rpc"
)

// Options are the daemon's inputs after flags have overridden the config.
type Options struct {
	Home      config.Home
	Config    config.Node
	Bootstrap bool
	// ExtProver starts the children of ext-prover.cfg on this node.
	ExtProver bool
	Version   string
	Log       *zap.Logger
	// Ready, if set, is called once the API is serving.
	Ready func(apiAddr string)
}

// Run serves until ctx is cancelled or the node hits a fatal error.
func Run(ctx context.Context, o Options) error {
	log := o.Log
	secret, err := o.Home.JWTSecret()
	if err != nil {
		return err
	}
	auth, err := rpc.NewAuth(secret)
	if err != nil {
		return err
	}
	node, err := cluster.Open(clusterConfig(o))
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Close(cctx); err != nil {
			log.Warn("close raft", zap.Error(err))
		}
	}()

	reg := prometheus.NewRegistry()
	mux := rpc.NewMux(auth, rpc.DefaultMaxBody, log.Named("rpc"))
	rpc.RegisterVSM(mux, node, o.Version)
	reg.MustRegister(node.Collector(), mux.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sup, err := startProver(ctx, o, reg)
	if err != nil {
		return err
	}
	defer closeProver(sup, log)
	registerProving(mux, node.FSM(), sup, o.Config.StoragePaths)
	srv, err := rpc.Listen(rpc.ServerConfig{
		Listen:   o.Config.Node.Listen,
		Mux:      mux,
		Registry: reg,
		Healthy:  func() error { return healthy(node) },
		Log:      log,
	})
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := writeLocalAccess(o.Home, srv.Addr(), auth); err != nil {
		return err
	}
	log.Info("vsm node serving", zap.String("node", o.Config.Node.ID), zap.String("api", srv.Addr()), zap.String("raft", node.RaftAddr()), zap.String("home", o.Home.Dir))
	if o.Ready != nil {
		o.Ready(srv.Addr())
	}
	idErr := make(chan error, 1)
	go func() {
		if err := settleClusterID(ctx, node, log); err != nil {
			idErr <- err
		}
	}()

	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-node.Fatal():
		return err
	case err := <-serveErr:
		return err
	case err := <-idErr:
		return err
	}
}

func clusterConfig(o Options) cluster.Config {
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
		Logger:             o.Log,
	}
}

func healthy(n *cluster.Node) error {
	if id, _ := n.Leader(); id == "" {
		return errors.New("no raft leader known")
	}
	return n.ReadReady()
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
