package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// encoder appends the compact binary form used by commands and snapshots:
// unsigned varints for integers, length-prefixed strings.
type encoder struct{ buf []byte }

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) varint(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }
func (e *encoder) byte(v uint8)     { e.buf = append(e.buf, v) }
func (e *encoder) bool(v bool) {
	if v {
		e.buf = append(e.buf, 1)
		return
	}
	e.buf = append(e.buf, 0)
}
func (e *encoder) string(s string) {
	e.uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}
func (e *encoder) bytes32(b [32]byte) { e.buf = append(e.buf, b[:]...) }

var errTruncated = errors.New("truncated")

// decoder reads what encoder wrote. The first error sticks, so callers
// decode a whole record and check err once.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) byte() uint8 {
	if d.err != nil {
		return 0
	}
	if len(d.buf) < 1 {
		d.fail(errTruncated)
		return 0
	}
	v := d.buf[0]
	d.buf = d.buf[1:]
	return v
}

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail(errors.New("invalid bool"))
		return false
	}
}

func (d *decoder) uint32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.fail(fmt.Errorf("value %d overflows uint32", v))
	}
	return uint32(v)
}

func (d *decoder) uint8() uint8 {
	v := d.uvarint()
	if v > math.MaxUint8 {
		d.fail(fmt.Errorf("value %d overflows uint8", v))
	}
	return uint8(v)
}

// count reads a collection length and rejects one that cannot fit in what
// is left, so a corrupt length cannot make us allocate gigabytes.
func (d *decoder) count(minElemSize int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.buf)/max(minElemSize, 1)) {
		d.fail(fmt.Errorf("count %d exceeds remaining %d bytes", n, len(d.buf)))
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.buf)) {
		d.fail(errTruncated)
		return ""
	}
	s := string(d.buf[:n])
	d.buf = d.buf[n:]
	return s
}

func (d *decoder) bytes32() (b [32]byte) {
	if d.err != nil {
		return b
	}
	if len(d.buf) < 32 {
		d.fail(errTruncated)
		return b
	}
	copy(b[:], d.buf[:32])
	d.buf = d.buf[32:]
	return b
}

// done reports trailing garbage as an error: a command is exactly its body.
func (d *decoder) done() error {
	if d.err == nil && len(d.buf) != 0 {
		d.fail(fmt.Errorf("%d trailing bytes", len(d.buf)))
	}
	return d.err
}
