package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/gateway"
	"github.com/vsm-project/vsm/prover"
)

// startWinning wires --miner: every enabled miner of the store is
// registered with each sophon-gateway of Gateway.API, and the WinningPoSt
// sophon-miner asks for through it is proven on the children over the
// sector files the local replica locates. Every member started with
// --miner registers, so the gateway has another to ask when one dies.
// Without --miner it does nothing.
func startWinning(ctx context.Context, o Options, server *cluster.Server, sup *prover.Supervisor, reg prometheus.Registerer) error {
	if !o.Miner {
		return nil
	}
	// gateway.New checks the rest; a nil *Supervisor would reach it as a
	// non-nil Prover interface, so that one is checked here.
	if sup == nil {
		return errors.New("--miner needs prover children: add --ext-prover (children come from ext-prover.cfg)")
	}
	gws, err := gateway.ParseGateways(o.Config.Gateway.API)
	if err != nil {
		return fmt.Errorf("--miner: %w", err)
	}
	log := o.Log.Named("winning")
	m, err := gateway.New(gateway.Config{
		Gateways: gws,
		Prover:   sup,
		Store:    server.FSM(),
		Local:    o.Config.StoragePaths,
		Ready:    server.ReadReady,
		Agent:    fmt.Sprintf("vsm/%s (node %s)", o.Version, o.Config.Node.ID),
		Logger:   log,
		Metrics:  reg,
	})
	if err != nil {
		return fmt.Errorf("--miner: %w", err)
	}
	go m.Run(ctx)
	addrs := make([]string, len(gws))
	for i, g := range gws {
		addrs[i] = g.String()
	}
	log.Info("answering WinningPoSt requests of sophon-gateway", zap.Strings("gateways", addrs), zap.String("children", sup.WinningChildren()))
	if sup.WinningChildren() != prover.KindWinPost {
		log.Warn("ext-prover.cfg has no [[WinPost]] block: WinningPoSt shares the [[WdPost]] children and may wait behind a WindowPoSt; give it a child of its own (docs/ext-prover.md)")
	}
	return nil
}
