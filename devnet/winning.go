package devnet

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/crypto"
	prooftypes "github.com/filecoin-project/go-state-types/proof"

	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/gateway"
)

// Outcomes of a round in which a miner was elected.
const (
	WinProven  = "proven"  // the gateway got a WinningPoSt that verified
	WinInvalid = "invalid" // a prover answered, with an error or a proof that did not verify
	WinMissed  = "missed"  // no answer before the head moved past the round
)

// WinTotals count elected rounds by outcome since genesis, and the
// ComputeProof requests the gateway sent.
type WinTotals struct {
	Elected int
	Asked   int
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
	// Reason says why the round is not proven.
	Reason string `json:",omitempty"`
	// Prover is the User-Agent of the channel that answered, Attempts the
	// channels asked and TookMs the time to the answer.
	Prover   string `json:",omitempty"`
	Attempts int    `json:",omitempty"`
	TookMs   int64  `json:",omitempty"`
}

// maxWinRecords bounds the WinningPoSt records kept in state.json.
const maxWinRecords = 1000

type winKey struct {
	miner uint64
	round ChainEpoch
}

// submitted is the gateway's outcome of one round's request.
type submitted struct {
	proven   bool
	answered bool // a prover answered (proven, or invalid)
	reason   string
	prover   string
	attempts int
	took     time.Duration
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
	// No election before Mining.FirstEpoch: rounds before it are neither
	// asked for nor judged.
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

// winningAsk is one elected round's ComputeProof request, as sophon-miner
// would hand it to the gateway, and what verifies its answer.
type winningAsk struct {
	key    winKey
	req    gateway.ComputeProofRequest
	verify WinningPoStVerifyInfo // without the proof
}

// winningAsksLocked lists the ComputeProof requests of round: one for each
// miner elected in it that has active sectors. The randomness goes out
// unmasked, as Lotus-style miners send it.
func (c *chain) winningAsksLocked(ctx context.Context, round ChainEpoch) ([]winningAsk, error) {
	var asks []winningAsk
	for _, m := range c.sortedMiners() {
		if winCount, _ := c.electionLocked(m, round); winCount == 0 {
			continue
		}
		active := m.activeSectors()
		if len(active) == 0 {
			continue
		}
		sector, rnd, err := c.challengeLocked(ctx, m, round, active)
		if err != nil {
			return nil, err
		}
		winType, err := fullnode.WinningPoStProofFor(m.PoStProof)
		if err != nil {
			return nil, err
		}
		commR := m.commR[sector]
		sealed, err := commcid.ReplicaCommitmentV1ToCID(commR[:])
		if err != nil {
			return nil, err
		}
		asks = append(asks, winningAsk{
			key: winKey{m.ID, round},
			req: gateway.ComputeProofRequest{
				SectorInfos: []prooftypes.ExtendedSectorInfo{{SealProof: m.SealProof, SectorNumber: abi.SectorNumber(sector), SealedCID: sealed}},
				Rand:        rnd[:], Height: round, NWVersion: devnetNetworkVersion,
			},
			verify: WinningPoStVerifyInfo{Miner: m.ID, ProofType: winType, Randomness: rnd,
				Sectors: []SectorCommitment{{Number: sector, CommR: commR}}},
		})
	}
	return asks, nil
}

// recordWinning keeps the outcome of a round's request until the round is
// judged; an outcome that comes after is late and only logged.
func (c *chain) recordWinning(key winKey, s *submitted) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.Height > key.round {
		c.log.Warn("winning post outcome after its round was judged", zap.Uint64("miner", key.miner), zap.Int64("round", int64(key.round)),
			zap.Bool("proven", s.proven), zap.String("reason", s.reason), zap.Int64("head", int64(c.st.Height)))
		return
	}
	c.wins[key] = s
}

// judgeRoundLocked records the outcome of every election of round, once
// the head moves past it.
func (c *chain) judgeRoundLocked(round ChainEpoch) {
	defer func() {
		for k := range c.wins {
			if k.round <= round {
				delete(c.wins, k)
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
		rec := WinRecord{Miner: m.ID, Round: round, WinCount: winCount, Outcome: WinMissed, Reason: "no ComputeProof answer before the head moved past the round"}
		if active := m.activeSectors(); len(active) > 0 {
			if s, _, err := c.challengeLocked(context.Background(), m, round, active); err == nil {
				rec.Sector = s
			}
		}
		c.st.WinTotals.Elected++
		s := c.wins[winKey{m.ID, round}]
		if s != nil {
			rec.Prover, rec.Attempts, rec.TookMs = s.prover, s.attempts, s.took.Milliseconds()
			rec.Reason = s.reason
		}
		switch {
		case s != nil && s.proven:
			rec.Outcome, rec.Reason = WinProven, ""
			c.st.WinTotals.Proven++
		case s != nil && s.answered:
			rec.Outcome = WinInvalid
			c.st.WinTotals.Invalid++
		default:
			c.st.WinTotals.Missed++
		}
		if rec.Outcome != WinProven {
			c.log.Warn("elected round without a valid WinningPoSt", zap.Uint64("miner", m.ID), zap.Int64("round", int64(round)),
				zap.String("outcome", rec.Outcome), zap.String("reason", rec.Reason))
		}
		c.st.WinRecords = append(c.st.WinRecords, rec)
		if n := len(c.st.WinRecords); n > maxWinRecords {
			c.st.WinRecords = append([]WinRecord(nil), c.st.WinRecords[n-maxWinRecords:]...)
		}
		c.dirty = true
	}
}
