package devnet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/gateway"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/engine"
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

// devnetStore is what a vsm node's replica would hold for the devnet's
// miners: every sector at its file, CommR from the chain.
type devnetStore struct {
	dn *Devnet
}

func (s devnetStore) Miners() []fsm.MinerSummary {
	var out []fsm.MinerSummary
	for _, m := range s.dn.Miners() {
		out = append(out, fsm.MinerSummary{Miner: fsm.Miner{ID: m.ID, Enabled: true}})
	}
	return out
}

func (s devnetStore) Location(id fsm.SectorID) (fsm.SectorLocation, bool) {
	s.dn.chain.mu.Lock()
	defer s.dn.chain.mu.Unlock()
	m := s.dn.chain.miners[id.Miner]
	if m == nil {
		return fsm.SectorLocation{}, false
	}
	commR, ok := m.commR[id.Number]
	return fsm.SectorLocation{SectorID: id, Sealed: "m" + fmt.Sprint(id.Miner), Cache: "m" + fmt.Sprint(id.Miner), CommR: commR}, ok
}

func (s devnetStore) Storage(name string) (fsm.StorageInstance, bool) {
	for _, m := range s.dn.Miners() {
		if name == "m"+fmt.Sprint(m.ID) {
			return fsm.StorageInstance{Name: name, Path: m.SectorDir}, true
		}
	}
	return fsm.StorageInstance{}, false
}

// engineProver proves with the built-in engine in process; t01001's
// requests fail, as a prover that cannot read its sector would.
type engineProver struct{}

func (engineProver) ProveWinning(ctx context.Context, task prover.WinningPoStTask) (prover.WinningPoStOutput, error) {
	if task.MinerID == 1001 {
		return prover.WinningPoStOutput{}, errors.New("sector file unreadable")
	}
	var secs []engine.Sector
	for _, r := range task.Replicas {
		secs = append(secs, engine.Sector{ID: r.SectorID, CommR: r.CommR, SealedPath: r.SealedFile, CacheDir: r.CacheDir})
	}
	res, err := engine.Prover{}.Prove(ctx, task.MinerID, task.ProofType, task.Seed, secs)
	if err != nil || len(res.Faults) > 0 {
		return prover.WinningPoStOutput{}, fmt.Errorf("prove: %v %v", err, res.Faults)
	}
	return prover.WinningPoStOutput{Proofs: [][]byte{res.Proof}}, nil
}

// TestGatewayStandIn runs the devnet's gateway against vsm's gateway
// client over real websockets: every elected round of t01000 is asked and
// its proof verified (proven); t01001's prover answers with an error
// (invalid); once the client stops, elected rounds are missed.
func TestGatewayStandIn(t *testing.T) {
	h := newHarness(t, miningSpec(1.5), t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gwDone := make(chan struct{})
	go func() {
		defer close(gwDone)
		h.dn.runGateway(ctx)
	}()
	addr, err := net.ResolveTCPAddr("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := gateway.ParseAPIInfo(h.dn.GatewayInfo(addr))
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := gateway.New(gateway.Config{Gateways: []gateway.APIInfo{info}, Prover: engineProver{}, Store: devnetStore{h.dn},
		Agent: "vsm-devnet-test", Poll: 50 * time.Millisecond, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	mctx, stopClient := context.WithCancel(ctx)
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		mgr.Run(mctx)
	}()
	for _, id := range []uint64{1000, 1001} {
		waitFor(t, func() bool { return h.dn.Hub().Connections(fullnode.IDAddress(id)) == 1 })
	}
	// step steps one epoch and waits for the outcome of every election of
	// the next round.
	step := func() {
		h.dn.Step(1)
		round := h.dn.Height() + 1
		elected := 0
		h.dn.chain.mu.Lock()
		for _, m := range h.dn.chain.miners {
			if w, _ := h.dn.chain.electionLocked(m, round); w > 0 {
				elected++
			}
		}
		h.dn.chain.mu.Unlock()
		waitFor(t, func() bool {
			h.dn.chain.mu.Lock()
			defer h.dn.chain.mu.Unlock()
			n := 0
			for k := range h.dn.chain.wins {
				if k.round == round {
					n++
				}
			}
			return n == elected
		})
	}
	for range 40 {
		step()
	}
	stopClient()
	<-clientDone
	// Both miners' channels must be gone before the next rounds, else a
	// round of t01001 may still find its closing channel ("channel closed").
	waitFor(t, func() bool {
		return h.dn.Hub().Connections(fullnode.IDAddress(1000)) == 0 && h.dn.Hub().Connections(fullnode.IDAddress(1001)) == 0
	})
	for range 10 {
		step()
	}
	cancel()
	<-gwDone
	h.dn.Step(2) // judge the last rounds
	r := h.dn.Report(-1)
	t.Logf("%s", r.WinningString())
	perMiner := map[string]int{}
	for _, rec := range r.WinRecords {
		perMiner[fmt.Sprintf("t0%d %s", rec.Miner, rec.Outcome)]++
		switch {
		case rec.Outcome == WinProven && (rec.Miner != 1000 || rec.Prover != "vsm-devnet-test" || rec.Attempts != 1):
			t.Errorf("proven record %+v: want t01000 proven by vsm-devnet-test at the first attempt", rec)
		case rec.Outcome == WinInvalid && (rec.Miner != 1001 || !strings.Contains(rec.Reason, "sector file unreadable")):
			t.Errorf("invalid record %+v: want t01001's prover error", rec)
		case rec.Outcome == WinMissed && !strings.Contains(rec.Reason, "no connections for this miner"):
			t.Errorf("missed record %+v: want 'no connections' once the client stopped", rec)
		}
	}
	if perMiner["t01000 proven"] == 0 || perMiner["t01001 invalid"] == 0 || r.Winning.Missed == 0 {
		t.Fatalf("outcomes %v: want t01000 proven, t01001 invalid and missed rounds after the client stopped", perMiner)
	}
	// Every answered round was asked; the last rounds, judged after the
	// gateway stopped, were not.
	if r.Winning.Asked < r.Winning.Proven+r.Winning.Invalid || r.Winning.Asked > r.Winning.Elected ||
		r.Winning.Proven+r.Winning.Invalid+r.Winning.Missed != r.Winning.Elected {
		t.Errorf("totals %+v do not add up", r.Winning)
	}
	saved := r.Winning
	if err := h.dn.Save(); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadReport(h.dn.cfg.Dir, -1); err != nil || got.Winning != saved {
		t.Fatalf("saved report %+v, %v; want %+v", got.Winning, err, saved)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
