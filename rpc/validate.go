package rpc

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/vsm-project/vsm/fsm"
)

// MaxSectorNumber is Filecoin's limit on sector numbers (abi.MaxSectorNumber
// in go-state-types): the chain refuses anything above it, so a location
// for such a sector can only be a typo or an overflow.
const MaxSectorNumber = math.MaxInt64

// MaxNameLen bounds storage instance names: they appear in every location,
// in logs and on the status page.
const MaxNameLen = 128

// MaxPathLen bounds storage paths (Linux's PATH_MAX).
const MaxPathLen = 4096

// CheckName refuses a storage instance name an operator could not read
// back or type: empty, too long, not UTF-8, control characters (NUL
// included), or invisible format characters such as the bidirectional
// overrides that make a name display as another.
func CheckName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s is empty", what)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%s is %d bytes; at most %d", what, len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%s %q is not valid UTF-8", what, name)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%s %q starts or ends with white space", what, name)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("%s %q holds the invisible or control character %U; use letters, digits and punctuation", what, name, r)
		}
	}
	return nil
}

// CheckPath refuses a storage path that is not absolute, holds a NUL or a
// control character, or is longer than the kernel allows.
func CheckPath(path string) error {
	switch {
	case path == "":
		return fmt.Errorf("path is empty; want an absolute path")
	case len(path) > MaxPathLen:
		return fmt.Errorf("path is %d bytes; at most %d", len(path), MaxPathLen)
	case !utf8.ValidString(path):
		return fmt.Errorf("path %q is not valid UTF-8", path)
	case !filepath.IsAbs(path):
		return fmt.Errorf("path %q: want an absolute path", path)
	}
	for _, r := range path {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("path %q holds the control or invisible character %U", path, r)
		}
	}
	return nil
}

// CheckSector refuses sector numbers the chain cannot have.
func CheckSector(id fsm.SectorID) error {
	if id.Number > MaxSectorNumber {
		return fmt.Errorf("sector number %d is above Filecoin's limit %d (2^63-1)", id.Number, uint64(MaxSectorNumber))
	}
	return nil
}

// checkStorage validates an instance before it is written.
func checkStorage(in fsm.StorageInstance) error {
	if err := CheckName("storage name", in.Name); err != nil {
		return err
	}
	return CheckPath(in.Path)
}

// sealProofSizes is the sector size of each seal proof type (go-state-types
// abi.RegisteredSealProof): V1 0-4, V1_1 5-9, V1_1 synthetic PoRep 10-14,
// V1_2 NI-PoRep 15-19, each in the order 2KiB, 8MiB, 512MiB, 32GiB, 64GiB.
var sealProofSizes = [5]uint64{2 << 10, 8 << 20, 512 << 20, 32 << 30, 64 << 30}

// CheckSealProof refuses a location whose seal proof type is for another
// sector size than its miner's: the runner would send the prover the wrong
// proof type and every proof of the sector would fail. A location with
// neither proof type nor CommR (proof 0, zero CommR) states no proof type.
func CheckSealProof(l fsm.SectorLocation, minerSectorSize uint64) error {
	if l.SealProof == 0 && l.CommR == ([32]byte{}) {
		return nil
	}
	if l.SealProof >= 20 {
		return fmt.Errorf("seal proof type %d is not one Filecoin defines (0-19)", l.SealProof)
	}
	if size := sealProofSizes[l.SealProof%5]; size != minerSectorSize {
		return fmt.Errorf("seal proof type %d is for %s sectors, but the miner t0%d has %s sectors: give the proof type of its sectors (the chain's StateSectorGetInfo has it)", l.SealProof, sizeString(size), l.SectorID.Miner, sizeString(minerSectorSize))
	}
	return nil
}

func sizeString(b uint64) string {
	for _, u := range []struct {
		n    uint64
		unit string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if b >= u.n && b%u.n == 0 {
			return fmt.Sprintf("%d%s", b/u.n, u.unit)
		}
	}
	return fmt.Sprintf("%d B", b)
}
