package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/prover"
)

// startProver starts the ext-prover children (daemon run --ext-prover)
// from ext-prover.cfg in the config directory (the home or --conf-dir).
// It returns nil without --ext-prover: the node then proves nothing.
func startProver(ctx context.Context, o Options, reg prometheus.Registerer) (*prover.Supervisor, error) {
	if !o.ExtProver {
		return nil, nil
	}
	path := o.Home.ExtProverPath()
	cfg, err := prover.LoadConfig(path)
	if err != nil {
		return nil, fmt.Errorf("--ext-prover: %w", err)
	}
	sup, err := prover.NewSupervisor(cfg, prover.Options{Logger: o.Log.Named("ext-prover")})
	if err != nil {
		return nil, fmt.Errorf("--ext-prover: %w", err)
	}
	if err := sup.Start(ctx); err != nil {
		return nil, fmt.Errorf("--ext-prover: start children from %s: %w", path, err)
	}
	if err := sup.Register(reg); err != nil {
		closeProver(sup, o.Log)
		return nil, fmt.Errorf("register prover metrics: %w", err)
	}
	o.Log.Info("ext-prover children started", zap.String("config", path), zap.Int("children", len(cfg.WdPost)))
	return sup, nil
}

func closeProver(sup *prover.Supervisor, log *zap.Logger) {
	if sup == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sup.Close(ctx); err != nil {
		log.Warn("stop ext-prover children", zap.Error(err))
	}
}
