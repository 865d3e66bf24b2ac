package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// JSON-RPC 2.0 error codes: the standard ones, then vsm's own.
const (
	CodeParse          = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternal       = -32603
	CodeUnauthorized   = -32001 // missing or invalid token
	CodeForbidden      = -32002 // token lacks the permission
	CodeTooLarge       = -32003
	CodeRejected       = 1000 // the state refused the command
	CodeNotFound       = 1001
	CodeNotLeader      = 1002 // no leader reachable to take the write
	CodeUnavailable    = 1003 // timeout or shutting down: retry
)

// Error is a JSON-RPC error object; clients get it back as an error value.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s (code %d)", e.Message, e.Code) }

// Errorf makes an *Error.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

type request struct {
	JSONRPC string            `json:"jsonrpc"`
	ID      json.RawMessage   `json:"id,omitempty"`
	Method  string            `json:"method"`
	Params  []json.RawMessage `json:"params"`
}

type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

// Handler runs one method with positional params.
type Handler func(ctx context.Context, params []json.RawMessage) (any, error)

type method struct {
	perm Perm
	fn   Handler
}

// Mux dispatches JSON-RPC requests to registered methods after checking
// the caller's token against each method's permission.
type Mux struct {
	methods map[string]method
	auth    *Auth
	maxBody int64
	log     *zap.Logger
	latency *prometheus.HistogramVec
}

// NewMux makes an empty method table.
func NewMux(auth *Auth, maxBody int64, log *zap.Logger) *Mux {
	return &Mux{
		methods: map[string]method{},
		auth:    auth,
		maxBody: maxBody,
		log:     log,
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vsm_rpc_request_seconds",
			Help:    "JSON-RPC request latency by method and outcome.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"method", "outcome"}),
	}
}

// Register adds a method; perm is the weakest permission allowed to call it.
func (m *Mux) Register(name string, perm Perm, fn Handler) {
	if !strings.HasPrefix(name, "Test.") {
		checkRegistration(name, perm)
	}
	m.methods[name] = method{perm: perm, fn: fn}
}

// Methods lists method names and permissions (for docs and tests).
func (m *Mux) Methods() map[string]Perm {
	out := make(map[string]Perm, len(m.methods))
	for n, md := range m.methods {
		out[n] = md.perm
	}
	return out
}

// Collector exports request latency.
func (m *Mux) Collector() prometheus.Collector { return m.latency }

func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, response{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: Errorf(CodeInvalidRequest, "JSON-RPC requests must be POSTed")})
		return
	}
	// The token is checked before a byte of the body is read: a caller
	// without one must not make the node buffer up to maxBody (32 such
	// requests of 60 MB took a node from 200 MB to 1.6 GB). The
	// connection is closed rather than drained.
	perm, authErr := m.callerPerm(r)
	if authErr != nil {
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusUnauthorized, response{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: Errorf(CodeUnauthorized, "%v; pass 'Authorization: Bearer TOKEN' (vsm auth create-token)", authErr)})
		return
	}
	limit := m.maxBody
	if perm < PermWrite {
		// Read methods take a few small params; only writes carry batches.
		limit = min(limit, MaxReadBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, response{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: Errorf(CodeTooLarge, "request body exceeds %d bytes for a %s token; send smaller batches", limit, perm)})
			return
		}
		writeJSON(w, http.StatusBadRequest, response{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: Errorf(CodeParse, "read request: %v", err)})
		return
	}
	// The body is in: lift the server's read deadline. Left in place, it
	// would fire in net/http's background read while a long method (a
	// proving check, a consistent read waiting for an election) runs, and
	// cancel its context.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	var req request
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusOK, response{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: Errorf(CodeParse, "malformed JSON-RPC request: %v", err)})
		return
	}
	if len(req.ID) == 0 {
		req.ID = json.RawMessage("null")
	}
	status, resp := m.call(r.Context(), perm, req)
	writeJSON(w, status, resp)
}

func (m *Mux) callerPerm(r *http.Request) (Perm, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return PermNone, errors.New("missing token")
	}
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return PermNone, errors.New("authorization header is not 'Bearer TOKEN'")
	}
	return m.auth.Verify(strings.TrimSpace(token))
}

func (m *Mux) call(ctx context.Context, perm Perm, req request) (int, response) {
	resp := response{JSONRPC: "2.0", ID: req.ID}
	if req.JSONRPC != "2.0" || req.Method == "" {
		resp.Error = Errorf(CodeInvalidRequest, `request needs "jsonrpc": "2.0" and a method`)
		return http.StatusOK, resp
	}
	md, ok := m.methods[req.Method]
	if !ok {
		resp.Error = Errorf(CodeMethodNotFound, "method %q does not exist; see docs/api.md", req.Method)
		return http.StatusOK, resp
	}
	if perm < md.perm {
		resp.Error = Errorf(CodeForbidden, "%s needs a %s token; this token has %s", req.Method, md.perm, perm)
		return http.StatusForbidden, resp
	}
	start := time.Now()
	result, err := md.fn(ctx, req.Params)
	outcome := "ok"
	if err != nil {
		resp.Error = asRPCError(err)
		outcome = "error"
		if resp.Error.Code == CodeInternal {
			m.log.Warn("rpc method failed", zap.String("method", req.Method), zap.Error(err))
		}
	} else {
		resp.Result = result
	}
	m.latency.WithLabelValues(req.Method, outcome).Observe(time.Since(start).Seconds())
	return http.StatusOK, resp
}

func asRPCError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Errorf(CodeInternal, "%v", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Params decodes positional params into ptrs, one each, and says which
// param was wrong. Missing trailing params keep their zero values only
// when optional says how many may be left out.
func Params(raw []json.RawMessage, optional int, ptrs ...any) error {
	if len(raw) > len(ptrs) || len(raw) < len(ptrs)-optional {
		return Errorf(CodeInvalidParams, "want %d params, got %d", len(ptrs), len(raw))
	}
	for i, r := range raw {
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(ptrs[i]); err != nil {
			return Errorf(CodeInvalidParams, "param %d: %v", i+1, err)
		}
	}
	return nil
}
