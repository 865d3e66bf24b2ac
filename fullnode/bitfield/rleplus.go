package bitfield

import (
	"errors"
	"fmt"
	"math"
)

// RLE+ (Filecoin spec, appendix "Data Structures"):
//
//	<encoding>     ::= <header> <blocks>
//	<header>       ::= <version> <bit>        version is "00"; bit is the value of the first run
//	<block_single> ::= "1"                    a run of length 1
//	<block_short>  ::= "01" <bit>{4}          a run of length 2..15
//	<block_long>   ::= "00" <unsigned_varint> a run of length >= 16
//
// Bits are packed LSB first ("LSB 0 bit numbering"): the first bit of the
// stream is bit 0 of byte 0. Multi-bit fields (the 4-bit length, each varint
// byte) are also written least significant bit first.
//
// The spec says the encoding is unique. Encode produces that unique form,
// and Decode accepts only it, because a decoder that accepts several byte
// strings for one set lets two honest parties disagree about a message's
// bytes (and so its CID). Decode rejects:
//   - a version other than 0;
//   - a short block of length 0 or 1, or a long block shorter than 16;
//   - a varint that is not minimal or does not fit in 64 bits;
//   - runs whose total length overflows a uint64;
//   - a final run of zeros (trailing zeros are never encoded);
//   - set bits after the end of the runs, or trailing zero bytes.
//
// The end of the runs is where the remaining input is all zero bits: read
// as a block, zeros look like a long block of length 0.

// MaxEncodedSize is the largest RLE+ input Decode accepts, the same limit
// go-bitfield applies to bitfields in chain messages and state.
const MaxEncodedSize = 32 << 10

// ErrDecode wraps every RLE+ decoding failure.
var ErrDecode = errors.New("invalid RLE+ bitfield")

type bitWriter struct {
	buf  []byte
	nbit uint
}

func (w *bitWriter) put(v uint64, n uint) {
	for i := uint(0); i < n; i++ {
		if w.nbit%8 == 0 {
			w.buf = append(w.buf, 0)
		}
		if v&(1<<i) != 0 {
			w.buf[w.nbit/8] |= 1 << (w.nbit % 8)
		}
		w.nbit++
	}
}

// Encode returns the canonical RLE+ bytes of the set. The empty set encodes
// as zero bytes.
func (b BitField) Encode() []byte {
	runs := b.Runs()
	if len(runs) == 0 {
		return []byte{}
	}
	w := &bitWriter{}
	w.put(0, 2) // version
	if runs[0].Val {
		w.put(1, 1)
	} else {
		w.put(0, 1)
	}
	var vb [10]byte
	for _, r := range runs {
		switch {
		case r.Len == 1:
			w.put(1, 1)
		case r.Len < 16:
			w.put(0b10, 2) // stream order "0","1"
			w.put(r.Len, 4)
		default:
			w.put(0, 2)
			n := putUvarint(vb[:], r.Len)
			for _, x := range vb[:n] {
				w.put(uint64(x), 8)
			}
		}
	}
	// Zero bits past the last run read as the terminator, so trailing zero
	// bytes (e.g. the high bits of a final varint) are dropped: the
	// canonical form never ends in a zero byte.
	buf := w.buf
	for len(buf) > 0 && buf[len(buf)-1] == 0 {
		buf = buf[:len(buf)-1]
	}
	return buf
}

func putUvarint(buf []byte, x uint64) int {
	i := 0
	for x >= 0x80 {
		buf[i] = byte(x) | 0x80
		x >>= 7
		i++
	}
	buf[i] = byte(x)
	return i + 1
}

type bitReader struct {
	buf []byte
	pos uint // next bit
}

// get reads n bits LSB first; bits past the end read as zero.
func (r *bitReader) get(n uint) uint64 {
	var v uint64
	for i := uint(0); i < n; i++ {
		byteIdx := r.pos / 8
		if byteIdx < uint(len(r.buf)) && r.buf[byteIdx]&(1<<(r.pos%8)) != 0 {
			v |= 1 << i
		}
		r.pos++
	}
	return v
}

// restZero reports whether every bit from the current position on is zero.
func (r *bitReader) restZero() bool {
	total := uint(len(r.buf)) * 8
	for p := r.pos; p < total; p++ {
		if r.buf[p/8]&(1<<(p%8)) != 0 {
			return false
		}
	}
	return true
}

func (r *bitReader) varint() (uint64, error) {
	var x uint64
	var s uint
	for i := 0; ; i++ {
		b := r.get(8)
		if i == 9 && b > 1 {
			return 0, fmt.Errorf("%w: run length varint overflows 64 bits", ErrDecode)
		}
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, fmt.Errorf("%w: run length varint is not minimal", ErrDecode)
			}
			return x | b<<s, nil
		}
		x |= (b & 0x7f) << s
		s += 7
	}
}

// Decode parses canonical RLE+ bytes.
func Decode(buf []byte) (BitField, error) {
	if len(buf) == 0 {
		return BitField{}, nil
	}
	if len(buf) > MaxEncodedSize {
		return BitField{}, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrDecode, len(buf), MaxEncodedSize)
	}
	if buf[len(buf)-1] == 0 {
		return BitField{}, fmt.Errorf("%w: trailing zero byte", ErrDecode)
	}
	r := &bitReader{buf: buf}
	if v := r.get(2); v != 0 {
		return BitField{}, fmt.Errorf("%w: version %d, want 0", ErrDecode, v)
	}
	val := r.get(1) == 1
	var (
		out  []interval
		pos  uint64
		last Run
	)
	for {
		var n uint64
		switch {
		case r.get(1) == 1:
			n = 1
		case r.get(1) == 1:
			n = r.get(4)
			if n < 2 {
				return BitField{}, fmt.Errorf("%w: short block of length %d at bit %d", ErrDecode, n, r.pos-6)
			}
		default:
			start := r.pos - 2
			v, err := r.varint()
			if err != nil {
				return BitField{}, err
			}
			if v == 0 {
				// End of runs: everything after must be padding.
				if !r.restZero() {
					return BitField{}, fmt.Errorf("%w: data after the end of runs at bit %d", ErrDecode, start)
				}
				if last.Len == 0 {
					return BitField{}, fmt.Errorf("%w: header without runs (the empty set is zero bytes)", ErrDecode)
				}
				if !last.Val {
					return BitField{}, fmt.Errorf("%w: ends with a run of zeros", ErrDecode)
				}
				return BitField{iv: out}, nil
			}
			if v < 16 {
				return BitField{}, fmt.Errorf("%w: long block of length %d (< 16) at bit %d", ErrDecode, v, start)
			}
			n = v
		}
		if pos > math.MaxUint64-n {
			return BitField{}, fmt.Errorf("%w: runs overflow uint64", ErrDecode)
		}
		if val {
			out = append(out, interval{pos, pos + n})
		}
		pos += n
		last = Run{Val: val, Len: n}
		val = !val
		if r.pos > uint(len(buf))*8+8*11 {
			// Unreachable for valid input: reading zeros past the end
			// always yields the terminator. Guard against a logic slip.
			return BitField{}, fmt.Errorf("%w: read past end", ErrDecode)
		}
	}
}
