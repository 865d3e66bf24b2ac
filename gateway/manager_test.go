package gateway

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/vsm-project/vsm/fsm"
)

type minerStore struct {
	fakeStore
	miners []fsm.MinerSummary
}

func (s minerStore) Miners() []fsm.MinerSummary { return s.miners }

// TestManagerRegistersOnlyWhenReady: a node whose replica is not caught up
// registers nothing (sophon-gateway would send it rounds and pass its
// error answers to sophon-miner as they are); it registers once ready,
// and leaves the gateway when it falls behind again.
func TestManagerRegistersOnlyWhenReady(t *testing.T) {
	f := newHubFixture(t)
	var ready atomic.Bool
	m, err := New(Config{
		Gateways: []APIInfo{f.info},
		Prover:   &captureProver{},
		Store:    minerStore{fakeStore: fakeStore{}, miners: []fsm.MinerSummary{{Miner: fsm.Miner{ID: 1000, Enabled: true}}}},
		Ready: func() error {
			if ready.Load() {
				return nil
			}
			return errors.New("applied index 3 of 9")
		},
		Poll:   50 * time.Millisecond,
		Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitConnections := func(want int, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for f.hub.Connections(maddr) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections for %s, want %d", f.hub.Connections(maddr), maddr, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(500 * time.Millisecond) // ten polls
	if n := f.hub.Connections(maddr); n != 0 {
		t.Fatalf("registered %d channels while not caught up, want none", n)
	}
	ready.Store(true)
	waitConnections(1, 5*time.Second)
	ready.Store(false)
	waitConnections(0, 5*time.Second)
}
