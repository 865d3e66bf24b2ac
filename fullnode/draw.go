package fullnode

import (
	"crypto/sha256"
	"encoding/binary"
)

// DrawRandomnessFromBase is Lotus's DrawRandomnessFromBase construction,
// H(BE64(tag) || H(base) || BE64(round) || entropy), with SHA-256 as H where
// Lotus uses blake2b-256. It is how the devnet draws every randomness, and
// how a miner derives its WinningPoSt randomness from the beacon entry of
// MinerGetBaseInfo. Against a real chain the hash must be blake2b-256.
func DrawRandomnessFromBase(base []byte, tag DomainSeparationTag, round ChainEpoch, entropy []byte) [32]byte {
	h := sha256.New()
	_ = binary.Write(h, binary.BigEndian, int64(tag))
	inner := sha256.Sum256(base)
	h.Write(inner[:])
	_ = binary.Write(h, binary.BigEndian, int64(round))
	h.Write(entropy)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// WinningPoStRandomness is the WinningPoSt challenge randomness of a
// round, drawn as Lotus's MinerGetBaseInfo does: from the last beacon entry
// of the base info (or the previous one when the round has none), with the
// WinningPoStChallengeSeed tag and the CBOR miner address as entropy. It is
// not normalized; provers clear the top two bits.
func WinningPoStRandomness(bi *MiningBaseInfo, maddr Address, round ChainEpoch) [32]byte {
	rbase := bi.PrevBeaconEntry
	if n := len(bi.BeaconEntries); n > 0 {
		rbase = bi.BeaconEntries[n-1]
	}
	return DrawRandomnessFromBase(rbase.Data, TagWinningPoStChallengeSeed, round, maddr.MarshalCBOR())
}
