// Package bftest holds test helpers over go-bitfield: its set operations
// return errors, which a test's own sets never produce, so these panic
// instead and read as set algebra.
package bftest

import (
	"fmt"
	"slices"

	"github.com/filecoin-project/go-bitfield"
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("bitfield: %v", err))
	}
	return v
}

// Of is the set of bits.
func Of(bits ...uint64) bitfield.BitField { return bitfield.NewFromSet(bits) }

// Bits lists the set bits, ascending.
func Bits(a bitfield.BitField) []uint64 { return must(a.All(1 << 24)) }

// Equal reports whether a and b hold the same bits.
func Equal(a, b bitfield.BitField) bool { return slices.Equal(Bits(a), Bits(b)) }

// Union, Sub and Inter are go-bitfield's MultiMerge, SubtractBitField and
// IntersectBitField.
func Union(a ...bitfield.BitField) bitfield.BitField { return must(bitfield.MultiMerge(a...)) }

// Sub is a minus b.
func Sub(a, b bitfield.BitField) bitfield.BitField { return must(bitfield.SubtractBitField(a, b)) }

// Inter is a and b.
func Inter(a, b bitfield.BitField) bitfield.BitField { return must(bitfield.IntersectBitField(a, b)) }

// Count is the number of set bits.
func Count(a bitfield.BitField) uint64 { return must(a.Count()) }

// Empty reports whether no bit is set.
func Empty(a bitfield.BitField) bool { return must(a.IsEmpty()) }

// Has reports whether bit i is set.
func Has(a bitfield.BitField, i uint64) bool { return must(a.IsSet(i)) }

// Subset reports whether every bit of a is set in b.
func Subset(a, b bitfield.BitField) bool { return Empty(Sub(a, b)) }
