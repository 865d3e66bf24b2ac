package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"

	"github.com/vsm-project/vsm/prover/sectorfile"
)

// ChallengesPerSector is the number of leaves WindowPoSt challenges in each
// sector (WinningPoSt challenges WinningChallengesPerSector).
const ChallengesPerSector = sectorfile.WindowPoStChallenges

// WinningChallengesPerSector is the number of leaves WinningPoSt challenges
// in its sector.
const WinningChallengesPerSector = sectorfile.WinningPoStChallenges

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
	return ChallengesN(randomness, sectorID, leaves, ChallengesPerSector)
}

// ChallengesN derives n leaf indexes of a sector (n is the proof type's
// Challenges(): 10 for WindowPoSt, 66 for WinningPoSt).
func ChallengesN(randomness [32]byte, sectorID uint64, leaves uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = Challenge(randomness, sectorID, uint64(i), leaves)
	}
	return out
}

// ProverID is the 32-byte prover id of a miner as filecoin-ffi builds it:
// the actor id as an unsigned LEB128 varint, zero-padded.
func ProverID(miner uint64) [32]byte {
	var id [32]byte
	binary.PutUvarint(id[:], miner)
	return id
}

// WinningSectorChallenge derives which sector of an eligible set of
// setLen sectors WinningPoSt challenge n picks, as rust-fil-proofs'
// generate_sector_challenge does:
//
//	index = LE64(SHA-256(prover_id || randomness || LE64(n))[0:8]) mod setLen
//
// randomness must already be normalized.
func WinningSectorChallenge(miner uint64, randomness [32]byte, n uint64, setLen uint64) uint64 {
	pid := ProverID(miner)
	var buf [32 + 32 + 8]byte
	copy(buf[:32], pid[:])
	copy(buf[32:64], randomness[:])
	binary.LittleEndian.PutUint64(buf[64:], n)
	h := sha256.Sum256(buf[:])
	return binary.LittleEndian.Uint64(h[:8]) % setLen
}

// WinningSectorChallenges returns the indexes into the eligible sector set
// (sorted by sector number) of the sectors a WinningPoSt must prove
// (GenerateWinningPoStSectorChallenge): WinningPoStSectorCount of them.
// The randomness is normalized here.
func WinningSectorChallenges(miner uint64, randomness [32]byte, setLen uint64) ([]uint64, error) {
	if setLen == 0 {
		return nil, errors.New("winning post sector challenge: the eligible sector set is empty")
	}
	rnd := NormalizeRandomness(randomness)
	out := make([]uint64, sectorfile.WinningPoStSectorCount)
	for i := range out {
		out[i] = WinningSectorChallenge(miner, rnd, uint64(i), setLen)
	}
	return out, nil
}
