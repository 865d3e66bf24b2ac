package fullnode

import (
	"bytes"
	"encoding/binary"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/crypto"
	"golang.org/x/crypto/blake2b"
)

// DrawRandomnessFromBase is Lotus's chain/rand DrawRandomnessFromBase:
// blake2b-256(BE64(tag) || blake2b-256(base) || BE64(round) || entropy). It
// is how a miner derives its WinningPoSt randomness from the beacon entry
// of its round, and how the devnet draws every randomness.
func DrawRandomnessFromBase(base []byte, tag crypto.DomainSeparationTag, round abi.ChainEpoch, entropy []byte) [32]byte {
	h, _ := blake2b.New256(nil) // no key: never fails
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(tag))
	h.Write(buf[:])
	inner := blake2b.Sum256(base)
	h.Write(inner[:])
	binary.BigEndian.PutUint64(buf[:], uint64(round))
	h.Write(buf[:])
	h.Write(entropy)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// AddressEntropy is an address as randomness entropy: its CBOR encoding,
// as Lotus passes a miner address to every draw.
func AddressEntropy(a address.Address) []byte {
	var buf bytes.Buffer
	if err := a.MarshalCBOR(&buf); err != nil {
		return nil // only the undefined address fails; it draws with no entropy
	}
	return buf.Bytes()
}
