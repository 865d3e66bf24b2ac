// Package mining is the mining module (`vsm daemon run --miner`): at every
// new chain head it asks the full node, for each enabled miner of the
// local store, for the base info of the next round
// (Filecoin.MinerGetBaseInfo); when the chain says the miner is eligible,
// it resolves the challenged sector's files from the local store (no
// remote call on the proving path), proves the WinningPoSt on the
// ext-prover children and hands the block to the chain
// (Filecoin.SyncSubmitBlock). It mirrors the deadline runner
// (prover/runner): the same chain client, store, locator and children.
//
// Against vsm's devnet this is the whole of mining: the devnet runs the
// leader election itself and says EligibleForMining only for the rounds a
// miner won. A real chain needs more than this module does: the election
// proof and ticket are VRFs signed with the worker key, the block carries
// messages and a signature, and randomness is drawn with blake2b. See
// docs/devnet.md.
package mining

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/filecoin-project/go-address"
	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"
	prooftypes "github.com/filecoin-project/go-state-types/proof"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/engine"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// Chain is what mining needs from the full node. *fullnode.Client
// implements it.
type Chain interface {
	ChainHead(ctx context.Context) (*fullnode.TipSet, error)
	MinerGetBaseInfo(ctx context.Context, maddr address.Address, epoch abi.ChainEpoch, tsk fullnode.TipSetKey) (*fullnode.MiningBaseInfo, error)
	SyncSubmitBlock(ctx context.Context, blk *fullnode.BlockMsg) error
}

// Prover proves a WinningPoSt; *prover.Supervisor implements it.
type Prover interface {
	ProveWinning(ctx context.Context, task prover.WinningPoStTask) (prover.WinningPoStOutput, error)
}

// Store is the local replica: miners and sector locations. *fsm.FSM
// implements it.
type Store interface {
	prover.LocationStore
	Miners() []fsm.MinerSummary
}

// Config wires a Miner.
type Config struct {
	Chain  Chain
	Prover Prover
	Store  Store
	// Local maps storage instance names to this node's mount points.
	Local map[string]string
	// Ready reports whether the local replica has caught up; nothing is
	// mined before it has. Nil: always ready.
	Ready func() error
	// Poll is how often the chain head is read (default 100ms).
	Poll time.Duration
	// RoundTimeout bounds one miner's round, base info to submission
	// (default 30 s, one mainnet epoch).
	RoundTimeout time.Duration
	Logger       *zap.Logger
	// Metrics, if set, receives the module's Prometheus collectors.
	Metrics prometheus.Registerer
}

// Outcome of one miner's round, the label of vsm_mining_rounds_total.
const (
	OutcomeNotElected = "not_elected" // the chain says the miner is not eligible this round
	OutcomeNoPower    = "no_power"    // no base info: the miner has no proving sectors
	OutcomeAccepted   = "accepted"    // block with its WinningPoSt accepted by the chain
	OutcomeFailed     = "failed"      // elected, but no block got in (see the log and the stage label)
	OutcomeError      = "error"       // the base info could not be read
)

// Miner mines for every enabled miner of the store.
type Miner struct {
	cfg     Config
	log     *zap.Logger
	metrics *metrics

	mu       sync.Mutex
	inflight map[uint64]bool
	wg       sync.WaitGroup
}

type metrics struct {
	rounds  *prometheus.CounterVec
	failed  *prometheus.CounterVec
	seconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vsm_mining_rounds_total",
			Help: "Mining rounds per miner by outcome: not_elected, no_power, accepted, failed, error.",
		}, []string{"outcome"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vsm_mining_failures_total",
			Help: "Elected rounds without an accepted block, by the stage that failed: locate, prove, submit.",
		}, []string{"stage"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vsm_mining_winning_post_seconds",
			Help:    "Time from base info to an accepted block, for elected rounds.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
	}
	for _, o := range []string{OutcomeNotElected, OutcomeNoPower, OutcomeAccepted, OutcomeFailed, OutcomeError} {
		m.rounds.WithLabelValues(o)
	}
	for _, s := range []string{"locate", "prove", "submit"} {
		m.failed.WithLabelValues(s)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.rounds, m.failed, m.seconds} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("mining metrics: %w", err)
			}
		}
	}
	return m, nil
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Miner, error) {
	switch {
	case cfg.Chain == nil:
		return nil, errors.New("mining: no chain client; set Chain.API or --chain-api")
	case cfg.Prover == nil:
		return nil, errors.New("mining: no prover children; start the node with --ext-prover")
	case cfg.Store == nil:
		return nil, errors.New("mining: no store")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	if cfg.RoundTimeout <= 0 {
		cfg.RoundTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	met, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	return &Miner{cfg: cfg, log: cfg.Logger, metrics: met, inflight: map[uint64]bool{}}, nil
}

// Run mines until ctx ends, then waits for the rounds in flight.
func (m *Miner) Run(ctx context.Context) {
	defer m.wg.Wait()
	t := time.NewTicker(m.cfg.Poll)
	defer t.Stop()
	var last abi.ChainEpoch = -1
	var lastErr string
	m.log.Info("mining module started", zap.Duration("poll", m.cfg.Poll))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if m.cfg.Ready != nil {
			if err := m.cfg.Ready(); err != nil {
				continue
			}
		}
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		head, err := m.cfg.Chain.ChainHead(hctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && err.Error() != lastErr {
				m.log.Warn("reading the chain head", zap.Error(err))
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
		if head.Height <= last {
			continue
		}
		last = head.Height
		m.mineHead(ctx, head)
	}
}

// mineHead starts one round per enabled miner on top of head. A miner
// whose previous round is still running is skipped, so a stalled chain or
// prover does not pile up rounds.
func (m *Miner) mineHead(ctx context.Context, head *fullnode.TipSet) {
	for _, ms := range m.cfg.Store.Miners() {
		if !ms.Enabled {
			continue
		}
		id := ms.ID
		m.mu.Lock()
		busy := m.inflight[id]
		if !busy {
			m.inflight[id] = true
		}
		m.mu.Unlock()
		if busy {
			m.log.Debug("previous round still running", zap.Uint64("miner", id), zap.Int64("round", int64(head.Height+1)))
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer func() {
				m.mu.Lock()
				delete(m.inflight, id)
				m.mu.Unlock()
			}()
			rctx, cancel := context.WithTimeout(ctx, m.cfg.RoundTimeout)
			defer cancel()
			outcome, err := m.MineRound(rctx, id, head)
			m.metrics.rounds.WithLabelValues(outcome).Inc()
			if err != nil && ctx.Err() == nil {
				m.log.Warn("mining round", zap.Uint64("miner", id), zap.Int64("round", int64(head.Height+1)), zap.String("outcome", outcome), zap.Error(err))
			}
		}()
	}
}

// stageError names the stage of an elected round that failed.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// MineRound mines round head+1 for one miner and returns the outcome (one
// of the Outcome constants) and, for failed and error, why.
func (m *Miner) MineRound(ctx context.Context, miner uint64, head *fullnode.TipSet) (string, error) {
	maddr := fullnode.IDAddress(miner)
	round := head.Height + 1
	start := time.Now()
	bi, err := m.cfg.Chain.MinerGetBaseInfo(ctx, maddr, round, head.Key())
	if err != nil {
		return OutcomeError, fmt.Errorf("base info for round %d: %w", round, err)
	}
	if bi == nil {
		return OutcomeNoPower, nil
	}
	if !bi.EligibleForMining {
		return OutcomeNotElected, nil
	}
	log := m.log.With(zap.Uint64("miner", miner), zap.Int64("round", int64(round)))
	blk, err := m.winningBlock(ctx, maddr, round, head, bi)
	if err == nil {
		err = m.submit(ctx, blk)
	}
	if err != nil {
		var se *stageError
		if errors.As(err, &se) {
			m.metrics.failed.WithLabelValues(se.stage).Inc()
		}
		log.Error("elected, but no block", zap.Error(err))
		return OutcomeFailed, err
	}
	took := time.Since(start)
	m.metrics.seconds.Observe(took.Seconds())
	log.Info("block accepted", zap.Uint64("sector", uint64(bi.Sectors[0].SectorNumber)), zap.Duration("took", took))
	return OutcomeAccepted, nil
}

// winningBlock proves the round's WinningPoSt and builds the block.
func (m *Miner) winningBlock(ctx context.Context, maddr address.Address, round abi.ChainEpoch, head *fullnode.TipSet, bi *fullnode.MiningBaseInfo) (*fullnode.BlockMsg, error) {
	miner, err := fullnode.ActorID(maddr)
	if err != nil {
		return nil, &stageError{"locate", err}
	}
	winType, err := fullnode.WinningPoStProofForSize(bi.SectorSize)
	if err != nil {
		return nil, &stageError{"locate", err}
	}
	name, _ := fullnode.WinningPoStProofName(winType)
	post, err := sectorfile.PoStProofByName(name)
	if err != nil {
		return nil, &stageError{"locate", err}
	}
	if len(bi.Sectors) != sectorfile.WinningPoStSectorCount {
		return nil, &stageError{"locate", fmt.Errorf("the chain challenges %d sectors, want %d", len(bi.Sectors), sectorfile.WinningPoStSectorCount)}
	}
	loc := prover.Locator{Store: m.cfg.Store, Local: m.cfg.Local}
	task := prover.WinningPoStTask{MinerID: miner, ProofType: name}
	for _, s := range bi.Sectors {
		rep, why := loc.Sector(miner, uint64(s.SectorNumber), post)
		if why != "" {
			return nil, &stageError{"locate", fmt.Errorf("challenged sector %d: %s", s.SectorNumber, why)}
		}
		chainCommR, err := commcid.CIDToReplicaCommitmentV1(s.SealedCID)
		if err != nil {
			return nil, &stageError{"locate", fmt.Errorf("challenged sector %d: %w", s.SectorNumber, err)}
		}
		if !bytes.Equal(rep.CommR[:], chainCommR) {
			return nil, &stageError{"locate", fmt.Errorf("challenged sector %d: the store's CommR differs from the chain's sealed CID %s", s.SectorNumber, s.SealedCID)}
		}
		task.Replicas = append(task.Replicas, rep)
	}
	task.Seed = prover.Bytes32(engine.NormalizeRandomness(fullnode.WinningPoStRandomness(bi, maddr, round)))
	out, err := m.cfg.Prover.ProveWinning(ctx, task)
	if err != nil {
		return nil, &stageError{"prove", err}
	}
	return &fullnode.BlockMsg{Header: &fullnode.BlockHeader{
		Miner:         maddr,
		BeaconEntries: bi.BeaconEntries,
		WinPoStProof:  []prooftypes.PoStProof{{PoStProof: winType, ProofBytes: out.Proofs[0]}},
		Parents:       head.Cids,
		Height:        round,
	}}, nil
}

func (m *Miner) submit(ctx context.Context, blk *fullnode.BlockMsg) error {
	if err := m.cfg.Chain.SyncSubmitBlock(ctx, blk); err != nil {
		return &stageError{"submit", err}
	}
	return nil
}
