package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// countingBody produces n bytes of JSON-ish filler and counts what the
// HTTP client managed to hand to the connection.
type countingBody struct {
	left int64
	read atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > b.left {
		n = b.left
	}
	for i := range p[:n] {
		p[i] = ' '
	}
	b.left -= n
	b.read.Add(n)
	return int(n), nil
}

func startServer(t *testing.T, readTimeout time.Duration) (*Server, *Auth) {
	t.Helper()
	auth, err := NewAuth([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	mux := NewMux(auth, DefaultMaxBody, zap.NewNop())
	mux.Register("Test.Slow", PermRead, func(ctx context.Context, _ []json.RawMessage) (any, error) {
		select {
		case <-time.After(3 * readTimeout):
			return "done", nil
		case <-ctx.Done():
			return nil, fmt.Errorf("cancelled: %w", ctx.Err())
		}
	})
	srv, err := Listen(ServerConfig{Listen: "127.0.0.1:0", Mux: mux, Registry: prometheus.NewRegistry(), Healthy: func() error { return nil }, Log: zap.NewNop(), ReadTimeout: readTimeout})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv, auth
}

// TestTokenCheckedBeforeBody (issue 11 item 4): the API read up to 64 MiB of
// body before it looked at the token, so token-less callers could make a
// node buffer gigabytes. A request without a valid token must be answered
// 401 after its headers, with the body left unread.
func TestTokenCheckedBeforeBody(t *testing.T) {
	srv, _ := startServer(t, 5*time.Second)
	for _, header := range []string{"", "Bearer not-a-token"} {
		body := &countingBody{left: 60 << 20}
		req, err := http.NewRequest(http.MethodPost, "http://"+srv.Addr()+"/rpc/v0", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = 60 << 20
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		// The server may close the connection while the client still
		// writes (that is the point); then the client reports an error.
		if err == nil && resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("token %q: status %d, want 401", header, resp.StatusCode)
		}
		if sent := body.read.Load(); sent > 16<<20 {
			t.Fatalf("token %q: the server took %d MiB of body before refusing (answer %v after %v)", header, sent>>20, err, time.Since(start))
		}
	}
}

// TestSlowBodyIsTimedOut (issue 11 item 4): a body that trickles in was
// never timed out; the server must give up after its read timeout.
func TestSlowBodyIsTimedOut(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	srv, auth := startServer(t, readTimeout)
	tok, err := auth.NewToken(PermWrite)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /rpc/v0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1000000\r\n\r\n{\"jsonrpc\"", tok)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		resp.Body.Close()
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("a stalled body held the connection for %v (read timeout %v)", el, readTimeout)
	}
}

// TestLongMethodOutlivesReadTimeout: the read timeout bounds reading the
// request, not the method: a long call (a proving check) is not cancelled.
func TestLongMethodOutlivesReadTimeout(t *testing.T) {
	srv, auth := startServer(t, 200*time.Millisecond)
	tok, err := auth.NewToken(PermRead)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := NewClient(srv.Addr(), tok).Call(context.Background(), "Test.Slow", &out); err != nil || out != "done" {
		t.Fatalf("long method: %q %v", out, err)
	}
}

// TestReadTokenBodyCapped: only write and admin tokens may send big bodies.
func TestReadTokenBodyCapped(t *testing.T) {
	srv, auth := startServer(t, 5*time.Second)
	tok, err := auth.NewToken(PermRead)
	if err != nil {
		t.Fatal(err)
	}
	big := `{"jsonrpc":"2.0","id":1,"method":"Test.Slow","params":["` + strings.Repeat("x", MaxReadBody) + `"]}`
	err = NewClient(srv.Addr(), tok).Call(context.Background(), "Test.Slow", nil, big)
	if !IsCode(err, CodeTooLarge) {
		t.Fatalf("read token with a %d-byte body: %v", len(big), err)
	}
}
