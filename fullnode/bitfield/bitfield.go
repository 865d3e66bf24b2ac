// Package bitfield implements Filecoin's RLE+ bitfield: the set-of-integers
// type the chain uses for sector numbers and partition indexes.
//
// A BitField is an immutable value held as sorted, non-overlapping,
// non-adjacent intervals, so a partition of 2349 consecutive sectors costs
// one interval and set operations cost O(intervals), not O(bits).
//
// Wire forms:
//   - RLE+ bytes (Encode/Decode), as in CBOR message params and actor state;
//     see rleplus.go for the format and the strictness rules.
//   - JSON, as the Lotus/venus JSON-RPC API writes it: an array of run
//     lengths that always starts with a run of zeros, e.g. {0,1,2,8,9} is
//     [0,3,5,2] and the empty set is [0]. UnmarshalJSON also accepts a
//     base64 string of RLE+ bytes (the form some tools and older notes use).
package bitfield

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// interval is the half-open range [start, end) of set bits. end never
// exceeds math.MaxUint64, so the largest representable bit is
// math.MaxUint64-1, the same limit go-bitfield enforces (the sum of all run
// lengths must fit in a uint64).
type interval struct{ start, end uint64 }

// BitField is a set of uint64 values. The zero value is the empty set.
// Methods never modify the receiver.
type BitField struct {
	iv []interval
}

// Run is one run of equal bits, as RLE+ stores them.
type Run struct {
	Val bool
	Len uint64
}

// ErrTooLarge is returned for a bit index that cannot be represented
// (math.MaxUint64).
var ErrTooLarge = errors.New("bitfield: bit index math.MaxUint64 cannot be represented")

// New returns the set of the given bits, in any order, duplicates allowed.
// It panics if a bit is math.MaxUint64; use FromSet for untrusted input.
func New(bits ...uint64) BitField {
	bf, err := FromSet(bits)
	if err != nil {
		panic(err)
	}
	return bf
}

// FromSet returns the set of the given bits, in any order, duplicates allowed.
func FromSet(bits []uint64) (BitField, error) {
	if len(bits) == 0 {
		return BitField{}, nil
	}
	s := slices.Clone(bits)
	slices.Sort(s)
	var out []interval
	for _, b := range s {
		if b == math.MaxUint64 {
			return BitField{}, ErrTooLarge
		}
		if n := len(out); n > 0 && b <= out[n-1].end {
			if b == out[n-1].end {
				out[n-1].end++
			}
			continue
		}
		out = append(out, interval{b, b + 1})
	}
	return BitField{iv: out}, nil
}

// NewRange returns the set [start, start+count).
func NewRange(start, count uint64) (BitField, error) {
	if count == 0 {
		return BitField{}, nil
	}
	if start > math.MaxUint64-count {
		return BitField{}, ErrTooLarge
	}
	return BitField{iv: []interval{{start, start + count}}}, nil
}

// FromRuns builds a set from alternating runs. Runs must alternate in value
// and have non-zero length; the total length must fit in a uint64.
func FromRuns(runs []Run) (BitField, error) {
	var out []interval
	var pos uint64
	for i, r := range runs {
		if r.Len == 0 {
			return BitField{}, fmt.Errorf("bitfield: run %d has zero length", i)
		}
		if i > 0 && r.Val == runs[i-1].Val {
			return BitField{}, fmt.Errorf("bitfield: runs %d and %d have the same value", i-1, i)
		}
		if pos > math.MaxUint64-r.Len {
			return BitField{}, errors.New("bitfield: runs overflow uint64")
		}
		if r.Val {
			out = append(out, interval{pos, pos + r.Len})
		}
		pos += r.Len
	}
	return BitField{iv: out}, nil
}

// Runs returns the set as alternating runs starting at bit 0, ending with a
// run of ones (trailing zeros are not a run). The empty set has no runs.
func (b BitField) Runs() []Run {
	var out []Run
	var pos uint64
	for _, iv := range b.iv {
		if iv.start > pos {
			out = append(out, Run{Val: false, Len: iv.start - pos})
		}
		out = append(out, Run{Val: true, Len: iv.end - iv.start})
		pos = iv.end
	}
	return out
}

// Count returns the number of set bits.
func (b BitField) Count() uint64 {
	var n uint64
	for _, iv := range b.iv {
		n += iv.end - iv.start
	}
	return n
}

// IsEmpty reports whether no bit is set.
func (b BitField) IsEmpty() bool { return len(b.iv) == 0 }

// Has reports whether bit i is set.
func (b BitField) Has(i uint64) bool {
	k, _ := slices.BinarySearchFunc(b.iv, i, func(iv interval, t uint64) int {
		switch {
		case iv.end <= t:
			return -1
		case iv.start > t:
			return 1
		}
		return 0
	})
	return k < len(b.iv) && b.iv[k].start <= i && i < b.iv[k].end
}

// First returns the lowest set bit.
func (b BitField) First() (uint64, bool) {
	if len(b.iv) == 0 {
		return 0, false
	}
	return b.iv[0].start, true
}

// Last returns the highest set bit.
func (b BitField) Last() (uint64, bool) {
	if len(b.iv) == 0 {
		return 0, false
	}
	return b.iv[len(b.iv)-1].end - 1, true
}

// All returns the set bits in ascending order. It refuses to expand more
// than max bits, because a tiny RLE+ input can describe 2^64 bits.
func (b BitField) All(max uint64) ([]uint64, error) {
	n := b.Count()
	if n > max {
		return nil, fmt.Errorf("bitfield: %d bits set, more than the limit of %d", n, max)
	}
	out := make([]uint64, 0, n)
	for _, iv := range b.iv {
		for i := iv.start; i < iv.end; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

// ForEach calls fn for every set bit in ascending order and stops at the
// first error, which it returns.
func (b BitField) ForEach(fn func(uint64) error) error {
	for _, iv := range b.iv {
		for i := iv.start; i < iv.end; i++ {
			if err := fn(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// Equal reports whether both sets hold the same bits.
func (b BitField) Equal(o BitField) bool {
	return slices.Equal(b.iv, o.iv)
}

// IsSubsetOf reports whether every bit of b is set in o.
func (b BitField) IsSubsetOf(o BitField) bool {
	return Subtract(b, o).IsEmpty()
}

// Union returns the bits set in any of the inputs.
func Union(bfs ...BitField) BitField {
	var all []interval
	for _, bf := range bfs {
		all = append(all, bf.iv...)
	}
	if len(all) == 0 {
		return BitField{}
	}
	slices.SortFunc(all, func(a, b interval) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	out := []interval{all[0]}
	for _, iv := range all[1:] {
		last := &out[len(out)-1]
		if iv.start <= last.end {
			last.end = max(last.end, iv.end)
			continue
		}
		out = append(out, iv)
	}
	return BitField{iv: out}
}

// Intersect returns the bits set in both a and b.
func Intersect(a, b BitField) BitField {
	var out []interval
	i, j := 0, 0
	for i < len(a.iv) && j < len(b.iv) {
		lo := max(a.iv[i].start, b.iv[j].start)
		hi := min(a.iv[i].end, b.iv[j].end)
		if lo < hi {
			out = append(out, interval{lo, hi})
		}
		if a.iv[i].end < b.iv[j].end {
			i++
		} else {
			j++
		}
	}
	return BitField{iv: out}
}

// Subtract returns the bits set in a and not in b, e.g. a partition's live
// sectors minus its faults.
func Subtract(a, b BitField) BitField {
	var out []interval
	j := 0
	for _, iv := range a.iv {
		cur := iv
		for j < len(b.iv) && b.iv[j].end <= cur.start {
			j++
		}
		k := j
		for k < len(b.iv) && b.iv[k].start < cur.end {
			if b.iv[k].start > cur.start {
				out = append(out, interval{cur.start, b.iv[k].start})
			}
			if b.iv[k].end >= cur.end {
				cur.start = cur.end
				break
			}
			cur.start = b.iv[k].end
			k++
		}
		if cur.start < cur.end {
			out = append(out, cur)
		}
	}
	return BitField{iv: out}
}

// String renders the set compactly, e.g. "{0-2,8,9}", for logs and errors.
func (b BitField) String() string {
	var sb strings.Builder
	sb.WriteByte('{')
	for k, iv := range b.iv {
		if k > 0 {
			sb.WriteByte(',')
		}
		switch iv.end - iv.start {
		case 1:
			fmt.Fprintf(&sb, "%d", iv.start)
		case 2:
			fmt.Fprintf(&sb, "%d,%d", iv.start, iv.start+1)
		default:
			fmt.Fprintf(&sb, "%d-%d", iv.start, iv.end-1)
		}
	}
	sb.WriteByte('}')
	return sb.String()
}

// MarshalJSON writes the Lotus wire form: run lengths starting with zeros.
func (b BitField) MarshalJSON() ([]byte, error) {
	runs := b.Runs()
	lens := make([]uint64, 0, len(runs)+1)
	if len(runs) == 0 || runs[0].Val {
		lens = append(lens, 0)
	}
	for _, r := range runs {
		lens = append(lens, r.Len)
	}
	return json.Marshal(lens)
}

// UnmarshalJSON accepts the Lotus run-length array, a base64 string of
// RLE+ bytes, or null (the empty set).
func (b *BitField) UnmarshalJSON(data []byte) error {
	s := strings.TrimSpace(string(data))
	switch {
	case s == "null":
		*b = BitField{}
		return nil
	case strings.HasPrefix(s, `"`):
		var str string
		if err := json.Unmarshal(data, &str); err != nil {
			return fmt.Errorf("bitfield: %w", err)
		}
		raw, err := base64.StdEncoding.DecodeString(str)
		if err != nil {
			return fmt.Errorf("bitfield: base64 RLE+ string: %w", err)
		}
		bf, err := Decode(raw)
		if err != nil {
			return err
		}
		*b = bf
		return nil
	}
	var lens []uint64
	if err := json.Unmarshal(data, &lens); err != nil {
		return fmt.Errorf("bitfield: want an array of run lengths or a base64 string: %w", err)
	}
	runs := make([]Run, 0, len(lens))
	val := false
	for i, l := range lens {
		if l == 0 {
			if i != 0 {
				return fmt.Errorf("bitfield: run %d has zero length (only the first run may)", i)
			}
		} else {
			runs = append(runs, Run{Val: val, Len: l})
		}
		val = !val
	}
	bf, err := FromRuns(runs)
	if err != nil {
		return err
	}
	*b = bf
	return nil
}
