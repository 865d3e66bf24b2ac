package devnet

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/filecoin-project/go-state-types/network"
	prooftypes "github.com/filecoin-project/go-state-types/proof"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/gateway"
)

// devnetNetworkVersion is the NWVersion of the devnet's ComputeProof
// requests (the one fullnode's proof types assume).
const devnetNetworkVersion = network.Version21

// runGateway is the devnet's sophon-gateway and sophon-miner in one: at
// every head h it asks, through the hub, for the WinningPoSt of every
// miner elected in round h+1, and keeps each verified outcome for the
// round's judging. It returns when ctx ends, after the requests in flight.
func (d *Devnet) runGateway(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		changed := d.chain.headChanged()
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		round := d.Height() + 1
		asks, err := d.winningAsks(ctx, round)
		if err != nil {
			d.log.Error("building the round's ComputeProof requests", zap.Int64("round", int64(round)), zap.Error(err))
			continue
		}
		for _, a := range asks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.chain.recordWinning(a.key, d.askWinning(ctx, a))
			}()
		}
	}
}

func (d *Devnet) winningAsks(ctx context.Context, round ChainEpoch) ([]winningAsk, error) {
	c := d.chain
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mining == nil || round < 1 || round < ChainEpoch(c.mining.FirstEpoch) {
		return nil, nil
	}
	asks, err := c.winningAsksLocked(ctx, round)
	c.st.WinTotals.Asked += len(asks)
	return asks, err
}

// askWinning sends one ComputeProof and verifies the answer.
func (d *Devnet) askWinning(ctx context.Context, a winningAsk) *submitted {
	start := time.Now()
	proofs, ans, err := d.hub.ComputeProof(ctx, fullnode.IDAddress(a.key.miner), a.req)
	s := &submitted{prover: ans.Agent, attempts: ans.Attempts, took: time.Since(start), answered: ans.Response != nil}
	log := d.log.With(zap.Uint64("miner", a.key.miner), zap.Int64("round", int64(a.key.round)), zap.String("prover", ans.Agent), zap.Int("attempts", ans.Attempts))
	if err == nil {
		err = d.verifyWinning(ctx, a, proofs)
	}
	if err != nil {
		s.reason = err.Error()
		log.Warn("winning post not proven", zap.Bool("answered", s.answered), zap.Error(err))
		return s
	}
	s.proven = true
	log.Info("winning post verified", zap.Duration("took", s.took))
	return s
}

func (d *Devnet) verifyWinning(ctx context.Context, a winningAsk, proofs []prooftypes.PoStProof) error {
	if len(proofs) != 1 || proofs[0].PoStProof != a.verify.ProofType {
		return fmt.Errorf("want exactly one proof of type %d, got %d proofs", a.verify.ProofType, len(proofs))
	}
	info := a.verify
	info.Proof = proofs[0].ProofBytes
	if err := d.chain.verifier.VerifyWinningPoSt(ctx, info); err != nil {
		return fmt.Errorf("invalid WinningPoSt for t0%d round %d (challenged sector %d): %w", a.key.miner, a.key.round, info.Sectors[0].Number, err)
	}
	return nil
}

// Hub is the devnet's gateway (served at /rpc/v2 with the devnet's token).
func (d *Devnet) Hub() *gateway.Hub { return d.hub }

// GatewayInfo is the Gateway.API entry of the stand-in for a listener
// address: TOKEN:/ip4/HOST/tcp/PORT, the form damocles takes.
func (d *Devnet) GatewayInfo(addr net.Addr) string {
	info := d.APIInfo(addr)
	return strings.TrimSuffix(info, "/http")
}
