package fullnode

import (
	"bytes"
	"testing"

	"github.com/vsm-project/vsm/fullnode/bitfield"
)

// FuzzParamsCBOR: the params decoders never panic, and what they accept is
// canonical (re-encoding gives the same bytes), which is what makes a
// message's CID well defined.
func FuzzParamsCBOR(f *testing.F) {
	post := SubmitWindowedPoStParams{
		Deadline:         3,
		Partitions:       []PoStPartition{{Index: 0}, {Index: 1, Skipped: bitfield.New(4, 5)}},
		Proofs:           []PoStProof{{PoStProof: 13, ProofBytes: []byte{1, 2, 3}}},
		ChainCommitEpoch: -5,
		ChainCommitRand:  bytes.Repeat([]byte{7}, 32),
	}
	decl := DeclareFaultsParams{Faults: []FaultDeclaration{{Deadline: 2, Partition: 1, Sectors: bitfield.New(0, 1, 2, 8, 9)}}}
	f.Add(post.MarshalCBOR())
	f.Add(decl.MarshalCBOR())
	f.Add([]byte{0x85, 0x18, 0x03})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var p SubmitWindowedPoStParams
		if err := p.UnmarshalCBOR(data); err == nil {
			if got := p.MarshalCBOR(); !bytes.Equal(got, data) {
				t.Fatalf("SubmitWindowedPoStParams accepted non-canonical %x (re-encodes to %x)", data, got)
			}
		}
		var d DeclareFaultsParams
		if err := d.UnmarshalCBOR(data); err == nil {
			if got := d.MarshalCBOR(); !bytes.Equal(got, data) {
				t.Fatalf("DeclareFaultsParams accepted non-canonical %x (re-encodes to %x)", data, got)
			}
		}
	})
}
