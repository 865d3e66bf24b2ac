// Package runner is the per-node deadline runner: it watches the deadline
// assignments of its own node in the local replica and, for each, at the
// challenge epoch plus confidence reads the randomness and partitions from
// the chain, resolves sector locations from the local store (no remote
// call on the proving path), proves the partitions on the local ext-prover
// children, submits the proofs once the window opens and records the
// outcome through the cluster. Each proof is verified by a child before it
// is sent. Shortly before each deadline's fault cutoff it checks the
// sectors the chain holds faulty and declares the readable ones recovered;
// it declares no fault ahead (as Lotus): a sector that cannot be read when
// proving is skipped in the proof. It retries inside the window and gives
// up only when the window closes, saying so. It knows nothing of raft: it reads assignments
// through Store and records through Config.Record.
package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/filecoin-project/go-state-types/builtin"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v16/miner"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/dline"
	"github.com/ipfs/go-cid"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/filecoin-project/go-bitfield"
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/sectorfile"
)

// Chain is what the runner needs from the full node. *fullnode.Client
// implements it.
type Chain interface {
	ChainHead(ctx context.Context) (*fullnode.TipSet, error)
	StateMinerInfo(ctx context.Context, maddr address.Address, tsk fullnode.TipSetKey) (*fullnode.MinerInfo, error)
	StateMinerProvingDeadline(ctx context.Context, maddr address.Address, tsk fullnode.TipSetKey) (*dline.Info, error)
	StateMinerDeadlines(ctx context.Context, maddr address.Address, tsk fullnode.TipSetKey) ([]fullnode.Deadline, error)
	StateMinerPartitions(ctx context.Context, maddr address.Address, dlIdx uint64, tsk fullnode.TipSetKey) ([]fullnode.Partition, error)
	StateMinerSectors(ctx context.Context, maddr address.Address, filter *bitfield.BitField, tsk fullnode.TipSetKey) ([]*fullnode.SectorOnChainInfo, error)
	WindowPoStRandomness(ctx context.Context, maddr address.Address, di *dline.Info, tsk fullnode.TipSetKey) ([32]byte, error)
	StateGetRandomnessFromTickets(ctx context.Context, tag crypto.DomainSeparationTag, epoch abi.ChainEpoch, entropy []byte, tsk fullnode.TipSetKey) ([]byte, error)
	SubmitWindowedPoSt(ctx context.Context, maddr, from address.Address, p *miner.SubmitWindowedPoStParams, spec *fullnode.MessageSendSpec) (cid.Cid, error)
	DeclareFaultsRecovered(ctx context.Context, maddr, from address.Address, p *miner.DeclareFaultsRecoveredParams, spec *fullnode.MessageSendSpec) (cid.Cid, error)
	StateWaitMsg(ctx context.Context, msg cid.Cid, confidence uint64, limit abi.ChainEpoch, allowReplaced bool) (*fullnode.MsgLookup, error)
	// ReceiptError describes a non-zero exit code with the actor's message.
	ReceiptError(ctx context.Context, ml *fullnode.MsgLookup) string
}

// Prover proves one partition; *prover.Supervisor implements it. If it
// also implements Verifier, every proof is verified before it is sent.
type Prover interface {
	Prove(ctx context.Context, task prover.WindowPoStTask) (prover.WindowPoStOutput, error)
}

// Store is the local replica: assignments and sector locations. *fsm.FSM
// implements it.
type Store interface {
	prover.LocationStore
	Assignments() []fsm.Assignment
}

// Config wires a Runner.
type Config struct {
	NodeID string
	Chain  Chain
	Prover Prover
	Store  Store
	// Local maps storage instance names to this node's mount points.
	Local map[string]string
	// Ready reports whether the local replica has caught up; the runner
	// acts on no assignment before it has. Nil: always ready.
	Ready func() error
	// Record stores a deadline's outcome through the cluster.
	Record func(ctx context.Context, r fsm.DeadlineRecord) error
	// Confidence is how many epochs after the challenge epoch proving
	// starts (default 4).
	Confidence int64
	// MaxPartitionsPerMessage bounds the partitions of one
	// SubmitWindowedPoSt message. Whatever it says, the runner never puts
	// more in a message than the miner actor accepts for the miner's
	// partition size (fullnode.MaxPartitionsPerPoSt: 3 for every size in
	// use). 0 means that limit.
	MaxPartitionsPerMessage int
	// Sender sends every PoSt and declaration of the miners it fits: it
	// must be the miner's worker or one of its control addresses (ID form,
	// as StateMinerInfo lists them). For a miner it does not fit (one
	// global Sender cannot be a control address of several miners) the
	// runner sends from that miner's worker and says so in the log. Unset:
	// the worker, as the original's Sender default.
	Sender address.Address
	// MaxFee bounds each message's fee (MessageSendSpec.MaxFee, attoFIL);
	// zero: the node's default. Lotus's WindowPoSt default is 5 FIL.
	MaxFee big.Int
	// GasOverEstimation multiplies the node's gas limit estimate; 0 leaves
	// the node's own.
	GasOverEstimation float64
	// MaximizeFeeCap asks the node for the highest fee cap MaxFee allows,
	// as Lotus's MaximizeWindowPoStFeeCap (default true there).
	MaximizeFeeCap bool
	// MessageConfidence is the epochs a message's receipt must be buried
	// under before it counts (StateWaitMsg's confidence; default 5, Lotus's
	// build.MessageConfidence).
	MessageConfidence uint64
	// NoVerify turns off the verification of each WindowPoSt proof
	// before it is sent (on by default, as in Lotus: a proof is checked
	// against the sectors' on-chain SealedCIDs by a child, and one that
	// does not verify is made again once, then given up rather than sent
	// for the chain to refuse).
	NoVerify bool
	// Poll is how often the chain head is read (default 200ms).
	Poll   time.Duration
	Logger *zap.Logger
	// Metrics, if set, receives the runner's Prometheus collectors.
	Metrics prometheus.Registerer
}

// Runner proves this node's deadlines.
type Runner struct {
	cfg     Config
	log     *zap.Logger
	metrics *metrics
	// verifier checks proofs before they are sent; nil when off.
	verifier Verifier
	// verifyDown: the last verification could not be made (said once).
	verifyDown atomic.Bool

	mu      sync.Mutex
	stop    context.Context // Run's context: ends receipt waits at shutdown
	miners  map[uint64]minerInfo
	jobs    map[occurrence]*job
	checked map[occurrence]bool
	// infoFailed is the occurrences recorded failed because their miner's
	// info could not be read (one record per window), with their close.
	infoFailed map[occurrence]abi.ChainEpoch
}

type occurrence struct {
	key  fsm.DeadlineKey
	open abi.ChainEpoch
}

type job struct {
	gen    uint64
	cancel context.CancelCauseFunc
	done   chan struct{}
}

type minerInfo struct {
	worker address.Address
	// sender is who sends this miner's messages (Config.Sender or the
	// worker).
	sender address.Address
	// readAt is the head the info was read at; it is read again a proving
	// period later (a worker or control address change takes effect).
	readAt abi.ChainEpoch
	proof  abi.RegisteredPoStProof
	post   sectorfile.PoStProof
	// periodStart is any epoch at which deadline 0 opens.
	periodStart abi.ChainEpoch
	policy      fullnode.Policy
	// partitionSectors is the miner's WindowPoSt partition size, which
	// bounds the partitions of one message.
	partitionSectors uint64
}

var (
	errWindowClosed = errors.New("the deadline's window closed")
	errMovedAway    = errors.New("the assignment moved to another node")
)

// New checks cfg and fills its defaults.
func New(cfg Config) (*Runner, error) {
	switch {
	case cfg.NodeID == "":
		return nil, errors.New("runner: no node id")
	case cfg.Chain == nil:
		return nil, errors.New("runner: no chain client; set Chain.API or --chain-api")
	case cfg.Prover == nil:
		return nil, errors.New("runner: no prover children; start the node with --ext-prover")
	case cfg.Store == nil || cfg.Record == nil:
		return nil, errors.New("runner: no store")
	}
	if cfg.Confidence <= 0 {
		cfg.Confidence = 4
	}
	if cfg.MaxPartitionsPerMessage < 0 {
		cfg.MaxPartitionsPerMessage = 0
	}
	if cfg.MessageConfidence == 0 {
		cfg.MessageConfidence = 5
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	if cfg.Ready == nil {
		cfg.Ready = func() error { return nil }
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("runner metrics: %w", err)
	}
	r := &Runner{cfg: cfg, log: cfg.Logger, metrics: m, miners: map[uint64]minerInfo{}, jobs: map[occurrence]*job{}, checked: map[occurrence]bool{},
		infoFailed: map[occurrence]abi.ChainEpoch{}}
	if v, ok := cfg.Prover.(Verifier); ok && !cfg.NoVerify {
		r.verifier = v
	} else if !cfg.NoVerify {
		r.log.Warn("self-verification of window post proofs is unavailable (the prover cannot verify); sending proofs unverified")
	}
	return r, nil
}

// Run watches the assignments until ctx ends, then waits for its jobs.
func (r *Runner) Run(ctx context.Context) {
	r.mu.Lock()
	r.stop = ctx
	r.mu.Unlock()
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var lastErr string
	for {
		if err := r.tick(ctx, &wg); err != nil && ctx.Err() == nil {
			// Said once per distinct error, not every poll.
			if err.Error() != lastErr {
				r.log.Warn("runner", zap.Error(err))
			}
			lastErr = err.Error()
		} else {
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tick starts and stops jobs for the current head.
func (r *Runner) tick(ctx context.Context, wg *sync.WaitGroup) error {
	if err := r.cfg.Ready(); err != nil {
		return fmt.Errorf("waiting for the local replica: %w", err)
	}
	ts, err := r.cfg.Chain.ChainHead(ctx)
	if err != nil {
		return fmt.Errorf("chain head: %w", err)
	}
	head := ts.Height
	mine := map[fsm.DeadlineKey]fsm.Assignment{}
	for _, a := range r.cfg.Store.Assignments() {
		if a.Node == r.cfg.NodeID {
			mine[a.DeadlineKey] = a
		}
	}
	r.mu.Lock()
	// Stop jobs whose assignment moved away or whose window closed. A
	// finished job stays until its window closes, so the occurrence is
	// not proven again.
	for occ, j := range r.jobs {
		a, ok := mine[occ.key]
		closed := head >= occ.open+windowOf(r.miners[occ.key.Miner].policy)
		switch {
		case closed:
			j.cancel(errWindowClosed)
		case !ok || a.Generation != j.gen:
			j.cancel(errMovedAway)
		}
		if closed {
			select {
			case <-j.done:
				delete(r.jobs, occ)
			default:
			}
		}
	}
	for occ := range r.checked {
		if head >= occ.open+windowOf(r.miners[occ.key.Miner].policy) {
			delete(r.checked, occ)
		}
	}
	for occ, closes := range r.infoFailed {
		if head >= closes {
			delete(r.infoFailed, occ)
		}
	}
	r.mu.Unlock()

	var errs []error
	keys := make([]fsm.DeadlineKey, 0, len(mine))
	for k := range mine {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b fsm.DeadlineKey) int {
		if a.Miner != b.Miner {
			return cmpU(a.Miner, b.Miner)
		}
		return cmpU(uint64(a.Deadline), uint64(b.Deadline))
	})
	for _, k := range keys {
		a := mine[k]
		mi, err := r.minerInfo(ctx, k.Miner, head)
		if err != nil {
			errs = append(errs, err)
			r.infoFailure(a, mi, head, err)
			continue
		}
		di := Window(mi.periodStart, uint64(k.Deadline), head, mi.policy)
		if di.Challenge < 0 {
			// A window right after genesis has no randomness to prove
			// with, and the chain does not judge it.
			continue
		}
		occ := occurrence{key: k, open: di.Open}
		switch PhaseAt(di, head, abi.ChainEpoch(a.Since), abi.ChainEpoch(r.cfg.Confidence)) {
		case PhaseProve:
			r.mu.Lock()
			prev, seen := r.jobs[occ]
			start := !seen
			if seen && prev.gen != a.Generation {
				// The deadline came back to this node with a new
				// generation: start again once the old job has stopped.
				select {
				case <-prev.done:
					start = true
				default:
				}
			}
			if start {
				jctx, cancel := context.WithCancelCause(ctx)
				j := &job{gen: a.Generation, cancel: cancel, done: make(chan struct{})}
				r.jobs[occ] = j
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer close(j.done)
					defer cancel(nil)
					r.proveWindow(jctx, a, mi, di)
				}()
			}
			r.mu.Unlock()
		case PhaseCheck:
			r.mu.Lock()
			done := r.checked[occ]
			r.checked[occ] = true
			r.mu.Unlock()
			if !done {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r.checkWindow(ctx, a, mi, di)
				}()
			}
		}
	}
	return errors.Join(errs...)
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func windowOf(p fullnode.Policy) abi.ChainEpoch {
	if p.ChallengeWindow == 0 {
		return fullnode.MainnetPolicy().ChallengeWindow
	}
	return p.ChallengeWindow
}

// minerInfo returns a miner's worker, sender, proof type and proving
// period, read from the chain again once a proving period has passed since
// the last read (head < 0: use what is cached, reading only the first
// time), so a new worker or control address is picked up as Lotus does.
// On error the minerInfo returned still has the proving period and policy
// when they are known (cached, or read before the failure), so the caller
// can tell which window went unproven.
func (r *Runner) minerInfo(ctx context.Context, id uint64, head abi.ChainEpoch) (minerInfo, error) {
	r.mu.Lock()
	mi, ok := r.miners[id]
	r.mu.Unlock()
	if ok && (head < 0 || head < mi.readAt+mi.policy.ProvingPeriod()) {
		return mi, nil
	}
	var known minerInfo // the period alone, for the caller of a failure
	if ok {
		known = minerInfo{periodStart: mi.periodStart, policy: mi.policy}
	}
	maddr := fullnode.IDAddress(id)
	di, err := r.cfg.Chain.StateMinerProvingDeadline(ctx, maddr, nil)
	if err != nil {
		return known, fmt.Errorf("miner %s proving deadline: %w", maddr, err)
	}
	if pol := fullnode.PolicyOf(di); pol.Validate() == nil {
		known = minerInfo{periodStart: di.PeriodStart, policy: pol}
	}
	info, err := r.cfg.Chain.StateMinerInfo(ctx, maddr, nil)
	if err != nil {
		return known, fmt.Errorf("miner %s info: %w", maddr, err)
	}
	post, err := sectorfile.PoStProofFromChain(int64(info.WindowPoStProofType))
	if err != nil {
		return known, fmt.Errorf("miner %s: %w", maddr, err)
	}
	partSectors := info.WindowPoStPartitionSectors
	if partSectors == 0 {
		if partSectors, err = builtin.PoStProofWindowPoStPartitionSectors(info.WindowPoStProofType); err != nil {
			return known, fmt.Errorf("miner %s: %w", maddr, err)
		}
	}
	sender, why := pickSender(r.cfg.Sender, info)
	if why != "" { // said once per read: once a proving period
		r.log.Warn("the configured PoSt Sender does not fit this miner; sending from its worker", zap.Stringer("miner", maddr), zap.String("reason", why),
			zap.Stringer("sender", sender))
	}
	next := minerInfo{
		worker: info.Worker, sender: sender, readAt: di.CurrentEpoch, proof: info.WindowPoStProofType, post: post, periodStart: di.PeriodStart, partitionSectors: partSectors,
		policy: fullnode.PolicyOf(di),
	}
	if err := next.policy.Validate(); err != nil {
		return known, fmt.Errorf("miner %s: %w", maddr, err)
	}
	if ok && (next.sender != mi.sender || next.worker != mi.worker || next.proof != mi.proof) {
		r.log.Info("miner info changed", zap.Stringer("miner", maddr), zap.Stringer("worker", next.worker), zap.Stringer("sender", next.sender), zap.Int64("proof_type", int64(next.proof)))
	}
	r.mu.Lock()
	r.miners[id] = next
	r.mu.Unlock()
	return next, nil
}

// infoFailure records a deadline occurrence failed when its miner's info
// could not be read while it should be proven: otherwise the window would
// pass with one log line and no record. One record per window; a job that
// starts later in the window (the info came back) records over it.
func (r *Runner) infoFailure(a fsm.Assignment, known minerInfo, head abi.ChainEpoch, err error) {
	if known.policy.Validate() != nil {
		return // no period known: no window to name
	}
	di := Window(known.periodStart, uint64(a.Deadline), head, known.policy)
	if di.Challenge < 0 || PhaseAt(di, head, abi.ChainEpoch(a.Since), abi.ChainEpoch(r.cfg.Confidence)) != PhaseProve {
		return
	}
	occ := occurrence{key: a.DeadlineKey, open: di.Open}
	r.mu.Lock()
	_, running := r.jobs[occ]
	_, done := r.infoFailed[occ]
	if !running && !done {
		r.infoFailed[occ] = di.Close
	}
	r.mu.Unlock()
	if running || done {
		return
	}
	log := r.log.With(zap.String("deadline", fmt.Sprintf("t0%d/%d", a.Miner, a.Deadline)), zap.Int64("open", int64(di.Open)), zap.Uint64("generation", a.Generation))
	log.Error("cannot prove the deadline: the miner's info cannot be read", zap.Error(err))
	r.record(fsm.DeadlineRecord{DeadlineKey: a.DeadlineKey, PeriodStart: int64(di.PeriodStart), Outcome: fsm.OutcomeFailed, Node: r.cfg.NodeID,
		Message: fmt.Sprintf("not proven: %v", err)}, log)
}

// pickSender is the configured sender if the actor accepts messages from
// it (the worker or a control address). Else it is the worker, with why
// the configured one does not fit: a message from any other address is
// refused by the actor (SysErrForbidden), and one global Sender cannot be
// a control address of several miners. Unset: the worker.
func pickSender(want address.Address, info *fullnode.MinerInfo) (address.Address, string) {
	if want == address.Undef || want == info.Worker {
		return info.Worker, ""
	}
	for _, c := range info.ControlAddresses {
		if c == want {
			return want, ""
		}
	}
	return info.Worker, fmt.Sprintf("PoSt Sender %s is neither the worker %s nor a control address %v of this miner; the miner actor would refuse messages from it", want, info.Worker, info.ControlAddresses)
}

func (r *Runner) head(ctx context.Context) (abi.ChainEpoch, error) {
	ts, err := r.cfg.Chain.ChainHead(ctx)
	if err != nil {
		return 0, fmt.Errorf("chain head: %w", err)
	}
	return ts.Height, nil
}

// proveWindow proves one deadline occurrence, retrying until it is done,
// the window closes or the assignment moves away.
func (r *Runner) proveWindow(ctx context.Context, a fsm.Assignment, mi minerInfo, di dline.Info) {
	log := r.log.With(zap.String("deadline", fmt.Sprintf("t0%d/%d", a.Miner, a.Deadline)), zap.Int64("open", int64(di.Open)), zap.Uint64("generation", a.Generation))
	start := time.Now()
	st := newProveState()
	log.Info("proving deadline", zap.Int64("challenge", int64(di.Challenge)), zap.Int64("close", int64(di.Close)))
	var lastErr error
	for attempt := 1; ; attempt++ {
		res, err := r.attempt(ctx, a, mi, di, st)
		if err == nil {
			rec := fsm.DeadlineRecord{DeadlineKey: a.DeadlineKey, PeriodStart: int64(di.PeriodStart), Outcome: res.outcome, Node: r.cfg.NodeID,
				FaultySector: res.skipped, DurationMS: uint64(time.Since(start).Milliseconds()), Message: res.message}
			log.Info("deadline done", zap.Stringer("outcome", res.outcome), zap.Int("partitions", res.partitions), zap.Int("messages", res.messages),
				zap.Int("skipped", len(res.skipped)), zap.Int("attempts", attempt), zap.Duration("took", time.Since(start)))
			r.record(rec, log)
			return
		}
		if ctx.Err() != nil {
			cause := context.Cause(ctx)
			switch {
			case errors.Is(cause, errMovedAway):
				log.Warn("assignment moved away mid-proof; stopping", zap.Int("attempts", attempt))
			case errors.Is(cause, errWindowClosed):
				if lastErr == nil {
					lastErr = err
				}
				log.Error("giving up: the window closed before the deadline was proven", zap.Int("attempts", attempt), zap.Error(lastErr))
				r.record(fsm.DeadlineRecord{DeadlineKey: a.DeadlineKey, PeriodStart: int64(di.PeriodStart), Outcome: fsm.OutcomeFailed, Node: r.cfg.NodeID,
					DurationMS: uint64(time.Since(start).Milliseconds()), Message: fmt.Sprintf("window closed after %d attempts: %v", attempt, lastErr)}, log)
			default:
				log.Info("stopped proving", zap.Error(cause))
			}
			return
		}
		lastErr = err
		var refused *refusedError
		if errors.As(err, &refused) && st.refusals >= maxRefusals {
			// The actor refused the same deadline again and again: more
			// tries would only burn fees. Its message is the outcome.
			log.Error("giving up: the miner actor refused the window post", zap.Int("refusals", st.refusals), zap.Error(err))
			r.record(fsm.DeadlineRecord{DeadlineKey: a.DeadlineKey, PeriodStart: int64(di.PeriodStart), Outcome: fsm.OutcomeFailed, Node: r.cfg.NodeID,
				DurationMS: uint64(time.Since(start).Milliseconds()), Message: err.Error()}, log)
			return
		}
		log.Warn("proving attempt failed; retrying inside the window", zap.Int("attempt", attempt), zap.Error(err))
		if refusedAtEstimation(err) {
			// Estimation ran against the current head; another try before
			// the next tipset would meet the same state.
			if h, herr := r.head(ctx); herr == nil {
				_ = r.waitEpoch(ctx, h+1)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(time.Duration(attempt)*r.cfg.Poll, 5*time.Second)):
		}
	}
}

// refusedAtEstimation tells whether err holds a refusal at gas estimation.
func refusedAtEstimation(err error) bool {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			if refusedAtEstimation(e) {
				return true
			}
		}
		return false
	}
	var refused *refusedError
	return errors.As(err, &refused) && refused.estimation
}

func (r *Runner) record(rec fsm.DeadlineRecord, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.metrics.recorded(rec)
	if err := r.cfg.Record(ctx, rec); err != nil {
		log.Warn("recording the deadline outcome", zap.Error(err))
	}
}

// proveState is kept across attempts of one deadline occurrence: the
// batches already proven with this window's randomness, and the
// partitions already submitted.
type proveState struct {
	seed      [32]byte
	haveSeed  bool
	batches   map[string]*batchProof
	submitted map[uint64]bool
	skipped   map[uint64][]uint64 // per partition, from the batches sent
	refusals  int                 // messages the actor refused (non-zero exit)
	// invalid is why a partition's batch was not sent: its proofs failed
	// self-verification.
	invalid map[uint64]string
}

func newProveState() *proveState {
	return &proveState{batches: map[string]*batchProof{}, submitted: map[uint64]bool{}, skipped: map[uint64][]uint64{}, invalid: map[uint64]string{}}
}

// useSeed records the randomness of an attempt; proofs made with other
// randomness are dropped (the chain would refuse them).
func (st *proveState) useSeed(seed [32]byte) bool {
	changed := st.haveSeed && st.seed != seed
	if changed {
		clear(st.batches)
	}
	st.seed, st.haveSeed = seed, true
	return changed
}

type attemptResult struct {
	outcome    fsm.Outcome
	partitions int
	messages   int
	skipped    []uint64
	message    string
}

var errRandomnessChanged = errors.New("the challenge randomness changed (reorg) between proving and sending; proving again")

// attempt is one try at a deadline occurrence.
func (r *Runner) attempt(ctx context.Context, a fsm.Assignment, mi minerInfo, di dline.Info, st *proveState) (attemptResult, error) {
	maddr := fullnode.IDAddress(a.Miner)
	parts, err := r.cfg.Chain.StateMinerPartitions(ctx, maddr, uint64(a.Deadline), nil)
	if err != nil {
		return attemptResult{}, fmt.Errorf("partitions: %w", err)
	}
	if len(parts) == 0 {
		return attemptResult{outcome: fsm.OutcomeProven, message: "no partitions"}, nil
	}
	seed, err := r.cfg.Chain.WindowPoStRandomness(ctx, maddr, &di, nil)
	if err != nil {
		return attemptResult{}, err
	}
	if st.useSeed(seed) {
		r.log.Warn("challenge randomness changed since the last attempt; dropping its proofs", zap.Uint64("miner", a.Miner), zap.Uint8("deadline", a.Deadline))
	}
	// A partition already proven in this window must stay out of the
	// proof: the actor ignores it and verifies the others alone.
	proven, err := r.provenPartitions(ctx, maddr, a.Deadline)
	if err != nil {
		return attemptResult{}, err
	}
	batches := r.planDeadline(len(parts), proven, st.submitted, mi)
	if err := r.proveBatches(ctx, a.Miner, uint64(a.Deadline), mi, seed, parts, batches, st); err != nil {
		return attemptResult{}, err
	}
	// A proof can only land while the window is open.
	if err := r.waitEpoch(ctx, di.Open); err != nil {
		return attemptResult{}, err
	}
	// Read the randomness again just before sending: after a reorg the
	// chain checks the proof against the new one.
	again, err := r.cfg.Chain.WindowPoStRandomness(ctx, maddr, &di, nil)
	if err != nil {
		return attemptResult{}, err
	}
	if st.useSeed(again) {
		return attemptResult{}, errRandomnessChanged
	}
	if proven, err = r.provenPartitions(ctx, maddr, a.Deadline); err != nil {
		return attemptResult{}, err
	}
	res := attemptResult{partitions: len(parts)}
	if err := r.submit(ctx, maddr, mi, di, batches, proven, st, &res); err != nil {
		return attemptResult{}, err
	}
	// Every message of this occurrence landed with exit code 0 (submit
	// returns an error otherwise): the actor took the proofs.
	judgeOutcome(parts, proven, st, &res)
	return res, nil
}

// judgeOutcome fills res's outcome from what was sent: proven when every
// partition with live sectors was proven (by this occurrence's messages or
// already on chain) and nothing was skipped; faulty when sectors were
// skipped, or a partition got no message because none of its sectors
// could be proven (all its live sectors count as faulty then); failed when
// a partition with live sectors got no message for another reason. Never
// proven when live sectors were left without a message.
func judgeOutcome(parts []fullnode.Partition, proven map[uint64]bool, st *proveState, res *attemptResult) {
	faulty := map[uint64]bool{}
	for _, p := range st.skipped {
		for _, n := range p {
			faulty[n] = true
		}
	}
	var unsent, unexplained []uint64
	for i, part := range parts {
		idx := uint64(i)
		if proven[idx] || st.submitted[idx] {
			continue
		}
		live, err := part.LiveSectors.Count()
		if err != nil {
			unexplained = append(unexplained, idx)
			continue
		}
		if live == 0 {
			continue
		}
		unsent = append(unsent, idx)
		// Sent nothing: every live sector is faulty, if each one was
		// either skipped here or is faulty (and not recovering) on chain.
		toProve, err := sectorsToProve(part)
		if err != nil {
			unexplained = append(unexplained, idx)
			continue
		}
		skipped := map[uint64]bool{}
		for _, n := range st.skipped[idx] {
			skipped[n] = true
		}
		explained := true
		_ = toProve.ForEach(func(n uint64) error {
			if !skipped[n] {
				explained = false
			}
			return nil
		})
		if !explained {
			unexplained = append(unexplained, idx)
			continue
		}
		_ = part.LiveSectors.ForEach(func(n uint64) error {
			faulty[n] = true
			return nil
		})
	}
	res.skipped = res.skipped[:0]
	for n := range faulty {
		res.skipped = append(res.skipped, n)
	}
	slices.Sort(res.skipped)
	var invalid, others []uint64
	var why string
	for _, idx := range unexplained {
		if st.invalid[idx] != "" {
			invalid, why = append(invalid, idx), st.invalid[idx]
		} else {
			others = append(others, idx)
		}
	}
	switch {
	case len(invalid) > 0:
		res.outcome = fsm.OutcomeFailed
		res.message = fmt.Sprintf("partitions %v not sent: %s", invalid, why)
		if len(others) > 0 {
			res.message += fmt.Sprintf("; partitions %v have live sectors but got no message", others)
		}
	case len(unexplained) > 0:
		res.outcome = fsm.OutcomeFailed
		res.message = fmt.Sprintf("partitions %v have live sectors but got no message", unexplained)
	case len(unsent) > 0:
		res.outcome = fsm.OutcomeFaulty
		res.message = fmt.Sprintf("%d sectors faulty; partitions %v not sent: none of their sectors could be proven", len(res.skipped), unsent)
	case len(res.skipped) > 0:
		res.outcome = fsm.OutcomeFaulty
		res.message = fmt.Sprintf("%d sectors skipped as faulty", len(res.skipped))
	default:
		res.outcome = fsm.OutcomeProven
	}
}

// planDeadline batches the partitions of a deadline that still need a
// proof (not proven on chain, not submitted by this occurrence) into
// messages within the actor's partition limit.
func (r *Runner) planDeadline(nparts int, proven map[uint64]bool, submitted map[uint64]bool, mi minerInfo) [][]uint64 {
	var todo []uint64
	for i := range nparts {
		if p := uint64(i); !proven[p] && !submitted[p] {
			todo = append(todo, p)
		}
	}
	return planBatches(todo, partitionLimit(r.cfg.MaxPartitionsPerMessage, mi.partitionSectors))
}

// proveBatches proves the batches not in st's cache concurrently on the
// children (the supervisor queues what does not fit). Batches that
// succeeded are cached even when another failed, so a retry proves only
// the failed ones.
func (r *Runner) proveBatches(ctx context.Context, miner, deadline uint64, mi minerInfo, seed [32]byte, parts []fullnode.Partition, batches [][]uint64, st *proveState) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(batches))
	for i, batch := range batches {
		key := batchKey(batch)
		if _, ok := st.batches[key]; ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			bp, err := r.verifiedBatch(ctx, miner, deadline, mi, seed, parts, batch)
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			st.batches[key] = bp
			mu.Unlock()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// submit sends one SubmitWindowedPoSt per batch (its partitions, their
// skipped sectors and the batch's one proof), then follows every message
// to its receipt. A receipt with a non-zero exit code, or a push refused
// because the message failed at gas estimation (the error carries
// "exit=[...]"), drops the batch's proof and returns a *refusedError with
// the actor's message, so the attempt is retried with a new proof (a
// reorg'd commit randomness, say) until maxRefusals.
func (r *Runner) submit(ctx context.Context, maddr address.Address, mi minerInfo, di dline.Info, batches [][]uint64, proven map[uint64]bool, st *proveState, res *attemptResult) error {
	var commit []byte
	type pushed struct {
		key   string
		batch []uint64
		sent  []uint64
		cid   cid.Cid
	}
	var out []pushed
	var refusals []error
	for _, batch := range batches {
		key := batchKey(batch)
		bp := st.batches[key]
		if bp == nil {
			return fmt.Errorf("partitions %v have no proof", batch)
		}
		for _, p := range batch {
			if proven[p] {
				// Proven by someone else since the batch was planned: the
				// proof covers sectors the actor will not verify, so the
				// batch is planned and proven again without it.
				delete(st.batches, key)
				return fmt.Errorf("partition %d was proven by another message after its batch %v was planned; proving the batch again", p, batch)
			}
		}
		// Every partition of the batch keeps its skipped sectors for the
		// record, sent or not.
		for _, p := range batch {
			if len(bp.skipped[p]) > 0 {
				st.skipped[p] = bp.skipped[p]
			}
		}
		if bp.invalid != "" {
			for _, p := range batch {
				st.invalid[p] = bp.invalid
			}
			r.log.Error("not sending the window post: its proof failed self-verification; the chain will mark these partitions faulty", zap.Stringer("miner", maddr),
				zap.Uint64("deadline", di.Index), zap.Uint64s("partitions", batch), zap.String("reason", bp.invalid))
			continue
		}
		if commit == nil {
			var err error
			if commit, err = r.cfg.Chain.StateGetRandomnessFromTickets(ctx, crypto.DomainSeparationTag_PoStChainCommit, di.Challenge, nil, nil); err != nil {
				return fmt.Errorf("chain commit randomness at %d: %w", di.Challenge, err)
			}
		}
		params, err := bp.params(di.Index, di.Challenge, commit, mi.proof)
		if err != nil {
			return err
		}
		if params == nil || len(params.Partitions) == 0 {
			r.log.Error("no sector of these partitions could be proven; the chain will mark them faulty", zap.Stringer("miner", maddr), zap.Uint64("deadline", di.Index),
				zap.Uint64s("partitions", batch), zap.Uint64s("skipped", bp.allSkipped()))
			continue
		}
		sent := bp.sent()
		// The same proof is pushed with the same MsgUuid on every retry:
		// if an earlier push reached the node before its answer was lost,
		// the node returns that message instead of sending a second one.
		cid, err := r.cfg.Chain.SubmitWindowedPoSt(ctx, maddr, mi.sender, params, r.spec(bp.uuid))
		if code, ok := estimationRefusal(err); ok {
			// The actor refused the message when the node estimated its
			// gas: the same proof would be refused again. Drop it, count
			// the refusal, and go on with the other batches.
			st.refusals++
			delete(st.batches, key)
			for _, p := range batch {
				delete(st.skipped, p)
			}
			r.log.Error("window post refused by the miner actor at gas estimation", zap.Stringer("miner", maddr), zap.Uint64("deadline", di.Index), zap.Uint64s("partitions", sent),
				zap.String("exit_code", code.String()), zap.Int("refusals", st.refusals), zap.Error(err))
			refusals = append(refusals, &refusedError{what: fmt.Sprintf("window post for partitions %v at gas estimation", sent), why: err.Error(), estimation: true})
			continue
		}
		if err != nil {
			return errors.Join(append(refusals, fmt.Errorf("submit partitions %v: %w", sent, err))...)
		}
		for _, p := range sent {
			st.submitted[p] = true
		}
		if head, err := r.head(ctx); err == nil {
			r.metrics.submitted(head, di.Close, len(sent))
		}
		res.messages++
		out = append(out, pushed{key: key, batch: batch, sent: sent, cid: cid})
		r.log.Info("window post submitted", zap.Stringer("miner", maddr), zap.Uint64("deadline", di.Index), zap.Uint64s("partitions", sent),
			zap.Int("sectors", len(bp.sectors)), zap.Int("skipped", len(bp.allSkipped())), zap.Int("proof_bytes", len(bp.proof)),
			zap.Stringer("from", mi.sender), zap.Stringer("message", cid))
	}
	for _, m := range out {
		ml, why, err := r.waitReceipt(ctx, "SubmitWindowedPoSt", m.cid)
		if err != nil {
			// Unknown fate. The retry skips the partitions if the message
			// landed meanwhile (PostSubmissions); else it finds the same
			// batch with the same proof and MsgUuid, so the node hands back
			// this message rather than sending another, and waits again.
			for _, p := range m.sent {
				delete(st.submitted, p)
			}
			return fmt.Errorf("receipt of the window post %s for partitions %v: %w", m.cid, m.sent, err)
		}
		if why == "" {
			r.log.Info("window post landed", zap.Stringer("miner", maddr), zap.Uint64("deadline", di.Index), zap.Uint64s("partitions", m.sent),
				zap.Stringer("message", m.cid), zap.Int64("height", int64(ml.Height)), zap.Int64("gas_used", ml.Receipt.GasUsed))
			continue
		}
		st.refusals++
		for _, p := range m.batch {
			delete(st.submitted, p)
			delete(st.skipped, p)
		}
		delete(st.batches, m.key)
		r.log.Error("window post refused by the miner actor", zap.Stringer("miner", maddr), zap.Uint64("deadline", di.Index), zap.Uint64s("partitions", m.sent),
			zap.Stringer("message", m.cid), zap.String("error", why))
		refusals = append(refusals, &refusedError{what: fmt.Sprintf("window post %s for partitions %v", m.cid, m.sent), why: why})
	}
	return errors.Join(refusals...)
}

// provenPartitions is the deadline's PostSubmissions in its open window,
// as a set of partition indexes.
func (r *Runner) provenPartitions(ctx context.Context, maddr address.Address, d uint8) (map[uint64]bool, error) {
	dls, err := r.cfg.Chain.StateMinerDeadlines(ctx, maddr, nil)
	if err != nil {
		return nil, fmt.Errorf("deadlines: %w", err)
	}
	if int(d) >= len(dls) {
		return nil, fmt.Errorf("the chain lists %d deadlines, not %d", len(dls), d+1)
	}
	proven, err := dls[d].PostSubmissions.AllMap(miner.AddressedPartitionsMax)
	if err != nil {
		return nil, fmt.Errorf("deadline %d: PostSubmissions: %w", d, err)
	}
	return proven, nil
}

// waitEpoch waits until the head reaches e.
func (r *Runner) waitEpoch(ctx context.Context, e abi.ChainEpoch) error {
	for {
		h, err := r.head(ctx)
		if err != nil {
			return err
		}
		if h >= e {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.cfg.Poll / 2):
		}
	}
}

// readable checks sectors through the children (reads of fresh random
// challenges) and returns the readable ones; each unreadable one, and each
// one without a location, is logged with the reason.
func (r *Runner) readable(ctx context.Context, log *zap.Logger, miner uint64, mi minerInfo, seed [32]byte, sectors bitfield.BitField) (good []uint64, err error) {
	loc := prover.Locator{Store: r.cfg.Store, Local: r.cfg.Local}
	var replicas []prover.Replica
	_ = sectors.ForEach(func(n uint64) error {
		rep, why := loc.Sector(miner, n, mi.post)
		if why != "" {
			log.Warn("sector check: sector cannot be located", zap.String("sector", sectorfile.SectorName(miner, n)), zap.String("reason", why))
			return nil
		}
		replicas = append(replicas, rep)
		return nil
	})
	if len(replicas) == 0 {
		return nil, nil
	}
	out, err := r.cfg.Prover.Prove(ctx, prover.WindowPoStTask{MinerID: miner, ProofType: mi.post.Name, Replicas: replicas, Seed: prover.Bytes32(seed), CheckOnly: true})
	if err != nil {
		return nil, err
	}
	unreadable := map[uint64]bool{}
	for _, f := range out.Faults {
		log.Warn("sector check: sector unreadable", zap.String("sector", sectorfile.SectorName(miner, f)), zap.String("reason", out.FaultReasons[fmt.Sprint(f)]))
		unreadable[f] = true
	}
	for _, rep := range replicas {
		if !unreadable[rep.SectorID] {
			good = append(good, rep.SectorID)
		}
	}
	return good, nil
}
