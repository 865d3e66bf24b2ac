package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	prooftypes "github.com/filecoin-project/go-state-types/proof"
	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vsm-project/vsm/fullnode"
)

// fakeHandler answers ComputeProof with the request's height as the proof
// bytes, or fails when told to.
type fakeHandler struct {
	mu   sync.Mutex
	fail error
	reqs []ComputeProofRequest
}

func (f *fakeHandler) ComputeProof(_ context.Context, miner uint64, req ComputeProofRequest) ([]prooftypes.PoStProof, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	if f.fail != nil {
		return nil, f.fail
	}
	return []prooftypes.PoStProof{{PoStProof: abi.RegisteredPoStProof_StackedDrgWinning2KiBV1, ProofBytes: []byte{byte(req.Height), byte(miner)}}}, nil
}

type hubFixture struct {
	hub       *Hub
	srv       *httptest.Server
	conns     *connTracker
	quiet     bool // no listener logs (benchmarks)
	info      APIInfo
	connected chan string
}

func newHubFixture(t testing.TB) *hubFixture {
	t.Helper()
	hub := NewHub("secret", zaptest.NewLogger(t))
	mux := http.NewServeMux()
	mux.Handle(RPCPath, hub.Handler())
	srv := httptest.NewUnstartedServer(mux)
	conns := &connTracker{Listener: srv.Listener}
	srv.Listener = conns
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		conns.dropAll()
		hub.Wait()
	})
	info, err := ParseAPIInfo("secret:" + srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &hubFixture{hub: hub, srv: srv, conns: conns, info: info, connected: make(chan string, 10)}
}

// connTracker remembers accepted connections, so a test can drop the
// websockets (httptest forgets hijacked connections).
type connTracker struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (c *connTracker) Accept() (net.Conn, error) {
	conn, err := c.Listener.Accept()
	if err == nil {
		c.mu.Lock()
		c.conns = append(c.conns, conn)
		c.mu.Unlock()
	}
	return conn, err
}

func (c *connTracker) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		_ = conn.Close()
	}
	c.conns = nil
}

// listen runs a listener for miner 1000 until the test ends.
func (f *hubFixture) listen(t *testing.T, h Handler, info APIInfo) {
	t.Helper()
	f.listenAs(t, "vsm-test", h, info)
}

func (f *hubFixture) listenAs(t testing.TB, agent string, h Handler, info APIInfo) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := zaptest.NewLogger(t)
	if f.quiet {
		log = zap.NewNop()
	}
	l := &listener{gw: info, miner: 1000, agent: agent, handler: h, log: log,
		connected: func(ch string) { f.connected <- ch }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func (f *hubFixture) waitConnected(t testing.TB) string {
	t.Helper()
	select {
	case ch := <-f.connected:
		return ch
	case <-time.After(10 * time.Second):
		t.Fatal("no InitConnect within 10s")
		return ""
	}
}

var maddr = fullnode.IDAddress(1000)

// TestListenerEvents: InitConnect registers; ComputeProof is answered with
// the handler's proofs; a bad payload, a failing handler and an unknown
// method are answered with Error set, and the same channel keeps serving.
func TestListenerEvents(t *testing.T) {
	f := newHubFixture(t)
	h := &fakeHandler{}
	f.listen(t, h, f.info)
	channel := f.waitConnected(t)
	ctx := context.Background()

	proofs, ans, err := f.hub.ComputeProof(ctx, maddr, ComputeProofRequest{Rand: make([]byte, 32), Height: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(proofs) != 1 || string(proofs[0].ProofBytes) != string([]byte{7, byte(1000 % 256)}) || ans.Channel != channel || ans.Agent != "vsm-test" {
		t.Fatalf("proofs %+v from %+v, want the handler's for height 7 from channel %s", proofs, ans, channel)
	}

	tests := []struct {
		name, method, payload, wantErr string
		fail                           error
	}{
		{"bad payload", MethodComputeProof, "{not json", "ComputeProof payload is not a ComputeProofRequest", nil},
		{"handler error", MethodComputeProof, `{"Height":8}`, "challenged sector 3: no location", errors.New("challenged sector 3: no location")},
		{"unknown method", "ComputeMarket", "{}", `vsm does not serve proof event method "ComputeMarket"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.mu.Lock()
			h.fail = tt.fail
			h.mu.Unlock()
			ans, err := f.hub.Send(ctx, maddr, tt.method, []byte(tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(ans.Response.Error, tt.wantErr) || ans.Response.Payload != nil {
				t.Errorf("answer %+v, want Error containing %q and no payload", ans.Response, tt.wantErr)
			}
		})
	}
	h.mu.Lock()
	h.fail = nil
	h.mu.Unlock()
	if _, ans, err := f.hub.ComputeProof(ctx, maddr, ComputeProofRequest{Height: 9}); err != nil || ans.Channel != channel {
		t.Fatalf("after the errors: %v from %+v, want an answer on channel %s", err, ans, channel)
	}
	if n := f.hub.Connections(maddr); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestListenerReconnects: when the gateway drops the connection the
// listener registers again.
func TestListenerReconnects(t *testing.T) {
	f := newHubFixture(t)
	f.listen(t, &fakeHandler{}, f.info)
	first := f.waitConnected(t)
	f.conns.dropAll()
	second := f.waitConnected(t)
	if first == second {
		t.Fatalf("same channel %s after the drop", first)
	}
	if _, _, err := f.hub.ComputeProof(context.Background(), maddr, ComputeProofRequest{Height: 1}); err != nil {
		t.Fatalf("after reconnecting: %v", err)
	}
}

// TestHubRefuses: a wrong token or namespace is refused before any call,
// and the listener keeps retrying rather than giving up.
func TestHubRefuses(t *testing.T) {
	f := newHubFixture(t)
	for _, tt := range []struct {
		name, token, ns string
		status          int
	}{
		{"no token", "", APINamespace, http.StatusUnauthorized},
		{"wrong token", "nope", APINamespace, http.StatusUnauthorized},
		{"no namespace", "secret", "", http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, f.srv.URL+RPCPath, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"Gateway.ResponseProofEvent","params":[{}]}`))
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			if tt.ns != "" {
				req.Header.Set(NamespaceHeader, tt.ns)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
	bad := f.info
	bad.Token = "nope"
	f.listen(t, &fakeHandler{}, bad)
	select {
	case ch := <-f.connected:
		t.Fatalf("registered with a wrong token (channel %s)", ch)
	case <-time.After(1500 * time.Millisecond):
	}
}

// hangingHandler never answers until the test ends.
type hangingHandler struct{ release chan struct{} }

func (h hangingHandler) ComputeProof(ctx context.Context, _ uint64, _ ComputeProofRequest) ([]prooftypes.PoStProof, error) {
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	return nil, errors.New("released")
}

// TestHubTriesTheNextChannel: with AttemptTimeout set (a devnet option,
// not sophon-gateway's behaviour) a channel that does not answer within
// it costs one attempt and the next channel answers, whichever channel
// the request started with.
func TestHubTriesTheNextChannel(t *testing.T) {
	f := newHubFixture(t)
	f.hub.AttemptTimeout = 300 * time.Millisecond
	hang := hangingHandler{release: make(chan struct{})}
	t.Cleanup(func() { close(hang.release) })
	f.listenAs(t, "stuck", hang, f.info)
	f.waitConnected(t)
	f.listenAs(t, "good", &fakeHandler{}, f.info)
	f.waitConnected(t)
	attempts := map[int]int{}
	for i := 0; i < 40 && (attempts[1] == 0 || attempts[2] == 0); i++ {
		_, ans, err := f.hub.ComputeProof(context.Background(), maddr, ComputeProofRequest{Height: abi.ChainEpoch(i)})
		if err != nil || ans.Agent != "good" {
			t.Fatalf("request %d: %v from %+v, want the good channel's answer", i, err, ans)
		}
		attempts[ans.Attempts]++
	}
	if attempts[1] == 0 || attempts[2] == 0 {
		t.Errorf("attempts %v: want requests that started on each channel", attempts)
	}
}

// testChannel registers a channel on h for maddr that serves its events
// with serve until the test ends; cancel closes it as a dropped
// connection does.
func testChannel(t *testing.T, h *Hub, agent string, serve func(ev *RequestEvent, cancel func())) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := &channel{id: uuid.New(), agent: agent, ctx: ctx, out: make(chan *RequestEvent, channelQueue)}
	h.mu.Lock()
	h.channels[maddr] = append(h.channels[maddr], ch)
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case ev, ok := <-ch.out:
				if !ok {
					return
				}
				serve(ev, func() {
					cancel()
					h.remove(maddr, ch)
					ch.close()
				})
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// TestHubRoutesLikeSophonGateway: by default a request goes to one
// channel; an Error answer is final, a silent channel costs the request
// (no retry after a timeout), and only a channel that closes passes the
// request on to the next.
func TestHubRoutesLikeSophonGateway(t *testing.T) {
	if h := NewHub("", nil); h.AttemptTimeout != 0 || h.Timeout != 5*time.Minute {
		t.Fatalf("defaults: AttemptTimeout %v, Timeout %v; want 0 (no retry after a silent channel) and 5m", h.AttemptTimeout, h.Timeout)
	}
	answer := func(h *Hub, errMsg string) func(*RequestEvent, func()) {
		return func(ev *RequestEvent, _ func()) {
			resp := &ResponseEvent{ID: ev.ID, Error: errMsg}
			if errMsg == "" {
				resp.Payload = []byte("[]")
			}
			if err := (&hubAPI{h}).ResponseProofEvent(context.Background(), resp); err != nil {
				t.Error(err)
			}
		}
	}
	// seen sends until both agents have been asked first (the pick is
	// arbitrary), checking each answer.
	seen := func(t *testing.T, h *Hub, check func(Answer, error) (first string)) {
		t.Helper()
		firsts := map[string]bool{}
		for i := 0; i < 40 && len(firsts) < 2; i++ {
			firsts[check(h.Send(context.Background(), maddr, MethodComputeProof, []byte("{}")))] = true
		}
		if len(firsts) < 2 {
			t.Errorf("requests started only on %v", firsts)
		}
	}
	t.Run("error answer is final", func(t *testing.T) {
		h := NewHub("", zaptest.NewLogger(t))
		testChannel(t, h, "failing", answer(h, "not caught up"))
		testChannel(t, h, "good", answer(h, ""))
		seen(t, h, func(ans Answer, err error) string {
			if err != nil || ans.Attempts != 1 || (ans.Agent == "failing") != (ans.Response.Error != "") {
				t.Fatalf("%v, %+v: want one attempt, the first channel's answer as it is", err, ans)
			}
			return ans.Agent
		})
	})
	t.Run("silent channel is not retried", func(t *testing.T) {
		h := NewHub("", zaptest.NewLogger(t))
		h.Timeout = 300 * time.Millisecond
		testChannel(t, h, "silent", func(*RequestEvent, func()) {})
		testChannel(t, h, "good", answer(h, ""))
		seen(t, h, func(ans Answer, err error) string {
			if ans.Attempts != 1 {
				t.Fatalf("%v, %+v: want one attempt", err, ans)
			}
			if err != nil {
				return "silent"
			}
			return ans.Agent
		})
	})
	t.Run("closed channel passes the request on", func(t *testing.T) {
		h := NewHub("", zaptest.NewLogger(t))
		testChannel(t, h, "good", answer(h, ""))
		testChannel(t, h, "dying", func(_ *RequestEvent, close func()) { close() })
		first := false
		for i := 0; i < 40 && !first; i++ {
			ans, err := h.Send(context.Background(), maddr, MethodComputeProof, []byte("{}"))
			if err != nil || ans.Agent != "good" {
				t.Fatalf("%v, %+v: want the good channel's answer", err, ans)
			}
			first = ans.Attempts == 2 // the dying channel was asked, closed, and the good one answered
		}
		if !first {
			t.Error("the dying channel was never asked first")
		}
	})
}

// TestListenerReconnectsDuringProof: a dropped connection re-registers at
// once, without waiting for the proof in flight on it (which is cancelled:
// its answer has no connection to go over).
func TestListenerReconnectsDuringProof(t *testing.T) {
	f := newHubFixture(t)
	hang := &slowHandler{started: make(chan struct{}, 1), release: make(chan struct{})}
	t.Cleanup(func() { close(hang.release) })
	f.listen(t, hang, f.info)
	first := f.waitConnected(t)
	go func() { _, _, _ = f.hub.ComputeProof(context.Background(), maddr, ComputeProofRequest{Height: 1}) }()
	select {
	case <-hang.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the proof did not start")
	}
	start := time.Now()
	f.conns.dropAll()
	select {
	case second := <-f.connected:
		if second == first {
			t.Fatalf("same channel %s after the drop", first)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("re-registered after %v, want within a couple of seconds", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("not re-registered within 3s of the drop: the session waits for the proof in flight")
	}
}

// slowHandler blocks until released or cancelled, like a proof on the
// children; it tells when a proof starts.
type slowHandler struct {
	started chan struct{}
	release chan struct{}
}

func (h *slowHandler) ComputeProof(ctx context.Context, _ uint64, _ ComputeProofRequest) ([]prooftypes.PoStProof, error) {
	select {
	case h.started <- struct{}{}:
	default:
	}
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	return nil, errors.New("released")
}
