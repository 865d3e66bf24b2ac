package devnet

import (
	"context"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-cid"

	cbg "github.com/whyrusleeping/cbor-gen"

	rlepluslazy "github.com/filecoin-project/go-bitfield/rle"
	"github.com/vsm-project/vsm/internal/bftest"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/exitcode"
	prooftypes "github.com/filecoin-project/go-state-types/proof"

	"go.uber.org/zap/zaptest"

	"github.com/filecoin-project/go-bitfield"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover/engine"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// rulesSpec: miner t01000 (worker t0100, owner t0101), period of 4
// deadlines x 10 epochs starting at 0, 16 sectors of 2 KiB dealt over
// deadlines 0 and 1, four partitions each: deadline 0 holds {0,1}, {4,5},
// {8,9}, {12,13}; deadline 1 holds {2,3}, {6,7}, {10,11}, {14,15}. Period
// 1 (deadline 0 open 40..50, challenge 37, fault cutoff 35) is the first
// judged.
func rulesSpec() *Spec {
	off := int64(0)
	return &Spec{
		Seed:          "rules",
		FirstDueEpoch: 30,
		Policy:        PolicySpec{PeriodDeadlines: 4, ChallengeWindow: 10, ChallengeLookback: 3, FaultDeclarationCutoff: 5},
		Miners:        []MinerSpec{{ID: 1000, Worker: 100, Owner: 101, Sectors: 16, ProvingPeriodOffset: &off, Deadlines: []uint64{0, 1}}},
	}
}

const (
	tMiner  = 1000
	tWorker = 100
	tOwner  = 101
)

// rig drives the devnet's chain directly, without HTTP, so a rule test
// costs microseconds.
type rig struct {
	t *testing.T
	d *Devnet
	c *chain
}

func newRig(t *testing.T, v Verifier) *rig {
	t.Helper()
	d, err := New(context.Background(), Config{Dir: t.TempDir(), Spec: rulesSpec(), Verifier: v, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, d: d, c: d.chain}
}

func (r *rig) stepTo(e ChainEpoch) {
	r.t.Helper()
	if e < r.d.Height() {
		r.t.Fatalf("cannot step back from %d to %d", r.d.Height(), e)
	}
	r.d.Step(int(e - r.d.Height()))
}

func (r *rig) miner() *minerState { return r.c.miners[tMiner] }

// partition returns a copy of a partition's state.
func (r *rig) partition(dl, p uint64) partitionState {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	return *r.miner().Deadlines[dl].Partitions[p]
}

// post builds a well-formed SubmitWindowedPoSt for partitions of the
// deadline open at the next epoch (where a push is estimated): one
// built-in engine proof over what the actor will verify (for each
// partition, its sectors minus faults and skipped, recoveries included),
// ChainCommitEpoch at the challenge epoch.
func (r *rig) post(parts []uint64, skipped map[uint64][]uint64) *miner.SubmitWindowedPoStParams {
	r.t.Helper()
	c, m := r.c, r.miner()
	c.mu.Lock()
	epoch := c.st.Height + 1
	di := c.deadlineAt(m, epoch)
	seed, err := c.windowRandomnessLocked(m, di, epoch)
	if err != nil {
		c.mu.Unlock()
		r.t.Fatal(err)
	}
	commitRand, err := c.randomnessLocked("ticket", crypto.DomainSeparationTag_PoStChainCommit, di.Challenge, nil, epoch)
	if err != nil {
		c.mu.Unlock()
		r.t.Fatal(err)
	}
	p := &miner.SubmitWindowedPoStParams{Deadline: di.Index, ChainCommitEpoch: di.Challenge, ChainCommitRand: commitRand}
	var sectors []engine.Sector
	for _, pi := range parts {
		skip := bitfield.NewFromSet(skipped[pi])
		p.Partitions = append(p.Partitions, miner.PoStPartition{Index: pi, Skipped: skip})
		if pi >= uint64(len(m.Deadlines[di.Index].Partitions)) {
			continue
		}
		ps := m.Deadlines[di.Index].Partitions[pi]
		faulty := bftest.Sub(bftest.Union(ps.Faulty, skip), bftest.Sub(ps.Recovering, skip))
		_ = bftest.Sub(ps.All, faulty).ForEach(func(n uint64) error {
			paths := sectorfile.LayoutPaths(m.SectorDir, tMiner, n, false)
			sectors = append(sectors, engine.Sector{ID: n, CommR: m.commR[n], SealedPath: paths.Sealed, CacheDir: paths.Cache})
			return nil
		})
	}
	c.mu.Unlock()
	var proof []byte
	if len(sectors) > 0 {
		name, err := fullnode.ProofsAPIName(m.PoStProof)
		if err != nil {
			r.t.Fatal(err)
		}
		res, err := engine.Prover{}.Prove(context.Background(), tMiner, name, seed, sectors)
		if err != nil || len(res.Faults) > 0 {
			r.t.Fatalf("proving: %v, faults %+v", err, res.Faults)
		}
		proof = res.Proof
	}
	p.Proofs = []prooftypes.PoStProof{{PoStProof: m.PoStProof, ProofBytes: proof}}
	return p
}

func (r *rig) push(from uint64, method abi.MethodNum, params []byte) (*msgRecord, error) {
	return r.c.pushMessage(context.Background(), &fullnode.Message{
		To: fullnode.IDAddress(tMiner), From: fullnode.IDAddress(from), Method: method, Params: params,
	}, "")
}

func declParams(decls ...miner.FaultDeclaration) []byte {
	return cborOf(&miner.DeclareFaultsParams{Faults: decls})
}

func decl(dl, part uint64, sectors ...uint64) miner.FaultDeclaration {
	return miner.FaultDeclaration{Deadline: dl, Partition: part, Sectors: bitfield.NewFromSet(sectors)}
}

// wantExit checks that err is the actor's refusal with this exit code and
// a message containing sub, wrapped as Lotus wraps a failed estimation.
func wantExit(t *testing.T, err error, code int, sub string) {
	t.Helper()
	var xe *ExecError
	if !errors.As(err, &xe) {
		t.Fatalf("err = %v, want exit %d (%q)", err, code, sub)
	}
	if xe.ExitCode != code || !strings.Contains(xe.Reason, sub) {
		t.Fatalf("exit %d %q, want exit %d with %q", xe.ExitCode, xe.Reason, code, sub)
	}
	if !strings.HasPrefix(err.Error(), "GasEstimateMessageGas error: estimating gas used: message execution failed (exit=["+ExitCodeString(code)+"]") {
		t.Fatalf("error text %q is not Lotus's", err)
	}
}

func cloneParams(p *miner.SubmitWindowedPoStParams) *miner.SubmitWindowedPoStParams {
	q := *p
	q.Partitions = append([]miner.PoStPartition(nil), p.Partitions...)
	q.Proofs = []prooftypes.PoStProof{{PoStProof: p.Proofs[0].PoStProof, ProofBytes: append([]byte(nil), p.Proofs[0].ProofBytes...)}}
	q.ChainCommitRand = append([]byte(nil), p.ChainCommitRand...)
	return &q
}

// TestSubmitWindowedPoStRules breaks each admission rule of
// submit_windowed_post (builtin-actors actors/miner/src/lib.rs) and
// record_proven_sectors (deadline_state.rs) in one message and checks the
// actor's exit code and message; the well-formed message is accepted.
func TestSubmitWindowedPoStRules(t *testing.T) {
	r := newRig(t, nil)
	r.stepTo(40) // pushes are estimated at epoch 41, deadline 0 of period 1
	good := r.post([]uint64{0, 1}, nil)
	perPartition, err := BuiltinVerifier{}.MaxWindowPoStProofSize(r.miner().PoStProof)
	if err != nil {
		t.Fatal(err)
	}
	otherSectors := r.post([]uint64{2}, nil) // a valid proof, of other sectors

	tests := []struct {
		name   string
		from   uint64
		method abi.MethodNum
		mut    func(p *miner.SubmitWindowedPoStParams)
		raw    []byte // params as sent, instead of good's mutated
		code   int
		want   string
	}{
		{name: "params that do not decode", raw: []byte{0x85, 0x00}, code: ExitSerialization, want: "failed to deserialize method parameters"},
		{name: "no proof", mut: func(p *miner.SubmitWindowedPoStParams) { p.Proofs = nil },
			code: ExitIllegalArgument, want: "expected exactly one proof, got 0"},
		{name: "one proof per partition", mut: func(p *miner.SubmitWindowedPoStParams) { p.Proofs = append(p.Proofs, p.Proofs[0]) },
			code: ExitIllegalArgument, want: "expected exactly one proof, got 2"},
		{name: "proof type the network does not allow (V1)", mut: func(p *miner.SubmitWindowedPoStParams) { p.Proofs[0].PoStProof = 5 },
			code: ExitIllegalArgument, want: "proof type 5 not allowed"},
		{name: "WinningPoSt proof type", mut: func(p *miner.SubmitWindowedPoStParams) { p.Proofs[0].PoStProof = 0 },
			code: ExitIllegalArgument, want: "proof type 0 not allowed"},
		{name: "deadline index out of range", mut: func(p *miner.SubmitWindowedPoStParams) { p.Deadline = 4 },
			code: ExitIllegalArgument, want: "invalid deadline 4 of 4"},
		{name: "chain commit randomness longer than 32 bytes", mut: func(p *miner.SubmitWindowedPoStParams) { p.ChainCommitRand = append(p.ChainCommitRand, 0) },
			code: ExitIllegalArgument, want: "expected at most 32 bytes of randomness, got 33"},
		{name: "caller neither worker nor owner", from: 555,
			code: ExitForbidden, want: "caller t0555 is not one of supported"},
		{name: "allowed proof type that is not the miner's", mut: func(p *miner.SubmitWindowedPoStParams) { p.Proofs[0].PoStProof = 11 },
			code: ExitIllegalArgument, want: "expected proof of type 10, got 11"},
		{name: "proof larger than the per-partition maximum times partitions", mut: func(p *miner.SubmitWindowedPoStParams) {
			p.Proofs[0].ProofBytes = make([]byte, 2*perPartition+1)
		}, code: ExitIllegalArgument, want: "expected proof to be smaller than " + strconv.Itoa(2*perPartition) + " bytes"},
		{name: "more partitions than the limit", mut: func(p *miner.SubmitWindowedPoStParams) {
			p.Partitions = []miner.PoStPartition{{Index: 0}, {Index: 1}, {Index: 2}, {Index: 3}}
		}, code: ExitIllegalArgument, want: "too many partitions 4, limit 3"},
		{name: "deadline that is not the open one", mut: func(p *miner.SubmitWindowedPoStParams) { p.Deadline = 1 },
			code: ExitIllegalArgument, want: "invalid deadline 1 at epoch 41, expected 0"},
		{name: "chain commit epoch before the challenge", mut: func(p *miner.SubmitWindowedPoStParams) { p.ChainCommitEpoch = 36 },
			code: ExitIllegalArgument, want: "expected chain commit epoch 36 to be after 37"},
		{name: "chain commit epoch not before the execution epoch", mut: func(p *miner.SubmitWindowedPoStParams) { p.ChainCommitEpoch = 41 },
			code: ExitIllegalArgument, want: "chain commit epoch 41 must be less than the current epoch 41"},
		{name: "chain commit randomness of another epoch", mut: func(p *miner.SubmitWindowedPoStParams) { p.ChainCommitEpoch = 38 },
			code: ExitIllegalArgument, want: "post commit randomness mismatched"},
		{name: "chain commit randomness short", mut: func(p *miner.SubmitWindowedPoStParams) { p.ChainCommitRand = p.ChainCommitRand[:31] },
			code: ExitIllegalArgument, want: "post commit randomness mismatched"},
		{name: "partition listed twice", mut: func(p *miner.SubmitWindowedPoStParams) { p.Partitions[1].Index = 0 },
			code: ExitIllegalArgument, want: "failed to process post submission for deadline 0: duplicate partitions proven"},
		{name: "partition that does not exist", mut: func(p *miner.SubmitWindowedPoStParams) { p.Partitions[1].Index = 7 },
			code: ExitNotFound, want: "failed to process post submission for deadline 0: no such partition 7"},
		{name: "skipped sector outside its partition", mut: func(p *miner.SubmitWindowedPoStParams) { p.Partitions[0].Skipped = bitfield.NewFromSet([]uint64{4}) },
			code: ExitIllegalArgument, want: "failed to add skipped faults to partition 0: skipped faults contains sectors outside partition"},
		{name: "every sector skipped", mut: func(p *miner.SubmitWindowedPoStParams) {
			p.Partitions[0].Skipped, p.Partitions[1].Skipped = bitfield.NewFromSet([]uint64{0, 1}), bitfield.NewFromSet([]uint64{4, 5})
		}, code: ExitIllegalArgument, want: "cannot prove partitions with no active sectors"},
		{name: "tampered proof", mut: func(p *miner.SubmitWindowedPoStParams) { p.Proofs[0].ProofBytes[len(p.Proofs[0].ProofBytes)-1] ^= 1 },
			code: ExitIllegalArgument, want: "invalid post was submitted"},
		{name: "proof of other sectors", mut: func(p *miner.SubmitWindowedPoStParams) {
			p.Proofs[0].ProofBytes = otherSectors.Proofs[0].ProofBytes
		}, code: ExitIllegalArgument, want: "invalid post was submitted"},
		{name: "proof that still covers a skipped sector", mut: func(p *miner.SubmitWindowedPoStParams) {
			p.Partitions[0].Skipped = bitfield.NewFromSet([]uint64{1})
		}, code: ExitIllegalArgument, want: "invalid post was submitted"},
		{name: "method the actor does not have", method: 99, code: ExitUnhandledMessage, want: "invalid method: 99"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := cloneParams(good)
			if tc.mut != nil {
				tc.mut(p)
			}
			raw := cborOf(p)
			if tc.raw != nil {
				raw = tc.raw
			}
			from, method := uint64(tWorker), builtin.MethodsMiner.SubmitWindowedPoSt
			if tc.from != 0 {
				from = tc.from
			}
			if tc.method != 0 {
				method = tc.method
			}
			_, err := r.push(from, method, raw)
			wantExit(t, err, tc.code, tc.want)
		})
	}
	if got := r.d.Report(0).Totals.MessagesRefused; got != len(tests) {
		t.Fatalf("MessagesRefused = %d, want %d", got, len(tests))
	}

	// The well-formed message passes, from the owner too, lands in the
	// next tipset with exit 0, and then the partitions count as proven.
	rec, err := r.push(tOwner, builtin.MethodsMiner.SubmitWindowedPoSt, cborOf(good))
	if err != nil {
		t.Fatalf("well-formed message refused: %v", err)
	}
	r.stepTo(41)
	res, _ := r.d.Message(rec.CID)
	if res.Pending || res.Height != 41 || res.ExitCode != 0 {
		t.Fatalf("after inclusion: %+v", res)
	}
	if got := r.miner().Deadlines[0].PostSubmissions; !bftest.Equal(got, bitfield.NewFromSet([]uint64{0, 1})) {
		t.Fatalf("PostSubmissions = %v", got)
	}
	// Proving a proven partition again is an error, not a no-op.
	again := r.post([]uint64{1, 2}, nil)
	_, err = r.push(tWorker, builtin.MethodsMiner.SubmitWindowedPoSt, cborOf(again))
	wantExit(t, err, ExitIllegalArgument, "failed to process post submission for deadline 0: partition already proven: {1}")

	// The rest of the deadline in one message: skipped sectors are left
	// out of the proof and become faulty.
	rest := r.post([]uint64{2, 3}, map[uint64][]uint64{3: {13}})
	if _, err := r.push(tWorker, builtin.MethodsMiner.SubmitWindowedPoSt, cborOf(rest)); err != nil {
		t.Fatal(err)
	}
	r.stepTo(50)
	if p := r.partition(0, 3); !bftest.Equal(p.Faulty, bitfield.NewFromSet([]uint64{13})) {
		t.Fatalf("skipped sector not faulty: %v", p.Faulty)
	}
	last := r.d.Report(1).Records[0]
	if last.Index != 0 || last.Outcome != OutcomeFaulty || last.ProvenPartitions != 4 || last.Messages != 2 {
		t.Fatalf("deadline 0 record %+v", last)
	}
}

// TestSubmitWindowedPoStBeforeFirstDue: the devnet's own rule, that
// deadlines it does not judge take no proofs.
// TestSubmitWindowedPoStBeforeFirstDue: a deadline before FirstDueEpoch
// takes a good proof as any other (a real chain has no first due epoch),
// still refuses a bad one, and is not judged when it closes.
func TestSubmitWindowedPoStBeforeFirstDue(t *testing.T) {
	r := newRig(t, nil)
	r.stepTo(11) // deadline 1 of period 0: open 10..20, challenge 7 < 30
	bad := &miner.SubmitWindowedPoStParams{Deadline: 1, Partitions: []miner.PoStPartition{{Index: 0}},
		Proofs: []prooftypes.PoStProof{{PoStProof: r.miner().PoStProof, ProofBytes: []byte{1}}}}
	_, err := r.push(tWorker, builtin.MethodsMiner.SubmitWindowedPoSt, cborOf(bad))
	wantExit(t, err, ExitIllegalArgument, "")
	if _, err := r.push(tWorker, builtin.MethodsMiner.SubmitWindowedPoSt, cborOf(r.post([]uint64{0, 1}, nil))); err != nil {
		t.Fatalf("a good proof before the first due epoch was refused: %v", err)
	}
	r.stepTo(25)
	if rep := r.d.Report(-1); len(rep.Records) != 0 || rep.Totals.Proven+rep.Totals.Missed+rep.Totals.Faulty != 0 {
		t.Fatalf("deadlines before the first due epoch were judged: %+v", rep)
	}
}

func TestUnknownReceiver(t *testing.T) {
	r := newRig(t, nil)
	_, err := r.c.pushMessage(context.Background(), &fullnode.Message{To: fullnode.IDAddress(4242), From: fullnode.IDAddress(tWorker), Method: 5}, "")
	wantExit(t, err, ExitSysInvalidReceiver, "actor f04242 not found")
}

// TestDeclarationRules breaks each rule of declare_faults and
// declare_faults_recovered (lib.rs, sector_map.rs, deadline_state.rs,
// partition_state.rs) and checks what a well-formed declaration changes.
func TestDeclarationRules(t *testing.T) {
	r := newRig(t, nil)
	// Head 43: pushes are estimated at 44. Deadline 0 (open 40..50) is
	// past its cutoff; deadline 1 (opens 50, cutoff 45) is not yet.
	r.stepTo(43)
	manyPartitions := make([]miner.FaultDeclaration, miner.AddressedPartitionsMax+1)
	for i := range manyPartitions {
		manyPartitions[i] = decl(1, uint64(i), 2)
	}
	manySectors, _ := bitfield.NewFromIter(&rlepluslazy.RunSliceIterator{Runs: []rlepluslazy.Run{{Val: true, Len: miner.AddressedSectorsMax + 1}}})
	tests := []struct {
		name      string
		recovered bool
		from      uint64
		raw       []byte
		code      int
		want      string
	}{
		{name: "params that do not decode", raw: []byte{0x81}, code: ExitSerialization, want: "failed to deserialize method parameters"},
		{name: "deadline index out of range", raw: declParams(decl(4, 0, 2)),
			code: ExitIllegalArgument, want: "failed to process deadline 4, partition 0: invalid deadline 4"},
		{name: "recovery: deadline index out of range", recovered: true, raw: declParams(decl(4, 0, 2)),
			code: ExitIllegalArgument, want: "failed to process deadline 4, partition 0: invalid deadline 4"},
		{name: "more partitions than AddressedPartitionsMax", raw: declParams(manyPartitions...),
			code: ExitIllegalArgument, want: "cannot process requested parameters: too many partitions 3001, max 3000"},
		{name: "more sectors than AddressedSectorsMax", raw: declParams(miner.FaultDeclaration{Deadline: 1, Partition: 0, Sectors: manySectors}),
			code: ExitIllegalArgument, want: "cannot process requested parameters: too many sectors 25001, max 25000"},
		{name: "recovery: more sectors than AddressedSectorsMax", recovered: true, raw: declParams(miner.FaultDeclaration{Deadline: 1, Partition: 0, Sectors: manySectors}),
			code: ExitIllegalArgument, want: "too many sectors 25001, max 25000"},
		{name: "caller neither worker nor owner", from: 555, raw: declParams(decl(1, 0, 2)),
			code: ExitForbidden, want: "caller t0555 is not one of supported"},
		{name: "deadline past its fault cutoff", raw: declParams(decl(0, 0, 0)),
			code: ExitIllegalArgument, want: "failed fault declaration at deadline 0: late fault or recovery declaration"},
		{name: "recovery: deadline past its fault cutoff", recovered: true, raw: declParams(decl(0, 0, 0)),
			code: ExitIllegalArgument, want: "failed recovery declaration at deadline 0: late fault or recovery declaration"},
		{name: "late deadline after a good one", raw: declParams(decl(1, 0, 2), decl(0, 0, 0)),
			code: ExitIllegalArgument, want: "failed fault declaration at deadline 0"},
		{name: "partition that does not exist", raw: declParams(decl(1, 9, 2)),
			code: ExitNotFound, want: "failed to declare faults for deadline 1: no such partition 9"},
		{name: "recovery: partition that does not exist", recovered: true, raw: declParams(decl(1, 9, 2)),
			code: ExitNotFound, want: "failed to declare recoveries for deadline 1: no such partition 9"},
		{name: "sector outside the partition", raw: declParams(decl(1, 0, 2, 7)),
			code: ExitIllegalArgument, want: "failed to declare faults for deadline 1: failed to declare faults in partition 0: failed fault declaration: not all sectors are assigned to the partition"},
		{name: "recovery: sector outside the partition", recovered: true, raw: declParams(decl(1, 0, 7)),
			code: ExitIllegalArgument, want: "failed to declare recoveries for deadline 1: failed to add recoveries: failed fault declaration: not all sectors are assigned to the partition"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method, from := builtin.MethodsMiner.DeclareFaults, uint64(tWorker)
			if tc.recovered {
				method = builtin.MethodsMiner.DeclareFaultsRecovered
			}
			if tc.from != 0 {
				from = tc.from
			}
			_, err := r.push(from, method, tc.raw)
			wantExit(t, err, tc.code, tc.want)
		})
	}

	// Accepted: an empty declaration (the actor has no rule against it);
	// a recovery of a sector that is not faulty (ignored, as the actor
	// ignores it); and a fault declaration for deadline 1 listing
	// partition 0 twice, whose entries merge.
	for _, ok := range []struct {
		method abi.MethodNum
		raw    []byte
	}{
		{builtin.MethodsMiner.DeclareFaults, declParams()},
		{builtin.MethodsMiner.DeclareFaultsRecovered, declParams(decl(1, 1, 6))},
		{builtin.MethodsMiner.DeclareFaults, declParams(decl(1, 0, 2), decl(1, 0, 3), decl(1, 1, 7))},
	} {
		if _, err := r.push(tWorker, ok.method, ok.raw); err != nil {
			t.Fatalf("method %d: %v", ok.method, err)
		}
	}
	r.stepTo(44)
	if p := r.partition(1, 0); !bftest.Equal(p.Faulty, bitfield.NewFromSet([]uint64{2, 3})) {
		t.Fatalf("deadline 1 partition 0 faulty = %v", p.Faulty)
	}
	if p := r.partition(1, 1); !bftest.Equal(p.Faulty, bitfield.NewFromSet([]uint64{7})) || !bftest.Empty(p.Recovering) {
		t.Fatalf("deadline 1 partition 1 faulty = %v recovering = %v", p.Faulty, p.Recovering)
	}

	// At head 44 a push is estimated at 45, deadline 1's cutoff.
	_, err := r.push(tWorker, builtin.MethodsMiner.DeclareFaults, declParams(decl(1, 2, 10)))
	wantExit(t, err, ExitIllegalArgument, "failed fault declaration at deadline 1: late fault or recovery declaration")

	// Once deadline 0 has closed (at 50), a declaration for it targets
	// period 2's deadline 0 (opens 80, cutoff 75). Faulty sectors 2 and 3
	// of deadline 1 are declared recovered.
	r.stepTo(60)
	if _, err := r.push(tWorker, builtin.MethodsMiner.DeclareFaults, declParams(decl(0, 1, 4))); err != nil {
		t.Fatal(err)
	}
	if _, err := r.push(tWorker, builtin.MethodsMiner.DeclareFaultsRecovered, declParams(decl(1, 0, 2, 3))); err != nil {
		t.Fatal(err)
	}
	// A fault declared after a recovery retracts it.
	if _, err := r.push(tOwner, builtin.MethodsMiner.DeclareFaults, declParams(decl(1, 0, 3))); err != nil {
		t.Fatal(err)
	}
	r.stepTo(61)
	if p := r.partition(1, 0); !bftest.Equal(p.Recovering, bitfield.NewFromSet([]uint64{2})) || !bftest.Equal(p.Faulty, bitfield.NewFromSet([]uint64{2, 3})) {
		t.Fatalf("deadline 1 partition 0 faulty %v recovering %v", p.Faulty, p.Recovering)
	}
	// Proving deadline 1 of period 2 heals the recovery: the proof covers
	// sector 2, not sector 3.
	r.stepTo(90)
	p := r.post([]uint64{0}, nil)
	if _, err := r.push(tWorker, builtin.MethodsMiner.SubmitWindowedPoSt, cborOf(p)); err != nil {
		t.Fatal(err)
	}
	r.stepTo(91)
	if p := r.partition(1, 0); !bftest.Equal(p.Faulty, bitfield.NewFromSet([]uint64{3})) || !bftest.Empty(p.Recovering) {
		t.Fatalf("after the proof: faulty %v recovering %v", p.Faulty, p.Recovering)
	}
}

// TestPartitionLimit checks fullnode's limits against the actor's
// formula: min(AddressedSectorsMax / partition sectors,
// AddressedPartitionsMax, PoStedPartitionsMax).
func TestPartitionLimit(t *testing.T) {
	for _, tc := range []struct {
		sectors    uint64
		limit      uint64
		maxPerPoSt int
	}{
		{2, 3, 3}, {2349, 3, 3}, {2300, 3, 3}, {10_000, 2, 2}, {25_000, 1, 1}, {25_001, 0, 1},
	} {
		if got := fullnode.PoStPartitionLimit(tc.sectors); got != tc.limit {
			t.Errorf("PoStPartitionLimit(%d) = %d, want %d", tc.sectors, got, tc.limit)
		}
		if got := fullnode.MaxPartitionsPerPoSt(tc.sectors); got != tc.maxPerPoSt {
			t.Errorf("MaxPartitionsPerPoSt(%d) = %d, want %d", tc.sectors, got, tc.maxPerPoSt)
		}
	}
}

// TestBuiltinProofSizeLimit: a built-in proof of a full partition fits
// the built-in verifier's per-partition maximum, and so does one proof
// of the largest batch.
func TestBuiltinProofSizeLimit(t *testing.T) {
	r := newRig(t, nil)
	r.stepTo(40)
	limit, err := BuiltinVerifier{}.MaxWindowPoStProofSize(r.miner().PoStProof)
	if err != nil {
		t.Fatal(err)
	}
	one := r.post([]uint64{0}, nil)
	if n := len(one.Proofs[0].ProofBytes); n > limit || n < limit-64 {
		t.Fatalf("one full partition's proof is %d bytes, limit %d", n, limit)
	}
	three := r.post([]uint64{0, 1, 2}, nil)
	if n := len(three.Proofs[0].ProofBytes); n > 3*limit {
		t.Fatalf("three partitions' proof is %d bytes, limit %d", n, 3*limit)
	}
	for _, typ := range []abi.RegisteredPoStProof{10, 11, 12, 13, 14} {
		if _, err := (BuiltinVerifier{}).MaxWindowPoStProofSize(typ); err != nil {
			t.Errorf("type %d: %v", typ, err)
		}
	}
	if _, err := (BuiltinVerifier{}).MaxWindowPoStProofSize(99); err == nil {
		t.Error("type 99: no error")
	}
}

// gateVerifier holds proof checks until released, so a test can move the
// chain between a message's estimation and its inclusion.
type gateVerifier struct {
	BuiltinVerifier
	hold    atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gateVerifier) VerifyWindowPoSt(ctx context.Context, v WindowPoStVerifyInfo) error {
	if g.hold.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.BuiltinVerifier.VerifyWindowPoSt(ctx, v)
}

// TestReceiptOfMessageThatFailsAtExecution: a message that passed
// estimation but lands after its deadline closed gets a receipt with the
// actor's exit code, as on chain; Lotus's shapes carry the code, and
// StateReplay and Devnet.Message the reason.
func TestReceiptOfMessageThatFailsAtExecution(t *testing.T) {
	g := &gateVerifier{entered: make(chan struct{}), release: make(chan struct{})}
	r := newRig(t, g)
	r.stepTo(48) // estimated at 49, deadline 0's last epoch
	p := r.post([]uint64{0}, nil)
	g.hold.Store(true)
	type pushed struct {
		rec *msgRecord
		err error
	}
	done := make(chan pushed)
	go func() {
		rec, err := r.push(tWorker, builtin.MethodsMiner.SubmitWindowedPoSt, cborOf(p))
		done <- pushed{rec, err}
	}()
	<-g.entered
	r.stepTo(50) // deadline 0 closes while the proof is being checked
	g.hold.Store(false)
	close(g.release)
	res := <-done
	if res.err != nil {
		t.Fatalf("estimated at 49, the message should pass: %v", res.err)
	}
	r.stepTo(51) // included at 51, where deadline 1 is open
	got, _ := r.d.Message(res.rec.CID)
	if got.Pending || got.Height != 51 || got.ExitCode != ExitIllegalArgument || !strings.Contains(got.Reason, "invalid deadline 0 at epoch 51, expected 1") {
		t.Fatalf("message %+v", got)
	}
	if tot := r.d.Report(0).Totals; tot.MessagesFailed != 1 || tot.MessagesRefused != 0 {
		t.Fatalf("totals %+v", tot)
	}

	srv := newHTTP(t, r.d)
	cid, _ := cid.Decode(res.rec.CID)
	var look *fullnode.MsgLookup
	if err := srv.Call(context.Background(), "Filecoin.StateSearchMsg", &look, fullnode.EmptyTSK, cid, -1, true); err != nil || look != nil {
		t.Fatalf("receipt visible before its execution tipset: %+v, %v", look, err)
	}
	r.stepTo(52)
	if err := srv.Call(context.Background(), "Filecoin.StateWaitMsg", &look, cid, 0, -1, true); err != nil {
		t.Fatal(err)
	}
	if look.Height != 52 || look.Receipt.ExitCode != exitcode.ErrIllegalArgument {
		t.Fatalf("StateWaitMsg = %+v", look)
	}
	var replay struct {
		MsgRct fullnode.MessageReceipt
		Error  string
	}
	if err := srv.Call(context.Background(), "Filecoin.StateReplay", &replay, fullnode.EmptyTSK, cid); err != nil {
		t.Fatal(err)
	}
	if replay.MsgRct.ExitCode != exitcode.ErrIllegalArgument || !strings.Contains(replay.Error, "t01000 (method 5) -- invalid deadline 0 at epoch 51, expected 1 (16)") {
		t.Fatalf("StateReplay = %+v", replay)
	}
}

// TestSecondSenderFailsAtExecution: the worker and the owner prove the same
// partition in one epoch. Estimation applies only a sender's own pending
// messages (as Lotus does), so both pass; the second to execute fails.
// From one sender, the second is refused at estimation.
func TestSecondSenderFailsAtExecution(t *testing.T) {
	r := newRig(t, nil)
	r.stepTo(40)
	p := cborOf(r.post([]uint64{0}, nil))
	first, err := r.push(tWorker, builtin.MethodsMiner.SubmitWindowedPoSt, p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.push(tWorker, builtin.MethodsMiner.SubmitWindowedPoSt, p)
	wantExit(t, err, ExitIllegalArgument, "partition already proven: {0}")
	second, err := r.push(tOwner, builtin.MethodsMiner.SubmitWindowedPoSt, p)
	if err != nil {
		t.Fatal(err)
	}
	r.stepTo(41)
	a, _ := r.d.Message(first.CID)
	b, _ := r.d.Message(second.CID)
	if a.ExitCode != 0 || b.ExitCode != ExitIllegalArgument || !strings.Contains(b.Reason, "partition already proven") {
		t.Fatalf("first %+v, second %+v", a, b)
	}
}

// TestPushOverHTTP: Lotus's wire: a refusal is a JSON-RPC error whose
// text carries the exit code; a push repeated with the same MsgUuid
// returns the first message; StateWaitMsg waits for the execution tipset
// plus the confidence.
func TestPushOverHTTP(t *testing.T) {
	r := newRig(t, nil)
	r.stepTo(40)
	cl := newHTTP(t, r.d)
	ctx := context.Background()
	msg := func(p *miner.SubmitWindowedPoStParams) *fullnode.Message {
		return &fullnode.Message{To: fullnode.IDAddress(tMiner), From: fullnode.IDAddress(tWorker), Method: builtin.MethodsMiner.SubmitWindowedPoSt, Params: cborOf(p)}
	}
	good := r.post([]uint64{0}, nil)
	bad := cloneParams(good)
	bad.Proofs = append(bad.Proofs, bad.Proofs[0])
	var sm fullnode.SignedMessage
	err := cl.Call(ctx, "Filecoin.MpoolPushMessage", &sm, msg(bad), nil)
	if err == nil || !strings.Contains(err.Error(), "exit=[ErrIllegalArgument(16)]") || !strings.Contains(err.Error(), "expected exactly one proof, got 2") {
		t.Fatalf("refused push: %v", err)
	}
	spec := map[string]any{"MaxFee": "0", "MsgUuid": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "MaximizeFeeCap": false}
	if err := cl.Call(ctx, "Filecoin.MpoolPushMessage", &sm, msg(good), spec); err != nil {
		t.Fatal(err)
	}
	var again fullnode.SignedMessage
	if err := cl.Call(ctx, "Filecoin.MpoolPushMessage", &again, msg(good), spec); err != nil {
		t.Fatalf("repeated MsgUuid: %v", err)
	}
	if !again.CID.Equals(sm.CID) {
		t.Fatalf("repeated MsgUuid gave %s, first push %s", again.CID, sm.CID)
	}

	type waited struct {
		look *fullnode.MsgLookup
		err  error
	}
	done := make(chan waited, 1)
	go func() {
		var look *fullnode.MsgLookup
		err := cl.Call(ctx, "Filecoin.StateWaitMsg", &look, sm.CID, 2, -1, true)
		done <- waited{look, err}
	}()
	// Included at 41, executed-at tipset 42, confidence 2: head 44.
	for h := ChainEpoch(41); h <= 44; h++ {
		select {
		case w := <-done:
			t.Fatalf("StateWaitMsg returned at head %d: %+v %v", h-1, w.look, w.err)
		default:
		}
		r.stepTo(h)
	}
	w := <-done
	if w.err != nil || w.look.Height != 42 || w.look.Receipt.ExitCode != 0 || !w.look.TipSet.Equal(fullnode.TipSetKey{r.c.blockCID(42)}) {
		t.Fatalf("StateWaitMsg = %+v, %v", w.look, w.err)
	}
	if n := len(r.c.st.Messages); n != 1 {
		t.Fatalf("%d messages on chain, want 1", n)
	}
}

func newHTTP(t *testing.T, d *Devnet) *fullnode.Client {
	t.Helper()
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	return fullnode.NewClient(fullnode.APIInfo{Token: d.Token(), URL: srv.URL + "/rpc/v1"}, zaptest.NewLogger(t))
}

// TestV0ReceiptMethods: /rpc/v0 takes Lotus v0's shorter StateSearchMsg
// and StateWaitMsg (and their *Limited forms), and says so when given
// v1's.
func TestV0ReceiptMethods(t *testing.T) {
	r := newRig(t, nil)
	r.stepTo(43)
	rec, err := r.push(tWorker, builtin.MethodsMiner.DeclareFaults, declParams(decl(1, 0, 2)))
	if err != nil {
		t.Fatal(err)
	}
	r.stepTo(45)
	srv := httptest.NewServer(r.d.Handler())
	t.Cleanup(srv.Close)
	v0 := fullnode.NewClient(fullnode.APIInfo{URL: srv.URL + "/rpc/v0"}, zaptest.NewLogger(t))
	ctx := context.Background()
	cid, _ := cid.Decode(rec.CID)
	for _, call := range []struct {
		method string
		args   []any
	}{
		{"Filecoin.StateSearchMsg", []any{cid}},
		{"Filecoin.StateSearchMsgLimited", []any{cid, 10}},
		{"Filecoin.StateWaitMsg", []any{cid, 0}},
		{"Filecoin.StateWaitMsgLimited", []any{cid, 0, 10}},
	} {
		var look *fullnode.MsgLookup
		if err := v0.Call(ctx, call.method, &look, call.args...); err != nil || look == nil || look.Height != 45 {
			t.Fatalf("v0 %s = %+v, %v", call.method, look, err)
		}
	}
	var look *fullnode.MsgLookup
	err = v0.Call(ctx, "Filecoin.StateWaitMsg", &look, cid, 1, -1, true)
	if err == nil || !strings.Contains(err.Error(), "takes 2 params, got 4") {
		t.Fatalf("v1 form on v0: %v", err)
	}
}

// cborOf is the params' chain encoding (fullnode.EncodeParams); a test's
// params always encode.
func cborOf(p cbg.CBORMarshaler) []byte {
	b, err := fullnode.EncodeParams(p)
	if err != nil {
		panic(err)
	}
	return b
}
