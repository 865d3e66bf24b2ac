package bitfield

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// packBits turns a stream written in the spec's grammar order ("00 1 01
// 1100", spaces ignored) into bytes with LSB 0 bit numbering, dropping
// trailing zero bytes as a canonical writer must. It is written
// independently of the encoder so the tests check the format, not the code
// against itself.
func packBits(t *testing.T, s string) []byte {
	t.Helper()
	s = strings.ReplaceAll(s, " ", "")
	out := make([]byte, (len(s)+7)/8)
	for i, c := range s {
		switch c {
		case '1':
			out[i/8] |= 1 << (i % 8)
		case '0':
		default:
			t.Fatalf("bad bit %q", c)
		}
	}
	for len(out) > 0 && out[len(out)-1] == 0 {
		out = out[:len(out)-1]
	}
	return out
}

// lsb4 writes n as the 4-bit short-block length, least significant bit first.
func lsb4(n int) string {
	var sb strings.Builder
	for i := 0; i < 4; i++ {
		if n&(1<<i) != 0 {
			sb.WriteByte('1')
		} else {
			sb.WriteByte('0')
		}
	}
	return sb.String()
}

func TestSpecExamples(t *testing.T) {
	tests := []struct {
		name string
		bits []uint64
		// stream in grammar order: version, first bit, blocks
		stream string
		want   []byte // hand-packed bytes, checked against stream too
	}{
		{"single bit zero", []uint64{0}, "00 1 1", []byte{0x0c}},
		{"runs 3,5,2: {0,1,2,8,9}", []uint64{0, 1, 2, 8, 9},
			"00 1 01" + lsb4(3) + " 01" + lsb4(5) + " 01" + lsb4(2), []byte{0x74, 0x2c, 0x05}},
		{"leading zeros: {5}", []uint64{5}, "00 0 01" + lsb4(5) + " 1", nil},
		{"alternating singles: {0,2,4}", []uint64{0, 2, 4}, "00 1 1 1 1 1 1", nil},
		{"short block max 15", seq(0, 15), "00 1 01" + lsb4(15), nil},
		// 16 is the first long block: varint 16 = 0x10, bits LSB first.
		{"long block 16", seq(0, 16), "00 1 00 00001000", nil},
		// 300 = varint 0xac 0x02.
		{"long block 300 after gap 20", seq(20, 300),
			"00 0 00 00101000 00 00110101 01000000", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fromStream := packBits(t, tc.stream)
			if tc.want != nil && !slices.Equal(fromStream, tc.want) {
				t.Fatalf("test table inconsistent: stream packs to %x, want %x", fromStream, tc.want)
			}
			bf := New(tc.bits...)
			got := bf.Encode()
			if !slices.Equal(got, fromStream) {
				t.Fatalf("Encode(%v) = %08b, want %08b", bf, got, fromStream)
			}
			dec, err := Decode(fromStream)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !dec.Equal(bf) {
				t.Fatalf("Decode = %v, want %v", dec, bf)
			}
		})
	}
}

func seq(start, n uint64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = start + uint64(i)
	}
	return out
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		raw    []byte
		want   string
	}{
		{"version 1", "10 1 1", nil, "version"},
		{"trailing zero byte", "", []byte{0x0c, 0x00}, "trailing zero byte"},
		{"short block of 1", "00 1 01" + lsb4(1), nil, "short block of length 1"},
		{"short block of 0", "00 1 01" + lsb4(0) + " 1", nil, "short block of length 0"},
		{"long block of 15", "00 1 00 11110000", nil, "long block of length 15"},
		{"non-minimal varint", "00 1 00 00001001 00000000 1", nil, "not minimal"},
		{"varint overflow", "00 1 00" + strings.Repeat(" 11111111", 9) + " 01000000", nil, "overflows 64 bits"},
		{"ends with zeros", "00 1 1 01" + lsb4(3), nil, "run of zeros"},
		{"header only", "00 1", nil, "without runs"},
		{"data after terminator", "00 1 1 00 00000000 1", nil, "after the end"},
		{"runs overflow", "00 1 00" + strings.Repeat(" 11111111", 9) + " 10000000" + " 00" + strings.Repeat(" 11111111", 9) + " 10000000", nil, "overflow"},
		{"too large", "", append(make([]byte, MaxEncodedSize), 1), "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := tc.raw
			if buf == nil {
				buf = packBits(t, tc.stream)
			}
			_, err := Decode(buf)
			if err == nil {
				t.Fatalf("Decode(%08b) succeeded, want error containing %q", buf, tc.want)
			}
			if !errors.Is(err, ErrDecode) {
				t.Errorf("error %v does not wrap ErrDecode", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	var bf BitField
	if got := bf.Encode(); len(got) != 0 {
		t.Fatalf("empty set encodes to %x, want no bytes", got)
	}
	dec, err := Decode(nil)
	if err != nil || !dec.IsEmpty() {
		t.Fatalf("Decode(nil) = %v, %v", dec, err)
	}
	js, _ := json.Marshal(bf)
	if string(js) != "[0]" {
		t.Fatalf("empty JSON = %s, want [0]", js)
	}
}

func TestJSON(t *testing.T) {
	tests := []struct {
		name string
		bits []uint64
		json string
	}{
		{"lotus doc example", []uint64{5}, "[5,1]"},
		{"go-bitfield comment example", []uint64{0, 1, 2, 8, 9}, "[0,3,5,2]"},
		{"empty", nil, "[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bf := New(tc.bits...)
			got, err := json.Marshal(bf)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.json {
				t.Fatalf("Marshal = %s, want %s", got, tc.json)
			}
			var back BitField
			if err := json.Unmarshal(got, &back); err != nil || !back.Equal(bf) {
				t.Fatalf("Unmarshal(%s) = %v, %v", got, back, err)
			}
			// The base64 RLE+ form decodes to the same set.
			b64, _ := json.Marshal(base64.StdEncoding.EncodeToString(bf.Encode()))
			var fromB64 BitField
			if err := json.Unmarshal(b64, &fromB64); err != nil || !fromB64.Equal(bf) {
				t.Fatalf("Unmarshal(%s) = %v, %v", b64, fromB64, err)
			}
		})
	}
	for _, bad := range []string{`[1,0,2]`, `{"a":1}`, `"!!"`, `[-1]`} {
		var bf BitField
		if err := json.Unmarshal([]byte(bad), &bf); err == nil {
			t.Errorf("Unmarshal(%s) succeeded, want error", bad)
		}
	}
}

// model is a map-backed reference set for checking set operations.
type model map[uint64]bool

func (m model) sorted() []uint64 {
	out := make([]uint64, 0, len(m))
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func randomSet(r *rand.Rand, span uint64) ([]uint64, model) {
	m := model{}
	// Clustered bits so runs of all lengths (1, short, long) appear.
	for range r.IntN(8) {
		start := r.Uint64N(span)
		n := r.Uint64N(40) + 1
		for i := start; i < start+n && i < span; i++ {
			m[i] = true
		}
	}
	return m.sorted(), m
}

func TestSetOpsAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		as, am := randomSet(r, 200)
		bs, bm := randomSet(r, 200)
		a, b := New(as...), New(bs...)

		union, inter, diff := model{}, model{}, model{}
		for k := range am {
			union[k] = true
			if bm[k] {
				inter[k] = true
			} else {
				diff[k] = true
			}
		}
		for k := range bm {
			union[k] = true
		}
		check := func(name string, got BitField, want model) {
			t.Helper()
			all, err := got.All(1 << 20)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(all, want.sorted()) {
				t.Fatalf("%s(%v, %v) = %v, want %v", name, a, b, all, want.sorted())
			}
			if got.Count() != uint64(len(want)) {
				t.Fatalf("%s Count = %d, want %d", name, got.Count(), len(want))
			}
		}
		check("Union", Union(a, b), union)
		check("Intersect", Intersect(a, b), inter)
		check("Subtract", Subtract(a, b), diff)
		for _, x := range []uint64{0, 1, 50, 199, 200} {
			if a.Has(x) != am[x] {
				t.Fatalf("Has(%d) on %v = %v", x, a, a.Has(x))
			}
		}
		if Subtract(a, b).IsSubsetOf(a) != true || (len(diff) > 0 && a.IsSubsetOf(b)) {
			t.Fatalf("IsSubsetOf wrong for %v, %v", a, b)
		}
		// Round trip through RLE+ and JSON.
		dec, err := Decode(a.Encode())
		if err != nil || !dec.Equal(a) {
			t.Fatalf("RLE+ round trip of %v: %v, %v", a, dec, err)
		}
		js, _ := json.Marshal(a)
		var back BitField
		if err := json.Unmarshal(js, &back); err != nil || !back.Equal(a) {
			t.Fatalf("JSON round trip of %v via %s: %v, %v", a, js, back, err)
		}
	}
}

func TestLimits(t *testing.T) {
	if _, err := FromSet([]uint64{math.MaxUint64}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("FromSet(MaxUint64) err = %v", err)
	}
	big, err := NewRange(math.MaxUint64-10, 10)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := Decode(big.Encode())
	if err != nil || !dec.Equal(big) {
		t.Fatalf("round trip near MaxUint64: %v %v", dec, err)
	}
	if _, err := big.All(5); err == nil {
		t.Fatal("All(5) on 10 bits succeeded")
	}
	if got := New(0, 1, 2, 8, 9, 20).String(); got != "{0-2,8,9,20}" {
		t.Fatalf("String = %s", got)
	}
}
