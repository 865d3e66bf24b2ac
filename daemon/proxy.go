package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/rpc"
	"github.com/vsm-project/vsm/web"
)

// proxyPoll is how often a proxy asks its source whether anything changed.
const proxyPoll = 500 * time.Millisecond

// proxyStale is how long a proxy serves its copy without reaching the
// source before it reports the copy stale (reads and /healthz fail).
const proxyStale = 30 * time.Second

// ErrProxyReadOnly refuses writes on a proxy node.
var ErrProxyReadOnly = errors.New("read-only proxy")

// proxySource resolves --proxy: an address, or "" for the node whose home
// holds the config files (--conf-dir, else this home), as the original's
// `--proxy=""` meant "the node on this machine".
func proxySource(o Options) (string, error) {
	if o.ProxySource != "" {
		return o.ProxySource, nil
	}
	path := o.Home.ConfDir + "/api"
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--proxy=\"\" reads the source node's address from %s: %w (is the source running with that home? give --conf-dir SOURCE_HOME or --proxy HOST:PORT)", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// proxyStore is a proxy node's replica: a local FSM kept equal to the
// source's by copying its consistent backups whenever the source's applied
// index moves. Reads are local (the PoSter's hot path); writes are refused.
type proxyStore struct {
	source string
	client *rpc.Client
	fsm    *fsm.FSM
	log    *zap.Logger

	mu      sync.Mutex
	synced  bool
	lastOK  time.Time // last time the source answered
	applied uint64
	status  cluster.Status // the source's, at the last sync
	err     error
	kick    chan chan error
	done    chan struct{} // closed when run returns
}

func newProxyStore(source string, token string, log *zap.Logger) *proxyStore {
	return &proxyStore{source: source, client: rpc.NewClient(source, token), fsm: fsm.New(nil), log: log, kick: make(chan chan error), done: make(chan struct{})}
}

// run keeps the mirror in step until ctx ends.
func (p *proxyStore) run(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(proxyPoll)
	defer t.Stop()
	for {
		var done chan error
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case done = <-p.kick:
		}
		err := p.sync(ctx, done != nil)
		p.mu.Lock()
		if err != nil && (p.err == nil || p.err.Error() != err.Error()) {
			p.log.Warn("proxy sync", zap.String("source", p.source), zap.Error(err))
		}
		p.err = err
		p.mu.Unlock()
		if done != nil {
			done <- err
		}
	}
}

// sync copies the source's state if its applied index moved (or always,
// when forced by a consistent read).
func (p *proxyStore) sync(ctx context.Context, force bool) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var st cluster.Status
	if err := p.client.Call(ctx, "VSM.Status", &st); err != nil {
		return fmt.Errorf("source %s: %w", p.source, err)
	}
	p.mu.Lock()
	p.lastOK = time.Now()
	same := p.synced && st.AppliedIndex == p.applied
	p.mu.Unlock()
	if same && !force {
		return nil
	}
	var buf bytes.Buffer
	if err := p.client.SaveSnapshot(ctx, &buf); err != nil {
		return fmt.Errorf("copy state from %s: %w (a proxy needs the source's token secret: share it with --conf-dir SOURCE_HOME or 'daemon init --secrets')", p.source, err)
	}
	_, snap, err := cluster.ReadBackup(&buf)
	if err != nil {
		return fmt.Errorf("state from %s: %w", p.source, err)
	}
	if err := p.fsm.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		return err
	}
	p.mu.Lock()
	p.synced, p.applied, p.status = true, st.AppliedIndex, st
	p.mu.Unlock()
	return nil
}

func (p *proxyStore) FSM() *fsm.FSM { return p.fsm }

func (p *proxyStore) ReadReady() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.synced {
		if p.err != nil {
			return fmt.Errorf("%w: proxy has no copy of %s yet: %v", cluster.ErrCatchingUp, p.source, p.err)
		}
		return fmt.Errorf("%w: proxy is copying the state of %s", cluster.ErrCatchingUp, p.source)
	}
	if age := time.Since(p.lastOK); age > proxyStale {
		return fmt.Errorf("%w: the proxy's copy of %s is stale: the source has not answered for %v: %v", cluster.ErrCatchingUp, p.source, age.Round(time.Second), p.err)
	}
	return nil
}

func (p *proxyStore) Apply(context.Context, fsm.Command) (int, error) {
	return 0, fmt.Errorf("%w: %w: this node proxies %s; send writes there", fsm.ErrRejected, ErrProxyReadOnly, p.source)
}

// ConsistentRead re-copies the source's state now (the source's backup is
// itself a linearizable read), so the next local read is up to date.
func (p *proxyStore) ConsistentRead(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case p.kick <- done:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return errors.New("the proxy is shutting down")
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *proxyStore) Status() cluster.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.status
	st.State = "Proxy"
	st.LeaderAddr = p.source
	return st
}

func (p *proxyStore) SnapshotNow(context.Context) error {
	return fmt.Errorf("%w: a proxy keeps no raft log; snapshot the source %s", fsm.ErrRejected, p.source)
}

// Members is empty: a proxy is not a cluster member.
func (p *proxyStore) Members() []cluster.Member { return nil }

// runProxy serves a proxy node: not a raft member, sector locations copied
// read-only from the source in real time, optionally with prover children
// for `proving check`.
func runProxy(ctx context.Context, o Options) error {
	if o.Poster {
		return errors.New("--poster needs a cluster member (it records outcomes through raft); run the PoSter as a member with --join instead of --proxy")
	}
	log := o.Log
	source, err := proxySource(o)
	if err != nil {
		return err
	}
	secret, err := o.Home.JWTSecret()
	if err != nil {
		return err
	}
	auth, err := rpc.NewAuth(secret)
	if err != nil {
		return err
	}
	admin, err := auth.NewToken(rpc.PermAdmin)
	if err != nil {
		return err
	}
	store := newProxyStore(source, admin, log.Named("proxy"))
	go store.run(ctx)

	reg := prometheus.NewRegistry()
	mux := rpc.NewMux(auth, rpc.DefaultMaxBody, log.Named("rpc"))
	srv, err := rpc.Listen(rpc.ServerConfig{Listen: o.Config.Node.Listen, Mux: mux, Registry: reg, Healthy: store.ReadReady, Log: log})
	if err != nil {
		return err
	}
	served := false
	defer releaseUnlessServed(srv, &served)
	sup, err := startProver(ctx, o, reg)
	if err != nil {
		return err
	}
	defer closeProver(sup, log)
	rpc.RegisterVSM(mux, store, o.Version)
	registerProving(mux, store, sup, o.Config.StoragePaths)
	srv.Handle("/", web.NewHandler(store, nil, log.Named("web")))
	served = true
	serveErr, shutdown, err := serve(o.Home, srv, mux, reg, auth)
	if err != nil {
		return err
	}
	defer shutdown()
	log.Info("vsm proxy node serving", zap.String("api", srv.Addr()), zap.String("source", source), zap.String("home", o.Home.Dir))
	select {
	case <-ctx.Done():
		return nil
	case err := <-serveErr:
		return err
	}
}
