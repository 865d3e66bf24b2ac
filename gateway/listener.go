package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/filecoin-project/go-jsonrpc"
	prooftypes "github.com/filecoin-project/go-state-types/proof"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/fullnode"
)

// Handler computes the WinningPoSt of one ComputeProof request for miner.
type Handler interface {
	ComputeProof(ctx context.Context, miner uint64, req ComputeProofRequest) ([]prooftypes.PoStProof, error)
}

// proofAPI is the client half of the gateway's proof event API; go-jsonrpc
// fills the fields, each calling MethodNamespace + "." + its name.
type proofAPI struct {
	ListenProofEvent   func(ctx context.Context, policy *ProofRegisterPolicy) (<-chan *RequestEvent, error)
	ResponseProofEvent func(ctx context.Context, resp *ResponseEvent) error
}

// Backoff between connection attempts to a gateway: doubling from
// backoffMin to backoffMax, back to backoffMin after a connection that
// lasted stableAfter.
const (
	backoffMin  = 500 * time.Millisecond
	backoffMax  = 30 * time.Second
	stableAfter = time.Minute
	// answerTimeout bounds one ResponseProofEvent call.
	answerTimeout = 30 * time.Second
	// proofTimeout is sophon-gateway's RequestTimeout: past it the
	// gateway has dropped the request, so proving on holds a child for
	// nothing.
	proofTimeout = 5 * time.Minute
)

// listener keeps one miner registered on one gateway.
type listener struct {
	gw      APIInfo
	miner   uint64
	agent   string
	handler Handler
	log     *zap.Logger
	// connected, if set, is told of every InitConnect (tests, metrics).
	connected func(channel string)
}

// run connects, serves events until the connection drops, and reconnects
// with backoff, until ctx ends.
func (l *listener) run(ctx context.Context) {
	backoff := backoffMin
	for ctx.Err() == nil {
		start := time.Now()
		err := l.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) >= stableAfter {
			backoff = backoffMin
		}
		l.log.Warn("gateway connection lost; reconnecting", zap.String("gateway", l.gw.String()),
			zap.Error(err), zap.Duration("retry_in", backoff))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// session is one connection: dial, register, serve the event channel
// until it closes. Every ComputeProof runs on its own goroutine, so a
// slow proof never holds up the next event. When the session ends (the
// event channel closed or ctx ended) the proofs in flight are cancelled
// first, then waited for, then the connection is closed: their answers
// could not reach the gateway over a dropped connection, and waiting with
// the context live would keep the miner unregistered for up to
// proofTimeout.
func (l *listener) session(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+l.gw.Token)
	hdr.Set(NamespaceHeader, APINamespace)
	if l.agent != "" {
		hdr.Set("User-Agent", l.agent)
	}
	var api proofAPI
	closer, err := jsonrpc.NewMergeClient(ctx, l.gw.URL, MethodNamespace, []any{&api}, hdr, jsonrpc.WithNoReconnect())
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer closer()
	maddr := fullnode.IDAddress(l.miner)
	events, err := api.ListenProofEvent(ctx, &ProofRegisterPolicy{MinerAddress: maddr})
	if err != nil {
		return fmt.Errorf("Gateway.ListenProofEvent for %s: %w", maddr, err)
	}
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	respond := func(resp *ResponseEvent) {
		actx, acancel := context.WithTimeout(ctx, answerTimeout)
		defer acancel()
		if err := api.ResponseProofEvent(actx, resp); err != nil {
			l.log.Error("Gateway.ResponseProofEvent failed: the gateway will not have this answer", zap.String("gateway", l.gw.String()),
				zap.Stringer("id", resp.ID), zap.Error(err))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err() // closer() drops the connection, whatever the gateway does
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("the gateway closed the event channel of %s", maddr)
			}
			if ev == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.handle(ctx, ev, respond)
			}()
		}
	}
}

// handle serves one event. Only ComputeProof is answered: InitConnect
// wants no answer, and an unknown method gets an Error so that the gateway
// does not wait for one until its timeout.
func (l *listener) handle(ctx context.Context, ev *RequestEvent, respond func(*ResponseEvent)) {
	log := l.log.With(zap.Stringer("id", ev.ID), zap.String("method", ev.Method))
	switch ev.Method {
	case MethodInitConnect:
		var cc ConnectedCompleted
		if err := json.Unmarshal(ev.Payload, &cc); err != nil {
			log.Warn("InitConnect with a payload that is not ConnectedCompleted", zap.Error(err))
		}
		log.Info("registered with the gateway", zap.String("gateway", l.gw.String()), zap.Stringer("channel", cc.ChannelId))
		if l.connected != nil {
			l.connected(cc.ChannelId.String())
		}
	case MethodComputeProof:
		respond(l.computeProof(ctx, ev, log))
	default:
		log.Error("unknown proof event method; answering with an error")
		respond(&ResponseEvent{ID: ev.ID, Error: fmt.Sprintf("vsm does not serve proof event method %q (only %s)", ev.Method, MethodComputeProof)})
	}
}

func (l *listener) computeProof(ctx context.Context, ev *RequestEvent, log *zap.Logger) *ResponseEvent {
	var req ComputeProofRequest
	if err := json.Unmarshal(ev.Payload, &req); err != nil {
		log.Warn("ComputeProof payload is not a ComputeProofRequest", zap.Error(err))
		return &ResponseEvent{ID: ev.ID, Error: fmt.Sprintf("ComputeProof payload is not a ComputeProofRequest: %v", err)}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, proofTimeout)
	defer cancel()
	proofs, err := l.handler.ComputeProof(ctx, l.miner, req)
	if err != nil {
		log.Error("winning post failed", zap.Int64("height", int64(req.Height)), zap.Error(err))
		return &ResponseEvent{ID: ev.ID, Error: err.Error()}
	}
	payload, err := json.Marshal(proofs)
	if err != nil {
		return &ResponseEvent{ID: ev.ID, Error: fmt.Sprintf("encoding the proofs: %v", err)}
	}
	log.Info("winning post computed", zap.Int64("height", int64(req.Height)), zap.Duration("took", time.Since(start)))
	return &ResponseEvent{ID: ev.ID, Payload: payload}
}
