package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/rpc"
)

// kvInput is one operation on one sector's location: a put of a value
// (carried in CommR) or a consistent get.
type kvInput struct {
	put   bool
	key   uint64
	value uint64
}

// kvModel is a register per key; a get of an absent key returns 0.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[uint64][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range byKey {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return uint64(0) },
	Step: func(state, input, output any) (bool, any) {
		in := input.(kvInput)
		if in.put {
			return true, in.value
		}
		return output.(uint64) == state.(uint64), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(kvInput)
		if in.put {
			return fmt.Sprintf("put(%d, %d)", in.key, in.value)
		}
		return fmt.Sprintf("get(%d) -> %d", in.key, output)
	},
}

func commR(v uint64) fsm.CommR {
	var c fsm.CommR
	binary.LittleEndian.PutUint64(c[:], v)
	return c
}

type history struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
}

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

// client runs puts and consistent gets against random members. A put that
// fails may still have been applied, so it is kept with an open end (it
// may take effect any time after its call); a failed get is dropped.
func (h *history) client(ctx context.Context, id int, clients []*rpc.Client, seq *uint64, mu *sync.Mutex) {
	r := rand.New(rand.NewPCG(uint64(id), 7))
	for ctx.Err() == nil {
		key := r.Uint64N(3)
		c := clients[r.IntN(len(clients))]
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if r.IntN(2) == 0 {
			mu.Lock()
			*seq++
			v := *seq
			mu.Unlock()
			loc := fsm.SectorLocation{SectorID: fsm.SectorID{Miner: 1000, Number: key}, Sealed: "s", Cache: "s", CommR: commR(v)}
			call := h.now()
			err := c.Call(cctx, "VSM.SectorLocationPut", nil, []fsm.SectorLocation{loc})
			ret := h.now()
			switch {
			case err == nil:
				h.add(porcupine.Operation{ClientId: id, Input: kvInput{put: true, key: key, value: v}, Call: call, Return: ret})
			case neverApplied(err):
				time.Sleep(20 * time.Millisecond)
			default: // ambiguous: it may take effect at any time after the call
				h.add(porcupine.Operation{ClientId: id, Input: kvInput{put: true, key: key, value: v}, Call: call, Return: math.MaxInt64})
				time.Sleep(20 * time.Millisecond)
			}
		} else {
			call := h.now()
			var loc fsm.SectorLocation
			err := c.Call(cctx, "VSM.SectorLocationGet", &loc, fsm.SectorID{Miner: 1000, Number: key}, true)
			ret := h.now()
			switch {
			case err == nil:
				h.add(porcupine.Operation{ClientId: id, Input: kvInput{key: key}, Output: binary.LittleEndian.Uint64(loc.CommR[:]), Call: call, Return: ret})
			case rpc.IsCode(err, rpc.CodeNotFound):
				h.add(porcupine.Operation{ClientId: id, Input: kvInput{key: key}, Output: uint64(0), Call: call, Return: ret})
			}
		}
		cancel()
	}
}

// TestLinearizableUnderLeaderKills checks a history of concurrent puts and
// consistent gets from several clients, across two kill -9s of the
// leader, with porcupine.
func TestLinearizableUnderLeaderKills(t *testing.T) {
	nodes := startCluster(t, 3)
	leader, clients := seedWriteTarget(t, nodes)
	h := &history{start: time.Now()}
	var seq uint64
	var seqMu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); h.client(ctx, i, clients, &seq, &seqMu) }(i)
	}
	time.Sleep(1500 * time.Millisecond)
	leader.Kill()
	time.Sleep(2 * time.Second)
	leader.Start()
	leader.WaitHealthy(30 * time.Second)
	second := leaderOf(t, nodes)
	second.Kill()
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()
	second.Start()

	ok, gets := 0, 0
	for _, op := range h.ops {
		if op.Return != math.MaxInt64 {
			ok++
		}
		if !op.Input.(kvInput).put {
			gets++
		}
	}
	t.Logf("history: %d operations (%d completed, %d consistent gets), leaders killed: %s, %s", len(h.ops), ok, gets, leader.ID, second.ID)
	if gets < 50 {
		t.Fatalf("only %d gets: the history is too short to mean anything", gets)
	}
	res, info := porcupine.CheckOperationsVerbose(kvModel, h.ops, time.Minute)
	if res != porcupine.Ok {
		path := t.TempDir() + "/history.html"
		_ = porcupine.VisualizePath(kvModel, info, path)
		t.Fatalf("history is %s (visualization: %s)", res, path)
	}
}

// neverApplied recognises failures that prove a put was not applied: the
// connection was refused (the request never reached a node), or the node
// answered that no leader could take it.
func neverApplied(err error) bool {
	return strings.Contains(err.Error(), "connection refused") || rpc.IsCode(err, rpc.CodeNotLeader) && strings.Contains(err.Error(), "no raft leader is known")
}

// TestModelCatchesStaleRead shows the model rejects what a broken store
// would produce: a read, after a put completed, that returns the old value.
func TestModelCatchesStaleRead(t *testing.T) {
	ops := []porcupine.Operation{
		{ClientId: 0, Input: kvInput{put: true, key: 1, value: 5}, Call: 0, Return: 10},
		{ClientId: 1, Input: kvInput{key: 1}, Output: uint64(5), Call: 11, Return: 12},
		{ClientId: 0, Input: kvInput{put: true, key: 1, value: 6}, Call: 13, Return: 20},
		{ClientId: 1, Input: kvInput{key: 1}, Output: uint64(5), Call: 21, Return: 22}, // stale
	}
	if porcupine.CheckOperations(kvModel, ops) {
		t.Fatal("a stale read was accepted")
	}
	ops[3].Output = uint64(6)
	if !porcupine.CheckOperations(kvModel, ops) {
		t.Fatal("a linearizable history was rejected")
	}
	// An ambiguous put may take effect later, even after its caller gave up.
	amb := []porcupine.Operation{
		{ClientId: 0, Input: kvInput{put: true, key: 2, value: 9}, Call: 0, Return: math.MaxInt64},
		{ClientId: 1, Input: kvInput{key: 2}, Output: uint64(0), Call: 1, Return: 2},
		{ClientId: 1, Input: kvInput{key: 2}, Output: uint64(9), Call: 3, Return: 4},
	}
	if !porcupine.CheckOperations(kvModel, amb) {
		t.Fatal("an ambiguous put taking effect late was rejected")
	}
}
