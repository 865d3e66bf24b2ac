package sectorfile

import (
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Multicodec codes of a Filecoin sealed-sector CID (go-fil-commcid).
const (
	codecFilCommitmentSealed = 0xf102
	mhPoseidonBLS12381A2FC1  = 0xb401
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// SealedCID renders comm_r as the CIDv1 the chain and Lotus show for it
// (base32, codec fil-commitment-sealed, multihash poseidon-bls12_381-a2-fc1),
// e.g. "bagboea4b5abc...". The encoding is hand-written because the
// go-cid/commcid modules are not available to this build.
func SealedCID(commR Node) string {
	var b []byte
	b = binary.AppendUvarint(b, 1)
	b = binary.AppendUvarint(b, codecFilCommitmentSealed)
	b = binary.AppendUvarint(b, mhPoseidonBLS12381A2FC1)
	b = binary.AppendUvarint(b, NodeSize)
	b = append(b, commR[:]...)
	return "b" + strings.ToLower(b32.EncodeToString(b))
}

// ParseSealedCID is the inverse of SealedCID.
func ParseSealedCID(s string) (Node, error) {
	if !strings.HasPrefix(s, "b") {
		return Node{}, fmt.Errorf("sealed CID %q is not base32 (should start with 'b')", s)
	}
	b, err := b32.DecodeString(strings.ToUpper(s[1:]))
	if err != nil {
		return Node{}, fmt.Errorf("sealed CID %q: %w", s, err)
	}
	for _, want := range []uint64{1, codecFilCommitmentSealed, mhPoseidonBLS12381A2FC1, NodeSize} {
		v, n := binary.Uvarint(b)
		if n <= 0 || v != want {
			return Node{}, fmt.Errorf("sealed CID %q: not a CIDv1 fil-commitment-sealed poseidon commitment", s)
		}
		b = b[n:]
	}
	if len(b) != NodeSize {
		return Node{}, errors.New("sealed CID: digest is not 32 bytes")
	}
	return Node(b), nil
}
