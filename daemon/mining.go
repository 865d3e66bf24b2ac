package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/mining"
)

// startMining wires the mining module (--miner): it needs the prover
// children (--ext-prover) and a chain (Chain.API or --chain-api), and mines
// for every enabled miner of the local store. Without --miner it does
// nothing.
func startMining(ctx context.Context, o Options, server *cluster.Server, sup *prover.Supervisor, reg prometheus.Registerer) error {
	if !o.Miner {
		return nil
	}
	api := o.Config.Chain.API
	if o.ChainAPI != "" {
		api = o.ChainAPI
	}
	if api == "" {
		return errors.New("--miner needs a chain: set Chain.API in config.toml or give --chain-api (a FULLNODE_API_INFO string)")
	}
	if sup == nil {
		return errors.New("--miner needs prover children: add --ext-prover (children come from ext-prover.cfg)")
	}
	log := o.Log.Named("mining")
	chain, err := fullnode.Dial(api, log.Named("chain"), fullnode.WithCallTimeout(30*time.Second))
	if err != nil {
		return fmt.Errorf("chain api: %w", err)
	}
	m, err := mining.New(mining.Config{
		Chain:   chain,
		Prover:  sup,
		Store:   server.FSM(),
		Local:   o.Config.StoragePaths,
		Ready:   server.ReadReady,
		Logger:  log,
		Metrics: reg,
	})
	if err != nil {
		return err
	}
	go m.Run(ctx)
	log.Info("mining module started", zap.String("chain", chain.Info().URL))
	return nil
}
