package devnet

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/filecoin-project/go-address"
	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/crypto"
	prooftypes "github.com/filecoin-project/go-state-types/proof"

	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fullnode"
)

// Outcomes of a round in which a miner was elected.
const (
	WinProven  = "proven"  // a block with a valid WinningPoSt was accepted
	WinInvalid = "invalid" // blocks came, but none with a valid WinningPoSt
	WinMissed  = "missed"  // no block came before the head moved past the round
)

// WinTotals count elected rounds by outcome since genesis.
type WinTotals struct {
	Elected int
	Proven  int
	Invalid int
	Missed  int
}

// WinRecord is the judgement of one miner's elected round.
type WinRecord struct {
	Miner    uint64
	Round    ChainEpoch
	WinCount int64
	Outcome  string
	// Sector is the challenged sector of the WinningPoSt.
	Sector uint64
	// Reason says why the last block was refused (invalid only).
	Reason string `json:",omitempty"`
}

// maxWinRecords bounds the WinningPoSt records kept in state.json.
const maxWinRecords = 1000

type winKey struct {
	miner uint64
	round ChainEpoch
}

type submitted struct {
	proven bool
	reason string
}

// committedBytes is the miner's raw committed power: the election weighs
// miners by it, so who is elected depends only on the seed and the spec.
func (m *minerState) committedBytes() uint64 { return uint64(len(m.Sectors)) * uint64(m.SectorSize) }

// activeSectors lists the sectors eligible for WinningPoSt (active: live
// and not faulty), sorted by number.
func (m *minerState) activeSectors() []uint64 {
	var out []uint64
	for _, dl := range m.Deadlines {
		for _, ps := range dl.Partitions {
			_ = ps.active().ForEach(func(n uint64) error {
				out = append(out, n)
				return nil
			})
		}
	}
	slices.Sort(out)
	return out
}

// electionLocked is the devnet's stand-in for the leader election: the
// "VRF output" is ticketless beacon randomness (tag ElectionProofProduction,
// entropy the CBOR miner address) because the devnet has no keys, and the
// win count is Poisson with mean ExpectedLeadersPerEpoch times the miner's
// share of committed power, as Filecoin's WinCount is with quality-adjusted
// power. It depends only on the seed, the spec and the round.
func (c *chain) electionLocked(m *minerState, round ChainEpoch) (int64, [32]byte) {
	// No election before Mining.FirstEpoch, where blocks are refused and
	// rounds not judged: MinerGetBaseInfo must not call a miner eligible.
	if c.mining == nil || round < 1 || round < ChainEpoch(c.mining.FirstEpoch) {
		return 0, [32]byte{}
	}
	base := c.beaconBase(round)
	vrf := fullnode.DrawRandomnessFromBase(base[:], crypto.DomainSeparationTag_ElectionProofProduction, round, fullnode.AddressEntropy(fullnode.IDAddress(m.ID)))
	var total uint64
	for _, mm := range c.miners {
		total += mm.committedBytes()
	}
	if total == 0 || m.committedBytes() == 0 {
		return 0, vrf
	}
	lambda := c.mining.ExpectedLeadersPerEpoch * float64(m.committedBytes()) / float64(total)
	return poissonWinCount(lambda, vrf), vrf
}

// poissonWinCount maps the first 53 bits of vrf to a uniform u in [0, 1)
// and returns the smallest k with P(X <= k) > u for X ~ Poisson(lambda).
func poissonWinCount(lambda float64, vrf [32]byte) int64 {
	u := float64(binary.BigEndian.Uint64(vrf[:8])>>11) / (1 << 53)
	p := math.Exp(-lambda)
	cdf := p
	k := int64(0)
	for u >= cdf && k < 1000 {
		k++
		p *= lambda / float64(k)
		cdf += p
	}
	return k
}

// winningRandomnessLocked is the WinningPoSt randomness of a round, as a
// miner draws it from the base info's beacon entry.
func (c *chain) winningRandomnessLocked(m *minerState, round ChainEpoch) [32]byte {
	base := c.beaconBase(round)
	return fullnode.DrawRandomnessFromBase(base[:], crypto.DomainSeparationTag_WinningPoStChallengeSeed, round, fullnode.AddressEntropy(fullnode.IDAddress(m.ID)))
}

// challengeLocked picks the challenged sector of a round from the miner's
// active sectors, through the verifier (GenerateWinningPoStSectorChallenge).
func (c *chain) challengeLocked(ctx context.Context, m *minerState, round ChainEpoch, active []uint64) (uint64, [32]byte, error) {
	rnd := c.winningRandomnessLocked(m, round)
	winType, err := fullnode.WinningPoStProofFor(m.PoStProof)
	if err != nil {
		return 0, rnd, err
	}
	idx, err := c.verifier.GenerateWinningPoStSectorChallenge(ctx, winType, m.ID, rnd, uint64(len(active)))
	if err != nil {
		return 0, rnd, fmt.Errorf("winning post sector challenge: %w", err)
	}
	if len(idx) != 1 || idx[0] >= uint64(len(active)) {
		return 0, rnd, fmt.Errorf("winning post sector challenge: got indexes %v for %d eligible sectors, want one in range", idx, len(active))
	}
	return active[idx[0]], rnd, nil
}

// baseInfo answers Filecoin.MinerGetBaseInfo for mining round on top of
// the tipset tsk. The devnet has no null rounds, so round must be the
// base's height plus one.
func (c *chain) baseInfo(ctx context.Context, addr address.Address, round ChainEpoch, tsk fullnode.TipSetKey) (*fullnode.MiningBaseInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	base, err := c.resolveTSK(tsk)
	if err != nil {
		return nil, err
	}
	m, err := c.minerLocked(addr)
	if err != nil {
		return nil, err
	}
	if round != base+1 {
		return nil, fmt.Errorf("round %d cannot be mined on the tipset at height %d: the devnet has no null rounds, so the round must be %d", round, base, base+1)
	}
	active := m.activeSectors()
	if len(active) == 0 {
		return nil, nil // as Lotus: no proving sectors, no base info
	}
	sector, _, err := c.challengeLocked(ctx, m, round, active)
	if err != nil {
		return nil, err
	}
	var network uint64
	for _, mm := range c.miners {
		network += uint64(len(mm.activeSectors())) * uint64(mm.SectorSize)
	}
	winCount, _ := c.electionLocked(m, round)
	prev, cur := c.beaconBase(round-1), c.beaconBase(round)
	commR := m.commR[sector]
	sealed, err := commcid.ReplicaCommitmentV1ToCID(commR[:])
	if err != nil {
		return nil, err
	}
	return &fullnode.MiningBaseInfo{
		MinerPower:   big.NewInt(int64(uint64(len(active)) * uint64(m.SectorSize))),
		NetworkPower: big.NewInt(int64(network)),
		Sectors: []prooftypes.ExtendedSectorInfo{{
			SealProof: m.SealProof, SectorNumber: abi.SectorNumber(sector), SealedCID: sealed,
		}},
		WorkerKey:         fullnode.IDAddress(m.Worker), // the devnet has no key addresses
		SectorSize:        m.SectorSize,
		PrevBeaconEntry:   fullnode.BeaconEntry{Round: uint64(round - 1), Data: prev[:]},
		BeaconEntries:     []fullnode.BeaconEntry{{Round: uint64(round), Data: cur[:]}},
		EligibleForMining: winCount > 0,
	}, nil
}

// errBlock is a block the devnet refuses.
type errBlock struct{ msg string }

func (e *errBlock) Error() string { return "block refused: " + e.msg }

func refuse(format string, args ...any) error { return &errBlock{fmt.Sprintf(format, args...)} }

// submitBlock answers Filecoin.SyncSubmitBlock: it checks the subset of
// the block the devnet understands (see docs/devnet.md) and verifies the
// WinningPoSt over the challenged sector. Verification runs without the
// lock.
func (c *chain) submitBlock(ctx context.Context, blk *fullnode.BlockMsg) error {
	if blk == nil || blk.Header == nil {
		return refuse("no block header")
	}
	h := blk.Header
	if len(blk.BlsMessages) > 0 || len(blk.SecpkMessages) > 0 {
		return refuse("devnet blocks carry no messages (got %d BLS, %d secp)", len(blk.BlsMessages), len(blk.SecpkMessages))
	}
	c.mu.Lock()
	m, err := c.minerLocked(h.Miner)
	if err != nil {
		c.mu.Unlock()
		return refuse("%v", err)
	}
	round, head := h.Height, c.st.Height
	if err := c.roundOpenLocked(round, head); err != nil {
		c.mu.Unlock()
		return err
	}
	if want := c.blockCID(round - 1); len(h.Parents) != 1 || !h.Parents[0].Equals(want) {
		c.mu.Unlock()
		return refuse("parents %v are not the tipset at height %d (%s)", h.Parents, round-1, want)
	}
	winCount, _ := c.electionLocked(m, round)
	if winCount == 0 {
		c.mu.Unlock()
		return refuse("t0%d is not elected in round %d (MinerGetBaseInfo says EligibleForMining=false)", m.ID, round)
	}
	if h.ElectionProof != nil && h.ElectionProof.WinCount != winCount {
		c.mu.Unlock()
		return refuse("election proof win count %d, the devnet's election gives %d", h.ElectionProof.WinCount, winCount)
	}
	key := winKey{m.ID, round}
	if s := c.blocks[key]; s != nil && s.proven {
		c.mu.Unlock()
		return refuse("t0%d already has a block for round %d", m.ID, round)
	}
	winType, err := fullnode.WinningPoStProofFor(m.PoStProof)
	if err != nil {
		c.mu.Unlock()
		return refuse("%v", err)
	}
	if len(h.WinPoStProof) != 1 || h.WinPoStProof[0].PoStProof != winType {
		c.mu.Unlock()
		return refuse("want exactly one WinPoStProof of type %d, got %d proofs", winType, len(h.WinPoStProof))
	}
	active := m.activeSectors()
	if len(active) == 0 {
		c.mu.Unlock()
		return refuse("t0%d has no active sectors", m.ID)
	}
	sector, rnd, err := c.challengeLocked(ctx, m, round, active)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	info := WinningPoStVerifyInfo{
		Miner: m.ID, ProofType: winType, Randomness: rnd,
		Sectors: []SectorCommitment{{Number: sector, CommR: m.commR[sector]}},
		Proof:   h.WinPoStProof[0].ProofBytes,
	}
	c.mu.Unlock()

	verr := c.verifier.VerifyWinningPoSt(ctx, info)
	if verr != nil && ctx.Err() != nil {
		return ctx.Err()
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.roundOpenLocked(round, c.st.Height); err != nil {
		return fmt.Errorf("%w (the head moved while the proof was being verified)", err)
	}
	if s := c.blocks[key]; s != nil && s.proven {
		return refuse("t0%d already has a block for round %d", m.ID, round)
	}
	if verr != nil {
		c.blocks[key] = &submitted{reason: verr.Error()}
		c.log.Warn("block with an invalid winning post", zap.Uint64("miner", m.ID), zap.Int64("round", int64(round)),
			zap.Uint64("sector", sector), zap.Error(verr))
		return refuse("invalid WinningPoSt for t0%d round %d (challenged sector %d): %v", m.ID, round, sector, verr)
	}
	c.blocks[key] = &submitted{proven: true}
	c.log.Info("block accepted", zap.Uint64("miner", m.ID), zap.Int64("round", int64(round)),
		zap.Int64("win_count", winCount), zap.Uint64("sector", sector), zap.Int64("head", int64(c.st.Height)))
	return nil
}

// roundOpenLocked: a block for round is accepted while the head is at
// round-1 (its base) or round; the round is judged when the head moves on.
func (c *chain) roundOpenLocked(round, head ChainEpoch) error {
	switch {
	case c.mining == nil:
		return refuse("mining is not enabled on this devnet (add a [Mining] table to the spec)")
	case round < ChainEpoch(c.mining.FirstEpoch) || round < 1:
		return refuse("round %d is before Mining.FirstEpoch %d", round, c.mining.FirstEpoch)
	case round > head+1:
		return refuse("round %d is in the future: the head is %d", round, head)
	case round < head:
		return refuse("round %d is over: the head is %d (a block is accepted while the head is round-1 or round)", round, head)
	}
	return nil
}

// judgeRoundLocked records the outcome of every election of round, once
// the head moves past it.
func (c *chain) judgeRoundLocked(round ChainEpoch) {
	defer func() {
		for k := range c.blocks {
			if k.round <= round {
				delete(c.blocks, k)
			}
		}
	}()
	if c.mining == nil || round < ChainEpoch(c.mining.FirstEpoch) || round < 1 {
		return
	}
	for _, m := range c.sortedMiners() {
		winCount, _ := c.electionLocked(m, round)
		if winCount == 0 {
			continue
		}
		rec := WinRecord{Miner: m.ID, Round: round, WinCount: winCount, Outcome: WinMissed}
		if active := m.activeSectors(); len(active) > 0 {
			if s, _, err := c.challengeLocked(context.Background(), m, round, active); err == nil {
				rec.Sector = s
			}
		}
		c.st.WinTotals.Elected++
		switch s := c.blocks[winKey{m.ID, round}]; {
		case s != nil && s.proven:
			rec.Outcome = WinProven
			c.st.WinTotals.Proven++
		case s != nil:
			rec.Outcome, rec.Reason = WinInvalid, s.reason
			c.st.WinTotals.Invalid++
		default:
			c.st.WinTotals.Missed++
		}
		if rec.Outcome != WinProven {
			c.log.Warn("elected round without a valid block", zap.Uint64("miner", m.ID), zap.Int64("round", int64(round)),
				zap.String("outcome", rec.Outcome), zap.String("reason", rec.Reason))
		}
		c.st.WinRecords = append(c.st.WinRecords, rec)
		if n := len(c.st.WinRecords); n > maxWinRecords {
			c.st.WinRecords = append([]WinRecord(nil), c.st.WinRecords[n-maxWinRecords:]...)
		}
		c.dirty = true
	}
}
