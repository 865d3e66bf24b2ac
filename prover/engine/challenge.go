package engine

import (
	"crypto/sha256"
	"encoding/binary"
)

// ChallengesPerSector is the number of leaves WindowPoSt challenges in each
// sector.
const ChallengesPerSector = 10

// NormalizeRandomness clears the top two bits of the last byte, as the
// parent does before sending a seed, so that the randomness is a valid field
// element. Applying it twice changes nothing, which lets both prover and
// verifier apply it.
func NormalizeRandomness(r [32]byte) [32]byte {
	r[31] &= 0x3f
	return r
}

// Challenge derives the leaf index of challenge index i of a sector.
// randomness must already be normalized.
func Challenge(randomness [32]byte, sectorID uint64, i uint64, leaves uint64) uint64 {
	var buf [32 + 8 + 8]byte
	copy(buf[:32], randomness[:])
	binary.LittleEndian.PutUint64(buf[32:40], sectorID)
	binary.LittleEndian.PutUint64(buf[40:48], i)
	h := sha256.Sum256(buf[:])
	return binary.LittleEndian.Uint64(h[:8]) % leaves
}

// Challenges derives all ChallengesPerSector leaf indexes of a sector.
func Challenges(randomness [32]byte, sectorID uint64, leaves uint64) []uint64 {
	out := make([]uint64, ChallengesPerSector)
	for i := range out {
		out[i] = Challenge(randomness, sectorID, uint64(i), leaves)
	}
	return out
}
