package fullnode

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/network"
)

// The proof types and sector sizes are go-state-types' (abi). What stays
// here is what vsm adds: parsing a size as a config file names it, the
// proof types a new miner gets for a size, and the names the proofs
// library and the damocles vc-processors protocol use.

// sealProofsV1_1 are the current (V1_1) seal proof types, one per size.
var sealProofsV1_1 = []abi.RegisteredSealProof{
	abi.RegisteredSealProof_StackedDrg2KiBV1_1,
	abi.RegisteredSealProof_StackedDrg8MiBV1_1,
	abi.RegisteredSealProof_StackedDrg512MiBV1_1,
	abi.RegisteredSealProof_StackedDrg32GiBV1_1,
	abi.RegisteredSealProof_StackedDrg64GiBV1_1,
}

// ParseSectorSize accepts "2KiB", "8MiB", "512MiB", "32GiB", "64GiB"
// (case-insensitive, abi.SectorSize.ShortString's form) or the size in
// bytes.
func ParseSectorSize(s string) (abi.SectorSize, error) {
	for _, p := range sealProofsV1_1 {
		size, _ := p.SectorSize()
		if strings.EqualFold(s, size.ShortString()) || s == strconv.FormatUint(uint64(size), 10) {
			return size, nil
		}
	}
	return 0, fmt.Errorf("sector size %q: want one of 2KiB, 8MiB, 512MiB, 32GiB, 64GiB", s)
}

// SealProofForSize returns the current (V1_1) seal proof type for a size.
func SealProofForSize(size abi.SectorSize) (abi.RegisteredSealProof, error) {
	for _, p := range sealProofsV1_1 {
		if s, _ := p.SectorSize(); s == size {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no seal proof type for sector size %d", size)
}

// WindowPoStProofForSize returns the current (V1_1) WindowPoSt proof type
// for a sector size, as new miners get it.
func WindowPoStProofForSize(size abi.SectorSize) (abi.RegisteredPoStProof, error) {
	seal, err := SealProofForSize(size)
	if err != nil {
		return 0, err
	}
	return seal.RegisteredWindowPoStProofByNetworkVersion(network.Version21)
}

// WinningPoStProofForSize returns the WinningPoSt type for a sector size.
func WinningPoStProofForSize(size abi.SectorSize) (abi.RegisteredPoStProof, error) {
	seal, err := SealProofForSize(size)
	if err != nil {
		return 0, err
	}
	return seal.RegisteredWinningPoStProof()
}

// IsWindowPoSt reports whether p is a WindowPoSt type (V1 or V1_1).
func IsWindowPoSt(p abi.RegisteredPoStProof) bool {
	_, err := p.ToV1_1PostProof()
	return err == nil
}

// IsWinningPoSt reports whether p is a WinningPoSt type.
func IsWinningPoSt(p abi.RegisteredPoStProof) bool {
	_, known := abi.PoStProofInfos[p]
	return known && !IsWindowPoSt(p)
}

// WinningPoStProofFor returns the WinningPoSt type that goes with a
// WindowPoSt type (as Lotus's miner.WinningPoStProofTypeFromWindowPoStProofType).
func WinningPoStProofFor(window abi.RegisteredPoStProof) (abi.RegisteredPoStProof, error) {
	if !IsWindowPoSt(window) {
		return 0, fmt.Errorf("RegisteredPoStProof %d is not a WindowPoSt type", window)
	}
	size, err := window.SectorSize()
	if err != nil {
		return 0, err
	}
	return WinningPoStProofForSize(size)
}

// ProofsAPIName is the name the proofs library and the damocles
// vc-processors protocol use for a WindowPoSt type
// ("StackedDrgWindow32GiBV1_2"). The chain's V1_1 types are proven by the
// V1_2 circuits.
func ProofsAPIName(p abi.RegisteredPoStProof) (string, error) {
	v11, err := p.ToV1_1PostProof()
	if err != nil {
		return "", fmt.Errorf("unknown WindowPoSt proof type %d", p)
	}
	size, _ := p.SectorSize()
	if p != v11 {
		return "StackedDrgWindow" + size.ShortString() + "V1", nil
	}
	return "StackedDrgWindow" + size.ShortString() + "V1_2", nil
}

// WinningPoStProofName is the proofs-api name of a WinningPoSt type
// ("StackedDrgWinning2KiBV1"), the proof_type of a winning task.
func WinningPoStProofName(p abi.RegisteredPoStProof) (string, error) {
	if !IsWinningPoSt(p) {
		return "", fmt.Errorf("RegisteredPoStProof %d is not a WinningPoSt type", p)
	}
	size, _ := p.SectorSize()
	return "StackedDrgWinning" + size.ShortString() + "V1", nil
}
