package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Client calls a vsm node's JSON-RPC API.
type Client struct {
	base  string
	url   string
	token string
	http  *http.Client
	id    atomic.Uint64
}

// NewClient targets addr (HOST:PORT or an http:// URL) with token.
func NewClient(addr, token string) *Client {
	url := addr
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		url = "http://" + url
	}
	base := strings.TrimSuffix(url, "/")
	return &Client{
		base:  base,
		url:   base + "/rpc/v0",
		token: token,
		http:  &http.Client{Transport: newTransport(nil)},
	}
}

// idleConnsPerHost is how many connections to one node a client keeps
// open between calls. It matches the concurrency callers use (64 writers,
// a follower forwarding many clients' writes to the leader): with fewer,
// every call beyond it dials a new connection and closes it after, and
// the connection churn costs more than the call.
const idleConnsPerHost = 128

// newTransport is the HTTP transport every Client uses (dial nil: the
// default dialer).
func newTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	return &http.Transport{DialContext: dial, MaxIdleConnsPerHost: idleConnsPerHost, IdleConnTimeout: time.Minute}
}

// WithDialer makes the client dial through dial (tests reach nodes in
// other network namespaces this way).
func (c *Client) WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *Client {
	c.http = &http.Client{Transport: newTransport(dial)}
	return c
}

// callRequest is a JSON-RPC request as the client sends it (a struct, not
// a map: no key sorting or map allocation per call).
type callRequest struct {
	JSONRPC string `json:"jsonrpc"`
	ID      uint64 `json:"id"`
	Method  string `json:"method"`
	Params  []any  `json:"params"`
}

// Call invokes method with positional params and decodes the result into
// result (nil to discard). JSON-RPC errors come back as *Error.
func (c *Client) Call(ctx context.Context, method string, result any, params ...any) error {
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(callRequest{JSONRPC: "2.0", ID: c.id.Add(1), Method: method, Params: params})
	if err != nil {
		return fmt.Errorf("%s: encode params: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: is the daemon running? %w", method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: read response: %w", method, err)
	}
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *Error          `json:"error"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("%s: HTTP %d with a body that is not JSON-RPC: %.200s", method, resp.StatusCode, raw)
	}
	if out.Error != nil {
		return out.Error
	}
	if result != nil && len(out.Result) > 0 {
		if err := json.Unmarshal(out.Result, result); err != nil {
			return fmt.Errorf("%s: decode result: %w", method, err)
		}
	}
	return nil
}

// IsCode reports whether err is a JSON-RPC error with code.
func IsCode(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// SaveSnapshot streams a backup from the node into w.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+SnapshotPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("snapshot save: is the daemon running? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("snapshot save: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	return nil
}

// RestoreSnapshot sends a backup; a follower redirects it to the leader.
// It returns the node's JSON answer (the backup's metadata).
func (c *Client) RestoreSnapshot(ctx context.Context, backup []byte) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+SnapshotPath, bytes.NewReader(backup))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	// Keep the token across the redirect to the leader (same secret).
	hc := *c.http
	hc.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if len(via) > 3 {
			return errors.New("too many redirects")
		}
		r.Header.Set("Authorization", "Bearer "+c.token)
		return nil
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("snapshot restore: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("snapshot restore: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return body, nil
}
