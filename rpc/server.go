package rpc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// DefaultMaxBody bounds a request body; a batch of MaxBatch locations is
// well under it. Only write and admin tokens may send that much.
const DefaultMaxBody = 64 << 20

// MaxReadBody bounds the body of a caller whose token only reads.
const MaxReadBody = 1 << 20

// Timeouts of the API's HTTP server. A body must arrive within
// DefaultReadTimeout (a 64 MiB batch needs about 1 MB/s), so a client that
// trickles bytes cannot hold a connection and its buffer forever; backup
// uploads extend their own deadline (see SnapshotHandler).
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
)

// Server is the node's HTTP endpoint: /rpc/v0, /healthz and /metrics.
type Server struct {
	mux  *http.ServeMux
	http *http.Server
	ln   net.Listener
	log  *zap.Logger
}

// ServerConfig wires the server.
type ServerConfig struct {
	Listen   string
	Mux      *Mux
	Registry *prometheus.Registry
	// Healthy reports whether the node can serve (e.g. a leader is known).
	Healthy func() error
	// Detail, if set, adds lines after "ok" on /healthz (a proxy says how
	// old its data is), so a probe that only checks the status code still
	// works and a person reading it learns more.
	Detail func() string
	Log    *zap.Logger
	// Extra handlers by path (the status page).
	Extra map[string]http.Handler
	// ReadTimeout bounds reading one request, headers and body; 0 means
	// DefaultReadTimeout.
	ReadTimeout time.Duration
}

// Listen binds the address. An unspecified host (0.0.0.0, ::) is allowed
// only because the operator wrote it; it is logged as a warning.
func Listen(cfg ServerConfig) (*Server, error) {
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: want HOST:PORT", cfg.Listen)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		cfg.Log.Warn("the API listens on every interface; keep it behind a firewall", zap.String("listen", cfg.Listen))
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/rpc/v0", cfg.Mux)
	mux.Handle("/metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := cfg.Healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
		if cfg.Detail != nil {
			if d := cfg.Detail(); d != "" {
				fmt.Fprintln(w, d)
			}
		}
	})
	for path, h := range cfg.Extra {
		mux.Handle(path, h)
	}
	s := &Server{
		mux: mux,
		ln:  ln,
		log: cfg.Log,
		http: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: DefaultReadHeaderTimeout,
			ReadTimeout:       cmp.Or(cfg.ReadTimeout, DefaultReadTimeout),
			IdleTimeout:       DefaultIdleTimeout,
			MaxHeaderBytes:    64 << 10,
		},
	}
	return s, nil
}

// Close releases the listener of a server that never served (start-up
// failed after Listen).
func (s *Server) Close() error { return s.ln.Close() }

// Handle adds a handler; call it before Serve.
func (s *Server) Handle(path string, h http.Handler) { s.mux.Handle(path, h) }

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve runs until Shutdown; it returns nil after a clean shutdown.
func (s *Server) Serve() error {
	if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// Shutdown stops accepting and waits for in-flight requests.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }
