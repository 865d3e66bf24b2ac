package runner

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/dline"
	"github.com/ipfs/go-cid"

	"github.com/filecoin-project/go-bitfield"

	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/engine"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// BenchmarkSubmitWindowedPoSt32GiB builds and CBOR-encodes the
// SubmitWindowedPoSt of one full message for 32 GiB sectors: 3 partitions
// of 2349 sectors (7047, the actor's limit for the size), about 1% of the
// sectors skipped as faulty at random places, one 192-byte proof, through
// the runner's own builder (batchProof.params) and go-state-types' cbor-gen
// encoder. It reports the encoded size as bytes/msg.
func BenchmarkSubmitWindowedPoSt32GiB(b *testing.B) {
	const partSectors = 2349
	batch := []uint64{0, 1, 2}
	rng := rand.New(rand.NewPCG(1, 2))
	bp := &batchProof{partitions: batch, proof: make([]byte, fullnode.MaxPoStProofSize), skipped: map[uint64][]uint64{}, proven: map[uint64]int{}}
	skipped := 0
	for _, p := range batch {
		for s := p * partSectors; s < (p+1)*partSectors; s++ {
			if rng.IntN(100) == 0 {
				bp.skipped[p] = append(bp.skipped[p], s)
				skipped++
				continue
			}
			bp.proven[p]++
		}
	}
	rand32 := make([]byte, 32)
	var size int
	b.ReportAllocs()
	for b.Loop() {
		params, err := bp.params(7, 1000, rand32, abi.RegisteredPoStProof_StackedDrgWindow32GiBV1_1)
		if err != nil {
			b.Fatal(err)
		}
		raw, err := fullnode.EncodeParams(params)
		if err != nil {
			b.Fatal(err)
		}
		size = len(raw)
	}
	b.ReportMetric(float64(size), "bytes/msg")
	b.Logf("%d sectors skipped in the message (the input, not a measurement)", skipped)
}

// countingChain wraps the runner's Chain and counts each method's calls
// and time.
type countingChain struct {
	Chain
	mu    sync.Mutex
	calls map[string]int
	took  map[string]time.Duration
}

func (c *countingChain) track(method string) func() {
	start := time.Now()
	return func() {
		d := time.Since(start)
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.calls == nil {
			c.calls, c.took = map[string]int{}, map[string]time.Duration{}
		}
		c.calls[method]++
		c.took[method] += d
	}
}

func (c *countingChain) ChainHead(ctx context.Context) (*fullnode.TipSet, error) {
	defer c.track("ChainHead")()
	return c.Chain.ChainHead(ctx)
}

func (c *countingChain) StateMinerInfo(ctx context.Context, maddr address.Address, tsk fullnode.TipSetKey) (*fullnode.MinerInfo, error) {
	defer c.track("StateMinerInfo")()
	return c.Chain.StateMinerInfo(ctx, maddr, tsk)
}

func (c *countingChain) StateMinerProvingDeadline(ctx context.Context, maddr address.Address, tsk fullnode.TipSetKey) (*dline.Info, error) {
	defer c.track("StateMinerProvingDeadline")()
	return c.Chain.StateMinerProvingDeadline(ctx, maddr, tsk)
}

func (c *countingChain) StateMinerDeadlines(ctx context.Context, maddr address.Address, tsk fullnode.TipSetKey) ([]fullnode.Deadline, error) {
	defer c.track("StateMinerDeadlines")()
	return c.Chain.StateMinerDeadlines(ctx, maddr, tsk)
}

func (c *countingChain) StateMinerPartitions(ctx context.Context, maddr address.Address, dlIdx uint64, tsk fullnode.TipSetKey) ([]fullnode.Partition, error) {
	defer c.track("StateMinerPartitions")()
	return c.Chain.StateMinerPartitions(ctx, maddr, dlIdx, tsk)
}

func (c *countingChain) WindowPoStRandomness(ctx context.Context, maddr address.Address, di *dline.Info, tsk fullnode.TipSetKey) ([32]byte, error) {
	defer c.track("StateGetRandomnessFromBeacon")()
	return c.Chain.WindowPoStRandomness(ctx, maddr, di, tsk)
}

func (c *countingChain) StateGetRandomnessFromTickets(ctx context.Context, tag crypto.DomainSeparationTag, epoch abi.ChainEpoch, entropy []byte, tsk fullnode.TipSetKey) ([]byte, error) {
	defer c.track("StateGetRandomnessFromTickets")()
	return c.Chain.StateGetRandomnessFromTickets(ctx, tag, epoch, entropy, tsk)
}

func (c *countingChain) SubmitWindowedPoSt(ctx context.Context, maddr, from address.Address, p *miner.SubmitWindowedPoStParams, spec *fullnode.MessageSendSpec) (cid.Cid, error) {
	defer c.track("MpoolPushMessage(SubmitWindowedPoSt)")()
	return c.Chain.SubmitWindowedPoSt(ctx, maddr, from, p, spec)
}

func (c *countingChain) StateMinerSectors(ctx context.Context, maddr address.Address, filter *bitfield.BitField, tsk fullnode.TipSetKey) ([]*fullnode.SectorOnChainInfo, error) {
	defer c.track("StateMinerSectors")()
	return c.Chain.StateMinerSectors(ctx, maddr, filter, tsk)
}

func (c *countingChain) DeclareFaultsRecovered(ctx context.Context, maddr, from address.Address, p *miner.DeclareFaultsRecoveredParams, spec *fullnode.MessageSendSpec) (cid.Cid, error) {
	defer c.track("MpoolPushMessage(DeclareFaultsRecovered)")()
	return c.Chain.DeclareFaultsRecovered(ctx, maddr, from, p, spec)
}

func (c *countingChain) StateWaitMsg(ctx context.Context, msg cid.Cid, confidence uint64, limit abi.ChainEpoch, allowReplaced bool) (*fullnode.MsgLookup, error) {
	defer c.track("StateWaitMsg")()
	return c.Chain.StateWaitMsg(ctx, msg, confidence, limit, allowReplaced)
}

func (c *countingChain) ReceiptError(ctx context.Context, ml *fullnode.MsgLookup) string {
	defer c.track("ReceiptError(StateReplay)")()
	return c.Chain.ReceiptError(ctx, ml)
}

// BenchmarkRunnerChainCalls runs the runner against the in-process devnet
// over HTTP (the fixture of TestRunnerProvesEveryDeadline: 4 deadlines of
// 10 epochs, one miner with two 2-sector partitions in each of deadlines 0
// and 1, the chain stepped every 25 ms) with the chain client wrapped in a
// counter. It counts over one whole proving period in steady state (epochs
// 80 to 120, after the devnet's first due epoch: the deadlines before it
// are refused and retried, which is not what a chain does), so every
// check, prove, submit and receipt of a deadline is counted once, and
// reports calls and latency per deadline with sectors (2 per period).
// ChainHead is the runner's head poll (every 5 ms here), so its count
// follows the wall clock, not the deadline; StateWaitMsg's time is mostly
// waiting for the receipt's confirmations, so the latency is reported with
// and without it. Run it with -benchtime 1x: one iteration is one run of
// about 3 s.
func BenchmarkRunnerChainCalls(b *testing.B) {
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		fx := newRunnerFixture(b, ctx, true)
		cc := &countingChain{}
		r := fx.runnerWith(b, &engineProver{}, func(inner Chain) Chain { cc.Chain = inner; return cc })
		done := make(chan struct{})
		go func() { r.Run(ctx); close(done) }()
		var calls map[string]int
		var took map[string]time.Duration
		for fx.dn.Height() < 121 {
			switch fx.dn.Height() {
			case 80:
				cc.reset()
			case 120:
				calls, took = cc.snapshot()
			}
			fx.dn.Step(1)
			time.Sleep(25 * time.Millisecond)
		}
		cancel()
		<-done
		rep := fx.dn.Report(-1)
		if rep.Totals.Proven != 3 || rep.Totals.Missed != 0 {
			b.Fatalf("devnet report %s, want 3 proven", rep)
		}
		const deadlines = 2.0 // with sectors, per period
		var all, noWait time.Duration
		var total, noHead int
		var lines []string
		for _, m := range slices.Sorted(maps.Keys(calls)) {
			n, d := calls[m], took[m]
			total += n
			all += d
			if m != "ChainHead" {
				noHead += n
			}
			if m != "StateWaitMsg" {
				noWait += d
			}
			lines = append(lines, fmt.Sprintf("  %-40s %6.1f calls/deadline  %8.3f ms/deadline", m, float64(n)/deadlines, float64(d.Microseconds())/1000/deadlines))
		}
		b.Logf("chain calls per deadline (one proving period, 2 deadlines with sectors, runner head poll 5 ms):\n%s", strings.Join(lines, "\n"))
		b.ReportMetric(float64(noHead)/deadlines, "calls-but-head/deadline")
		b.ReportMetric(float64(total)/deadlines, "calls/deadline")
		b.ReportMetric(float64(noWait.Microseconds())/1000/deadlines, "ms-but-wait/deadline")
		b.ReportMetric(float64(all.Microseconds())/1000/deadlines, "ms/deadline")
	}
}

func (c *countingChain) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls, c.took = map[string]int{}, map[string]time.Duration{}
}

func (c *countingChain) snapshot() (map[string]int, map[string]time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.calls), maps.Clone(c.took)
}

// BenchmarkVerifyProof measures what self-verification adds to a batch
// with the built-in engine: "engine" is prover.VerifyBuiltin alone (what a
// `vsm wdpost` child does with a verify task, without the pipe) over n
// 2 KiB sectors; "runner" is the runner's whole check of the fixture's
// batch (4 sectors): StateMinerSectors over HTTP from the in-process
// devnet, then the in-process verifier.
func BenchmarkVerifyProof(b *testing.B) {
	const miner = 1000
	const proofType = "StackedDrgWindow2KiBV1_2"
	for _, n := range []int{4, 64, 512} {
		b.Run(fmt.Sprintf("engine/sectors=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			var secs []engine.Sector
			task := prover.VerifyPoStTask{Verify: prover.VerifyWindowPoSt, MinerID: miner, ProofType: proofType, Randomness: prover.Bytes32{9}}
			for i := range n {
				s, err := sectorfile.Create(context.Background(), sectorfile.CreateOptions{Miner: miner, Number: uint64(i), Size: sectorfile.Size2KiB, Dir: dir})
				if err != nil {
					b.Fatal(err)
				}
				secs = append(secs, engine.Sector{ID: s.Number, CommR: s.CommR, SealedPath: s.Paths.Sealed, CacheDir: s.Paths.Cache})
				task.Sectors = append(task.Sectors, prover.VerifySector{SectorID: s.Number, CommR: prover.Bytes32(s.CommR)})
			}
			res, err := engine.Prover{}.Prove(context.Background(), miner, proofType, [32]byte(task.Randomness), secs)
			if err != nil || len(res.Faults) > 0 {
				b.Fatal(res.Faults, err)
			}
			task.Proof = res.Proof
			b.ReportMetric(float64(len(res.Proof)), "proof-bytes")
			for b.Loop() {
				if out, err := prover.VerifyBuiltin(task); err != nil || !out.Valid {
					b.Fatal(out, err)
				}
			}
		})
	}
	b.Run("runner/sectors=4", func(b *testing.B) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fx := newRunnerFixture(b, ctx, true)
		vp := &verifyingProver{Prover: &engineProver{}}
		r := fx.runnerWith(b, vp, func(c Chain) Chain { return c })
		fx.dn.Step(50)
		mi, err := r.minerInfo(ctx, miner, -1)
		if err != nil {
			b.Fatal(err)
		}
		parts, err := fx.chain.StateMinerPartitions(ctx, fullnode.IDAddress(miner), 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		seed := [32]byte{9}
		bp, err := r.proveBatch(ctx, miner, mi, seed, parts, []uint64{0, 1}, "")
		if err != nil || len(bp.sectors) != 4 {
			b.Fatalf("batch of %d sectors, %v", len(bp.sectors), err)
		}
		for b.Loop() {
			commRs, err := r.sealedCommRs(ctx, miner, parts, []uint64{0, 1})
			if err != nil {
				b.Fatal(err)
			}
			if why, err := r.verifyBatch(ctx, miner, mi, seed, bp, commRs); err != nil || why != "" {
				b.Fatal(why, err)
			}
		}
	})
}
