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
