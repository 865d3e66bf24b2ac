package engine

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vsm-project/vsm/prover/sectorfile"
)

type node = sectorfile.Node

var magic = [8]byte{'V', 'S', 'M', 'W', 'P', 'S', 'T', '1'}

const headerSize = 8 + 8 + 1 + 4 + 1 + 1

// SectorProof is the vanilla proof of one sector: its commitments and one
// inclusion proof per challenge.
type SectorProof struct {
	SectorID  uint64
	CommC     node
	CommRLast node
	// Leaves[i] is challenge i's leaf; Paths[i] its siblings, leaf level
	// first.
	Leaves []node
	Paths  [][]node
}

// partitionProof is the decoded form of a proof.
type partitionProof struct {
	Miner      uint64
	ChainType  uint8
	Challenges int
	Depth      int
	Sectors    []SectorProof
}

func sectorProofSize(depth, challenges int) int {
	return 8 + 2*sectorfile.NodeSize + challenges*(1+depth)*sectorfile.NodeSize
}

// encodeProof serialises a partition proof (see the package comment).
func encodeProof(miner uint64, pp sectorfile.PoStProof, depth int, sectors []SectorProof) []byte {
	out := make([]byte, 0, headerSize+len(sectors)*sectorProofSize(depth, pp.Challenges()))
	out = append(out, magic[:]...)
	out = binary.LittleEndian.AppendUint64(out, miner)
	out = append(out, uint8(pp.ChainID))
	out = binary.LittleEndian.AppendUint32(out, uint32(len(sectors)))
	out = append(out, uint8(pp.Challenges()), uint8(depth))
	for _, s := range sectors {
		out = binary.LittleEndian.AppendUint64(out, s.SectorID)
		out = append(out, s.CommC[:]...)
		out = append(out, s.CommRLast[:]...)
		for i := range s.Leaves {
			out = append(out, s.Leaves[i][:]...)
			for _, n := range s.Paths[i] {
				out = append(out, n[:]...)
			}
		}
	}
	return out
}

// decodeProof parses proof bytes, checking every length before allocating so
// that hostile input cannot make it allocate more than its own size.
func decodeProof(b []byte) (partitionProof, error) {
	if len(b) < headerSize {
		return partitionProof{}, fmt.Errorf("proof is %d bytes, shorter than its %d-byte header", len(b), headerSize)
	}
	if [8]byte(b[:8]) != magic {
		return partitionProof{}, errors.New("proof does not start with the built-in engine's magic \"VSMWPST1\" (is it a filecoin-ffi SNARK?)")
	}
	p := partitionProof{
		Miner:     binary.LittleEndian.Uint64(b[8:16]),
		ChainType: b[16],
	}
	count := binary.LittleEndian.Uint32(b[17:21])
	p.Challenges = int(b[21])
	if p.Challenges != ChallengesPerSector && p.Challenges != WinningChallengesPerSector {
		return partitionProof{}, fmt.Errorf("proof has %d challenges per sector, want %d (WindowPoSt) or %d (WinningPoSt)", b[21], ChallengesPerSector, WinningChallengesPerSector)
	}
	p.Depth = int(b[22])
	if p.Depth < 1 || p.Depth > 40 {
		return partitionProof{}, fmt.Errorf("proof has path depth %d, outside 1..40", p.Depth)
	}
	body := b[headerSize:]
	per := sectorProofSize(p.Depth, p.Challenges)
	if uint64(len(body)) != uint64(count)*uint64(per) {
		return partitionProof{}, fmt.Errorf("proof body is %d bytes, want %d for %d sectors of depth %d", len(body), uint64(count)*uint64(per), count, p.Depth)
	}
	p.Sectors = make([]SectorProof, count)
	for i := range p.Sectors {
		s := &p.Sectors[i]
		r := body[i*per : (i+1)*per]
		s.SectorID = binary.LittleEndian.Uint64(r[:8])
		r = r[8:]
		copy(s.CommC[:], r[:32])
		copy(s.CommRLast[:], r[32:64])
		r = r[64:]
		s.Leaves = make([]node, p.Challenges)
		s.Paths = make([][]node, p.Challenges)
		for c := range p.Challenges {
			copy(s.Leaves[c][:], r[:32])
			r = r[32:]
			s.Paths[c] = make([]node, p.Depth)
			for d := range p.Depth {
				copy(s.Paths[c][d][:], r[:32])
				r = r[32:]
			}
		}
	}
	return p, nil
}
