package devnet

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/filecoin-project/go-address"
	commcid "github.com/filecoin-project/go-fil-commcid"
	prooftypes "github.com/filecoin-project/go-state-types/proof"

	"go.uber.org/zap/zaptest"

	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover/engine"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// miningSpec: t01000 with 6 sectors and t01001 with 2, elected about
// ExpectedLeadersPerEpoch times per epoch between them.
func miningSpec(leaders float64) *Spec {
	off := int64(0)
	return &Spec{
		Seed:          "winning",
		FirstDueEpoch: 1000, // no WindowPoSt judged: this is about mining
		Policy:        PolicySpec{PeriodDeadlines: 4, ChallengeWindow: 10, ChallengeLookback: 3, FaultDeclarationCutoff: 5},
		Mining:        &MiningSpec{ExpectedLeadersPerEpoch: leaders, FirstEpoch: 2},
		Miners: []MinerSpec{
			{ID: 1000, Worker: 100, Sectors: 6, ProvingPeriodOffset: &off},
			{ID: 1001, Worker: 101, Sectors: 2, ProvingPeriodOffset: &off},
		},
	}
}

type nopSealer struct{}

func (nopSealer) SealSector(_ context.Context, miner, number, _ uint64, _ string) ([32]byte, error) {
	return [32]byte{byte(miner), byte(number)}, nil
}

func TestElectionDeterministicAndWeighted(t *testing.T) {
	open := func() *chain {
		dn, err := New(context.Background(), Config{Dir: t.TempDir(), Spec: miningSpec(1), Sealer: nopSealer{}, Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return dn.chain
	}
	a, b := open(), open()
	const rounds = 4000
	wins := map[uint64]int{}
	for r := ChainEpoch(1); r <= rounds; r++ {
		for _, id := range []uint64{1000, 1001} {
			wa, _ := a.electionLocked(a.miners[id], r)
			wb, _ := b.electionLocked(b.miners[id], r)
			if wa != wb {
				t.Fatalf("round %d miner %d: win count %d vs %d from the same seed", r, id, wa, wb)
			}
			if wa > 0 {
				wins[id]++
			}
		}
	}
	// Poisson: P(win) = 1 - exp(-lambda), lambda = 1 * share.
	for id, share := range map[uint64]float64{1000: 0.75, 1001: 0.25} {
		want := rounds * (1 - math.Exp(-share))
		if got := float64(wins[id]); math.Abs(got-want) > 5*math.Sqrt(want) {
			t.Errorf("t0%d won %v of %d rounds, want about %.0f", id, got, rounds, want)
		}
	}
	other := miningSpec(1)
	other.Seed = "another"
	dn, err := New(context.Background(), Config{Dir: t.TempDir(), Spec: other, Sealer: nopSealer{}, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for r := ChainEpoch(1); r <= 200; r++ {
		x, _ := a.electionLocked(a.miners[1000], r)
		y, _ := dn.chain.electionLocked(dn.chain.miners[1000], r)
		if (x > 0) == (y > 0) {
			same++
		}
	}
	if same == 200 {
		t.Error("another seed gives the same elections")
	}
}

func TestPoissonWinCount(t *testing.T) {
	if got := poissonWinCount(0.5, [32]byte{}); got != 0 {
		t.Errorf("u=0: win count %d, want 0", got)
	}
	var top [32]byte
	for i := range top {
		top[i] = 0xff
	}
	if got := poissonWinCount(0.5, top); got < 3 {
		t.Errorf("u~1: win count %d, want a large one", got)
	}
}

// mineRound mines round head+1 for maddr like the mining module does:
// base info, the challenged sector's files, a real built-in engine proof,
// SyncSubmitBlock. sector overrides the sector proven (to test a wrong one).
func (h *harness) mineRound(maddr address.Address, sector *uint64) (bool, error) {
	h.t.Helper()
	ctx := h.ctx
	head, err := h.client.ChainHead(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	round := head.Height + 1
	bi, err := h.client.MinerGetBaseInfo(ctx, maddr, round, head.Key())
	if err != nil {
		h.t.Fatal(err)
	}
	if bi == nil || !bi.EligibleForMining {
		return false, nil
	}
	num := uint64(bi.Sectors[0].SectorNumber)
	if sector != nil {
		num = *sector
	}
	chainCommR, err := commcid.CIDToReplicaCommitmentV1(bi.Sectors[0].SealedCID)
	if err != nil {
		h.t.Fatal(err)
	}
	commR := [32]byte(chainCommR)
	id, err := fullnode.ActorID(maddr)
	if err != nil {
		h.t.Fatal(err)
	}
	var dir string
	for _, m := range h.dn.Miners() {
		if m.ID == id {
			dir = m.SectorDir
		}
	}
	paths := sectorfile.LayoutPaths(dir, id, num, false)
	if sector != nil {
		pa, err := sectorfile.ReadPAux(paths.Cache)
		if err != nil {
			h.t.Fatal(err)
		}
		commR = sectorfile.CommR(pa.CommC, pa.CommRLast)
	}
	rnd := fullnode.WinningPoStRandomness(bi, maddr, round)
	res, err := engine.Prover{}.Prove(ctx, id, "StackedDrgWinning2KiBV1", rnd,
		[]engine.Sector{{ID: num, CommR: commR, SealedPath: paths.Sealed, CacheDir: paths.Cache}})
	if err != nil || len(res.Faults) > 0 {
		h.t.Fatalf("prove sector %d: %v %v", num, err, res.Faults)
	}
	return true, h.client.SyncSubmitBlock(ctx, &fullnode.BlockMsg{Header: &fullnode.BlockHeader{
		Miner: maddr, Height: round, Parents: head.Cids,
		WinPoStProof: []prooftypes.PoStProof{{PoStProof: 0, ProofBytes: res.Proof}},
	}})
}

// TestMiningAgainstDevnet mines with real sectors and the real engine:
// every elected round of t01000 gets a valid block (proven), t01001's
// first elected round gets a proof of the wrong sector (invalid) and the
// rest nothing (missed).
func TestMiningAgainstDevnet(t *testing.T) {
	h := newHarness(t, miningSpec(1.5), t.TempDir())
	m0, m1 := fullnode.IDAddress(1000), fullnode.IDAddress(1001)
	h.stepTo(1)
	var proven, wrongSent, m1Elected int
	for range 60 {
		ok, err := h.mineRound(m0, nil)
		if err != nil {
			t.Fatalf("round %d: %v", h.dn.Height()+1, err)
		}
		if ok {
			proven++
		}
		bi, err := h.client.MinerGetBaseInfo(h.ctx, m1, h.dn.Height()+1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bi.EligibleForMining {
			m1Elected++
			if wrongSent == 0 {
				wrong := uint64(0)
				if bi.Sectors[0].SectorNumber == 0 {
					wrong = 1
				}
				_, err := h.mineRound(m1, &wrong)
				if err == nil || !strings.Contains(err.Error(), "invalid WinningPoSt") {
					t.Fatalf("proof of the wrong sector: err = %v", err)
				}
				wrongSent++
			}
		} else {
			// Not elected: a block is refused and not counted.
			err := h.client.SyncSubmitBlock(h.ctx, &fullnode.BlockMsg{Header: &fullnode.BlockHeader{Miner: m1, Height: h.dn.Height() + 1,
				Parents: fullnode.TipSetKey{h.dn.chain.blockCID(h.dn.Height())}, WinPoStProof: []prooftypes.PoStProof{{PoStProof: 0, ProofBytes: []byte("x")}}}})
			if err == nil || !strings.Contains(err.Error(), "not elected") {
				t.Fatalf("block of a miner not elected: err = %v", err)
			}
		}
		h.dn.Step(1)
	}
	h.dn.Step(1) // judge the last round
	r := h.dn.Report(-1)
	t.Logf("%s (t01000 proven %d, t01001 elected %d)", r.WinningString(), proven, m1Elected)
	if proven == 0 || wrongSent == 0 {
		t.Fatalf("too few elections to test: t01000 %d, t01001 %d", proven, m1Elected)
	}
	if r.Winning.Proven != proven || r.Winning.Invalid != 1 || r.Winning.Missed != m1Elected-1 || r.Winning.Elected != proven+m1Elected {
		t.Fatalf("report %+v, want proven %d, invalid 1, missed %d", r.Winning, proven, m1Elected-1)
	}
	for _, rec := range r.WinRecords {
		if rec.Outcome == WinInvalid && (rec.Miner != 1001 || !strings.Contains(rec.Reason, "not given")) {
			t.Errorf("invalid record %+v", rec)
		}
	}

	// A block for a round that is over is refused.
	head, _ := h.client.ChainHead(h.ctx)
	err := h.client.SyncSubmitBlock(h.ctx, &fullnode.BlockMsg{Header: &fullnode.BlockHeader{Miner: m0, Height: head.Height - 1, Parents: head.Cids}})
	if err == nil || !strings.Contains(err.Error(), "is over") {
		t.Fatalf("late block: err = %v", err)
	}
	// The totals survive a restart.
	if err := h.dn.Save(); err != nil {
		t.Fatal(err)
	}
	saved, err := ReadReport(h.dn.cfg.Dir, -1)
	if err != nil || saved.Winning != r.Winning {
		t.Fatalf("saved report %+v, %v", saved.Winning, err)
	}
}
