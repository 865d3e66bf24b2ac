package devnet

import (
	"fmt"

	"github.com/filecoin-project/go-bitfield"
)

// bits runs go-bitfield's fallible set operations for one piece of work
// and keeps the first error, so a sequence of operations reads as the
// actor's code does and is checked once at the end (the Go actors'
// RequireNoErr, as ErrIllegalState). After the first error every operation
// returns the empty set.
type bits struct{ err error }

func (b *bits) keep(bf bitfield.BitField, err error) bitfield.BitField {
	if b.err == nil && err != nil {
		b.err = err
	}
	if b.err != nil {
		return bitfield.New()
	}
	return bf
}

func (b *bits) union(bfs ...bitfield.BitField) bitfield.BitField {
	if b.err != nil {
		return bitfield.New()
	}
	return b.keep(bitfield.MultiMerge(bfs...))
}

func (b *bits) sub(x, y bitfield.BitField) bitfield.BitField {
	if b.err != nil {
		return bitfield.New()
	}
	return b.keep(bitfield.SubtractBitField(x, y))
}

func (b *bits) inter(x, y bitfield.BitField) bitfield.BitField {
	if b.err != nil {
		return bitfield.New()
	}
	return b.keep(bitfield.IntersectBitField(x, y))
}

func (b *bits) count(x bitfield.BitField) uint64 {
	if b.err != nil {
		return 0
	}
	n, err := x.Count()
	if err != nil {
		b.err = err
	}
	return n
}

func (b *bits) empty(x bitfield.BitField) bool {
	if b.err != nil {
		return true
	}
	e, err := x.IsEmpty()
	if err != nil {
		b.err = err
	}
	return e
}

func (b *bits) isSet(x bitfield.BitField, i uint64) bool {
	if b.err != nil {
		return false
	}
	ok, err := x.IsSet(i)
	if err != nil {
		b.err = err
	}
	return ok
}

// subset reports whether every bit of x is set in y.
func (b *bits) subset(x, y bitfield.BitField) bool { return b.empty(b.sub(x, y)) }

// all lists the set bits, ascending.
func (b *bits) all(x bitfield.BitField) []uint64 {
	if b.err != nil {
		return nil
	}
	out, err := x.All(1 << 24)
	if err != nil {
		b.err = err
	}
	return out
}

// bitString renders a set compactly for messages and logs, e.g.
// "{0-2,8,9}".
func bitString(x bitfield.BitField) string {
	it, err := x.RunIterator()
	if err != nil {
		return fmt.Sprintf("{invalid: %v}", err)
	}
	s, pos := "{", uint64(0)
	for it.HasNext() {
		r, err := it.NextRun()
		if err != nil {
			return fmt.Sprintf("{invalid: %v}", err)
		}
		if r.Val {
			if len(s) > 1 {
				s += ","
			}
			if r.Len == 1 {
				s += fmt.Sprint(pos)
			} else {
				s += fmt.Sprintf("%d-%d", pos, pos+r.Len-1)
			}
		}
		pos += r.Len
	}
	return s + "}"
}

// stateBits is for the devnet's own state, whose bitfields it builds from
// sets itself: an error there is a broken invariant, not an input to judge.
func stateBits[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("devnet state: bitfield: %v", err))
	}
	return v
}
