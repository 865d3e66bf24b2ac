package engine

import (
	"errors"
	"fmt"

	"github.com/vsm-project/vsm/prover/sectorfile"
)

// SectorCommitment is what the chain knows about a proven sector.
type SectorCommitment struct {
	ID    uint64
	CommR [32]byte
}

// Verify checks a built-in engine proof; see the package comment. It does
// no I/O and is safe for concurrent use. The error says which sector and
// challenge failed and why.
func Verify(miner uint64, proofType string, randomness [32]byte, sectors []SectorCommitment, proof []byte) error {
	pp, err := sectorfile.PoStProofByName(proofType)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	geo, err := sectorfile.GeometryFor(pp.SectorSize)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	p, err := decodeProof(proof)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if p.Miner != miner {
		return fmt.Errorf("verify: proof is for miner t0%d, not t0%d", p.Miner, miner)
	}
	if int64(p.ChainType) != pp.ChainID {
		return fmt.Errorf("verify: proof is for chain proof type %d, not %s (%d)", p.ChainType, pp.Name, pp.ChainID)
	}
	if p.Challenges != pp.Challenges() {
		return fmt.Errorf("verify: proof has %d challenges per sector, %s needs %d", p.Challenges, pp.Name, pp.Challenges())
	}
	if p.Depth != geo.Depth {
		return fmt.Errorf("verify: proof paths have depth %d, %s sectors need %d", p.Depth, sectorfile.FormatSize(pp.SectorSize), geo.Depth)
	}
	if len(sectors) == 0 {
		return errors.New("verify: no sectors given")
	}
	want := make(map[uint64][32]byte, len(sectors))
	for _, s := range sectors {
		if _, dup := want[s.ID]; dup {
			return fmt.Errorf("verify: sector %d given twice", s.ID)
		}
		want[s.ID] = s.CommR
	}
	if len(p.Sectors) != len(sectors) {
		return fmt.Errorf("verify: proof covers %d sectors, %d given", len(p.Sectors), len(sectors))
	}
	rnd := NormalizeRandomness(randomness)
	for i, s := range p.Sectors {
		commR, ok := want[s.SectorID]
		if !ok {
			return fmt.Errorf("verify: proof covers sector %d, which was not given", s.SectorID)
		}
		// One canonical proof per sector set: the prover writes sectors in
		// ascending number, so a repeat or a reordering is not its proof.
		if i > 0 && s.SectorID <= p.Sectors[i-1].SectorID {
			return fmt.Errorf("verify: proof lists sector %d after sector %d; sectors must be in strictly ascending order", s.SectorID, p.Sectors[i-1].SectorID)
		}
		if sectorfile.CommR(s.CommC, s.CommRLast) != commR {
			return fmt.Errorf("verify: sector %d: H(comm_c || comm_r_last) does not equal its comm_r", s.SectorID)
		}
		for i := range p.Challenges {
			leaf := Challenge(rnd, s.SectorID, uint64(i), geo.Leaves)
			if got := sectorfile.RootFromPath(s.Leaves[i], leaf, s.Paths[i]); got != s.CommRLast {
				return fmt.Errorf("verify: sector %d challenge %d (leaf %d): path does not lead to comm_r_last", s.SectorID, i, leaf)
			}
		}
	}
	return nil
}
