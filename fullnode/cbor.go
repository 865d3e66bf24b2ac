package fullnode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A minimal CBOR (RFC 8949) writer and reader for the actor method params
// vsm sends: Filecoin encodes them as "tuple" structs, i.e. CBOR arrays of
// unsigned/negative integers, byte strings and nested arrays, always with
// the shortest length encoding (DAG-CBOR). Nothing else (maps, floats,
// tags, indefinite lengths) is needed, and the reader rejects it.

const (
	cborUint  = 0
	cborNeg   = 1
	cborBytes = 2
	cborArray = 4
)

// maxCBORItems bounds array lengths and byte string sizes on decode, so a
// hostile length prefix cannot make us allocate gigabytes.
const maxCBORItems = 1 << 20

type cborEncoder struct{ buf []byte }

func (e *cborEncoder) head(major byte, n uint64) {
	m := major << 5
	switch {
	case n < 24:
		e.buf = append(e.buf, m|byte(n))
	case n <= math.MaxUint8:
		e.buf = append(e.buf, m|24, byte(n))
	case n <= math.MaxUint16:
		e.buf = append(e.buf, m|25)
		e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(n))
	case n <= math.MaxUint32:
		e.buf = append(e.buf, m|26)
		e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(n))
	default:
		e.buf = append(e.buf, m|27)
		e.buf = binary.BigEndian.AppendUint64(e.buf, n)
	}
}

func (e *cborEncoder) uint(n uint64) { e.head(cborUint, n) }

func (e *cborEncoder) int(n int64) {
	if n >= 0 {
		e.head(cborUint, uint64(n))
		return
	}
	e.head(cborNeg, uint64(-(n + 1)))
}

func (e *cborEncoder) bytes(b []byte) {
	e.head(cborBytes, uint64(len(b)))
	e.buf = append(e.buf, b...)
}

func (e *cborEncoder) array(n int) { e.head(cborArray, uint64(n)) }

type cborDecoder struct {
	buf []byte
	pos int
}

var errCBORShort = errors.New("cbor: unexpected end of input")

func (d *cborDecoder) head() (major byte, n uint64, err error) {
	if d.pos >= len(d.buf) {
		return 0, 0, errCBORShort
	}
	b := d.buf[d.pos]
	d.pos++
	major, info := b>>5, b&0x1f
	var size int
	switch {
	case info < 24:
		return major, uint64(info), nil
	case info == 24:
		size = 1
	case info == 25:
		size = 2
	case info == 26:
		size = 4
	case info == 27:
		size = 8
	default:
		return 0, 0, fmt.Errorf("cbor: unsupported additional info %d at byte %d", info, d.pos-1)
	}
	if d.pos+size > len(d.buf) {
		return 0, 0, errCBORShort
	}
	var v uint64
	for _, x := range d.buf[d.pos : d.pos+size] {
		v = v<<8 | uint64(x)
	}
	d.pos += size
	// DAG-CBOR requires the shortest form.
	minimal := map[int]uint64{1: 24, 2: math.MaxUint8 + 1, 4: math.MaxUint16 + 1, 8: math.MaxUint32 + 1}[size]
	if v < minimal {
		return 0, 0, fmt.Errorf("cbor: non-minimal integer encoding at byte %d", d.pos-size-1)
	}
	return major, v, nil
}

func (d *cborDecoder) expect(want byte, what string) (uint64, error) {
	major, n, err := d.head()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if major != want {
		return 0, fmt.Errorf("%s: cbor major type %d, want %d", what, major, want)
	}
	return n, nil
}

func (d *cborDecoder) uint(what string) (uint64, error) { return d.expect(cborUint, what) }

func (d *cborDecoder) int(what string) (int64, error) {
	major, n, err := d.head()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	switch major {
	case cborUint:
		if n > math.MaxInt64 {
			return 0, fmt.Errorf("%s: %d overflows int64", what, n)
		}
		return int64(n), nil
	case cborNeg:
		if n > math.MaxInt64 {
			return 0, fmt.Errorf("%s: -1-%d overflows int64", what, n)
		}
		return -1 - int64(n), nil
	}
	return 0, fmt.Errorf("%s: cbor major type %d, want an integer", what, major)
}

func (d *cborDecoder) bytes(what string) ([]byte, error) {
	n, err := d.expect(cborBytes, what)
	if err != nil {
		return nil, err
	}
	if n > maxCBORItems || uint64(len(d.buf)-d.pos) < n {
		return nil, fmt.Errorf("%s: byte string of %d bytes: %w", what, n, errCBORShort)
	}
	out := append([]byte(nil), d.buf[d.pos:d.pos+int(n)]...)
	d.pos += int(n)
	return out, nil
}

func (d *cborDecoder) array(what string, want int) (int, error) {
	n, err := d.expect(cborArray, what)
	if err != nil {
		return 0, err
	}
	if n > maxCBORItems || n > uint64(len(d.buf)-d.pos) {
		return 0, fmt.Errorf("%s: array of %d items is longer than the input", what, n)
	}
	if want >= 0 && n != uint64(want) {
		return 0, fmt.Errorf("%s: tuple of %d fields, want %d", what, n, want)
	}
	return int(n), nil
}

func (d *cborDecoder) done() error {
	if d.pos != len(d.buf) {
		return fmt.Errorf("cbor: %d trailing bytes", len(d.buf)-d.pos)
	}
	return nil
}
