package fullnode

import (
	"fmt"
	"strings"
)

// Sector sizes the chain knows.
const (
	SectorSize2KiB   uint64 = 2 << 10
	SectorSize8MiB   uint64 = 8 << 20
	SectorSize512MiB uint64 = 512 << 20
	SectorSize32GiB  uint64 = 32 << 30
	SectorSize64GiB  uint64 = 64 << 30
)

// sizeTable lists, per sector size, its name, the WindowPoSt partition size
// (DESIGN section 1) and the proof type numbers.
var sizeTable = []struct {
	size       uint64
	name       string
	partition  uint64
	sealV1_1   RegisteredSealProof
	windowV1   RegisteredPoStProof
	windowV1_1 RegisteredPoStProof
	winningV1  RegisteredPoStProof
}{
	{SectorSize2KiB, "2KiB", 2, 5, 5, 10, 0},
	{SectorSize8MiB, "8MiB", 2, 6, 6, 11, 1},
	{SectorSize512MiB, "512MiB", 2, 7, 7, 12, 2},
	{SectorSize32GiB, "32GiB", 2349, 8, 8, 13, 3},
	{SectorSize64GiB, "64GiB", 2300, 9, 9, 14, 4},
}

// ParseSectorSize accepts "2KiB", "8MiB", "512MiB", "32GiB", "64GiB"
// (case-insensitive) or the size in bytes.
func ParseSectorSize(s string) (uint64, error) {
	for _, r := range sizeTable {
		if strings.EqualFold(s, r.name) || s == fmt.Sprint(r.size) {
			return r.size, nil
		}
	}
	return 0, fmt.Errorf("sector size %q: want one of 2KiB, 8MiB, 512MiB, 32GiB, 64GiB", s)
}

// SectorSizeString names a sector size ("32GiB"), or gives bytes if unknown.
func SectorSizeString(size uint64) string {
	for _, r := range sizeTable {
		if r.size == size {
			return r.name
		}
	}
	return fmt.Sprintf("%dB", size)
}

// RegisteredSealProof is the seal proof type of a sector.
type RegisteredSealProof int64

// SealProofForSize returns the current (V1_1) seal proof type for a size.
func SealProofForSize(size uint64) (RegisteredSealProof, error) {
	for _, r := range sizeTable {
		if r.size == size {
			return r.sealV1_1, nil
		}
	}
	return 0, fmt.Errorf("no seal proof type for sector size %d", size)
}

// RegisteredPoStProof is a PoSt proof type.
type RegisteredPoStProof int64

// WindowPoStProofForSize returns the current (V1_1) WindowPoSt proof type
// for a sector size, as new miners get it.
func WindowPoStProofForSize(size uint64) (RegisteredPoStProof, error) {
	for _, r := range sizeTable {
		if r.size == size {
			return r.windowV1_1, nil
		}
	}
	return 0, fmt.Errorf("no WindowPoSt proof type for sector size %d", size)
}

func (p RegisteredPoStProof) row() (int, bool) {
	for i, r := range sizeTable {
		if r.windowV1 == p || r.windowV1_1 == p {
			return i, true
		}
	}
	return 0, false
}

// SectorSize is the sector size a WindowPoSt proof type proves.
func (p RegisteredPoStProof) SectorSize() (uint64, error) {
	i, ok := p.row()
	if !ok {
		return 0, fmt.Errorf("unknown WindowPoSt proof type %d", p)
	}
	return sizeTable[i].size, nil
}

// PartitionSectors is the number of sectors in a full partition.
func (p RegisteredPoStProof) PartitionSectors() (uint64, error) {
	i, ok := p.row()
	if !ok {
		return 0, fmt.Errorf("unknown WindowPoSt proof type %d", p)
	}
	return sizeTable[i].partition, nil
}

// ProofsAPIName is the name the proofs library and the damocles
// vc-processors protocol use ("StackedDrgWindow32GiBV1_2"). The chain's
// V1_1 types are proven by the V1_2 circuits.
func (p RegisteredPoStProof) ProofsAPIName() (string, error) {
	i, ok := p.row()
	if !ok {
		return "", fmt.Errorf("unknown WindowPoSt proof type %d", p)
	}
	r := sizeTable[i]
	if p == r.windowV1 {
		return "StackedDrgWindow" + r.name + "V1", nil
	}
	return "StackedDrgWindow" + r.name + "V1_2", nil
}

// IsWinning reports whether p is a WinningPoSt type (0..4).
func (p RegisteredPoStProof) IsWinning() bool {
	for _, r := range sizeTable {
		if r.winningV1 == p {
			return true
		}
	}
	return false
}

// WinningPoStProof returns the WinningPoSt type that goes with a WindowPoSt
// type (as the miner actor's WinningPoStProofTypeFromWindowPoStProofType).
func (p RegisteredPoStProof) WinningPoStProof() (RegisteredPoStProof, error) {
	i, ok := p.row()
	if !ok {
		return 0, fmt.Errorf("unknown WindowPoSt proof type %d", p)
	}
	return sizeTable[i].winningV1, nil
}

// WinningPoStProofName is the proofs-api name of a WinningPoSt type
// ("StackedDrgWinning2KiBV1"), the proof_type of a winning task.
func (p RegisteredPoStProof) WinningPoStProofName() (string, error) {
	for _, r := range sizeTable {
		if r.winningV1 == p {
			return "StackedDrgWinning" + r.name + "V1", nil
		}
	}
	return "", fmt.Errorf("RegisteredPoStProof %d is not a WinningPoSt type (0..4)", p)
}

// WinningPoStProofForSize returns the WinningPoSt type for a sector size.
func WinningPoStProofForSize(size uint64) (RegisteredPoStProof, error) {
	for _, r := range sizeTable {
		if r.size == size {
			return r.winningV1, nil
		}
	}
	return 0, fmt.Errorf("no WinningPoSt proof type for sector size %d", size)
}
