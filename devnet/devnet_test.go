package devnet

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commcid "github.com/filecoin-project/go-fil-commcid"

	"github.com/vsm-project/vsm/internal/bftest"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"
	"github.com/filecoin-project/go-state-types/crypto"
	prooftypes "github.com/filecoin-project/go-state-types/proof"

	"go.uber.org/zap/zaptest"

	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover/engine"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// testSpec: one miner t01000, period of 4 deadlines x 10 epochs, 8 sectors
// of 2 KiB (partition size 2) in deadlines 0 and 1, so each of those holds
// two partitions. Period 0 is not judged (its challenge epochs are before FirstDueEpoch 30).
func testSpec() *Spec {
	off := int64(0)
	return &Spec{
		Seed:          "test",
		FirstDueEpoch: 30,
		Policy:        PolicySpec{PeriodDeadlines: 4, ChallengeWindow: 10, ChallengeLookback: 3, FaultDeclarationCutoff: 5},
		Miners:        []MinerSpec{{ID: 1000, Worker: 100, Sectors: 8, ProvingPeriodOffset: &off, Deadlines: []uint64{0, 1}}},
	}
}

type harness struct {
	t      *testing.T
	dn     *Devnet
	client *fullnode.Client
	maddr  address.Address
	worker address.Address
	ctx    context.Context
	url    string // the API server, http://HOST:PORT
}

func newHarness(t *testing.T, spec *Spec, dir string) *harness {
	t.Helper()
	ctx := context.Background()
	dn, err := New(ctx, Config{Dir: dir, Spec: spec, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(dn.Handler())
	t.Cleanup(srv.Close)
	client := fullnode.NewClient(fullnode.APIInfo{Token: dn.Token(), URL: srv.URL + "/rpc/v1"}, zaptest.NewLogger(t))
	return &harness{t: t, dn: dn, client: client, maddr: fullnode.IDAddress(1000), worker: fullnode.IDAddress(100), ctx: ctx, url: srv.URL}
}

// stepTo advances the chain to height h.
func (h *harness) stepTo(e abi.ChainEpoch) {
	h.t.Helper()
	if cur := h.dn.Height(); e < cur {
		h.t.Fatalf("cannot step back from %d to %d", cur, e)
	}
	h.dn.Step(int(e - h.dn.Height()))
}

// prove builds a real built-in engine proof for the given partitions of the
// current deadline, reading the sector files like a vsm node would.
func (h *harness) prove(dlIdx uint64, parts []uint64) *miner.SubmitWindowedPoStParams {
	h.t.Helper()
	ctx := h.ctx
	di, err := h.client.StateMinerProvingDeadline(ctx, h.maddr, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	seed, err := h.client.WindowPoStRandomness(ctx, h.maddr, di, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	partitions, err := h.client.StateMinerPartitions(ctx, h.maddr, dlIdx, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	mi, err := h.client.StateMinerInfo(ctx, h.maddr, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	dir := h.dn.Miners()[0].SectorDir
	var sectors []engine.Sector
	params := &miner.SubmitWindowedPoStParams{Deadline: dlIdx, ChainCommitEpoch: di.Challenge}
	for _, pi := range parts {
		p := partitions[pi]
		toProve := bftest.Union(bftest.Sub(p.LiveSectors, p.FaultySectors), p.RecoveringSectors)
		_ = toProve.ForEach(func(n uint64) error {
			si, err := h.client.StateSectorGetInfo(ctx, h.maddr, abi.SectorNumber(n), nil)
			if err != nil || si == nil {
				h.t.Fatalf("sector %d: %v %v", n, si, err)
			}
			commR, err := commcid.CIDToReplicaCommitmentV1(si.SealedCID)
			if err != nil {
				h.t.Fatal(err)
			}
			paths := sectorfile.LayoutPaths(dir, 1000, n, false)
			sectors = append(sectors, engine.Sector{ID: n, CommR: [32]byte(commR), SealedPath: paths.Sealed, CacheDir: paths.Cache})
			return nil
		})
		params.Partitions = append(params.Partitions, miner.PoStPartition{Index: pi})
	}
	name, _ := fullnode.ProofsAPIName(mi.WindowPoStProofType)
	res, err := engine.Prover{}.Prove(ctx, 1000, name, seed, sectors)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(res.Faults) > 0 {
		h.t.Fatalf("engine faults: %+v", res.Faults)
	}
	params.Proofs = []prooftypes.PoStProof{{PoStProof: mi.WindowPoStProofType, ProofBytes: res.Proof}}
	params.ChainCommitRand, err = h.client.StateGetRandomnessFromTickets(ctx, crypto.DomainSeparationTag_PoStChainCommit, params.ChainCommitEpoch, nil, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return params
}

func (h *harness) submit(p *miner.SubmitWindowedPoStParams) error {
	_, err := h.client.SubmitWindowedPoSt(h.ctx, h.maddr, h.worker, p, nil)
	return err
}

func wantErr(t *testing.T, err error, sub string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), sub) {
		t.Fatalf("err = %v, want one containing %q", err, sub)
	}
}

// TestWindowPoStLifecycle goes through the client as vsm does: a proof
// refused at estimation, one accepted, its receipt, and the deadlines
// judged when they close.
func TestWindowPoStLifecycle(t *testing.T) {
	h := newHarness(t, testSpec(), t.TempDir())
	// Period 1 (start 40) is the first judged period.
	h.stepTo(40)
	di, err := h.client.StateMinerProvingDeadline(h.ctx, h.maddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if di.Index != 0 || di.Open != 40 || di.Close != 50 || di.Challenge != 37 || di.FaultCutoff != 35 {
		t.Fatalf("deadline info %s", fullnode.DeadlineString(di))
	}

	good := h.prove(0, []uint64{0, 1})

	// A correct proof for the wrong deadline is refused; the push is
	// estimated at the next epoch, 41.
	wrongDl := *good
	wrongDl.Deadline = 1
	wantErr(t, h.submit(&wrongDl), "exit=[ErrIllegalArgument(16)], vm error=[message failed with backtrace:\n00: t01000 (method 5) -- invalid deadline 1 at epoch 41, expected 0 (16)")

	// A tampered proof is refused by the verifier.
	bad := *good
	bad.Proofs = []prooftypes.PoStProof{{PoStProof: good.Proofs[0].PoStProof, ProofBytes: append([]byte(nil), good.Proofs[0].ProofBytes...)}}
	bad.Proofs[0].ProofBytes[len(bad.Proofs[0].ProofBytes)-1] ^= 1
	wantErr(t, h.submit(&bad), "invalid post was submitted")

	// The honest proof is accepted and lands in the next tipset.
	cid, err := h.client.SubmitWindowedPoSt(h.ctx, h.maddr, h.worker, good, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The same sender's pending proof is applied first when estimating.
	wantErr(t, h.submit(good), "partition already proven")
	if look, err := h.client.StateSearchMsg(h.ctx, nil, cid, -1, true); err != nil || look != nil {
		t.Fatalf("StateSearchMsg before inclusion = %+v, %v", look, err)
	}
	h.stepTo(41)
	dls, err := h.client.StateMinerDeadlines(h.ctx, h.maddr, nil)
	if err != nil || !bftest.Equal(dls[0].PostSubmissions, bftest.Of(0, 1)) {
		t.Fatalf("PostSubmissions = %v, %v", dls, err)
	}
	// Its receipt is in the execution tipset, the one after inclusion.
	if look, err := h.client.StateSearchMsg(h.ctx, nil, cid, -1, true); err != nil || look != nil {
		t.Fatalf("StateSearchMsg before the execution tipset = %+v, %v", look, err)
	}
	h.stepTo(42)
	look, err := h.client.StateWaitMsg(h.ctx, cid, 0, -1, true)
	if err != nil || look == nil || look.Height != 42 || look.Receipt.ExitCode != 0 {
		t.Fatalf("StateWaitMsg = %+v, %v", look, err)
	}

	// Deadline 1 is never proven: after both close, 0 is proven and 1
	// missed, and deadline 1's sectors turned faulty.
	h.stepTo(60)
	r := h.dn.Report(-1)
	if r.Totals.Proven != 1 || r.Totals.Missed != 1 || r.Totals.Faulty != 0 || r.Totals.MessagesRefused != 3 || r.Totals.MessagesFailed != 0 {
		t.Fatalf("report after period 1 deadlines 0-1: %+v", r)
	}
	parts, _ := h.client.StateMinerPartitions(h.ctx, h.maddr, 1, nil)
	if !bftest.Equal(parts[0].FaultySectors, parts[0].AllSectors) || !bftest.Empty(parts[0].ActiveSectors) {
		t.Fatalf("missed partition not faulty: %+v", parts[0])
	}

	// A late proof for deadline 0 (now closed) is refused: the open
	// deadline is 2.
	late := *good
	wantErr(t, h.submit(&late), "invalid deadline 0 at epoch 61, expected 2")
	if got := r.String(); got != "deadlines proven 1, faulty 0, missed 1" {
		t.Fatalf("report line %q", got)
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, testSpec(), dir)
	h.stepTo(65)
	want := h.dn.Report(-1)
	if err := h.dn.Save(); err != nil {
		t.Fatal(err)
	}
	again, err := New(context.Background(), Config{Dir: dir, Spec: testSpec()})
	if err != nil {
		t.Fatal(err)
	}
	got := again.Report(-1)
	if got.Height != 65 || got.Totals != want.Totals || len(got.Records) != len(want.Records) {
		t.Fatalf("resumed report %+v, want %+v", got, want)
	}
	fromDisk, err := ReadReport(dir, -1)
	if err != nil || fromDisk.Totals != want.Totals {
		t.Fatalf("ReadReport = %+v, %v", fromDisk, err)
	}
	other := testSpec()
	other.Miners[0].Sectors = 4
	if _, err := New(context.Background(), Config{Dir: dir, Spec: other}); err == nil || !strings.Contains(err.Error(), "different spec") {
		t.Fatalf("New with another spec: %v", err)
	}
	if _, err := ReadReport(t.TempDir(), 1); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadReport of empty dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sectors", "sealed", "s-t01000-7")); err != nil {
		t.Fatalf("sector file not written: %v", err)
	}
}

func TestSpecValidation(t *testing.T) {
	tests := []struct {
		name string
		mut  func(*Spec)
		want string
	}{
		{"no miners", func(s *Spec) { s.Miners = nil }, "no miners"},
		{"no id", func(s *Spec) { s.Miners[0].ID = 0 }, "ID is required"},
		{"dup", func(s *Spec) { s.Miners = append(s.Miners, s.Miners[0]) }, "duplicate"},
		{"size", func(s *Spec) { s.Miners[0].SectorSize = "3GiB" }, "sector size"},
		{"offset", func(s *Spec) { o := int64(40); s.Miners[0].ProvingPeriodOffset = &o }, "outside [0, 40)"},
		{"deadline", func(s *Spec) { s.Miners[0].Deadlines = []uint64{4} }, "deadline 4 out of range"},
		{"lookback", func(s *Spec) { s.Policy.ChallengeLookback = 40 }, "shorter than the proving period"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testSpec()
			tc.mut(s)
			wantErr(t, s.Validate(), tc.want)
		})
	}

	dir := t.TempDir()
	tomlPath := filepath.Join(dir, "spec.toml")
	os.WriteFile(tomlPath, []byte("Seed = \"x\"\n[[Miners]]\nID = 1000\nSectors = 4\n"), 0o644)
	s, err := LoadSpec(tomlPath)
	if err != nil || s.Miners[0].SectorSize != "2KiB" || s.Miners[0].Worker != 100 || s.SectorDir != "sectors" {
		t.Fatalf("LoadSpec toml = %+v, %v", s, err)
	}
	os.WriteFile(tomlPath, []byte("[[Miners]]\nID = 1000\nSectorz = 4\n"), 0o644)
	_, err = LoadSpec(tomlPath)
	wantErr(t, err, "unknown key")
	jsonPath := filepath.Join(dir, "spec.json")
	os.WriteFile(jsonPath, []byte(`{"Miners":[{"ID":1000,"Sectors":2,"SectorSize":"8MiB"}]}`), 0o644)
	if s, err := LoadSpec(jsonPath); err != nil || s.Miners[0].SectorSize != "8MiB" {
		t.Fatalf("LoadSpec json = %+v, %v", s, err)
	}
}
