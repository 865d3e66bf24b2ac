package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/rpc"
)

func mustApply(t *testing.T, f *fsm.FSM, c fsm.Command) {
	t.Helper()
	if r := f.ApplyCommand(c); r.Err != nil {
		t.Fatalf("apply %T: %v", c, r.Err)
	}
}

// testStore: miner t01000 (2 KiB), instances "a" (/mnt/a), "b" (/mnt/b)
// and "rel" (a relative path), and sectors 1..5 in various places.
func testStore(t *testing.T) *fsm.FSM {
	f := fsm.New(nil)
	mustApply(t, f, fsm.PutMiner{Miner: fsm.Miner{ID: 1000, SectorSize: 2048, PoStProof: 10, PartitionSize: 2, Enabled: true}})
	mustApply(t, f, fsm.PutMiner{Miner: fsm.Miner{ID: 1001, SectorSize: 2048, PoStProof: 99, PartitionSize: 2, Enabled: true}})
	for _, s := range []fsm.StorageInstance{{Name: "a", Path: "/mnt/a"}, {Name: "b", Path: "/mnt/b"}, {Name: "rel", Path: "mnt/rel"}} {
		mustApply(t, f, fsm.PutStorage{Instance: s})
	}
	var commR fsm.CommR
	commR[0] = 7
	mustApply(t, f, fsm.PutLocations{Locations: []fsm.SectorLocation{
		{SectorID: fsm.SectorID{Miner: 1000, Number: 5}, Sealed: "a", Cache: "a", SealProof: 5, CommR: commR},
		{SectorID: fsm.SectorID{Miner: 1000, Number: 1}, Sealed: "a", Cache: "b"},
		{SectorID: fsm.SectorID{Miner: 1000, Number: 2}, Sealed: "b", Cache: "b", Upgraded: true},
		{SectorID: fsm.SectorID{Miner: 1000, Number: 3}, Sealed: "rel", Cache: "a"},
		{SectorID: fsm.SectorID{Miner: 1000, Number: 4}, Sealed: "a", Cache: "a", SealProof: 8}, // a 32 GiB seal proof
	}})
	return f
}

func TestPlanCheckResolvesPaths(t *testing.T) {
	f := testStore(t)
	local := map[string]string{"b": "/local/b"} // this node mounts b elsewhere
	plan, err := planCheck(f, local, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Proof.Name != "StackedDrgWindow2KiBV1_2" {
		t.Fatalf("proof type %q, want StackedDrgWindow2KiBV1_2", plan.Proof.Name)
	}
	var commR prover.Bytes32
	commR[0] = 7
	wantReplicas := []prover.Replica{
		{SectorID: 1, SealedFile: "/mnt/a/sealed/s-t01000-1", CacheDir: "/local/b/cache/s-t01000-1"},
		{SectorID: 2, SealedFile: "/local/b/update/s-t01000-2", CacheDir: "/local/b/update-cache/s-t01000-2"},
		{SectorID: 5, SealedFile: "/mnt/a/sealed/s-t01000-5", CacheDir: "/mnt/a/cache/s-t01000-5", CommR: commR},
	}
	if !reflect.DeepEqual(plan.Replicas, wantReplicas) {
		t.Fatalf("replicas\n got %+v\nwant %+v", plan.Replicas, wantReplicas)
	}
	if want := []int{0, 1, 4}; !reflect.DeepEqual(plan.Index, want) {
		t.Fatalf("index %v, want %v", plan.Index, want)
	}
	if len(plan.Results) != 5 {
		t.Fatalf("%d results, want 5: %+v", len(plan.Results), plan.Results)
	}
	for i, r := range plan.Results {
		if r.Sector != uint64(i+1) || r.Good {
			t.Fatalf("result %d: %+v (want sector %d, not yet good)", i, r, i+1)
		}
	}
	if r := plan.Results[2].Reason; !strings.Contains(r, `"rel"`) || !strings.Contains(r, "not absolute") || !strings.Contains(r, "StoragePaths.rel") {
		t.Fatalf("relative instance path: reason %q", r)
	}
	if r := plan.Results[3].Reason; !strings.Contains(r, "32GiB") || !strings.Contains(r, "2KiB") {
		t.Fatalf("wrong-size seal proof: reason %q", r)
	}
	for _, i := range []int{0, 1, 4} {
		if plan.Results[i].Reason != "" {
			t.Fatalf("locatable sector %d has reason %q", i+1, plan.Results[i].Reason)
		}
	}

	// A local override makes the relative default irrelevant.
	plan, err = planCheck(f, map[string]string{"rel": "/local/rel"}, 1000, []uint64{3})
	if err != nil || len(plan.Replicas) != 1 || plan.Replicas[0].SealedFile != "/local/rel/sealed/s-t01000-3" {
		t.Fatalf("override of rel: %+v, %v", plan, err)
	}
}

func TestPlanCheckListedSectors(t *testing.T) {
	f := testStore(t)
	plan, err := planCheck(f, nil, 1000, []uint64{9, 5, 1, 5, 0})
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, r := range plan.Results {
		got = append(got, r.Sector)
	}
	if want := []uint64{0, 1, 5, 9}; !reflect.DeepEqual(got, want) {
		t.Fatalf("sectors %v, want %v (sorted, deduplicated)", got, want)
	}
	for _, i := range []int{0, 3} {
		if r := plan.Results[i].Reason; !strings.Contains(r, "no location") {
			t.Fatalf("sector %d: reason %q, want 'no location'", plan.Results[i].Sector, r)
		}
	}
	if len(plan.Replicas) != 2 || plan.Index[0] != 1 || plan.Index[1] != 2 {
		t.Fatalf("replicas %+v index %v", plan.Replicas, plan.Index)
	}
}

func TestPlanCheckErrors(t *testing.T) {
	f := testStore(t)
	var e *rpc.Error
	if _, err := planCheck(f, nil, 42, nil); !errors.As(err, &e) || e.Code != rpc.CodeNotFound || !strings.Contains(e.Message, "t042") {
		t.Fatalf("unknown miner: %v", err)
	}
	if _, err := planCheck(f, nil, 1001, nil); !errors.As(err, &e) || !strings.Contains(e.Message, "99") {
		t.Fatalf("bad proof type: %v", err)
	}
	plan, err := planCheck(f, nil, 1000, []uint64{})
	if err != nil || len(plan.Results) != 0 {
		t.Fatalf("empty list: %+v %v", plan, err)
	}
}

func TestProvingCheckWithoutExtProver(t *testing.T) {
	mux := rpc.NewMux(nil, rpc.DefaultMaxBody, zap.NewNop())
	registerProving(mux, readyReplica{testStore(t)}, nil, nil)
	if perm, ok := mux.Methods()[rpc.MethodProvingCheck]; !ok || perm != rpc.PermRead {
		t.Fatalf("VSM.ProvingCheck registered %v with %v, want read", ok, perm)
	}
	p := &proving{f: testStore(t), ready: func() error { return nil }}
	_, err := p.check(context.Background(), []json.RawMessage{json.RawMessage("1000")})
	var e *rpc.Error
	if !errors.As(err, &e) || e.Code != rpc.CodeUnavailable || !strings.Contains(e.Message, "--ext-prover") {
		t.Fatalf("without children: %v", err)
	}
	_, err = p.check(context.Background(), []json.RawMessage{json.RawMessage(`"x"`)})
	if !errors.As(err, &e) || e.Code != rpc.CodeInvalidParams {
		t.Fatalf("bad params: %v", err)
	}
}

type readyReplica struct{ f *fsm.FSM }

func (r readyReplica) FSM() *fsm.FSM    { return r.f }
func (r readyReplica) ReadReady() error { return nil }

func TestProvingCheckWaitsForReplay(t *testing.T) {
	p := &proving{f: testStore(t), ready: func() error { return errors.New("catching up: applied 3 of 9") }}
	_, err := p.check(context.Background(), []json.RawMessage{json.RawMessage("1000")})
	var e *rpc.Error
	if !errors.As(err, &e) || e.Code != rpc.CodeUnavailable || !strings.Contains(e.Message, "catching up") {
		t.Fatalf("during replay: %v", err)
	}
}
