package sectorfile

import (
	"fmt"
	"strconv"
	"strings"
)

// Sector sizes in bytes.
const (
	Size2KiB   uint64 = 2 << 10
	Size8MiB   uint64 = 8 << 20
	Size512MiB uint64 = 512 << 20
	Size32GiB  uint64 = 32 << 30
	Size64GiB  uint64 = 64 << 30
)

// Challenge counts per sector (Filecoin's WINDOW_POST_CHALLENGE_COUNT and
// WINNING_POST_CHALLENGE_COUNT).
const (
	WindowPoStChallenges  = 10
	WinningPoStChallenges = 66
)

// WinningPoStSectorCount is how many sectors one WinningPoSt proves
// (Filecoin's WINNING_POST_SECTOR_COUNT).
const WinningPoStSectorCount = 1

// PoStProof describes a WindowPoSt or WinningPoSt proof type.
type PoStProof struct {
	// Name is the proofs-api (rust-fil-proofs) name used on the child
	// protocol, always the V1_2 form, e.g. "StackedDrgWindow2KiBV1_2".
	Name string
	// ChainID is the chain's RegisteredPoStProof number of the V1_1 type
	// (the one the miner actor records), e.g. 10 for 2 KiB.
	ChainID int64
	// SealProof is the chain's RegisteredSealProof (V1_1) number for sectors
	// of this size.
	SealProof int64
	// SectorSize is the sector size in bytes.
	SectorSize uint64
	// PartitionSectors is the number of sectors in one WindowPoSt partition
	// (for a WinningPoSt type: WinningPoStSectorCount).
	PartitionSectors int
	// Winning marks a WinningPoSt type (Name "StackedDrgWinning...V1",
	// ChainID 0..4).
	Winning bool
}

// Challenges is the number of leaves challenged per sector: 10 for
// WindowPoSt, 66 for WinningPoSt.
func (p PoStProof) Challenges() int {
	if p.Winning {
		return WinningPoStChallenges
	}
	return WindowPoStChallenges
}

// postProofs lists the WindowPoSt types by sector size. The chain IDs follow
// go-state-types/abi: StackedDrgWindow*V1 are 5..9, *V1_1 are 10..14; the
// proofs library names the V1_1 chain types "V1_2" (the grindability fix).
var postProofs = []PoStProof{
	{Name: "StackedDrgWindow2KiBV1_2", ChainID: 10, SealProof: 5, SectorSize: Size2KiB, PartitionSectors: 2},
	{Name: "StackedDrgWindow8MiBV1_2", ChainID: 11, SealProof: 6, SectorSize: Size8MiB, PartitionSectors: 2},
	{Name: "StackedDrgWindow512MiBV1_2", ChainID: 12, SealProof: 7, SectorSize: Size512MiB, PartitionSectors: 2},
	{Name: "StackedDrgWindow32GiBV1_2", ChainID: 13, SealProof: 8, SectorSize: Size32GiB, PartitionSectors: 2349},
	{Name: "StackedDrgWindow64GiBV1_2", ChainID: 14, SealProof: 9, SectorSize: Size64GiB, PartitionSectors: 2300},
}

// winningProofs lists the WinningPoSt types by sector size
// (StackedDrgWinning*V1 are 0..4 in go-state-types/abi; there is only V1).
var winningProofs = []PoStProof{
	{Name: "StackedDrgWinning2KiBV1", ChainID: 0, SealProof: 5, SectorSize: Size2KiB, PartitionSectors: WinningPoStSectorCount, Winning: true},
	{Name: "StackedDrgWinning8MiBV1", ChainID: 1, SealProof: 6, SectorSize: Size8MiB, PartitionSectors: WinningPoStSectorCount, Winning: true},
	{Name: "StackedDrgWinning512MiBV1", ChainID: 2, SealProof: 7, SectorSize: Size512MiB, PartitionSectors: WinningPoStSectorCount, Winning: true},
	{Name: "StackedDrgWinning32GiBV1", ChainID: 3, SealProof: 8, SectorSize: Size32GiB, PartitionSectors: WinningPoStSectorCount, Winning: true},
	{Name: "StackedDrgWinning64GiBV1", ChainID: 4, SealProof: 9, SectorSize: Size64GiB, PartitionSectors: WinningPoStSectorCount, Winning: true},
}

// WinningPoStProofForSize returns the WinningPoSt type of a sector size.
func WinningPoStProofForSize(size uint64) (PoStProof, error) {
	for _, p := range winningProofs {
		if p.SectorSize == size {
			return p, nil
		}
	}
	return PoStProof{}, fmt.Errorf("no WinningPoSt proof type for sector size %d bytes (sizes: 2KiB, 8MiB, 512MiB, 32GiB, 64GiB)", size)
}

// WinningPoStProofFromChain maps a chain RegisteredPoStProof number 0..4 to
// its WinningPoSt type.
func WinningPoStProofFromChain(id int64) (PoStProof, error) {
	for _, p := range winningProofs {
		if p.ChainID == id {
			return p, nil
		}
	}
	return PoStProof{}, fmt.Errorf("chain RegisteredPoStProof %d is not a WinningPoSt type (WinningPoSt types are 0..4)", id)
}

func knownNames() string {
	names := make([]string, len(postProofs))
	for i, p := range postProofs {
		names[i] = p.Name
	}
	for _, p := range winningProofs {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}

// PoStProofByName resolves a PoSt proof type given by its proofs-api name.
// For WindowPoSt, the V1, V1_1 and V1_2 spellings of a size all resolve to
// the V1_2 type, because that is the only one provers still accept.
// WinningPoSt names ("StackedDrgWinning2KiBV1") resolve to their WinningPoSt
// type. A decimal chain RegisteredPoStProof number (0..4 winning, 5..14
// window) is accepted too.
func PoStProofByName(name string) (PoStProof, error) {
	if id, err := strconv.ParseInt(name, 10, 64); err == nil {
		if id >= 0 && id <= 4 {
			return WinningPoStProofFromChain(id)
		}
		return PoStProofFromChain(id)
	}
	for _, p := range winningProofs {
		if p.Name == name {
			return p, nil
		}
	}
	base := name
	for _, suffix := range []string{"V1_2", "V1_1", "V1"} {
		if strings.HasSuffix(base, suffix) {
			base = strings.TrimSuffix(base, suffix)
			break
		}
	}
	for _, p := range postProofs {
		if strings.TrimSuffix(p.Name, "V1_2") == base && base != name {
			return p, nil
		}
	}
	return PoStProof{}, fmt.Errorf("unknown PoSt proof type %q (known: %s)", name, knownNames())
}

// PoStProofFromChain maps a chain RegisteredPoStProof number (V1 5..9 or
// V1_1 10..14) to its proof type.
func PoStProofFromChain(id int64) (PoStProof, error) {
	for _, p := range postProofs {
		if p.ChainID == id || p.ChainID-5 == id {
			return p, nil
		}
	}
	return PoStProof{}, fmt.Errorf("chain RegisteredPoStProof %d is not a WindowPoSt type (WindowPoSt types are 5..14)", id)
}

// PoStProofFromSeal maps a chain RegisteredSealProof number to the WindowPoSt
// type of its sector size. All seal variants of one size (V1, V1_1, synthetic,
// NI-PoRep: 0..19, five sizes each) share it.
func PoStProofFromSeal(sealProof int64) (PoStProof, error) {
	if sealProof < 0 || sealProof > 19 {
		return PoStProof{}, fmt.Errorf("chain RegisteredSealProof %d is not known (known: 0..19)", sealProof)
	}
	return postProofs[sealProof%5], nil
}

// PoStProofForSize returns the WindowPoSt type of a sector size.
func PoStProofForSize(size uint64) (PoStProof, error) {
	for _, p := range postProofs {
		if p.SectorSize == size {
			return p, nil
		}
	}
	return PoStProof{}, fmt.Errorf("no WindowPoSt proof type for sector size %d bytes (sizes: 2KiB, 8MiB, 512MiB, 32GiB, 64GiB)", size)
}

// ParseSize parses a sector size such as "2KiB", "8MiB", "512MiB", "32GiB",
// "64GiB" or a plain number of bytes. Only Filecoin sector sizes are accepted.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mul    uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if !strings.HasSuffix(t, u.suffix) {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), 10, 64)
		if err != nil {
			break
		}
		size := n * u.mul
		if _, err := PoStProofForSize(size); err != nil || n > size {
			return 0, fmt.Errorf("sector size %q is not a Filecoin sector size (use 2KiB, 8MiB, 512MiB, 32GiB or 64GiB)", s)
		}
		return size, nil
	}
	return 0, fmt.Errorf("cannot parse sector size %q (use 2KiB, 8MiB, 512MiB, 32GiB or 64GiB)", s)
}

// FormatSize prints a sector size the way ParseSize reads it.
func FormatSize(size uint64) string {
	switch {
	case size >= 1<<30 && size%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", size>>30)
	case size >= 1<<20 && size%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", size>>20)
	case size >= 1<<10 && size%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", size>>10)
	default:
		return fmt.Sprintf("%dB", size)
	}
}
