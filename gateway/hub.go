package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc"
	prooftypes "github.com/filecoin-project/go-state-types/proof"
	"github.com/google/uuid"
	"go.uber.org/zap"
)

// Hub is the gateway's half of the proof event API, as sophon-gateway
// serves it: provers register per miner with ListenProofEvent, requests go
// to one registered channel and come back through ResponseProofEvent. The
// devnet's gateway stand-in serves it. By default it routes as
// sophon-gateway does: a request goes to one channel, an arbitrary pick;
// an answer with Error set goes back as it is; only when that channel
// closes (its member died) is the next channel asked; a channel that stays
// silent costs the request once Timeout passes. AttemptTimeout > 0 (not
// sophon-gateway's behaviour) also asks the next channel after a silent
// one.
type Hub struct {
	token string
	log   *zap.Logger
	// Timeout bounds a request over all its attempts (sophon-gateway's
	// RequestTimeout: 5 minutes); AttemptTimeout, if positive, bounds one
	// channel's answer before the next is asked (default 0: never, as in
	// sophon-gateway).
	Timeout, AttemptTimeout time.Duration

	wg       sync.WaitGroup // one per registration, until its connection ends
	mu       sync.Mutex
	channels map[address.Address][]*channel
	pending  map[uuid.UUID]chan *ResponseEvent
}

// channel is one ListenProofEvent registration.
type channel struct {
	id     uuid.UUID
	agent  string
	remote string
	ctx    context.Context

	mu     sync.Mutex
	closed bool
	out    chan *RequestEvent
}

// channelQueue bounds the events waiting on one channel.
const channelQueue = 16

var errChannelClosed = errors.New("channel closed")

func (c *channel) send(ev *RequestEvent) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errChannelClosed
	}
	select {
	case c.out <- ev:
		return nil
	default:
		return fmt.Errorf("channel %s has %d events queued", c.id, channelQueue)
	}
}

func (c *channel) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	close(c.out)
}

// NewHub makes a hub that admits connections bearing token.
func NewHub(token string, log *zap.Logger) *Hub {
	if log == nil {
		log = zap.NewNop()
	}
	return &Hub{token: token, log: log, Timeout: 5 * time.Minute,
		channels: map[address.Address][]*channel{}, pending: map[uuid.UUID]chan *ResponseEvent{}}
}

type peerKey struct{}

type peer struct{ agent, remote string }

// Handler serves the API (mount it at RPCPath). A request without the
// hub's bearer token is refused with 401, one without the gateway
// namespace header with 400.
func (h *Hub) Handler() http.Handler {
	rpc := jsonrpc.NewServer()
	rpc.Register(MethodNamespace, &hubAPI{h})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(tok), []byte(h.token)) != 1 {
			http.Error(w, "invalid or missing token: send Authorization: Bearer TOKEN", http.StatusUnauthorized)
			return
		}
		if ns := r.Header.Get(NamespaceHeader); ns != APINamespace {
			http.Error(w, fmt.Sprintf("header %s is %q; this is the %s API", NamespaceHeader, ns, APINamespace), http.StatusBadRequest)
			return
		}
		ctx := context.WithValue(r.Context(), peerKey{}, peer{agent: r.UserAgent(), remote: r.RemoteAddr})
		rpc.ServeHTTP(w, r.WithContext(ctx))
	})
}

// hubAPI holds the methods go-jsonrpc serves, and nothing else.
type hubAPI struct{ h *Hub }

// ListenProofEvent registers a channel for policy.MinerAddress; it is
// removed when the connection closes.
func (a *hubAPI) ListenProofEvent(ctx context.Context, policy *ProofRegisterPolicy) (<-chan *RequestEvent, error) {
	if policy == nil || policy.MinerAddress == address.Undef {
		return nil, errors.New("ListenProofEvent: no MinerAddress")
	}
	if jsonrpc.GetConnectionType(ctx) != jsonrpc.ConnectionTypeWS {
		return nil, errors.New("ListenProofEvent needs a websocket connection (ws://HOST:PORT/rpc/v2)")
	}
	p, _ := ctx.Value(peerKey{}).(peer)
	ch := &channel{id: uuid.New(), agent: p.agent, remote: p.remote, ctx: ctx, out: make(chan *RequestEvent, channelQueue)}
	payload, err := json.Marshal(ConnectedCompleted{ChannelId: ch.id})
	if err != nil {
		return nil, err
	}
	_ = ch.send(&RequestEvent{ID: uuid.New(), Method: MethodInitConnect, Payload: payload})
	maddr := policy.MinerAddress
	a.h.mu.Lock()
	a.h.channels[maddr] = append(a.h.channels[maddr], ch)
	a.h.mu.Unlock()
	a.h.log.Info("prover registered", zap.Stringer("miner", maddr), zap.Stringer("channel", ch.id), zap.String("agent", ch.agent), zap.String("remote", ch.remote))
	a.h.wg.Add(1)
	go func() {
		defer a.h.wg.Done()
		<-ctx.Done()
		a.h.log.Info("prover gone", zap.Stringer("miner", maddr), zap.Stringer("channel", ch.id), zap.String("agent", ch.agent))
		a.h.remove(maddr, ch)
		ch.close()
	}()
	return ch.out, nil
}

// ResponseProofEvent delivers an answer to the request waiting for it.
func (a *hubAPI) ResponseProofEvent(ctx context.Context, resp *ResponseEvent) error {
	if resp == nil {
		return errors.New("ResponseProofEvent: no response")
	}
	a.h.mu.Lock()
	wait, ok := a.h.pending[resp.ID]
	delete(a.h.pending, resp.ID)
	a.h.mu.Unlock()
	if !ok {
		return fmt.Errorf("request id %s not exist", resp.ID) // sophon-gateway's words
	}
	wait <- resp
	return nil
}

func (h *Hub) remove(maddr address.Address, ch *channel) {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.channels[maddr]
	for i, c := range list {
		if c == ch {
			h.channels[maddr] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(h.channels[maddr]) == 0 {
		delete(h.channels, maddr)
	}
}

// Wait returns once every registration has ended; close the server's
// connections first.
func (h *Hub) Wait() { h.wg.Wait() }

// Connections is the number of channels registered for maddr.
func (h *Hub) Connections(maddr address.Address) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.channels[maddr])
}

// ConnectionCounts is the number of channels registered per miner
// address.
func (h *Hub) ConnectionCounts() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.channels))
	for a, list := range h.channels {
		out[a.String()] = len(list)
	}
	return out
}

// Answer is what a request got back, and from whom.
type Answer struct {
	Response *ResponseEvent
	Channel  string // the channel id that answered
	Agent    string // its User-Agent
	Attempts int
}

// ChannelError is an attempt that got no answer.
type ChannelError struct {
	Channel, Agent string
	Err            error
}

func (e *ChannelError) Error() string {
	return fmt.Sprintf("channel %s (%s): %v", e.Channel, e.Agent, e.Err)
}

// Send asks one channel of maddr, an arbitrary pick (sophon-gateway takes
// the first of a list built from a map), and the next ones in turn only
// while the one asked closes (or, with AttemptTimeout, stays silent),
// until one answers, all failed, or the hub's Timeout passes. An answer
// with Error set is an answer: it is not sent elsewhere.
func (h *Hub) Send(ctx context.Context, maddr address.Address, method string, payload []byte) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	chans := h.order(maddr)
	if len(chans) == 0 {
		return Answer{}, fmt.Errorf("no connections for this miner %s", maddr)
	}
	var errs []error
	for i, ch := range chans {
		resp, err := h.attempt(ctx, ch, method, payload)
		if err == nil {
			return Answer{Response: resp, Channel: ch.id.String(), Agent: ch.agent, Attempts: i + 1}, nil
		}
		errs = append(errs, &ChannelError{Channel: ch.id.String(), Agent: ch.agent, Err: err})
		h.log.Warn("prover channel failed", zap.Stringer("miner", maddr), zap.Stringer("channel", ch.id), zap.String("agent", ch.agent), zap.Error(err))
		if ctx.Err() != nil {
			break
		}
	}
	return Answer{Attempts: len(errs)}, fmt.Errorf("%d of the %d channels of %s asked, none answered: %w", len(errs), len(chans), maddr, errors.Join(errs...))
}

func (h *Hub) order(maddr address.Address) []*channel {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.channels[maddr]
	if len(list) == 0 {
		return nil
	}
	start := rand.IntN(len(list))
	return append(append([]*channel{}, list[start:]...), list[:start]...)
}

func (h *Hub) attempt(ctx context.Context, ch *channel, method string, payload []byte) (*ResponseEvent, error) {
	id := uuid.New()
	wait := make(chan *ResponseEvent, 1)
	h.mu.Lock()
	h.pending[id] = wait
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.pending, id)
		h.mu.Unlock()
	}()
	if err := ch.send(&RequestEvent{ID: id, Method: method, Payload: payload}); err != nil {
		return nil, err
	}
	var silent <-chan time.Time
	if h.AttemptTimeout > 0 {
		t := time.NewTimer(h.AttemptTimeout)
		defer t.Stop()
		silent = t.C
	}
	select {
	case resp := <-wait:
		return resp, nil
	case <-ch.ctx.Done():
		return nil, errChannelClosed
	case <-silent:
		return nil, fmt.Errorf("no answer within %v", h.AttemptTimeout)
	case <-ctx.Done():
		return nil, fmt.Errorf("no answer: %w", ctx.Err())
	}
}

// ComputeProof sends a ComputeProof request and decodes the proofs of the
// answer; an answer with Error set is returned as an error, with the
// Answer saying who sent it.
func (h *Hub) ComputeProof(ctx context.Context, maddr address.Address, req ComputeProofRequest) ([]prooftypes.PoStProof, Answer, error) {
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, Answer{}, err
	}
	ans, err := h.Send(ctx, maddr, MethodComputeProof, payload)
	if err != nil {
		return nil, ans, err
	}
	if ans.Response.Error != "" {
		return nil, ans, fmt.Errorf("prover %s answered with an error: %s", ans.Agent, ans.Response.Error)
	}
	var proofs []prooftypes.PoStProof
	if err := json.Unmarshal(ans.Response.Payload, &proofs); err != nil {
		return nil, ans, fmt.Errorf("prover %s answered with a payload that is not []PoStProof: %w", ans.Agent, err)
	}
	return proofs, ans, nil
}
