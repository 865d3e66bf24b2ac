package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/prover"
)

// Store is the local replica: miners and sector locations. *fsm.FSM
// implements it.
type Store interface {
	prover.LocationStore
	Miners() []fsm.MinerSummary
}

// Config wires a Manager.
type Config struct {
	// Gateways to register with; every enabled miner is registered on each.
	Gateways []APIInfo
	Prover   Prover
	Store    Store
	// Local maps storage instance names to this node's mount points.
	Local map[string]string
	// Ready reports whether the local replica has caught up; until it
	// has, no miner is registered (see reconcile). Nil: always ready.
	Ready func() error
	// Agent is the User-Agent of the connections, so a gateway's
	// operator can tell the members apart.
	Agent string
	// Poll is how often the enabled miners are read again (default 2 s).
	Poll    time.Duration
	Logger  *zap.Logger
	Metrics prometheus.Registerer
}

// Manager keeps one listener per (gateway, enabled miner), following the
// store as miners are added, enabled and disabled.
type Manager struct {
	cfg    Config
	log    *zap.Logger
	prover *WinningProver

	mu       sync.Mutex
	running  map[listenKey]context.CancelFunc
	notReady bool // as of the last reconcile, for logging the changes
	wg       sync.WaitGroup
}

type listenKey struct {
	gateway int
	miner   uint64
}

// New checks cfg.
func New(cfg Config) (*Manager, error) {
	switch {
	case len(cfg.Gateways) == 0:
		return nil, errors.New("needs a sophon-gateway: set Gateway.API in config.toml or give --gateway-api TOKEN:/ip4/HOST/tcp/PORT")
	case cfg.Prover == nil:
		return nil, errors.New("no prover children: start the node with --ext-prover")
	case cfg.Store == nil:
		return nil, errors.New("no store")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	met, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	wp := &WinningProver{Prover: cfg.Prover, Locator: prover.Locator{Store: cfg.Store, Local: cfg.Local}, Ready: cfg.Ready, metrics: met}
	return &Manager{cfg: cfg, log: cfg.Logger, prover: wp, running: map[listenKey]context.CancelFunc{}}, nil
}

// Run registers the enabled miners until ctx ends, then waits for the
// listeners to stop.
func (m *Manager) Run(ctx context.Context) {
	defer m.wg.Wait()
	t := time.NewTicker(m.cfg.Poll)
	defer t.Stop()
	for {
		m.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reconcile starts a listener for each enabled miner on each gateway and
// stops those of miners no longer enabled. While the local replica is not
// caught up (cfg.Ready fails) it registers nothing and leaves the gateways
// it is on: sophon-gateway sends each request to one channel and returns
// an error answer to sophon-miner as it is, so a registered member that
// cannot prove loses every round routed to it.
func (m *Manager) reconcile(ctx context.Context) {
	want := map[listenKey]bool{}
	var notReady error
	if m.cfg.Ready != nil {
		notReady = m.cfg.Ready()
	}
	if notReady == nil {
		for _, ms := range m.cfg.Store.Miners() {
			if !ms.Enabled {
				continue
			}
			for i := range m.cfg.Gateways {
				want[listenKey{i, ms.ID}] = true
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if (notReady != nil) != m.notReady {
		m.notReady = notReady != nil
		if m.notReady {
			m.log.Warn("the local replica is not caught up: not registering with the gateways until it is", zap.Error(notReady))
		} else {
			m.log.Info("the local replica is caught up: registering with the gateways")
		}
	}
	for k, cancel := range m.running {
		if !want[k] {
			why := "miner no longer enabled: leaving the gateway"
			if notReady != nil {
				why = "replica not caught up: leaving the gateway"
			}
			m.log.Info(why, zap.Uint64("miner", k.miner), zap.String("gateway", m.cfg.Gateways[k.gateway].String()))
			cancel()
			delete(m.running, k)
		}
	}
	for k := range want {
		if _, ok := m.running[k]; ok || ctx.Err() != nil {
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		m.running[k] = cancel
		l := &listener{gw: m.cfg.Gateways[k.gateway], miner: k.miner, agent: m.cfg.Agent, handler: m.prover,
			log: m.log.With(zap.Uint64("miner", k.miner))}
		m.log.Info("listening for WinningPoSt requests", zap.Uint64("miner", k.miner), zap.String("gateway", l.gw.String()))
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			l.run(lctx)
		}()
	}
}

// ParseGateways parses Gateway.API entries (see ParseAPIInfo).
func ParseGateways(entries []string) ([]APIInfo, error) {
	out := make([]APIInfo, 0, len(entries))
	for i, e := range entries {
		info, err := ParseAPIInfo(e)
		if err != nil {
			return nil, fmt.Errorf("gateway %d of %d: %w", i+1, len(entries), err)
		}
		out = append(out, info)
	}
	return out, nil
}
