package mining

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	commcid "github.com/filecoin-project/go-fil-commcid"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/vsm-project/vsm/devnet"
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/engine"
)

// engineProver runs the child's WinningPoSt handler in-process: the same
// code `vsm wdpost` runs, without the pipe.
type engineProver struct{ calls atomic.Int32 }

func (p *engineProver) ProveWinning(ctx context.Context, task prover.WinningPoStTask) (prover.WinningPoStOutput, error) {
	p.calls.Add(1)
	raw, err := json.Marshal(task)
	if err != nil {
		return prover.WinningPoStOutput{}, err
	}
	out, err := prover.WinningPoStHandler(engine.Prover{}, nil)(ctx, raw)
	if err != nil {
		return prover.WinningPoStOutput{}, err
	}
	return out.(prover.WinningPoStOutput), nil
}

// TestMiningAgainstDevnet runs the module against an in-process devnet
// with real sectors: t01000's sectors are in the store, so every round it
// is elected in ends with a block the devnet verified; t01001 is enabled
// but none of its sectors has a location, so its elected rounds fail at
// locate and the devnet counts them missed.
func TestMiningAgainstDevnet(t *testing.T) {
	ctx := context.Background()
	off := int64(0)
	spec := &devnet.Spec{
		Seed: "mining", FirstDueEpoch: 100000,
		Policy: devnet.PolicySpec{PeriodDeadlines: 4, ChallengeWindow: 10, ChallengeLookback: 3, FaultDeclarationCutoff: 5},
		Mining: &devnet.MiningSpec{ExpectedLeadersPerEpoch: 1, FirstEpoch: 3},
		Miners: []devnet.MinerSpec{
			{ID: 1000, Worker: 100, Sectors: 6, ProvingPeriodOffset: &off},
			{ID: 1001, Worker: 101, Sectors: 6, ProvingPeriodOffset: &off},
		},
	}
	dn, err := devnet.New(ctx, devnet.Config{Dir: t.TempDir(), Spec: spec, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(dn.Handler())
	defer srv.Close()
	chain := fullnode.NewClient(fullnode.APIInfo{Token: dn.Token(), URL: srv.URL + "/rpc/v1"}, zaptest.NewLogger(t))

	f := fsm.New(nil)
	apply := func(c fsm.Command) {
		if r := f.ApplyCommand(c); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	for _, id := range []uint64{1000, 1001} {
		apply(fsm.PutMiner{Miner: fsm.Miner{ID: id, SectorSize: 2048, PoStProof: 10, PartitionSize: 2, Enabled: true}})
	}
	apply(fsm.PutStorage{Instance: fsm.StorageInstance{Name: "store", Path: dn.Miners()[0].SectorDir}})
	var locs []fsm.SectorLocation
	for n := uint64(0); n < 6; n++ {
		si, err := chain.StateSectorGetInfo(ctx, fullnode.IDAddress(1000), abi.SectorNumber(n), nil)
		if err != nil {
			t.Fatal(err)
		}
		commR, err := commcid.CIDToReplicaCommitmentV1(si.SealedCID)
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: n}, Sealed: "store", Cache: "store", CommR: fsm.CommR(commR), SealProof: 5})
	}
	apply(fsm.PutLocations{Locations: locs})

	reg := prometheus.NewRegistry()
	prov := &engineProver{}
	m, err := New(Config{Chain: chain, Prover: prov, Store: f, Poll: 5 * time.Millisecond, Logger: zaptest.NewLogger(t), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	// Drive the module head by head (Run's polling is exercised by the
	// real-process e2e test): mine every head, wait, advance.
	for dn.Height() < 60 {
		head, err := chain.ChainHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m.mineHead(ctx, head)
		m.wg.Wait()
		dn.Step(1)
	}
	dn.Step(1) // judge the last round
	rep := dn.Report(-1)
	t.Logf("devnet: %s", rep.WinningString())
	var m0, m1 int
	for _, r := range rep.WinRecords {
		switch {
		case r.Miner == 1000 && r.Outcome == devnet.WinProven:
			m0++
		case r.Miner == 1001 && r.Outcome == devnet.WinMissed:
			m1++
		default:
			t.Errorf("unexpected record %+v", r)
		}
	}
	if m0 == 0 || m1 == 0 {
		t.Fatalf("elections: t01000 proven %d, t01001 missed %d; want some of each\n%+v", m0, m1, rep.WinRecords)
	}
	if got := counter(t, reg, "vsm_mining_rounds_total", "outcome", OutcomeAccepted); int(got) != m0 {
		t.Errorf("accepted rounds metric %v, devnet proven %d", got, m0)
	}
	if got := counter(t, reg, "vsm_mining_failures_total", "stage", "locate"); int(got) < m1 {
		t.Errorf("locate failures metric %v, devnet missed %d", got, m1)
	}
	if int(prov.calls.Load()) != m0 {
		t.Errorf("prover called %d times for %d proven rounds", prov.calls.Load(), m0)
	}

	// MineRound says plainly why an elected round failed.
	for h := abi.ChainEpoch(100); h < 400; h++ {
		dn.Step(1)
		head, err := chain.ChainHead(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		outcome, err := m.MineRound(context.Background(), 1001, head)
		if outcome == OutcomeFailed {
			if err == nil || !strings.Contains(err.Error(), "locate: challenged sector") || !strings.Contains(err.Error(), "no location in the store") {
				t.Fatalf("failed round: %v", err)
			}
			return
		}
	}
	t.Fatal("t01001 never elected in 300 rounds")
}

func TestNewNeedsChainProverStore(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no chain"},
		{Config{Chain: &fullnode.Client{}}, "--ext-prover"},
		{Config{Chain: &fullnode.Client{}, Prover: &engineProver{}}, "no store"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// counter reads one labelled counter from the registry.
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q} in the registry", name, label, value)
	return 0
}
