package prover

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ErrChildLost marks a request that failed because its child died, hung or
// was closed before answering. Such a request did not fail on its merits;
// retry it (on another child).
var ErrChildLost = errors.New("prover child lost")

// ErrNoSlot marks a request whose context ended while it waited for a free
// Concurrent slot on any child.
var ErrNoSlot = errors.New("no free prover slot")

// ChildState is the life-cycle state of a child process.
type ChildState string

// Child states.
const (
	StateStarting ChildState = "starting" // spawned, waiting for the ready line
	StateReady    ChildState = "ready"    // taking requests
	StateBackoff  ChildState = "backoff"  // dead or failed to start; restarting after a pause
	StateKilled   ChildState = "killed"   // killed (hung, broken pipe); restarted once the process is gone
	StateStopped  ChildState = "stopped"  // supervisor closed
)

// Options tunes a Supervisor. Zero values mean the defaults.
type Options struct {
	Logger *zap.Logger
	// RequestTimeout bounds a request whose context has no deadline.
	// Default 30 minutes (a 32 GiB partition SNARK takes about 4).
	RequestTimeout time.Duration
	// HangGrace is how long a child may keep a request the parent gave up
	// on (timeout or cancellation) before it is declared hung and
	// restarted. Default 1 minute.
	HangGrace time.Duration
	// BackoffMin and BackoffMax bound the pause before restarting a child
	// that died or failed to start; the pause doubles on every consecutive
	// failure. Defaults 1 s and 1 min.
	BackoffMin, BackoffMax time.Duration
	// StableAfter is how long a child must have run for its next crash to
	// count as a first failure again (backoff back to BackoffMin). Default
	// 1 minute.
	StableAfter time.Duration
	// SelfExe is the binary run for a block without Bin. Default
	// os.Executable().
	SelfExe string
}

func (o *Options) applyDefaults() error {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.RequestTimeout, 30*time.Minute)
	def(&o.HangGrace, time.Minute)
	def(&o.BackoffMin, time.Second)
	def(&o.BackoffMax, time.Minute)
	def(&o.StableAfter, time.Minute)
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.SelfExe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the running binary for blocks without Bin: %w", err)
		}
		o.SelfExe = exe
	}
	return nil
}

// Supervisor runs one child process per [[WdPost]] and [[WinPost]] block
// and dispatches requests to them: WindowPoSt to the WdPost children,
// WinningPoSt to the WinPost children (to the WdPost ones when there are
// none). It is safe for concurrent use.
type Supervisor struct {
	opts     Options
	log      *zap.Logger
	children []*child
	// winningKind is the kind of child WinningPoSt tasks go to.
	winningKind string

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when a slot frees or a state changes
	started bool
	closed  bool
	cancel  context.CancelFunc
	loops   sync.WaitGroup
	// partitionSeconds is the time of each proven partition, by child.
	partitionSeconds *prometheus.HistogramVec
}

// child is the long-lived record of one [[WdPost]] or [[WinPost]] block;
// conn is its current process. Fields below mu are guarded by
// Supervisor.mu.
type child struct {
	idx  int
	kind string // KindWdPost or KindWinPost
	name string
	bin  string
	cfg  ProcessorConfig

	state    ChildState
	conn     *conn
	pid      int
	busy     int
	restarts int
	lastErr  string
	current  int // smooth weighted round-robin credit
	spp      float64
	proven   uint64
	failed   uint64
	protoErr uint64
}

// NewSupervisor checks the configuration and resolves each block's program;
// it starts nothing (see Start).
func NewSupervisor(cfg Config, opts Options) (*Supervisor, error) {
	if len(cfg.WdPost) == 0 {
		return nil, errNoBlocks
	}
	if err := opts.applyDefaults(); err != nil {
		return nil, err
	}
	s := &Supervisor{opts: opts, log: opts.Logger.Named("ext-prover"), changed: make(chan struct{}),
		partitionSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vsm_prover_partition_seconds",
			Help:    "Time from dispatch to answer of each proven partition (vanilla reads and proof), by child.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}, []string{"child"})}
	for _, kind := range []string{KindWdPost, KindWinPost} {
		blocks := cfg.WdPost
		if kind == KindWinPost {
			blocks = cfg.WinPost
		}
		for i, pc := range blocks {
			c, err := newChild(kind, i, len(blocks), pc, opts.SelfExe)
			if err != nil {
				return nil, err
			}
			s.children = append(s.children, c)
		}
	}
	s.winningKind = KindWdPost
	if len(cfg.WinPost) > 0 {
		s.winningKind = KindWinPost
	}
	return s, nil
}

// work says what a request asks, which sets its time limit on a child.
type work struct {
	kind    string // the children that take it: KindWdPost or KindWinPost
	check   bool   // vanilla reads only (check_only); else a proof
	sectors int
}

// CheckTimeoutUnit is the number of sectors CheckTimeoutSecs is for: a
// check of more sectors gets as many times the limit (a 32 GiB partition
// of 2349 sectors, 10 times: 20 minutes by default, Lotus's
// PartitionCheckTimeout), since reading is what takes the time.
const CheckTimeoutUnit = 256

func (c *child) limit(w work) limit {
	if w.check {
		units := max(1, (w.sectors+CheckTimeoutUnit-1)/CheckTimeoutUnit)
		return limit{time.Duration(units*c.cfg.CheckTimeoutSecs) * time.Second,
			fmt.Sprintf("CheckTimeoutSecs=%d per %d sectors, %d sectors", c.cfg.CheckTimeoutSecs, CheckTimeoutUnit, w.sectors)}
	}
	return limit{time.Duration(c.cfg.ProveTimeoutSecs) * time.Second, fmt.Sprintf("ProveTimeoutSecs=%d", c.cfg.ProveTimeoutSecs)}
}

// markKilled takes a child whose process is being killed out of dispatch
// at once: a hung process may take long to die (a read stuck in the
// kernel), and until it does it must not be sent more requests.
func (s *Supervisor) markKilled(cn *conn, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := cn.c; c.conn == cn && c.state == StateReady {
		c.state, c.lastErr = StateKilled, reason
		s.notifyLocked()
	}
}

// newChild resolves block i of total of kind.
func newChild(kind string, i, total int, pc ProcessorConfig, selfExe string) (*child, error) {
	bin := pc.Bin
	if bin == "" {
		bin = selfExe
	} else if !strings.ContainsRune(bin, filepath.Separator) {
		p, err := exec.LookPath(bin)
		if err != nil {
			return nil, fmt.Errorf("[[%s]] block %d of %d: key Bin: %q not found in PATH; give an absolute path or leave Bin out to run vsm itself", kind, i+1, total, bin)
		}
		bin = p
	}
	pc.CheckTimeoutSecs = cmp.Or(pc.CheckTimeoutSecs, DefaultCheckTimeoutSecs)
	pc.ProveTimeoutSecs = cmp.Or(pc.ProveTimeoutSecs, DefaultProveTimeoutSecs)
	if pc.Concurrent < 1 || pc.Weight < 1 || pc.ReadyTimeoutSecs < 1 || pc.CheckTimeoutSecs < 1 || pc.ProveTimeoutSecs < 1 {
		return nil, fmt.Errorf("[[%s]] block %d of %d: Concurrent, Weight, ReadyTimeoutSecs, CheckTimeoutSecs and ProveTimeoutSecs must be at least 1 (build the Config with LoadConfig/ParseConfig to get defaults)", kind, i+1, total)
	}
	return &child{idx: i, kind: kind, name: fmt.Sprintf("%s-%d", strings.ToLower(kind), i), bin: bin, cfg: pc, state: StateStopped}, nil
}

// WinningChildren says which children prove WinningPoSt: "WinPost" when
// ext-prover.cfg has [[WinPost]] blocks, else "WdPost" (shared with
// WindowPoSt).
func (s *Supervisor) WinningChildren() string { return s.winningKind }

// notifyLocked wakes every request waiting for a slot. s.mu must be held.
func (s *Supervisor) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Start launches every child and waits until each has either printed its
// ready line or failed its first start. It returns an error (and stops
// everything) only when no child became ready; children that failed keep
// being restarted with backoff in the background.
func (s *Supervisor) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("supervisor already started")
	}
	s.started = true
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.mu.Unlock()

	first := make(chan error, len(s.children))
	for _, c := range s.children {
		s.loops.Add(1)
		go s.runChild(runCtx, c, first)
	}
	var errs []error
	ready := 0
	for range s.children {
		select {
		case err := <-first:
			if err != nil {
				errs = append(errs, err)
			} else {
				ready++
			}
		case <-ctx.Done():
			_ = s.Close(context.Background())
			return fmt.Errorf("start ext-prover children: %w", ctx.Err())
		}
	}
	if ready == 0 {
		_ = s.Close(context.Background())
		return fmt.Errorf("no ext-prover child started: %w", errors.Join(errs...))
	}
	for _, err := range errs {
		s.log.Warn("child failed to start; retrying with backoff", zap.Error(err))
	}
	return nil
}

// runChild keeps one child running until the supervisor closes: start,
// serve until the process dies, pause (backoff), start again.
func (s *Supervisor) runChild(ctx context.Context, c *child, first chan<- error) {
	defer s.loops.Done()
	backoff := s.opts.BackoffMin
	reported := false
	report := func(err error) {
		if !reported {
			reported = true
			first <- err
		}
	}
	for ctx.Err() == nil {
		s.setState(c, StateStarting, nil, 0, "")
		started := time.Now()
		cn, err := s.startConn(ctx, c)
		if err != nil {
			s.setState(c, StateBackoff, nil, 0, err.Error())
			report(err)
			s.log.Error("child start failed", zap.String("child", c.name), zap.Error(err), zap.Duration("retry_in", backoff))
		} else {
			// Ready before reporting, so that Start returns with the child
			// already taking requests.
			s.setState(c, StateReady, cn, cn.pid, "")
			report(nil)
			<-cn.done
			reason := cn.deathReason()
			s.mu.Lock()
			c.restarts++
			s.mu.Unlock()
			s.setState(c, StateBackoff, nil, 0, reason)
			if ctx.Err() != nil {
				break
			}
			s.log.Error("child died; restarting", zap.String("child", c.name), zap.Int("pid", cn.pid),
				zap.String("reason", reason), zap.Duration("retry_in", backoff))
			if time.Since(started) >= s.opts.StableAfter {
				backoff = s.opts.BackoffMin
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, s.opts.BackoffMax)
	}
	s.setState(c, StateStopped, nil, 0, "")
}

func (s *Supervisor) setState(c *child, st ChildState, cn *conn, pid int, lastErr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.state, c.conn, c.pid = st, cn, pid
	if st == StateBackoff || st == StateStopped {
		c.busy = 0 // the dead conn has failed all its calls
	}
	if lastErr != "" {
		c.lastErr = lastErr
	}
	s.notifyLocked()
}

// Close stops the children: it closes their stdin so they finish running
// tasks and exit, and kills those still running when ctx ends. Requests in
// flight fail with ErrChildLost.
func (s *Supervisor) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed || !s.started {
		s.closed = true
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel()
	var conns []*conn
	for _, c := range s.children {
		if c.conn != nil {
			conns = append(conns, c.conn)
		}
	}
	s.notifyLocked()
	s.mu.Unlock()

	for _, cn := range conns {
		cn.closeStdin()
	}
	var err error
	for _, cn := range conns {
		select {
		case <-cn.done:
		case <-ctx.Done():
			cn.kill("killed by supervisor close: " + ctx.Err().Error())
			<-cn.done
			err = fmt.Errorf("close ext-prover children: %w (killed the rest)", ctx.Err())
		}
	}
	s.loops.Wait()
	return err
}

// pick chooses a ready child with a free slot by smooth weighted
// round-robin (nginx's algorithm): every eligible child gains its Weight in
// credit, the richest wins and pays the total. Over any window each child
// is picked in proportion to its Weight, and every child with a free slot
// is picked eventually, which plain "random below total weight" choosers
// get wrong at the edges. s.mu must be held.
func (s *Supervisor) pickLocked(kind string, avoid map[*child]bool) *child {
	var best *child
	total := 0
	for _, c := range s.children {
		if c.kind != kind || c.state != StateReady || c.busy >= c.cfg.Concurrent || avoid[c] {
			continue
		}
		c.current += c.cfg.Weight
		total += c.cfg.Weight
		if best == nil || c.current > best.current {
			best = c
		}
	}
	if best != nil {
		best.current -= total
	}
	return best
}

// acquire waits for a free slot on a child of kind not in avoid. With
// children to avoid it gives up (errNoOtherChild) as soon as no other child
// of kind is ready or starting: waiting for a crash-looping one would only
// delay the answer.
func (s *Supervisor) acquire(ctx context.Context, kind string, avoid map[*child]bool) (*child, *conn, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, nil, fmt.Errorf("%w: supervisor is closed", ErrChildLost)
		}
		if len(avoid) > 0 && !s.otherHealthyLocked(kind, avoid) {
			s.mu.Unlock()
			return nil, nil, errNoOtherChild
		}
		if c := s.pickLocked(kind, avoid); c != nil {
			c.busy++
			cn := c.conn
			s.mu.Unlock()
			return c, cn, nil
		}
		wait := s.changed
		summary := s.summaryLocked(kind)
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w before the request's deadline (%s): %w", ErrNoSlot, summary, ctx.Err())
		case <-wait:
		}
	}
}

func (s *Supervisor) otherHealthyLocked(kind string, avoid map[*child]bool) bool {
	for _, c := range s.children {
		if c.kind == kind && !avoid[c] && (c.state == StateReady || c.state == StateStarting) {
			return true
		}
	}
	return false
}

func (s *Supervisor) summaryLocked(kind string) string {
	var parts []string
	for _, c := range s.children {
		if c.kind != kind {
			continue
		}
		part := fmt.Sprintf("%s %s %d/%d busy", c.name, c.state, c.busy, c.cfg.Concurrent)
		if c.state != StateReady && c.lastErr != "" {
			part += " (" + truncate(c.lastErr, 120) + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; ")
}

// release frees a slot of the given process; a slot of a process that has
// since died was already reset with it.
func (s *Supervisor) release(c *child, cn *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.conn == cn && c.busy > 0 {
		c.busy--
	}
	s.notifyLocked()
}

// Call sends a raw task to a child with a free slot and returns the raw
// output. It waits for a slot, then for the answer, within ctx (or
// Options.RequestTimeout when ctx has no deadline). A child's err_msg comes
// back as an error; a lost child as an error wrapping ErrChildLost.
func (s *Supervisor) Call(ctx context.Context, task json.RawMessage) (json.RawMessage, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	out, _, _, err := s.call(ctx, work{kind: KindWdPost}, task, nil)
	return out, err
}

// bound gives a context without a deadline Options.RequestTimeout.
func (s *Supervisor) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.opts.RequestTimeout)
}

// call sends task to one child not in avoid, within the child's limit for
// w. It returns the child it chose (nil if none) and that process's pid.
func (s *Supervisor) call(ctx context.Context, w work, task json.RawMessage, avoid map[*child]bool) (json.RawMessage, *child, int, error) {
	c, cn, err := s.acquire(ctx, w.kind, avoid)
	if err != nil {
		return nil, nil, 0, err
	}
	res, lateRelease, err := cn.roundTrip(ctx, task, c.limit(w))
	if !lateRelease {
		s.release(c, cn)
	}
	if err != nil {
		s.mu.Lock()
		c.failed++
		s.mu.Unlock()
		return nil, c, cn.pid, err
	}
	return res, c, cn.pid, nil
}

// Trace is how a request went: the child that answered and, before it, the
// children that failed it.
type Trace struct {
	Child    string
	Failures []ChildFailure
	// Took is the answering child's time, from dispatch to answer.
	Took time.Duration
}

// callRetry sends a task that is safe to repeat (proofs and checks only
// read) until a child answers it with output that decode accepts. A child
// that fails it (times out, answers garbage, dies) is not asked again while
// another healthy child remains; at most maxAttempts children are tried.
// An err_msg answer is the task's own failure and is not retried.
func (s *Supervisor) callRetry(ctx context.Context, w work, task json.RawMessage, decode func(json.RawMessage) error, avoid map[*child]bool) (*child, Trace, error) {
	var tr Trace
	if avoid == nil {
		avoid = map[*child]bool{}
	}
	for {
		start := time.Now()
		out, c, pid, err := s.call(ctx, w, task, avoid)
		if err == nil {
			derr := decode(out)
			if derr == nil {
				tr.Child, tr.Took = c.name, time.Since(start)
				return c, tr, nil
			}
			s.mu.Lock()
			c.protoErr++
			c.failed++
			s.mu.Unlock()
			err = &ChildFailure{Child: c.name, PID: pid, Kind: FailMalformed,
				Detail: fmt.Sprintf("%v; the output began %q", derr, truncate(string(out), 80))}
		}
		var f *ChildFailure
		if !errors.As(err, &f) {
			if len(tr.Failures) > 0 {
				err = &RetryError{Failures: tr.Failures, Last: err}
			}
			return nil, tr, err
		}
		tr.Failures = append(tr.Failures, *f)
		avoid[c] = true
		if len(tr.Failures) >= maxAttempts {
			return nil, tr, &RetryError{Failures: tr.Failures, Last: fmt.Errorf("gave up after %d children failed it", maxAttempts)}
		}
		s.log.Warn("child failed a request; retrying on another child", zap.String("child", f.Child),
			zap.Int("pid", f.PID), zap.String("kind", string(f.Kind)), zap.String("detail", f.Detail))
	}
}

// Prove sends a WindowPoSt task (one partition) and decodes the output.
// Faulty sectors are part of the output, not an error. A child that fails
// the task is not asked again; another child is (see callRetry).
func (s *Supervisor) Prove(ctx context.Context, task WindowPoStTask) (WindowPoStOutput, error) {
	out, _, err := s.ProveTraced(ctx, task)
	return out, err
}

// ProveTraced is Prove that also says which child answered and which
// failed before it.
func (s *Supervisor) ProveTraced(ctx context.Context, task WindowPoStTask) (WindowPoStOutput, Trace, error) {
	return s.proveTraced(ctx, task, nil)
}

// ProveElsewhere is ProveTraced on a child other than the one named avoid
// (Trace.Child of an earlier answer): the runner proves again there when a
// proof failed its verification, in case that child's GPU or files are to
// blame. With no other healthy child it asks any child, avoid included.
func (s *Supervisor) ProveElsewhere(ctx context.Context, task WindowPoStTask, avoid string) (WindowPoStOutput, Trace, error) {
	skip := map[*child]bool{}
	for _, c := range s.children {
		if c.name == avoid {
			skip[c] = true
		}
	}
	out, tr, err := s.proveTraced(ctx, task, skip)
	if errors.Is(err, errNoOtherChild) && len(tr.Failures) == 0 {
		return s.proveTraced(ctx, task, nil)
	}
	return out, tr, err
}

func (s *Supervisor) proveTraced(ctx context.Context, task WindowPoStTask, avoid map[*child]bool) (WindowPoStOutput, Trace, error) {
	raw, err := json.Marshal(task)
	if err != nil {
		return WindowPoStOutput{}, Trace{}, fmt.Errorf("encode WindowPoSt task: %w", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var res WindowPoStOutput
	decode := func(out json.RawMessage) error {
		res = WindowPoStOutput{}
		if err := json.Unmarshal(out, &res); err != nil {
			return fmt.Errorf("not a WindowPoSt output: %w", err)
		}
		if res.Proofs == nil && res.Faults == nil {
			return errors.New("a WindowPoSt output without proofs or faults")
		}
		return nil
	}
	c, tr, err := s.callRetry(ctx, work{kind: KindWdPost, check: task.CheckOnly, sectors: len(task.Replicas)}, raw, decode, avoid)
	if err != nil {
		return WindowPoStOutput{}, tr, fmt.Errorf("prove partition of miner t0%d (%d sectors): %w", task.MinerID, len(task.Replicas), err)
	}
	s.mu.Lock()
	c.proven++
	if len(task.Replicas) > 0 && !task.CheckOnly {
		// Exponential average, so the gossiped figure follows a GPU that
		// slows down (thermal, a neighbour process) within a few proofs.
		took := tr.Took.Seconds()
		s.partitionSeconds.WithLabelValues(c.name).Observe(took)
		if c.spp == 0 {
			c.spp = took
		} else {
			c.spp = 0.7*c.spp + 0.3*took
		}
	}
	s.mu.Unlock()
	return res, tr, nil
}

// ProveWinning sends a WinningPoSt task (the challenged sectors of a
// mining round) to a [[WinPost]] child (a [[WdPost]] one when there is
// none) and decodes the output, which must hold exactly one proof.
func (s *Supervisor) ProveWinning(ctx context.Context, task WinningPoStTask) (WinningPoStOutput, error) {
	raw, err := json.Marshal(task)
	if err != nil {
		return WinningPoStOutput{}, fmt.Errorf("encode WinningPoSt task: %w", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	out, c, _, err := s.call(ctx, work{kind: s.winningKind}, raw, nil)
	if err != nil {
		return WinningPoStOutput{}, fmt.Errorf("winning post of miner t0%d: %w", task.MinerID, err)
	}
	var res WinningPoStOutput
	if err := json.Unmarshal(out, &res); err != nil {
		return WinningPoStOutput{}, fmt.Errorf("winning post of miner t0%d: child %s answered with output that is not a WinningPoSt output: %w", task.MinerID, c.name, err)
	}
	if len(res.Proofs) != 1 || len(res.Proofs[0]) == 0 {
		return WinningPoStOutput{}, fmt.Errorf("winning post of miner t0%d: child %s answered with %d proofs, want 1", task.MinerID, c.name, len(res.Proofs))
	}
	s.mu.Lock()
	c.proven++
	s.mu.Unlock()
	return res, nil
}

// ChildCapacity is one child's part of Capacity.
type ChildCapacity struct {
	Name string `json:"name"`
	// Kind is the child's block: WdPost or WinPost.
	Kind       string     `json:"kind"`
	Bin        string     `json:"bin"`
	PID        int        `json:"pid,omitempty"`
	State      ChildState `json:"state"`
	Concurrent int        `json:"concurrent"`
	Busy       int        `json:"busy"`
	Weight     int        `json:"weight"`
	Restarts   int        `json:"restarts"`
	LastError  string     `json:"last_error,omitempty"`
	// SecondsPerPartition is the moving average of proof times, 0 until the
	// first non-empty partition.
	SecondsPerPartition float64 `json:"seconds_per_partition"`
	Proven              uint64  `json:"proven"`
	Failed              uint64  `json:"failed"`
	ProtocolErrors      uint64  `json:"protocol_errors"`
}

// Capacity is a snapshot of the node's proving capacity, for the gossip
// layer and the status page. The slot figures count WdPost children only:
// they are what the leader assigns WindowPoSt deadlines by.
type Capacity struct {
	Children   []ChildCapacity `json:"children"`
	TotalSlots int             `json:"total_slots"` // slots of ready WdPost children
	FreeSlots  int             `json:"free_slots"`
	// SecondsPerPartition averages the children that have a measurement.
	SecondsPerPartition float64 `json:"seconds_per_partition"`
}

// Capacity returns a snapshot.
func (s *Supervisor) Capacity() Capacity {
	s.mu.Lock()
	defer s.mu.Unlock()
	var capa Capacity
	var sum float64
	var n int
	for _, c := range s.children {
		capa.Children = append(capa.Children, ChildCapacity{
			Name: c.name, Kind: c.kind, Bin: c.bin, PID: c.pid, State: c.state, Concurrent: c.cfg.Concurrent, Busy: c.busy,
			Weight: c.cfg.Weight, Restarts: c.restarts, LastError: c.lastErr, SecondsPerPartition: c.spp,
			Proven: c.proven, Failed: c.failed, ProtocolErrors: c.protoErr,
		})
		if c.kind != KindWdPost {
			continue
		}
		if c.state == StateReady {
			capa.TotalSlots += c.cfg.Concurrent
			capa.FreeSlots += max(0, c.cfg.Concurrent-c.busy)
		}
		if c.spp > 0 {
			sum += c.spp
			n++
		}
	}
	if n > 0 {
		capa.SecondsPerPartition = sum / float64(n)
	}
	return capa
}

// tail keeps the last lines of a child's stderr for error messages.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 5 {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, truncate(l, 300))
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return "no stderr output"
	}
	return "last stderr: " + strings.Join(t.lines, " | ")
}
