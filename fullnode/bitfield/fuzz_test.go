package bitfield

import (
	"slices"
	"testing"
)

// FuzzDecode checks that Decode never panics and that whatever it accepts
// is canonical: re-encoding gives back the very same bytes. Without -fuzz,
// `go test` runs the seed corpus below (and testdata/fuzz, if any) as a
// normal test.
func FuzzDecode(f *testing.F) {
	seeds := [][]byte{
		{},
		{0x0c},             // {0}
		{0x74, 0x2c, 0x05}, // {0,1,2,8,9}
		New(5).Encode(),
		New(seq(0, 16)...).Encode(),
		New(seq(20, 300)...).Encode(),
		New(0, 2, 4, 6, 1000, 1001, 70000).Encode(),
		{0x0c, 0x00},
		{0xff, 0xff, 0xff},
		{0x01},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		bf, err := Decode(data)
		if err != nil {
			return
		}
		enc := bf.Encode()
		if !slices.Equal(enc, data) {
			t.Fatalf("Decode accepted non-canonical %x: set %v re-encodes to %x", data, bf, enc)
		}
		runs := bf.Runs()
		back, err := FromRuns(runs)
		if err != nil || !back.Equal(bf) {
			t.Fatalf("FromRuns(Runs()) of %v = %v, %v", bf, back, err)
		}
		// Set identities must hold for whatever was decoded.
		other := New(0, 3, 17, 18, 19, 64)
		if !Union(Subtract(bf, other), Intersect(bf, other)).Equal(bf) {
			t.Fatalf("(a-b) ∪ (a∩b) != a for %v", bf)
		}
	})
}
