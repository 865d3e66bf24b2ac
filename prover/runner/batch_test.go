package runner

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vsm-project/vsm/internal/bftest"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"

	"go.uber.org/zap"

	"github.com/filecoin-project/go-bitfield"
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

func TestPartitionLimit(t *testing.T) {
	tests := []struct {
		configured int
		sectors    uint64
		want       int
	}{
		{0, 2349, 3},   // unset: the actor's limit
		{4, 2349, 3},   // the old default is clamped
		{100, 2, 3},    // small sectors: PoStedPartitionsMax
		{2, 2349, 2},   // a smaller bound is kept
		{1, 2300, 1},   // one partition per message
		{-3, 2300, 3},  // nonsense is the limit
		{3, 10_000, 2}, // AddressedSectorsMax / 10000
		{3, 25_000, 1}, // exactly AddressedSectorsMax
		{3, 30_000, 1}, // larger than AddressedSectorsMax: still one
		{0, 0, miner.PoStedPartitionsMax},
	}
	for _, tt := range tests {
		if got := partitionLimit(tt.configured, tt.sectors); got != tt.want {
			t.Errorf("partitionLimit(%d, %d) = %d, want %d", tt.configured, tt.sectors, got, tt.want)
		}
	}
}

func TestPlanBatches(t *testing.T) {
	tests := []struct {
		which []uint64
		limit int
		want  [][]uint64
	}{
		{nil, 3, nil},
		{[]uint64{0}, 3, [][]uint64{{0}}},
		{[]uint64{0, 1, 2, 3, 4, 5, 6}, 3, [][]uint64{{0, 1, 2}, {3, 4, 5}, {6}}},
		{[]uint64{1, 4, 5}, 1, [][]uint64{{1}, {4}, {5}}},
		{[]uint64{1, 4}, 0, [][]uint64{{1}, {4}}},
	}
	for _, tt := range tests {
		got := planBatches(tt.which, tt.limit)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("planBatches(%v, %d) = %v, want %v", tt.which, tt.limit, got, tt.want)
		}
	}
}

// mapStore is a LocationStore of sectors on one storage instance.
type mapStore map[uint64]bool

func (m mapStore) Location(id fsm.SectorID) (fsm.SectorLocation, bool) {
	if !m[id.Number] {
		return fsm.SectorLocation{}, false
	}
	return fsm.SectorLocation{SectorID: id, Sealed: "s", Cache: "s"}, true
}

func (m mapStore) Storage(name string) (fsm.StorageInstance, bool) {
	return fsm.StorageInstance{Name: name, Path: "/store"}, name == "s"
}

func (m mapStore) Assignments() []fsm.Assignment { return nil }

// fakeProver answers like a window_post child: the replicas in bad as
// faults and, when there are none (or with proveGood, as filecoin-ffi's
// child, damocles and the built-in engine do, over the others), one
// "proof" that encodes the sector numbers it covers, so the test can check
// what the proof is over.
type fakeProver struct {
	bad       map[uint64]bool
	proveGood bool
	mu        sync.Mutex
	tasks     [][]uint64
}

func (p *fakeProver) Prove(_ context.Context, task prover.WindowPoStTask) (prover.WindowPoStOutput, error) {
	var ids []uint64
	for _, r := range task.Replicas {
		ids = append(ids, r.SectorID)
	}
	p.mu.Lock()
	p.tasks = append(p.tasks, ids)
	p.mu.Unlock()
	out := prover.WindowPoStOutput{Proofs: [][]byte{}, Faults: []uint64{}}
	for _, id := range ids {
		if p.bad[id] {
			out.Faults = append(out.Faults, id)
		}
	}
	if len(out.Faults) > 0 && !p.proveGood {
		return out, nil
	}
	proof := []byte("FAKE")
	for _, id := range ids {
		if !p.bad[id] {
			proof = binary.LittleEndian.AppendUint64(proof, id)
		}
	}
	if len(proof) > 4 {
		out.Proofs = append(out.Proofs, proof)
	}
	return out, nil
}

func decodeFakeProof(b []byte) ([]uint64, error) {
	if len(b) < 4 || string(b[:4]) != "FAKE" || (len(b)-4)%8 != 0 {
		return nil, errors.New("not a fake proof")
	}
	var ids []uint64
	for b = b[4:]; len(b) > 0; b = b[8:] {
		ids = append(ids, binary.LittleEndian.Uint64(b))
	}
	return ids, nil
}

func bf(t *testing.T, set []uint64) bitfield.BitField {
	t.Helper()
	return bitfield.NewFromSet(set)
}

// checkActorRules is what builtin-actors' submit_windowed_post admits
// (and what the devnet's actor enforces), plus what the verifier needs:
// exactly one proof of the miner's type; 1..limit partitions, each once,
// existing and not already proven; skipped sectors inside their
// partition; the proof over exactly the sorted union of the partitions'
// sectors to prove minus the skipped ones.
func checkActorRules(p *miner.SubmitWindowedPoStParams, parts []fullnode.Partition, proven map[uint64]bool, minerProof abi.RegisteredPoStProof, partSectors uint64) error {
	if len(p.Proofs) != 1 {
		return fmt.Errorf("%d proofs, the actor takes exactly one", len(p.Proofs))
	}
	if p.Proofs[0].PoStProof != minerProof {
		return fmt.Errorf("proof type %d, the miner's is %d", p.Proofs[0].PoStProof, minerProof)
	}
	limit := fullnode.MaxPartitionsPerPoSt(partSectors)
	if len(p.Partitions) == 0 || len(p.Partitions) > limit {
		return fmt.Errorf("%d partitions, the actor takes 1..%d", len(p.Partitions), limit)
	}
	seen := map[uint64]bool{}
	var want []uint64
	for _, pp := range p.Partitions {
		if pp.Index >= uint64(len(parts)) {
			return fmt.Errorf("partition %d does not exist", pp.Index)
		}
		if seen[pp.Index] {
			return fmt.Errorf("partition %d twice", pp.Index)
		}
		seen[pp.Index] = true
		if proven[pp.Index] {
			return fmt.Errorf("partition %d is already proven", pp.Index)
		}
		part := parts[pp.Index]
		if !bftest.Subset(pp.Skipped, part.AllSectors) {
			return fmt.Errorf("skipped %v not in partition %d", bftest.Bits(bftest.Sub(pp.Skipped, part.AllSectors)), pp.Index)
		}
		toProve, err := sectorsToProve(part)
		if err != nil {
			return err
		}
		_ = bftest.Sub(toProve, pp.Skipped).ForEach(func(n uint64) error {
			want = append(want, n)
			return nil
		})
	}
	slices.Sort(want)
	got, err := decodeFakeProof(p.Proofs[0].ProofBytes)
	if err != nil {
		return err
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("proof covers %v, the actor verifies %v", got, want)
	}
	if len(p.Proofs[0].ProofBytes) == 0 {
		return errors.New("empty proof")
	}
	return nil
}

// TestMessagesSatisfyActorRules is the property test: for random partition
// layouts (sizes, live, faulty, recovering, terminated sectors), fault sets
// (unlocatable sectors, sectors the child reports faulty), partitions
// already proven and configured MaxPartitionsPerMessage, every message the
// runner builds satisfies the actor's rules, every child request is the
// sorted union of its batch, and every provable sector is proven exactly
// once.
func TestMessagesSatisfyActorRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 2))
	sizes := []uint64{2, 4, 2300, 2349, 10_000, 12_500, 25_000, 40_000}
	proofTypes := []abi.RegisteredPoStProof{10, 11, 12, 13, 14}
	messages := 0
	for iter := range 600 {
		partSectors := sizes[rng.IntN(len(sizes))]
		minerProof := proofTypes[rng.IntN(len(proofTypes))]
		post, err := sectorfile.PoStProofFromChain(int64(minerProof))
		if err != nil {
			t.Fatal(err)
		}
		nparts := 1 + rng.IntN(12)
		parts := make([]fullnode.Partition, nparts)
		store := mapStore{}
		bad := map[uint64]bool{}
		var provenSet []uint64
		next := uint64(rng.IntN(50))
		for i := range parts {
			n := 1 + rng.IntN(int(min(partSectors, 24)))
			var all, live, faulty, recovering []uint64
			for range n {
				s := next
				next += 1 + uint64(rng.IntN(3))
				all = append(all, s)
				if rng.IntN(10) > 0 { // else terminated: in All, not Live
					live = append(live, s)
					if rng.IntN(6) == 0 {
						faulty = append(faulty, s)
						if rng.IntN(2) == 0 {
							recovering = append(recovering, s)
						}
					}
				}
				if rng.IntN(8) > 0 {
					store[s] = true
				}
				if rng.IntN(12) == 0 {
					bad[s] = true
				}
			}
			parts[i] = fullnode.Partition{AllSectors: bf(t, all), LiveSectors: bf(t, live), FaultySectors: bf(t, faulty),
				RecoveringSectors: bf(t, recovering), ActiveSectors: bftest.Sub(bf(t, live), bf(t, faulty))}
			if rng.IntN(7) == 0 {
				provenSet = append(provenSet, uint64(i))
			}
		}
		proven := map[uint64]bool{}
		for _, p := range provenSet {
			proven[p] = true
		}
		fp := &fakeProver{bad: bad, proveGood: rng.IntN(2) == 0}
		r := &Runner{cfg: Config{Store: store, Prover: fp, MaxPartitionsPerMessage: rng.IntN(10) - 1}, log: zap.NewNop()}
		mi := minerInfo{proof: minerProof, post: post, partitionSectors: partSectors}
		st := newProveState()
		var seed [32]byte
		st.useSeed(seed)

		batches := r.planDeadline(nparts, proven, st.submitted, mi)
		if err := r.proveBatches(context.Background(), 1000, 0, mi, seed, parts, batches, st); err != nil {
			t.Fatalf("iteration %d: %v", iter, err)
		}
		for _, task := range fp.tasks {
			for i := 1; i < len(task); i++ {
				if task[i] <= task[i-1] {
					t.Fatalf("iteration %d: child request not sorted and unique: %v", iter, task)
				}
			}
		}
		provedTimes := map[uint64]int{}
		inMessage := map[uint64]bool{}
		for _, batch := range batches {
			bp := st.batches[batchKey(batch)]
			p, err := bp.params(3, 100, make([]byte, 32), mi.proof)
			if err != nil {
				t.Fatal(err)
			}
			if p == nil || len(p.Partitions) == 0 {
				continue
			}
			messages++
			if err := checkActorRules(p, parts, proven, minerProof, partSectors); err != nil {
				t.Fatalf("iteration %d (partition size %d, config %d, batch %v): %v\n%+v", iter, partSectors, r.cfg.MaxPartitionsPerMessage, batch, err, p)
			}
			if lim := r.cfg.MaxPartitionsPerMessage; lim > 0 && len(p.Partitions) > lim {
				t.Fatalf("iteration %d: %d partitions, configured %d", iter, len(p.Partitions), lim)
			}
			// The encoding the chain sees decodes to the same message.
			var back miner.SubmitWindowedPoStParams
			if err := roundTrip(p, &back); err != nil || len(back.Proofs) != 1 || len(back.Partitions) != len(p.Partitions) {
				t.Fatalf("iteration %d: CBOR round trip: %v", iter, err)
			}
			ids, _ := decodeFakeProof(p.Proofs[0].ProofBytes)
			for _, id := range ids {
				provedTimes[id]++
			}
			for _, pp := range p.Partitions {
				inMessage[pp.Index] = true
			}
		}
		// Every provable sector of a partition still to prove is proven
		// once: nothing lost, nothing twice.
		for i, part := range parts {
			if proven[uint64(i)] {
				continue
			}
			provable := 0
			toProve, err := sectorsToProve(part)
			if err != nil {
				t.Fatal(err)
			}
			_ = toProve.ForEach(func(n uint64) error {
				want := 0
				if store[n] && !bad[n] {
					want = 1
					provable++
				}
				if provedTimes[n] != want {
					t.Fatalf("iteration %d: sector %d of partition %d proven %d times, want %d", iter, n, i, provedTimes[n], want)
				}
				return nil
			})
			if (provable > 0) != inMessage[uint64(i)] {
				t.Fatalf("iteration %d: partition %d has %d provable sectors, in a message: %v", iter, i, provable, inMessage[uint64(i)])
			}
		}
	}
	t.Logf("%d messages checked", messages)
}

// TestProveBatchFaultRetries: a child that reports faults gets the batch
// again without them, and one that never stops is given up on.
func TestProveBatchFaultRetries(t *testing.T) {
	mi, parts, store := twoPartitions(t)
	fp := &fakeProver{bad: map[uint64]bool{2: true, 3: true}}
	r := &Runner{cfg: Config{Store: store, Prover: fp}, log: zap.NewNop()}
	bp, err := r.proveBatch(context.Background(), 1000, mi, [32]byte{}, parts, []uint64{0, 1}, "")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(fp.tasks) != "[[1 2 3 4] [1 4]]" || fmt.Sprint(bp.sectors) != "[1 4]" || fmt.Sprint(bp.skipped) != "map[0:[2] 1:[3]]" || bp.retries != 1 {
		t.Fatalf("tasks %v, proven %v, skipped %v, retries %d", fp.tasks, bp.sectors, bp.skipped, bp.retries)
	}

	// A child that reports one new fault per request runs out of retries.
	var live []uint64
	for n := uint64(10); n < 30; n++ {
		live = append(live, n)
		store[n] = true
	}
	big := []fullnode.Partition{{AllSectors: bf(t, live), LiveSectors: bf(t, live)}}
	r.cfg.Prover = &dripProver{}
	if _, err := r.proveBatch(context.Background(), 1000, mi, [32]byte{}, big, []uint64{0}, ""); err == nil {
		t.Fatal("a child reporting new faults forever was not given up on")
	}
}

// TestProveBatchKeepsProofWithFaults: a child that answers with faults
// and one proof over the other sectors (filecoin-ffi's child, damocles,
// the built-in engine) is asked once; its proof is used with the faults
// skipped in their partitions, and the message satisfies the actor.
func TestProveBatchKeepsProofWithFaults(t *testing.T) {
	mi, parts, store := twoPartitions(t)
	fp := &fakeProver{bad: map[uint64]bool{2: true, 3: true}, proveGood: true}
	r := &Runner{cfg: Config{Store: store, Prover: fp}, log: zap.NewNop()}
	bp, err := r.proveBatch(context.Background(), 1000, mi, [32]byte{}, parts, []uint64{0, 1}, "")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(fp.tasks) != "[[1 2 3 4]]" || fmt.Sprint(bp.sectors) != "[1 4]" || fmt.Sprint(bp.skipped) != "map[0:[2] 1:[3]]" || bp.retries != 0 {
		t.Fatalf("tasks %v (want one), proven %v, skipped %v, retries %d", fp.tasks, bp.sectors, bp.skipped, bp.retries)
	}
	p, err := bp.params(0, 100, make([]byte, 32), mi.proof)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkActorRules(p, parts, nil, mi.proof, mi.partitionSectors); err != nil {
		t.Fatal(err)
	}

	// A fault outside the task makes the proof suspect: proven again.
	fp2 := &outsiderProver{fakeProver: fakeProver{bad: map[uint64]bool{2: true}, proveGood: true}}
	r.cfg.Prover = fp2
	bp, err = r.proveBatch(context.Background(), 1000, mi, [32]byte{}, parts, []uint64{0, 1}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(fp2.tasks) != 2 || fmt.Sprint(bp.sectors) != "[1 3 4]" || bp.retries != 1 {
		t.Fatalf("tasks %v, proven %v, retries %d", fp2.tasks, bp.sectors, bp.retries)
	}
}

// outsiderProver is a fakeProver that, on its first request, also reports
// a sector the task does not have.
type outsiderProver struct {
	fakeProver
	once bool
}

func (p *outsiderProver) Prove(ctx context.Context, task prover.WindowPoStTask) (prover.WindowPoStOutput, error) {
	out, err := p.fakeProver.Prove(ctx, task)
	if !p.once {
		p.once = true
		out.Faults = append(out.Faults, 999)
	}
	return out, err
}

// dripProver reports the first sector of every request faulty.
type dripProver struct{}

func (dripProver) Prove(_ context.Context, task prover.WindowPoStTask) (prover.WindowPoStOutput, error) {
	return prover.WindowPoStOutput{Faults: []uint64{task.Replicas[0].SectorID}}, nil
}

// roundTrip encodes p as the chain does and decodes it into back.
func roundTrip(p *miner.SubmitWindowedPoStParams, back *miner.SubmitWindowedPoStParams) error {
	raw, err := fullnode.EncodeParams(p)
	if err != nil {
		return err
	}
	return back.UnmarshalCBOR(bytes.NewReader(raw))
}

// TestJudgeOutcome: a partition with live sectors that got no message is
// never proven: faulty when none of its sectors could be proven, failed
// otherwise, with the reason when its proof failed self-verification.
func TestJudgeOutcome(t *testing.T) {
	parts := []fullnode.Partition{
		{AllSectors: bf(t, []uint64{1, 2}), LiveSectors: bf(t, []uint64{1, 2})},
		{AllSectors: bf(t, []uint64{3, 4}), LiveSectors: bf(t, []uint64{3, 4}), FaultySectors: bf(t, []uint64{4})},
		{AllSectors: bf(t, []uint64{5}), LiveSectors: bf(t, nil)}, // terminated
	}
	tests := []struct {
		name      string
		proven    map[uint64]bool
		submitted map[uint64]bool
		skipped   map[uint64][]uint64
		want      fsm.Outcome
		faulty    string
		invalid   map[uint64]string
		message   string // in the outcome's message
	}{
		{"all sent", nil, map[uint64]bool{0: true, 1: true}, nil, fsm.OutcomeProven, "[]", nil, ""},
		{"proven elsewhere", map[uint64]bool{0: true}, map[uint64]bool{1: true}, nil, fsm.OutcomeProven, "[]", nil, ""},
		{"skipped in a sent partition", nil, map[uint64]bool{0: true, 1: true}, map[uint64][]uint64{0: {2}}, fsm.OutcomeFaulty, "[2]", nil, ""},
		{"nothing provable in partition 1", nil, map[uint64]bool{0: true}, map[uint64][]uint64{1: {3}}, fsm.OutcomeFaulty, "[3 4]", nil, ""},
		{"nothing sent, nothing known", nil, map[uint64]bool{0: true}, nil, fsm.OutcomeFailed, "[]", nil, ""},
		{"nothing sent at all", nil, nil, map[uint64][]uint64{0: {1, 2}}, fsm.OutcomeFailed, "[1 2]", nil, ""},
		{"partition 0's proof failed self-verification", nil, map[uint64]bool{1: true}, nil, fsm.OutcomeFailed, "[]",
			map[uint64]string{0: "2 proofs failed self-verification: bad path"}, "partitions [0] not sent: 2 proofs failed self-verification: bad path"},
		{"one failed self-verification, one got no message", nil, nil, nil, fsm.OutcomeFailed, "[]",
			map[uint64]string{0: "2 proofs failed self-verification: bad path"}, "partitions [0] not sent: 2 proofs failed self-verification: bad path; partitions [1] have live sectors but got no message"},
	}
	for _, tt := range tests {
		st := newProveState()
		maps.Copy(st.submitted, tt.submitted)
		maps.Copy(st.skipped, tt.skipped)
		maps.Copy(st.invalid, tt.invalid)
		var res attemptResult
		judgeOutcome(parts, tt.proven, st, &res)
		if res.outcome != tt.want || fmt.Sprint(res.skipped) != tt.faulty && !(tt.faulty == "[]" && len(res.skipped) == 0) || !strings.Contains(res.message, tt.message) {
			t.Errorf("%s: outcome %s, faulty %v (%s); want %s, %s, message with %q", tt.name, res.outcome, res.skipped, res.message, tt.want, tt.faulty, tt.message)
		}
	}
}

// twoPartitions is a miner of 2-sector partitions with sectors 1-2 and 3-4
// in two partitions, all located.
func twoPartitions(t *testing.T) (minerInfo, []fullnode.Partition, mapStore) {
	t.Helper()
	post, _ := sectorfile.PoStProofFromChain(10)
	return minerInfo{proof: 10, post: post, partitionSectors: 2},
		[]fullnode.Partition{
			{AllSectors: bf(t, []uint64{1, 2}), LiveSectors: bf(t, []uint64{1, 2})},
			{AllSectors: bf(t, []uint64{3, 4}), LiveSectors: bf(t, []uint64{3, 4})},
		},
		mapStore{1: true, 2: true, 3: true, 4: true}
}
