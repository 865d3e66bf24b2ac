package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vsm-project/vsm/prover/sectorfile"
)

// benchPartition is the sector count of a 32 GiB partition, proven here with
// 2 KiB sectors so the disk holds them.
const benchPartition = 2349

var (
	benchOnce    sync.Once
	benchRoot    string
	benchSectors []Sector
	benchErr     error
)

func benchSetup(b *testing.B) []Sector {
	benchOnce.Do(func() {
		dir, err := benchDir()
		if err != nil {
			benchErr = err
			return
		}
		benchRoot = dir
		for i := range benchPartition {
			s, err := sectorfile.Create(context.Background(), sectorfile.CreateOptions{Miner: 1000, Number: uint64(i + 1), Size: sectorfile.Size2KiB, Dir: dir})
			if err != nil {
				benchErr = err
				return
			}
			benchSectors = append(benchSectors, Sector{ID: s.Number, CommR: s.CommR, SealedPath: s.Paths.Sealed, CacheDir: s.Paths.Cache})
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchSectors
}

// BenchmarkVanillaPartition measures the vanilla proof (challenged reads and
// path checks) of one 2349-sector partition, 10 challenges each, twice per
// iteration on the same files: a plain sequential loop as the baseline, then
// the engine's bounded parallel reads, and reports both and their ratio.
// "cold" evicts the files from the page cache before each pass, so reads go
// to the disk as they do on a proving node (whose sectors are far larger
// than its RAM); "hot" reads from the page cache and so measures the CPU
// cost of the read path.
func BenchmarkVanillaPartition(b *testing.B) {
	sectors := benchSetup(b)
	for _, cold := range []bool{true, false} {
		name := "hot"
		if cold {
			name = "cold"
		}
		b.Run(name, func(b *testing.B) { benchVanilla(b, sectors, cold) })
	}
}

func evictAll(b *testing.B, sectors []Sector) {
	b.StopTimer()
	defer b.StartTimer()
	for _, s := range sectors {
		for _, p := range []string{s.SealedPath, sectorfile.TreeRLastPath(s.CacheDir), s.CacheDir + "/" + sectorfile.PAuxFile} {
			if err := evict(p); err != nil {
				b.Skipf("cannot evict %s from the page cache: %v", p, err)
			}
		}
	}
}

func benchVanilla(b *testing.B, sectors []Sector, cold bool) {
	var rnd [32]byte
	rnd[0] = 1
	geo, err := sectorfile.GeometryFor(sectorfile.Size2KiB)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var seq, par time.Duration
	var reads int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rnd[1] = byte(i) // fresh challenges each round, as each deadline has

		if cold {
			evictAll(b, sectors)
		}
		start := time.Now()
		var seqReads int64
		for _, s := range sectors {
			_, n, err := ReadSector(geo, NormalizeRandomness(rnd), s)
			if err != nil {
				b.Fatal(err)
			}
			seqReads += n
		}
		seq += time.Since(start)

		if cold {
			evictAll(b, sectors)
		}
		start = time.Now()
		res, err := Prover{Parallel: DefaultParallel}.Prove(ctx, 1000, "StackedDrgWindow2KiBV1_2", rnd, sectors)
		if err != nil || len(res.Faults) != 0 {
			b.Fatalf("prove: %v, faults %v", err, res.Faults)
		}
		par += time.Since(start)
		if res.Reads != seqReads {
			b.Fatalf("parallel read %d challenges, sequential %d", res.Reads, seqReads)
		}
		reads += res.Reads
	}
	n := float64(b.N)
	b.ReportMetric(seq.Seconds()/n, "seq-s/partition")
	b.ReportMetric(par.Seconds()/n, "par-s/partition")
	b.ReportMetric(float64(reads)/seq.Seconds(), "seq-reads/s")
	b.ReportMetric(float64(reads)/par.Seconds(), "par-reads/s")
	b.ReportMetric(seq.Seconds()/par.Seconds(), "speedup-x")
}
