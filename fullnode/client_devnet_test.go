package fullnode_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/dline"

	"go.uber.org/zap/zaptest"

	"github.com/filecoin-project/go-bitfield"
	"github.com/vsm-project/vsm/devnet"
	"github.com/vsm-project/vsm/fullnode"
)

// fakeSealer skips disk work: these tests are about the wire, not proofs.
type fakeSealer struct{}

func (fakeSealer) SealSector(_ context.Context, miner, number, _ uint64, _ string) ([32]byte, error) {
	return sha256.Sum256([]byte{byte(miner), byte(miner >> 8), byte(number)}), nil
}

func startDevnet(t testing.TB) (*devnet.Devnet, *httptest.Server) {
	t.Helper()
	off := int64(5)
	spec := &devnet.Spec{
		Seed: "client-test",
		// Nothing is judged: these tests look at the wire, not at outcomes.
		FirstDueEpoch: 1000,
		Policy:        devnet.PolicySpec{PeriodDeadlines: 4, ChallengeWindow: 10, ChallengeLookback: 3, FaultDeclarationCutoff: 5},
		Miners:        []devnet.MinerSpec{{ID: 1000, Worker: 100, Sectors: 5, ProvingPeriodOffset: &off}},
	}
	dn, err := devnet.New(context.Background(), devnet.Config{Dir: t.TempDir(), Spec: spec, Sealer: fakeSealer{}, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(dn.Handler())
	t.Cleanup(srv.Close)
	return dn, srv
}

func TestClientAgainstDevnet(t *testing.T) {
	dn, srv := startDevnet(t)
	dn.Step(23)
	ctx := context.Background()
	c := fullnode.NewClient(fullnode.APIInfo{Token: dn.Token(), URL: srv.URL + "/rpc/v1"}, zaptest.NewLogger(t))
	maddr, _ := address.NewFromString("f01000")

	head, err := c.ChainHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head.Height != 23 || len(head.Cids) != 1 || len(head.Blocks) != 1 || head.Blocks[0].Parents[0].String() == head.Cids[0].String() {
		t.Fatalf("head = %+v", head)
	}

	tests := []struct {
		name  string
		call  func() (any, error)
		check func(t *testing.T, v any)
		err   string
	}{
		{"miner info", func() (any, error) { return c.StateMinerInfo(ctx, maddr, head.Key()) }, func(t *testing.T, v any) {
			mi := v.(*fullnode.MinerInfo)
			if mi.Worker != fullnode.IDAddress(100) || mi.SectorSize != 2048 || mi.WindowPoStProofType != 10 || mi.WindowPoStPartitionSectors != 2 {
				t.Fatalf("miner info %+v", mi)
			}
		}, ""},
		{"proving deadline at head", func() (any, error) { return c.StateMinerProvingDeadline(ctx, maddr, nil) }, func(t *testing.T, v any) {
			di := v.(*dline.Info)
			// offset 5, period 40: period start 5, epoch 23 is deadline 1 (15..25)
			if di.PeriodStart != 5 || di.Index != 1 || di.Open != 15 || di.Close != 25 || di.Challenge != 12 || di.FaultCutoff != 10 || di.CurrentEpoch != 23 {
				t.Fatalf("deadline %s", fullnode.DeadlineString(di))
			}
		}, ""},
		{"proving deadline at an older tipset", func() (any, error) {
			return c.StateMinerProvingDeadline(ctx, maddr, fullnode.TipSetKey{head.Blocks[0].Parents[0]})
		}, func(t *testing.T, v any) {
			if di := v.(*dline.Info); di.CurrentEpoch != 22 {
				t.Fatalf("deadline at parent: %s", fullnode.DeadlineString(di))
			}
		}, ""},
		{"unknown tipset", func() (any, error) {
			return c.StateMinerProvingDeadline(ctx, maddr, fullnode.TipSetKey{unknownCID(t)})
		}, nil, "not found"},
		{"deadlines", func() (any, error) { return c.StateMinerDeadlines(ctx, maddr, nil) }, func(t *testing.T, v any) {
			if dls := v.([]fullnode.Deadline); len(dls) != 4 {
				t.Fatalf("deadlines %+v", dls)
			}
		}, ""},
		{"partitions", func() (any, error) { return c.StateMinerPartitions(ctx, maddr, 0, nil) }, func(t *testing.T, v any) {
			// 5 sectors, partition size 2: partitions {0,1} {2,3} {4} go to
			// deadlines 0, 1, 2.
			ps := v.([]fullnode.Partition)
			if len(ps) != 1 || !bitsAre(ps[0].AllSectors, 0, 1) || !bitsAre(ps[0].ActiveSectors, 0, 1) {
				t.Fatalf("partitions %+v", ps)
			}
		}, ""},
		{"partitions bad index", func() (any, error) { return c.StateMinerPartitions(ctx, maddr, 9, nil) }, nil, "out of range"},
		{"sector info", func() (any, error) { return c.StateSectorGetInfo(ctx, maddr, 4, nil) }, func(t *testing.T, v any) {
			si := v.(*fullnode.SectorOnChainInfo)
			commR, err := commcid.CIDToReplicaCommitmentV1(si.SealedCID)
			want, _ := fakeSealer{}.SealSector(ctx, 1000, 4, 0, "")
			if err != nil || !bytes.Equal(commR, want[:]) || si.SealProof != 5 {
				t.Fatalf("sector info %+v, commR %x, %v", si, commR, err)
			}
		}, ""},
		{"unknown sector is nil", func() (any, error) { return c.StateSectorGetInfo(ctx, maddr, 77, nil) }, func(t *testing.T, v any) {
			if si := v.(*fullnode.SectorOnChainInfo); si != nil {
				t.Fatalf("want nil, got %+v", si)
			}
		}, ""},
		{"miner sectors in a filter, unknown numbers left out", func() (any, error) {
			filter := bitfield.NewFromSet([]uint64{4, 1, 77})
			return c.StateMinerSectors(ctx, maddr, &filter, nil)
		}, func(t *testing.T, v any) {
			sis := v.([]*fullnode.SectorOnChainInfo)
			if len(sis) != 2 || sis[0].SectorNumber != 1 || sis[1].SectorNumber != 4 {
				t.Fatalf("sectors %+v, want 1 and 4", sis)
			}
			commR, err := commcid.CIDToReplicaCommitmentV1(sis[1].SealedCID)
			want, _ := fakeSealer{}.SealSector(ctx, 1000, 4, 0, "")
			if err != nil || !bytes.Equal(commR, want[:]) {
				t.Fatalf("sector 4 commR %x, want %x (%v)", commR, want, err)
			}
		}, ""},
		{"miner sectors without a filter: all", func() (any, error) { return c.StateMinerSectors(ctx, maddr, nil, nil) }, func(t *testing.T, v any) {
			if sis := v.([]*fullnode.SectorOnChainInfo); len(sis) != 5 || sis[4].SectorNumber != 4 {
				t.Fatalf("sectors %+v, want 0..4", sis)
			}
		}, ""},
		{"unknown miner", func() (any, error) { return c.StateMinerInfo(ctx, fullnode.IDAddress(9), nil) }, nil, "actor not found"},
		{"randomness from the future", func() (any, error) {
			return c.StateGetRandomnessFromBeacon(ctx, crypto.DomainSeparationTag_WindowedPoStChallengeSeed, 24, nil, nil)
		}, nil, "from the future"},
		{"window post randomness is stable and normalised", func() (any, error) {
			di, err := c.StateMinerProvingDeadline(ctx, maddr, nil)
			if err != nil {
				return nil, err
			}
			a, err := c.WindowPoStRandomness(ctx, maddr, di, nil)
			if err != nil {
				return nil, err
			}
			b, err := c.WindowPoStRandomness(ctx, maddr, di, head.Key())
			if a != b {
				t.Fatalf("randomness differs across calls: %x %x", a, b)
			}
			other, _ := c.WindowPoStRandomness(ctx, fullnode.IDAddress(1000), &dline.Info{Challenge: di.Challenge - 1}, nil)
			if other == a {
				t.Fatal("randomness does not depend on the epoch")
			}
			return a, err
		}, func(t *testing.T, v any) {
			if seed := v.([32]byte); seed[31]&0xc0 != 0 {
				t.Fatalf("seed not normalised: %x", seed)
			}
		}, ""},
		{"unknown method", func() (any, error) { return nil, c.Call(ctx, "Filecoin.NoSuchThing", nil) }, nil, "not found"},
		{"wrong param count", func() (any, error) {
			return nil, c.Call(ctx, "Filecoin.StateGetRandomnessFromBeacon", nil, 4, 10, []byte{})
		}, nil, "takes 4 params, got 3"},
		{"v0 param order (tipset first)", func() (any, error) {
			return nil, c.Call(ctx, "Filecoin.StateGetRandomnessFromBeacon", nil, []any{}, 4, 10, []byte{})
		}, nil, "param 1"},
		{"key address rejected", func() (any, error) {
			return nil, c.Call(ctx, "Filecoin.StateMinerInfo", nil, "f3vvmn62lofvhjd2ugzca6sof2j2ubwok6cj4xxbfzz4yuxfkgobpihhd2thlanmsh3w2ptld2gqkn2jvlss4a", []any{})
		}, nil, "actor not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.call()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, v)
		})
	}
}

func TestClientAuthAndMessages(t *testing.T) {
	dn, srv := startDevnet(t)
	dn.Step(3)
	ctx := context.Background()
	maddr, worker := fullnode.IDAddress(1000), fullnode.IDAddress(100)
	decl := &miner.DeclareFaultsParams{Faults: []miner.FaultDeclaration{{Deadline: 2, Partition: 0, Sectors: bitfield.NewFromSet([]uint64{4})}}}

	noToken := fullnode.NewClient(fullnode.APIInfo{URL: srv.URL + "/rpc/v1"}, nil)
	if _, err := noToken.ChainHead(ctx); err != nil {
		t.Fatalf("reads need no token: %v", err)
	}
	_, err := noToken.DeclareFaults(ctx, maddr, worker, decl, nil)
	if err == nil || !strings.Contains(err.Error(), "missing permission") {
		t.Fatalf("push without token: %v", err)
	}
	badToken := fullnode.NewClient(fullnode.APIInfo{Token: "nope", URL: srv.URL + "/rpc/v1"}, nil)
	if _, err := badToken.ChainHead(ctx); !errors.Is(err, fullnode.ErrUnauthorized) {
		t.Fatalf("bad token: %v", err)
	}

	c, err := fullnode.Dial(dn.Token()+":"+srv.URL, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	cid, err := c.DeclareFaults(ctx, maddr, worker, decl, &fullnode.MessageSendSpec{MaxFee: big.NewInt(1)})
	if err != nil {
		t.Fatal(err)
	}
	// Pushed at head 3, the message is included in tipset 4 and its
	// receipt found in tipset 5 (MsgLookup.Height, as Lotus reports it);
	// StateWaitMsg with confidence 2 returns only once the head is at 7. A failing assertion cancels the wait, so the server
	// can close.
	done := make(chan *fullnode.MsgLookup, 1)
	waitCtx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	go func() {
		ml, err := c.StateWaitMsg(waitCtx, cid, 2, -1, true)
		if err != nil {
			t.Error(err)
		}
		done <- ml
	}()
	select {
	case <-done:
		t.Fatal("StateWaitMsg returned before the confidence epochs passed")
	case <-time.After(100 * time.Millisecond):
	}
	dn.Step(4)
	select {
	case ml := <-done:
		if ml == nil || ml.Height != 5 || !ml.Message.Equals(cid) {
			t.Fatalf("lookup %+v", ml)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("StateWaitMsg did not return")
	}
	// A cancelled wait ends with the context's error.
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.StateWaitMsg(wctx, cid, 100, -1, true); err == nil {
		t.Fatal("StateWaitMsg ignored its context")
	}
	parts, _ := c.StateMinerPartitions(ctx, maddr, 2, nil)
	if !bitsAre(parts[0].FaultySectors, 4) {
		t.Fatalf("declared fault not applied: %+v", parts[0])
	}
}

// bitsAre reports whether bf holds exactly want.
func bitsAre(bf bitfield.BitField, want ...uint64) bool {
	got, err := bf.All(1 << 20)
	return err == nil && slices.Equal(got, want)
}

// unknownCID is a well-formed CID no devnet tipset has.
func unknownCID(t testing.TB) cid.Cid {
	mh, err := multihash.Sum(nil, multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.DagCBOR, mh)
}
