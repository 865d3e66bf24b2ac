package fullnode

import (
	"fmt"

	"github.com/vsm-project/vsm/fullnode/bitfield"
)

// Miner actor method numbers (builtin-actors, miner).
const (
	MethodSubmitWindowedPoSt     = 5
	MethodDeclareFaults          = 10
	MethodDeclareFaultsRecovered = 11
)

// PoStPartition names one partition of a WindowPoSt submission and the
// sectors in it that the prover skipped (they become faulty).
type PoStPartition struct {
	Index   uint64
	Skipped bitfield.BitField
}

// PoStProof is one proof blob and its proof type.
type PoStProof struct {
	PoStProof  RegisteredPoStProof
	ProofBytes []byte
}

// SubmitWindowedPoStParams is the miner actor's SubmitWindowedPoSt input.
// ChainCommitEpoch/ChainCommitRand bind the proof to the chain: the epoch
// must be at or after the deadline's challenge epoch and before the epoch
// the message lands, and the randomness is drawn from tickets with the
// PoStChainCommit tag at that epoch.
type SubmitWindowedPoStParams struct {
	Deadline         uint64
	Partitions       []PoStPartition
	Proofs           []PoStProof
	ChainCommitEpoch ChainEpoch
	ChainCommitRand  []byte
}

// MarshalCBOR encodes the params as the chain does (a 5-field tuple).
func (p *SubmitWindowedPoStParams) MarshalCBOR() []byte {
	var e cborEncoder
	e.array(5)
	e.uint(p.Deadline)
	e.array(len(p.Partitions))
	for _, part := range p.Partitions {
		e.array(2)
		e.uint(part.Index)
		e.bytes(part.Skipped.Encode())
	}
	e.array(len(p.Proofs))
	for _, pr := range p.Proofs {
		e.array(2)
		e.int(int64(pr.PoStProof))
		e.bytes(pr.ProofBytes)
	}
	e.int(int64(p.ChainCommitEpoch))
	e.bytes(p.ChainCommitRand)
	return e.buf
}

// UnmarshalCBOR decodes the chain encoding strictly (shortest-form ints,
// canonical RLE+ bitfields, no trailing bytes).
func (p *SubmitWindowedPoStParams) UnmarshalCBOR(b []byte) error {
	d := &cborDecoder{buf: b}
	if _, err := d.array("SubmitWindowedPoStParams", 5); err != nil {
		return err
	}
	var err error
	if p.Deadline, err = d.uint("Deadline"); err != nil {
		return err
	}
	n, err := d.array("Partitions", -1)
	if err != nil {
		return err
	}
	p.Partitions = make([]PoStPartition, n)
	for i := range p.Partitions {
		what := fmt.Sprintf("Partitions[%d]", i)
		if _, err := d.array(what, 2); err != nil {
			return err
		}
		if p.Partitions[i].Index, err = d.uint(what + ".Index"); err != nil {
			return err
		}
		if p.Partitions[i].Skipped, err = decodeBitfield(d, what+".Skipped"); err != nil {
			return err
		}
	}
	if n, err = d.array("Proofs", -1); err != nil {
		return err
	}
	p.Proofs = make([]PoStProof, n)
	for i := range p.Proofs {
		what := fmt.Sprintf("Proofs[%d]", i)
		if _, err := d.array(what, 2); err != nil {
			return err
		}
		t, err := d.int(what + ".PoStProof")
		if err != nil {
			return err
		}
		p.Proofs[i].PoStProof = RegisteredPoStProof(t)
		if p.Proofs[i].ProofBytes, err = d.bytes(what + ".ProofBytes"); err != nil {
			return err
		}
	}
	ce, err := d.int("ChainCommitEpoch")
	if err != nil {
		return err
	}
	p.ChainCommitEpoch = ChainEpoch(ce)
	if p.ChainCommitRand, err = d.bytes("ChainCommitRand"); err != nil {
		return err
	}
	return d.done()
}

// FaultDeclaration marks sectors of one partition faulty (DeclareFaults) or
// recovering (DeclareFaultsRecovered; the chain calls it
// RecoveryDeclaration, with the same shape).
type FaultDeclaration struct {
	Deadline  uint64
	Partition uint64
	Sectors   bitfield.BitField
}

// DeclareFaultsParams is the miner actor's DeclareFaults input. The same
// struct encodes DeclareFaultsRecoveredParams (field Recoveries).
type DeclareFaultsParams struct {
	Faults []FaultDeclaration
}

// MarshalCBOR encodes the params as the chain does: a 1-tuple of a list of
// 3-tuples.
func (p *DeclareFaultsParams) MarshalCBOR() []byte {
	var e cborEncoder
	e.array(1)
	e.array(len(p.Faults))
	for _, f := range p.Faults {
		e.array(3)
		e.uint(f.Deadline)
		e.uint(f.Partition)
		e.bytes(f.Sectors.Encode())
	}
	return e.buf
}

// UnmarshalCBOR decodes the chain encoding strictly.
func (p *DeclareFaultsParams) UnmarshalCBOR(b []byte) error {
	d := &cborDecoder{buf: b}
	if _, err := d.array("DeclareFaultsParams", 1); err != nil {
		return err
	}
	n, err := d.array("Faults", -1)
	if err != nil {
		return err
	}
	p.Faults = make([]FaultDeclaration, n)
	for i := range p.Faults {
		what := fmt.Sprintf("Faults[%d]", i)
		if _, err := d.array(what, 3); err != nil {
			return err
		}
		if p.Faults[i].Deadline, err = d.uint(what + ".Deadline"); err != nil {
			return err
		}
		if p.Faults[i].Partition, err = d.uint(what + ".Partition"); err != nil {
			return err
		}
		if p.Faults[i].Sectors, err = decodeBitfield(d, what+".Sectors"); err != nil {
			return err
		}
	}
	return d.done()
}

func decodeBitfield(d *cborDecoder, what string) (bitfield.BitField, error) {
	raw, err := d.bytes(what)
	if err != nil {
		return bitfield.BitField{}, err
	}
	bf, err := bitfield.Decode(raw)
	if err != nil {
		return bitfield.BitField{}, fmt.Errorf("%s: %w", what, err)
	}
	return bf, nil
}
