package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// BenchmarkSeal times sealing one sector (PreCommit phases 1 and 2 on the
// CPU, then clearing the cache) per size.
func BenchmarkSeal(b *testing.B) {
	for _, size := range []uint64{2 << 10, 8 << 20} {
		b.Run(sectorfile.FormatSize(size), func(b *testing.B) {
			pp, _ := sectorfile.PoStProofForSize(size)
			dir := b.TempDir()
			b.ResetTimer()
			for i := range b.N {
				if _, err := sealOne(dir, miner, uint64(i+1), size, abi.RegisteredSealProof(pp.SealProof)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/sector")
		})
	}
}

// BenchmarkPartition proves one full WindowPoSt partition (two sectors for
// 2 KiB and 8 MiB) on a fresh child process of each engine, in the same run:
// the first request (the filecoin-ffi child loads the parameters then) and
// the median of the warm ones after it, and the child's peak RSS. The
// built-in engine (`vsm wdpost`, VSM_BIN) proves its own sector format, the
// real one (VSM_FFI_PROVER) sectors it sealed.
func BenchmarkPartition(b *testing.B) {
	ffiBin, vsmBin := os.Getenv("VSM_FFI_PROVER"), os.Getenv("VSM_BIN")
	if ffiBin == "" || vsmBin == "" {
		b.Fatal("VSM_FFI_PROVER and VSM_BIN must name the built binaries (make bench-ffi sets them)")
	}
	for _, size := range []uint64{2 << 10, 8 << 20} {
		pp, _ := sectorfile.PoStProofForSize(size)
		dir := b.TempDir()
		sealedReps := replicas(sealSectors(b, dir, size, 1, pp.PartitionSectors))
		builtinReps := make([]prover.Replica, pp.PartitionSectors)
		for i := range builtinReps {
			s, err := sectorfile.Create(context.Background(), sectorfile.CreateOptions{Miner: miner, Number: uint64(100 + i), Size: size, Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			builtinReps[i] = prover.Replica{SectorID: s.Number, CommR: prover.Bytes32(s.CommR), CacheDir: s.Paths.Cache, SealedFile: s.Paths.Sealed}
		}
		for _, eng := range []struct {
			name string
			bin  string
			reps []prover.Replica
		}{{"ffi", ffiBin, sealedReps}, {"builtin", vsmBin, builtinReps}} {
			b.Run(eng.name+"/"+sectorfile.FormatSize(size), func(b *testing.B) {
				first, warm, rss := provePartitions(b, eng.bin, pp.Name, eng.reps, max(b.N, 3))
				b.ReportMetric(first.Seconds(), "first-s")
				b.ReportMetric(warm.Seconds(), "warm-s")
				b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
			})
		}
	}
}

// provePartitions starts one child, proves the partition 1+warm times and
// returns the first time, the warm median and the peak RSS.
func provePartitions(b *testing.B, bin, proofType string, reps []prover.Replica, warm int) (time.Duration, time.Duration, int64) {
	b.Helper()
	block := prover.ProcessorConfig{Bin: bin, Args: []string{"wdpost"}, Concurrent: 1, Weight: 1, ReadyTimeoutSecs: 60,
		Envs: map[string]string{"FIL_PROOFS_PARAMETER_CACHE": os.Getenv("FIL_PROOFS_PARAMETER_CACHE")}}
	sup, err := prover.NewSupervisor(prover.Config{WdPost: []prover.ProcessorConfig{block}}, prover.Options{Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := sup.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sup.Close(ctx) }()
	var times []time.Duration
	for i := 0; i <= warm; i++ {
		seed := seedOf("bench seed " + strconv.Itoa(i) + strings.Repeat(".", 20))
		start := time.Now()
		out, err := sup.Prove(ctx, prover.WindowPoStTask{MinerID: miner, ProofType: proofType, Replicas: reps, Seed: seed})
		if err != nil {
			b.Fatal(err)
		}
		if len(out.Proofs) != 1 || len(out.Faults) != 0 {
			b.Fatalf("%d proofs, faults %v", len(out.Proofs), out.Faults)
		}
		times = append(times, time.Since(start))
	}
	var rss int64
	for _, c := range sup.Capacity().Children {
		rss = max(rss, peakRSS(c.PID))
	}
	rest := slices.Clone(times[1:])
	slices.Sort(rest)
	return times[0], rest[len(rest)/2], rss
}

// peakRSS reads VmHWM (the peak resident set) of a process, in bytes.
func peakRSS(pid int) int64 {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
