package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commcid "github.com/filecoin-project/go-fil-commcid"

	"github.com/filecoin-project/go-address"

	"github.com/filecoin-project/go-state-types/abi"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/filecoin-project/go-bitfield"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"
	"github.com/ipfs/go-cid"
	dto "github.com/prometheus/client_model/go"

	"github.com/vsm-project/vsm/devnet"
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/engine"
)

func TestWindow(t *testing.T) {
	p := fullnode.MainnetPolicy()
	tests := []struct {
		name             string
		periodStart      abi.ChainEpoch
		d                uint64
		head             abi.ChainEpoch
		wantOpen, wantPS abi.ChainEpoch
	}{
		{"deadline 0 at genesis", 0, 0, 0, 0, 0},
		{"open window is the current one", 100, 2, 100 + 2*60 + 59, 220, 100},
		{"closed window moves to the next period", 100, 2, 100 + 3*60, 220 + 2880, 2980},
		{"future window this period", 100, 40, 150, 100 + 40*60, 100},
		{"period start given from another period", 100 + 5*2880, 1, 3000, 160 + 2880, 2980},
		{"head before the offset (negative quantisation)", 2000, 47, 10, 2000 - 2880 + 47*60, 2000 - 2880},
		{"last deadline wraps into the next period", 7, 47, 7 + 2880 - 1, 7 + 47*60, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			di := Window(tt.periodStart, tt.d, tt.head, p)
			if di.Open != tt.wantOpen || di.PeriodStart != tt.wantPS || di.Close <= tt.head || di.Index != tt.d {
				t.Fatalf("Window = open %d period %d close %d, want open %d period %d", di.Open, di.PeriodStart, di.Close, tt.wantOpen, tt.wantPS)
			}
			if di.Challenge != di.Open-20 || di.FaultCutoff != di.Open-70 {
				t.Fatalf("challenge %d cutoff %d for open %d", di.Challenge, di.FaultCutoff, di.Open)
			}
		})
	}
}

func TestPhaseAt(t *testing.T) {
	di := *fullnode.MainnetPolicy().NewInfo(0, 10, 0) // open 600, close 660, challenge 580, cutoff 530
	tests := []struct {
		head, since abi.ChainEpoch
		want        Phase
	}{
		{head: 400, want: PhaseIdle},
		{head: 479, want: PhaseIdle},  // before deadline 8 opens
		{head: 480, want: PhaseCheck}, // deadline 8 opens: declare for 10
		{head: 529, want: PhaseCheck},
		{head: 530, want: PhaseIdle}, // cutoff passed, challenge not yet
		{head: 583, want: PhaseIdle}, // challenge+3
		{head: 584, want: PhaseProve},
		{head: 620, want: PhaseProve},
		{head: 659, want: PhaseProve},
		{head: 660, want: PhaseIdle},                  // closed
		{head: 620, since: 615, want: PhaseProve},     // taken over inside the window
		{head: 620, since: 660, want: PhaseNotOurs},   // handed over too late: owned from the close
		{head: 500, since: 10000, want: PhaseNotOurs}, // owned from a later period
	}
	for _, tt := range tests {
		if got := PhaseAt(di, tt.head, tt.since, 4); got != tt.want {
			t.Errorf("PhaseAt(head %d, since %d) = %s, want %s", tt.head, tt.since, got, tt.want)
		}
	}
}

// engineProver proves in-process with the built-in engine, as a `vsm
// wdpost` child would; it can fail its first calls to exercise retries.
type engineProver struct {
	failFirst atomic.Int32
	calls     atomic.Int32
}

func (p *engineProver) Prove(ctx context.Context, task prover.WindowPoStTask) (prover.WindowPoStOutput, error) {
	p.calls.Add(1)
	if p.failFirst.Add(-1) >= 0 {
		return prover.WindowPoStOutput{}, errors.New("child lost (test)")
	}
	var secs []engine.Sector
	for _, r := range task.Replicas {
		secs = append(secs, engine.Sector{ID: r.SectorID, CommR: [32]byte(r.CommR), SealedPath: r.SealedFile, CacheDir: r.CacheDir})
	}
	res, err := engine.Prover{}.Prove(ctx, task.MinerID, task.ProofType, [32]byte(task.Seed), secs)
	if err != nil {
		return prover.WindowPoStOutput{}, err
	}
	out := prover.WindowPoStOutput{Proofs: [][]byte{}, Faults: []uint64{}}
	if res.Proof != nil {
		out.Proofs = append(out.Proofs, res.Proof)
	}
	for _, f := range res.Faults {
		out.Faults = append(out.Faults, f.SectorID)
	}
	return out, nil
}

type lockedFSM struct {
	mu sync.Mutex
	*fsm.FSM
}

func (l *lockedFSM) apply(t testing.TB, c fsm.Command) {
	t.Helper()
	if r := l.ApplyCommand(c); r.Err != nil {
		t.Fatal(r.Err)
	}
}

// TestRunnerProvesEveryDeadline runs the runner against an in-process
// devnet (4 deadlines of 10 epochs, two partitions in deadlines 0 and 1)
// for two periods: every judged deadline is proven and verified by the
// devnet, both partitions in one message with one proof over their sorted
// union (the default limit), after a failed first prove attempt.
// runnerFixture is an in-process devnet with one miner whose four
// deadlines are all assigned to node n1 in a local FSM.
type runnerFixture struct {
	dn    *devnet.Devnet
	chain *fullnode.Client
	f     *lockedFSM
	locs  []fsm.SectorLocation
}

func newRunnerFixture(t testing.TB, ctx context.Context, withLocations bool) *runnerFixture {
	t.Helper()
	off := int64(0)
	spec := &devnet.Spec{
		Seed: "runner", FirstDueEpoch: 40,
		Policy: devnet.PolicySpec{PeriodDeadlines: 4, ChallengeWindow: 10, ChallengeLookback: 3, FaultDeclarationCutoff: 5},
		Miners: []devnet.MinerSpec{{ID: 1000, Worker: 100, Sectors: 8, ProvingPeriodOffset: &off, Deadlines: []uint64{0, 1}}},
	}
	dn, err := devnet.New(ctx, devnet.Config{Dir: t.TempDir(), Spec: spec, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(dn.Handler())
	t.Cleanup(srv.Close)
	chain := fullnode.NewClient(fullnode.APIInfo{Token: dn.Token(), URL: srv.URL + "/rpc/v1"}, zaptest.NewLogger(t))

	fx := &runnerFixture{dn: dn, chain: chain, f: &lockedFSM{FSM: fsm.New(nil)}}
	fx.f.apply(t, fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PoStProof: 10, PartitionSize: 2, Enabled: true}})
	fx.f.apply(t, fsm.PutStorage{Instance: fsm.StorageInstance{Name: "store", Path: dn.Miners()[0].SectorDir}})
	for n := uint64(0); n < 8; n++ {
		si, err := chain.StateSectorGetInfo(ctx, fullnode.IDAddress(1000), abi.SectorNumber(n), nil)
		if err != nil {
			t.Fatal(err)
		}
		commR, err := commcid.CIDToReplicaCommitmentV1(si.SealedCID)
		if err != nil {
			t.Fatal(err)
		}
		fx.locs = append(fx.locs, fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: n}, Sealed: "store", Cache: "store", CommR: fsm.CommR(commR)})
	}
	if withLocations {
		fx.f.apply(t, fsm.PutLocations{Locations: fx.locs})
	}
	var as []fsm.Assignment
	for d := uint8(0); d < 4; d++ {
		as = append(as, fsm.Assignment{DeadlineKey: fsm.DeadlineKey{Miner: 1000, Deadline: d}, Node: "n1"})
	}
	fx.f.apply(t, fsm.SetAssignments{Assignments: as})
	return fx
}

func (fx *runnerFixture) runner(t *testing.T, prov Prover) *Runner {
	t.Helper()
	return fx.runnerWith(t, prov, func(c Chain) Chain { return c })
}

// runnerWith is runner with the chain client wrapped by wrap and the
// config changed by edits.
func (fx *runnerFixture) runnerWith(t testing.TB, prov Prover, wrap func(Chain) Chain, edits ...func(*Config)) *Runner {
	t.Helper()
	cfg := Config{
		NodeID: "n1", Chain: wrap(fx.chain), Prover: prov, Store: fx.f.FSM, Confidence: 1, MessageConfidence: 1, Poll: 5 * time.Millisecond,
		Record: func(_ context.Context, rec fsm.DeadlineRecord) error {
			fx.f.mu.Lock()
			defer fx.f.mu.Unlock()
			return fx.f.ApplyCommand(fsm.RecordDeadline{Record: rec}).Err
		},
		Logger: zaptest.NewLogger(t),
	}
	for _, edit := range edits {
		edit(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRunnerProvesEveryDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx := newRunnerFixture(t, ctx, true)
	dn, f := fx.dn, fx.f
	prov := &engineProver{}
	prov.failFirst.Store(1)
	r := fx.runner(t, prov)
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	// Deadlines 0 and 1 are judged from challenge epoch 40 on: deadline 1
	// of period 40 and both of period 80.
	for dn.Height() < 121 {
		dn.Step(1)
		time.Sleep(25 * time.Millisecond)
	}
	cancel()
	<-done
	rep := dn.Report(-1)
	t.Logf("devnet: %s", rep)
	if rep.Totals.Missed != 0 || rep.Totals.Faulty != 0 || rep.Totals.Proven != 3 {
		t.Fatalf("devnet report %s, want 3 proven\n%+v", rep, rep.Records)
	}
	// Every judged occurrence is recorded proven, once: a finished
	// occurrence must not be proven again (and fail) later in its window.
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, want := range []struct {
		d  uint8
		ps int64
	}{{1, 40}, {0, 80}, {1, 80}} {
		var got *fsm.DeadlineRecord
		for _, r := range f.Records(fsm.DeadlineKey{Miner: 1000, Deadline: want.d}) {
			if r.PeriodStart == want.ps {
				got = &r
			}
		}
		if got == nil || got.Outcome != fsm.OutcomeProven || got.Node != "n1" {
			t.Fatalf("record of deadline %d in period %d: %+v", want.d, want.ps, got)
		}
	}
}

// faultyOnChain counts the sectors of a deadline the devnet holds faulty.
func faultyOnChain(t *testing.T, ctx context.Context, fx *runnerFixture, d uint64) uint64 {
	t.Helper()
	parts, err := fx.chain.StateMinerPartitions(ctx, fullnode.IDAddress(1000), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, p := range parts {
		c, err := p.FaultySectors.Count()
		if err != nil {
			t.Fatal(err)
		}
		n += c
	}
	return n
}

// TestRunnerDeclaresOnlyRecoveries starts the runner before the sector
// locations are in the store. It must declare no fault ahead (as Lotus):
// the sectors are still not faulty on chain when deadline 1's fault cutoff
// passes, and are skipped when proving, so the devnet marks them faulty
// then. Once the locations arrive the runner must declare them recovered
// before the next period's windows, so those are proven.
func TestRunnerDeclaresOnlyRecoveries(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx := newRunnerFixture(t, ctx, false)
	r := fx.runner(t, &engineProver{})
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	step := func(to int64) {
		for int64(fx.dn.Height()) < to {
			fx.dn.Step(1)
			time.Sleep(25 * time.Millisecond)
		}
	}
	// Deadline 1 of period 40: declared from 30, fault cutoff 45, open 50.
	step(46)
	if n := faultyOnChain(t, ctx, fx, 1); n != 0 {
		t.Fatalf("%d sectors of deadline 1 faulty on chain after its fault cutoff; no fault may be declared ahead", n)
	}
	step(61) // deadline 1 closed: its unlocatable sectors were skipped
	if n := faultyOnChain(t, ctx, fx, 1); n == 0 {
		t.Fatal("deadline 1's sectors were skipped but are not faulty on chain")
	}
	fx.f.mu.Lock()
	err := fx.f.ApplyCommand(fsm.PutLocations{Locations: fx.locs}).Err
	fx.f.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	step(101)
	cancel()
	<-done
	rep := fx.dn.Report(-1)
	t.Logf("devnet: %s", rep)
	judged := map[[2]int64]string{}
	for _, rec := range rep.Records {
		judged[[2]int64{int64(rec.PeriodStart), int64(rec.Index)}] = rec.Outcome
	}
	if got := fx.record(1, 40); got == nil || got.Outcome != fsm.OutcomeFaulty {
		t.Fatalf("runner's record of deadline 1 in period 40: %+v, want faulty (sectors skipped)", got)
	}
	for _, d := range []int64{0, 1} {
		if got := fx.record(uint8(d), 80); got == nil || got.Outcome != fsm.OutcomeProven {
			t.Fatalf("runner's record of deadline %d in period 80: %+v, want proven after the recovery", d, got)
		}
		if judged[[2]int64{80, d}] != devnet.OutcomeProven {
			t.Fatalf("devnet judged deadline %d of period 80 %q, want proven (the recovery must land)\n%+v", d, judged[[2]int64{80, d}], rep.Records)
		}
	}
}

// faultyProver is engineProver with some sectors reported faulty and left
// out of the proof, as filecoin-ffi's child answers.
type faultyProver struct {
	engineProver
	bad map[uint64]bool
}

func (p *faultyProver) Prove(ctx context.Context, task prover.WindowPoStTask) (prover.WindowPoStOutput, error) {
	var faults []uint64
	kept := task
	kept.Replicas = nil
	for _, r := range task.Replicas {
		if p.bad[r.SectorID] {
			faults = append(faults, r.SectorID)
			continue
		}
		kept.Replicas = append(kept.Replicas, r)
	}
	out := prover.WindowPoStOutput{Proofs: [][]byte{}, Faults: []uint64{}}
	if len(kept.Replicas) > 0 {
		var err error
		if out, err = p.engineProver.Prove(ctx, kept); err != nil {
			return out, err
		}
	}
	out.Faults = append(out.Faults, faults...)
	return out, nil
}

// TestRunnerRecordsUnsentPartitionFaulty: when no sector of a partition
// can be proven, the partition gets no message; the deadline is recorded
// faulty with that partition's sectors, never proven.
func TestRunnerRecordsUnsentPartitionFaulty(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx := newRunnerFixture(t, ctx, true)
	parts, err := fx.chain.StateMinerPartitions(ctx, fullnode.IDAddress(1000), 1, nil)
	if err != nil || len(parts) != 2 {
		t.Fatalf("deadline 1: %d partitions, %v", len(parts), err)
	}
	badSectors, err := parts[1].LiveSectors.All(100)
	if err != nil || len(badSectors) == 0 {
		t.Fatal(badSectors, err)
	}
	bad := map[uint64]bool{}
	for _, n := range badSectors {
		bad[n] = true
	}
	r := fx.runner(t, &faultyProver{bad: bad})
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	for fx.dn.Height() < 121 {
		fx.dn.Step(1)
		time.Sleep(25 * time.Millisecond)
	}
	cancel()
	<-done
	fx.f.mu.Lock()
	defer fx.f.mu.Unlock()
	for _, want := range []struct {
		d       uint8
		ps      int64
		outcome fsm.Outcome
	}{{1, 40, fsm.OutcomeFaulty}, {0, 80, fsm.OutcomeProven}, {1, 80, fsm.OutcomeFaulty}} {
		var got *fsm.DeadlineRecord
		for _, r := range fx.f.Records(fsm.DeadlineKey{Miner: 1000, Deadline: want.d}) {
			if r.PeriodStart == want.ps {
				got = &r
			}
		}
		if got == nil || got.Outcome != want.outcome {
			t.Fatalf("record of deadline %d in period %d: %+v, want %s", want.d, want.ps, got, want.outcome)
		}
		if want.outcome == fsm.OutcomeFaulty && fmt.Sprint(got.FaultySector) != fmt.Sprint(badSectors) {
			t.Fatalf("record of deadline %d in period %d: faulty sectors %v, want %v", want.d, want.ps, got.FaultySector, badSectors)
		}
	}
}

// badProofProver is engineProver with WindowPoSt proofs corrupted: the
// devnet's verifier refuses them when the node estimates the message.
// With first > 0 only the first proofs made with each randomness (each
// deadline occurrence) are corrupted; with 0, every one.
type badProofProver struct {
	countingProver
	first int

	mu      sync.Mutex
	corrupt map[string]bool // the corrupted proofs
}

func (p *badProofProver) Prove(ctx context.Context, task prover.WindowPoStTask) (prover.WindowPoStOutput, error) {
	out, err := p.countingProver.Prove(ctx, task)
	if err != nil || task.CheckOnly || len(out.Proofs) != 1 {
		return out, err
	}
	if p.first > 0 && p.madeWith(task.Seed) > p.first {
		return out, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.corrupt == nil {
		p.corrupt = map[string]bool{}
	}
	out.Proofs[0] = bytes.Clone(out.Proofs[0])
	out.Proofs[0][len(out.Proofs[0])-1] ^= 0xff
	p.corrupt[string(out.Proofs[0])] = true
	return out, nil
}

// countingProver is engineProver counting the WindowPoSt proofs it makes,
// in all and per randomness (per deadline occurrence).
type countingProver struct {
	engineProver
	proofs  atomic.Int32
	mu      sync.Mutex
	perSeed map[prover.Bytes32]int
}

func (p *countingProver) Prove(ctx context.Context, task prover.WindowPoStTask) (prover.WindowPoStOutput, error) {
	out, err := p.engineProver.Prove(ctx, task)
	if err != nil || task.CheckOnly || len(out.Proofs) != 1 {
		return out, err
	}
	p.proofs.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.perSeed == nil {
		p.perSeed = map[prover.Bytes32]int{}
	}
	p.perSeed[task.Seed]++
	return out, nil
}

// madeWith is how many proofs were made with seed.
func (p *countingProver) madeWith(seed [32]byte) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.perSeed[prover.Bytes32(seed)]
}

// seedOf is the challenge randomness of deadline d in the period starting
// at ps, as the runner reads it.
func (fx *runnerFixture) seedOf(t *testing.T, r *Runner, d uint8, ps int64) [32]byte {
	t.Helper()
	mi, err := r.minerInfo(context.Background(), 1000, -1)
	if err != nil {
		t.Fatal(err)
	}
	di := Window(mi.periodStart, uint64(d), abi.ChainEpoch(ps), mi.policy)
	seed, err := fx.chain.WindowPoStRandomness(context.Background(), fullnode.IDAddress(1000), &di, nil)
	if err != nil {
		t.Fatal(err)
	}
	return seed
}

// sectorsChain fails StateMinerSectors while failures is above zero.
type sectorsChain struct {
	Chain
	failures atomic.Int32
}

func (c *sectorsChain) StateMinerSectors(ctx context.Context, maddr address.Address, filter *bitfield.BitField, tsk fullnode.TipSetKey) ([]*fullnode.SectorOnChainInfo, error) {
	if c.failures.Add(-1) >= 0 {
		return nil, errors.New("state of the miner actor unreadable (test)")
	}
	return c.Chain.StateMinerSectors(ctx, maddr, filter, tsk)
}

// TestRunnerReadsSealedCIDsBeforeProving: the sector infos a proof is
// verified against are read before it is made, so a chain read that fails
// is retried without wasting a proof.
func TestRunnerReadsSealedCIDsBeforeProving(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx := newRunnerFixture(t, ctx, true)
	prov := &countingProver{}
	var sc *sectorsChain
	r := fx.runnerWith(t, &verifyingProver{Prover: prov}, func(c Chain) Chain {
		sc = &sectorsChain{Chain: c}
		return sc
	})
	// Fail the reads of deadline 1 of period 40 (proving from 48).
	for fx.dn.Height() < 47 {
		fx.dn.Step(1)
	}
	sc.failures.Store(3)
	runTo(ctx, fx, r, cancel, 61)
	if got := fx.record(1, 40); got == nil || got.Outcome != fsm.OutcomeProven {
		t.Fatalf("record of deadline 1 in period 40: %+v, want proven", got)
	}
	if sc.failures.Load() >= 0 {
		t.Fatalf("the sector reads did not fail as set up (%d left)", sc.failures.Load())
	}
	if n := prov.madeWith(fx.seedOf(t, r, 1, 40)); n != 1 {
		t.Fatalf("deadline 1 of period 40 proven %d times, want once: a failed chain read must cost no proof", n)
	}
}

// verifyingProver is a Prover that also verifies, as a `vsm wdpost` child
// does (prover.VerifyBuiltin); with broken set it cannot, as a child that
// does not know verify tasks.
type verifyingProver struct {
	Prover
	broken   bool
	verifies atomic.Int32
}

func (p *verifyingProver) Verify(ctx context.Context, task prover.VerifyPoStTask) (prover.VerifyPoStOutput, error) {
	p.verifies.Add(1)
	if p.broken {
		return prover.VerifyPoStOutput{}, errors.New("child wdpost-0 answered: task is not a PoSt task (test)")
	}
	return prover.VerifyBuiltin(task)
}

// postChain records the SubmitWindowedPoSt messages pushed, by deadline
// and challenge epoch.
type postChain struct {
	Chain
	mu   sync.Mutex
	sent map[[2]int64][][]byte // {deadline, challenge} -> proofs
}

func (c *postChain) SubmitWindowedPoSt(ctx context.Context, maddr, from address.Address, p *miner.SubmitWindowedPoStParams, spec *fullnode.MessageSendSpec) (cid.Cid, error) {
	c.mu.Lock()
	if c.sent == nil {
		c.sent = map[[2]int64][][]byte{}
	}
	k := [2]int64{int64(p.Deadline), int64(p.ChainCommitEpoch)}
	c.sent[k] = append(c.sent[k], p.Proofs[0].ProofBytes)
	c.mu.Unlock()
	return c.Chain.SubmitWindowedPoSt(ctx, maddr, from, p, spec)
}

// TestRunnerVerifiesProofsBeforeSending: every proof is verified before it
// is sent. A corrupt proof is made again and only the good one is sent,
// once per occurrence; a child that always makes corrupt proofs gets each
// batch proven twice, nothing is sent, and the deadline is recorded failed
// with the reason.
func TestRunnerVerifiesProofsBeforeSending(t *testing.T) {
	tests := []struct {
		name         string
		first        int // corrupt proofs per occurrence; 0: all
		wantMessages int // per judged occurrence
		wantInvalid  int // proofs found invalid per judged occurrence
		wantOutcome  fsm.Outcome
	}{
		{"a corrupt proof is made again; the good one is sent", 1, 1, 1, fsm.OutcomeProven},
		{"always corrupt: nothing sent, recorded failed", 0, 0, 2, fsm.OutcomeFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fx := newRunnerFixture(t, ctx, true)
			bad := &badProofProver{first: tt.first}
			pc := &postChain{}
			core, logs := observer.New(zap.ErrorLevel)
			r := fx.runnerWith(t, &verifyingProver{Prover: bad}, func(c Chain) Chain { pc.Chain = c; return pc }, func(c *Config) { c.Logger = zap.New(core) })
			runTo(ctx, fx, r, cancel, 121)
			// Deadline 1 of period 40 (challenge 47), deadlines 0 and 1
			// of period 80 (challenges 77 and 87) are judged.
			for _, occ := range []struct {
				d         uint8
				ps, chall int64
			}{{1, 40, 47}, {0, 80, 77}, {1, 80, 87}} {
				pc.mu.Lock()
				sent := pc.sent[[2]int64{int64(occ.d), occ.chall}]
				pc.mu.Unlock()
				if len(sent) != tt.wantMessages {
					t.Fatalf("deadline %d of period %d: %d messages sent, want %d", occ.d, occ.ps, len(sent), tt.wantMessages)
				}
				for _, proof := range sent {
					if bad.corrupt[string(proof)] {
						t.Fatalf("deadline %d of period %d: a corrupt proof was sent", occ.d, occ.ps)
					}
				}
				got := fx.record(occ.d, occ.ps)
				if got == nil || got.Outcome != tt.wantOutcome {
					t.Fatalf("record of deadline %d in period %d: %+v, want %s", occ.d, occ.ps, got, tt.wantOutcome)
				}
				if tt.wantOutcome == fsm.OutcomeFailed && !strings.Contains(got.Message, "failed self-verification") {
					t.Fatalf("record of deadline %d in period %d: %q, want the reason", occ.d, occ.ps, got.Message)
				}
				// The batch is proven exactly twice: the corrupt proof and
				// one more, never again after that.
				if n := bad.madeWith(fx.seedOf(t, r, occ.d, occ.ps)); n != 2 {
					t.Fatalf("deadline %d of period %d: proven %d times, want 2", occ.d, occ.ps, n)
				}
			}
			// Deadlines before the devnet's first due epoch are refused and
			// proven again, so the count covers at least the judged ones.
			var m dto.Metric
			if err := r.metrics.invalidProofs.Write(&m); err != nil {
				t.Fatal(err)
			}
			logged := logs.FilterMessage("generated incorrect window post proof").FilterFieldKey("batch").FilterFieldKey("deadline").Len()
			if n := int(m.GetCounter().GetValue()); n < 3*tt.wantInvalid || n != logged {
				t.Fatalf("%d invalid proofs counted, %d logged at ERROR with deadline and batch; want as many, at least %d", n, logged, 3*tt.wantInvalid)
			}
		})
	}
}

// TestRunnerSendsUnverifiedWhenNoChildVerifies: when no child can verify
// (a prover without Verify, or children that refuse verify tasks), proofs
// are sent anyway and the runner says so once, not once per proof.
func TestRunnerSendsUnverifiedWhenNoChildVerifies(t *testing.T) {
	tests := []struct {
		name string
		prov func() Prover
	}{
		{"the prover cannot verify", func() Prover { return &engineProver{} }},
		{"the children refuse verify tasks", func() Prover { return &verifyingProver{Prover: &engineProver{}, broken: true} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fx := newRunnerFixture(t, ctx, true)
			core, logs := observer.New(zap.WarnLevel)
			r := fx.runnerWith(t, tt.prov(), func(c Chain) Chain { return c }, func(c *Config) { c.Logger = zap.New(core) })
			runTo(ctx, fx, r, cancel, 121)
			if rep := fx.dn.Report(-1); rep.Totals.Proven != 3 || rep.Totals.Missed != 0 {
				t.Fatalf("devnet report %s, want 3 proven (sent unverified)", rep)
			}
			if n := logs.FilterMessageSnippet("self-verification of window post proofs is unavailable").Len(); n != 1 {
				t.Fatalf("%d warnings that self-verification is unavailable, want exactly 1", n)
			}
		})
	}
}

// TestRunnerGivesUpOnEstimationRefusals: a push refused at gas estimation
// (exit=[ErrIllegalArgument(16)]) is a refusal like a failed receipt: the
// proof is dropped and made again, and after maxRefusals the deadline is
// recorded failed with the actor's message, before its window closes.
// Self-verification is turned off (NoVerify), so the corrupt proofs of a
// prover that could verify them reach the chain.
func TestRunnerGivesUpOnEstimationRefusals(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx := newRunnerFixture(t, ctx, true)
	prov := &badProofProver{}
	r := fx.runnerWith(t, &verifyingProver{Prover: prov}, func(c Chain) Chain { return c }, func(c *Config) { c.NoVerify = true })
	runTo(ctx, fx, r, cancel, 81)
	got := fx.record(1, 40)
	if got == nil || got.Outcome != fsm.OutcomeFailed || !strings.Contains(got.Message, "refused by the miner actor") ||
		!strings.Contains(got.Message, "ErrIllegalArgument(16)") || strings.Contains(got.Message, "window closed") {
		t.Fatalf("record of deadline 1 in period 40: %+v; want failed with the actor's refusal, given up before the window closed", got)
	}
	// Each refusal dropped the proof: deadline 1 of period 40 alone was
	// proven maxRefusals times.
	if n := prov.proofs.Load(); n < maxRefusals {
		t.Fatalf("%d proofs made; a refused proof must be made again", n)
	}
}

// infoChain fails StateMinerInfo while broken is set, as a node whose
// state cannot be read would.
type infoChain struct {
	Chain
	broken atomic.Bool
	infos  atomic.Int32
}

func (c *infoChain) StateMinerInfo(ctx context.Context, maddr address.Address, tsk fullnode.TipSetKey) (*fullnode.MinerInfo, error) {
	c.infos.Add(1)
	if c.broken.Load() {
		return nil, errors.New("state of the miner actor unreadable (test)")
	}
	return c.Chain.StateMinerInfo(ctx, maddr, tsk)
}

// TestRunnerRecordsMinerInfoFailure: a miner whose info cannot be read
// gets its windows recorded failed with the reason, once per window (not
// once per poll), instead of one log line and no record.
func TestRunnerRecordsMinerInfoFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx := newRunnerFixture(t, ctx, true)
	var ic *infoChain
	r := fx.runnerWith(t, &engineProver{}, func(c Chain) Chain {
		ic = &infoChain{Chain: c}
		ic.broken.Store(true)
		return ic
	})
	var mu sync.Mutex
	counts := map[int64]int{}
	record := r.cfg.Record
	r.cfg.Record = func(ctx context.Context, rec fsm.DeadlineRecord) error {
		if rec.Deadline == 1 {
			mu.Lock()
			counts[rec.PeriodStart]++
			mu.Unlock()
		}
		return record(ctx, rec)
	}
	runTo(ctx, fx, r, cancel, 61)
	got := fx.record(1, 40)
	if got == nil || got.Outcome != fsm.OutcomeFailed || !strings.Contains(got.Message, "state of the miner actor unreadable") {
		t.Fatalf("record of deadline 1 in period 40: %+v; want failed with the reason", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if counts[40] != 1 || ic.infos.Load() < 10 {
		t.Fatalf("deadline 1 of period 40 recorded %d times (info read %d times); want once", counts[40], ic.infos.Load())
	}
}

// TestRunnerSenderFallsBackToWorker: a configured Sender that is not a
// control address of the miner (a control address of another miner, say)
// does not stop proving: the runner sends from the worker.
func TestRunnerSenderFallsBackToWorker(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx := newRunnerFixture(t, ctx, true)
	r := fx.runner(t, &engineProver{})
	r.cfg.Sender = fullnode.IDAddress(555)
	runTo(ctx, fx, r, cancel, 121)
	rep := fx.dn.Report(-1)
	if rep.Totals.Missed != 0 || rep.Totals.Faulty != 0 || rep.Totals.Proven != 3 {
		t.Fatalf("devnet report %s, want 3 proven from the worker\n%+v", rep, rep.Records)
	}
}

// runTo runs r while the devnet steps to height, then stops it.
func runTo(ctx context.Context, fx *runnerFixture, r *Runner, cancel context.CancelFunc, height int64) {
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	for int64(fx.dn.Height()) < height {
		fx.dn.Step(1)
		time.Sleep(25 * time.Millisecond)
	}
	cancel()
	<-done
}

// record returns miner t01000's record of a deadline in the period that
// starts at periodStart, or nil.
func (fx *runnerFixture) record(deadline uint8, periodStart int64) *fsm.DeadlineRecord {
	fx.f.mu.Lock()
	defer fx.f.mu.Unlock()
	var got *fsm.DeadlineRecord
	for _, r := range fx.f.Records(fsm.DeadlineKey{Miner: 1000, Deadline: deadline}) {
		if int64(r.PeriodStart) == periodStart {
			got = &r
		}
	}
	return got
}
