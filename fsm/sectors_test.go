package fsm

import (
	"slices"
	"testing"
)

func TestSectorTable(t *testing.T) {
	l := func(b byte) loc { return loc{sealed: uint32(b), commR: CommR{b}} }
	tests := []struct {
		name string
		do   func(t *sectorTable)
		want map[uint64]loc
	}{
		{"put and replace", func(t *sectorTable) {
			t.put(1, l(1))
			t.put(2, l(2))
			t.put(1, l(9))
		}, map[uint64]loc{1: l(9), 2: l(2)}},
		{"delete reuses the slot", func(t *sectorTable) {
			t.put(1, l(1))
			t.put(2, l(2))
			t.delete(1)
			t.put(3, l(3))
		}, map[uint64]loc{2: l(2), 3: l(3)}},
		{"deleting most compacts", func(t *sectorTable) {
			for n := uint64(0); n < 3*compactMin; n++ {
				t.put(n, l(byte(n)))
			}
			for n := uint64(0); n < 3*compactMin-2; n++ {
				t.delete(n)
			}
		}, map[uint64]loc{3*compactMin - 2: l((3*compactMin - 2) % 256), 3*compactMin - 1: l((3*compactMin - 1) % 256)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := newSectorTable()
			tt.do(tab)
			if tab.len() != len(tt.want) {
				t.Fatalf("len %d, want %d", tab.len(), len(tt.want))
			}
			for n, want := range tt.want {
				if got, ok := tab.get(n); !ok || got != want {
					t.Fatalf("get(%d) = %+v %v, want %+v", n, got, ok, want)
				}
			}
			if len(tab.slab) > 2*max(len(tt.want), compactMin) {
				t.Fatalf("slab of %d entries for %d sectors: deleted slots are not given back", len(tab.slab), len(tt.want))
			}
			frozen := tab.frozen()
			tab.put(1<<40, l(7)) // later writes do not reach the frozen copy
			var seen []uint64
			frozen.each(func(n uint64, got loc) {
				if got != tt.want[n] {
					t.Fatalf("frozen copy: sector %d is %+v, want %+v", n, got, tt.want[n])
				}
				seen = append(seen, n)
			})
			if len(seen) != len(tt.want) || slices.Contains(seen, 1<<40) {
				t.Fatalf("frozen copy holds %v, want the %d sectors of the time it was taken", seen, len(tt.want))
			}
		})
	}
}
