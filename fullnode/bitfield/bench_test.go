package bitfield

import "testing"

// A full 32 GiB partition (2349 consecutive sectors) and a sparse fault set
// are the shapes the chain hands us most.
func benchSets() (full, sparse BitField) {
	full, _ = NewRange(100000, 2349)
	var bits []uint64
	for i := uint64(0); i < 2349; i += 7 {
		bits = append(bits, 100000+i)
	}
	return full, New(bits...)
}

func BenchmarkEncodeSparse(b *testing.B) {
	_, sparse := benchSets()
	for b.Loop() {
		_ = sparse.Encode()
	}
}

func BenchmarkDecodeSparse(b *testing.B) {
	_, sparse := benchSets()
	enc := sparse.Encode()
	for b.Loop() {
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSubtractFaults(b *testing.B) {
	full, sparse := benchSets()
	for b.Loop() {
		_ = Subtract(full, sparse)
	}
}
