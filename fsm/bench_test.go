package fsm

import (
	"bytes"
	"io"
	"runtime"
	"testing"
	"time"
)

const benchSectors = 1_000_000

func filledFSM(tb testing.TB, sectors int) *FSM {
	tb.Helper()
	f := New(nil)
	for _, c := range []Command{
		PutMiner{Miner: miner(1000)},
		PutStorage{Instance: StorageInstance{Name: "store-1", Path: "/mnt/store-1"}},
		PutStorage{Instance: StorageInstance{Name: "store-2", Path: "/mnt/store-2"}},
	} {
		if r := f.ApplyCommand(c); r.Err != nil {
			tb.Fatal(r.Err)
		}
	}
	const batch = 10_000
	locs := make([]SectorLocation, 0, batch)
	for n := 0; n < sectors; n++ {
		locs = append(locs, location(1000, uint64(n), "store-1", "store-2"))
		if len(locs) == batch || n == sectors-1 {
			if r := f.ApplyCommand(PutLocations{Locations: locs}); r.Err != nil {
				tb.Fatal(r.Err)
			}
			locs = locs[:0]
		}
	}
	return f
}

// BenchmarkApplyPutLocations measures batched puts through the log
// encoding (decode + apply), the path every imported sector takes.
func BenchmarkApplyPutLocations(b *testing.B) {
	f := filledFSM(b, 0)
	const batch = 10_000
	entries := make([][]byte, 0, 100)
	for i := 0; i < 100; i++ {
		locs := make([]SectorLocation, batch)
		for j := range locs {
			locs[j] = location(1000, uint64(i*batch+j), "store-1", "store-2")
		}
		entries = append(entries, Encode(PutLocations{Locations: locs}))
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		c, err := Decode(entries[i%len(entries)])
		if err != nil {
			b.Fatal(err)
		}
		if r := f.ApplyCommand(c); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "locations/s")
}

func BenchmarkLocationLookup1M(b *testing.B) {
	f := filledFSM(b, benchSectors)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := f.Location(SectorID{Miner: 1000, Number: uint64(i*7919) % benchSectors}); !ok {
			b.Fatal("missing")
		}
	}
}

func BenchmarkSnapshotRestore1M(b *testing.B) {
	f := filledFSM(b, benchSectors)
	var buf bytes.Buffer
	var persist, restore time.Duration
	for i := 0; i < b.N; i++ {
		buf.Reset()
		t0 := time.Now()
		if _, err := f.WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		g := New(nil)
		if err := g.Restore(io.NopCloser(bytes.NewReader(buf.Bytes()))); err != nil {
			b.Fatal(err)
		}
		persist += t1.Sub(t0)
		restore += time.Since(t1)
	}
	b.ReportMetric(persist.Seconds()/float64(b.N), "snapshot-s")
	b.ReportMetric(restore.Seconds()/float64(b.N), "restore-s")
	b.ReportMetric(float64(buf.Len()), "snapshot-bytes")
	b.ReportMetric(float64(buf.Len())/benchSectors, "bytes/sector-on-disk")
}

// BenchmarkMemoryPerSector reports live heap per stored location at 1M.
func BenchmarkMemoryPerSector(b *testing.B) {
	for i := 0; i < b.N; i++ {
		before := heapInUse()
		f := filledFSM(b, benchSectors)
		after := heapInUse()
		b.ReportMetric(float64(after-before)/benchSectors, "heap-bytes/sector")
		runtime.KeepAlive(f)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
