package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"
	prooftypes "github.com/filecoin-project/go-state-types/proof"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/engine"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// Prover proves a WinningPoSt on the ext-prover children;
// *prover.Supervisor implements it.
type Prover interface {
	ProveWinning(ctx context.Context, task prover.WinningPoStTask) (prover.WinningPoStOutput, error)
}

// WinningProver answers ComputeProof: it locates the challenged sectors in
// the local replica, masks the randomness and proves on the children.
type WinningProver struct {
	Prover  Prover
	Locator prover.Locator
	// Ready reports whether the local replica has caught up; a node that
	// has not answers with an error. sophon-gateway passes an error answer
	// to sophon-miner as it is (it does not ask another member), so the
	// Manager unregisters a node that is not ready; this check covers the
	// request that races with it. Nil: always ready.
	Ready   func() error
	metrics *metrics
}

type metrics struct {
	requests *prometheus.CounterVec
	seconds  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vsm_winning_post_requests_total",
			Help: "ComputeProof requests from sophon-gateway by outcome: proven (answered with a proof) or failed (answered with an error).",
		}, []string{"outcome"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vsm_winning_post_seconds",
			Help:    "Time from a ComputeProof request to its proof.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
	}
	m.requests.WithLabelValues("proven")
	m.requests.WithLabelValues("failed")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.seconds} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("winning post metrics: %w", err)
			}
		}
	}
	return m, nil
}

// ComputeProof proves the WinningPoSt of req for miner.
func (w *WinningProver) ComputeProof(ctx context.Context, miner uint64, req ComputeProofRequest) ([]prooftypes.PoStProof, error) {
	start := time.Now()
	proofs, err := w.compute(ctx, miner, req)
	if w.metrics != nil {
		if err != nil {
			w.metrics.requests.WithLabelValues("failed").Inc()
		} else {
			w.metrics.requests.WithLabelValues("proven").Inc()
			w.metrics.seconds.Observe(time.Since(start).Seconds())
		}
	}
	return proofs, err
}

func (w *WinningProver) compute(ctx context.Context, miner uint64, req ComputeProofRequest) ([]prooftypes.PoStProof, error) {
	if w.Ready != nil {
		if err := w.Ready(); err != nil {
			return nil, fmt.Errorf("this vsm node's replica is not caught up (%v); it leaves the gateway until it is", err)
		}
	}
	task, winType, err := w.task(miner, req)
	if err != nil {
		return nil, err
	}
	out, err := w.Prover.ProveWinning(ctx, task)
	if err != nil {
		return nil, err
	}
	return []prooftypes.PoStProof{{PoStProof: winType, ProofBytes: out.Proofs[0]}}, nil
}

// task builds the children's task. The proof type follows the sectors'
// seal proof, as in damocles (V1 and V1_1 seal proofs of one size share
// it); the randomness is masked here (rand[31] &=
// 0x3f) because Lotus-style callers send it raw and leave the masking to
// the prover.
func (w *WinningProver) task(miner uint64, req ComputeProofRequest) (prover.WinningPoStTask, abi.RegisteredPoStProof, error) {
	if len(req.SectorInfos) == 0 {
		return prover.WinningPoStTask{}, 0, errors.New("ComputeProof names no sectors; the chain challenges at least one per round")
	}
	if len(req.Rand) != 32 {
		return prover.WinningPoStTask{}, 0, fmt.Errorf("ComputeProof randomness has %d bytes, want 32", len(req.Rand))
	}
	seal := req.SectorInfos[0].SealProof
	winType, err := seal.RegisteredWinningPoStProof()
	if err != nil {
		return prover.WinningPoStTask{}, 0, fmt.Errorf("sector %d: seal proof %d has no WinningPoSt type: %w", req.SectorInfos[0].SectorNumber, seal, err)
	}
	name, err := fullnode.WinningPoStProofName(winType)
	if err != nil {
		return prover.WinningPoStTask{}, 0, err
	}
	post, err := sectorfile.PoStProofByName(name)
	if err != nil {
		return prover.WinningPoStTask{}, 0, err
	}
	task := prover.WinningPoStTask{MinerID: miner, ProofType: name}
	for _, s := range req.SectorInfos {
		rep, err := w.replica(miner, s, winType, post)
		if err != nil {
			return prover.WinningPoStTask{}, 0, err
		}
		task.Replicas = append(task.Replicas, rep)
	}
	var rand [32]byte
	copy(rand[:], req.Rand)
	task.Seed = engine.NormalizeRandomness(rand)
	return task, winType, nil
}

// replica resolves one challenged sector. The chain's SealedCID is the
// CommR proven, as in damocles; a CommR in the store must agree with it,
// and a location stored without one (zero) takes the chain's. A sector the
// chain says is snap-upgraded (SectorKey set) must be stored as upgraded,
// and the other way round: the proof reads the update files of an upgraded
// sector and the sealed file of any other.
func (w *WinningProver) replica(miner uint64, s prooftypes.ExtendedSectorInfo, winType abi.RegisteredPoStProof, post sectorfile.PoStProof) (prover.Replica, error) {
	if t, err := s.SealProof.RegisteredWinningPoStProof(); err != nil || t != winType {
		return prover.Replica{}, fmt.Errorf("sector %d has seal proof %d, whose WinningPoSt type is not the first challenged sector's (%d): one WinningPoSt covers one proof type", s.SectorNumber, s.SealProof, winType)
	}
	loc, why := w.Locator.Location(miner, uint64(s.SectorNumber))
	if why != "" {
		return prover.Replica{}, fmt.Errorf("challenged sector %d of t0%d: %s", s.SectorNumber, miner, why)
	}
	if upgraded := s.SectorKey != nil; upgraded != loc.Upgraded {
		if upgraded {
			return prover.Replica{}, fmt.Errorf("challenged sector %d of t0%d is snap-upgraded on chain (SectorKey %s) but its stored location is not marked upgraded; fix the location with 'vsm sector location put' so the update files are read", s.SectorNumber, miner, s.SectorKey)
		}
		return prover.Replica{}, fmt.Errorf("challenged sector %d of t0%d is not upgraded on chain (no SectorKey) but its stored location is marked upgraded; fix the location with 'vsm sector location put' so the sealed file is read", s.SectorNumber, miner)
	}
	rep, why := w.Locator.Replica(loc, post)
	if why != "" {
		return prover.Replica{}, fmt.Errorf("challenged sector %d of t0%d: %s", s.SectorNumber, miner, why)
	}
	commR, err := commcid.CIDToReplicaCommitmentV1(s.SealedCID)
	if err != nil {
		return prover.Replica{}, fmt.Errorf("challenged sector %d: sealed CID %s: %w", s.SectorNumber, s.SealedCID, err)
	}
	if rep.CommR == (prover.Bytes32{}) {
		copy(rep.CommR[:], commR)
	} else if !bytes.Equal(rep.CommR[:], commR) {
		return prover.Replica{}, fmt.Errorf("challenged sector %d of t0%d: the store's CommR %x differs from the chain's sealed CID %s; fix the location with 'vsm sector location put'", s.SectorNumber, miner, rep.CommR[:], s.SealedCID)
	}
	return rep, nil
}
