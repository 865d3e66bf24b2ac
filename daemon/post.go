package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/cluster"
	"github.com/vsm-project/vsm/cluster/schedule"
	"github.com/vsm-project/vsm/fsm"
	"github.com/vsm-project/vsm/fullnode"
	"github.com/vsm-project/vsm/prover"
	"github.com/vsm-project/vsm/prover/runner"
	"github.com/vsm-project/vsm/rpc"
	"github.com/vsm-project/vsm/scheduler"
	"github.com/vsm-project/vsm/web"
)

// startPoSt wires WindowPoSt on this node: with a chain (Chain.API or
// --chain-api) the scheduler is registered as a leader task (it runs only
// while this node leads) and keeps its chain cache warm meanwhile, and with --poster the deadline runner proves this
// node's deadlines on its --ext-prover children. It registers
// VSM.ClusterSchedule and VSM.ProvingCompute either way; without a chain
// they say what is missing.
func startPoSt(ctx context.Context, o Options, mux *rpc.Mux, server *cluster.Server, sup *prover.Supervisor, reg prometheus.Registerer) (*post, error) {
	log := o.Log
	api := o.Config.Chain.API
	if o.ChainAPI != "" {
		api = o.ChainAPI
	}
	p := &post{node: o.Config.Node.ID, store: server.FSM()}
	mux.Register(rpc.MethodClusterSchedule, rpc.PermRead, p.clusterSchedule)
	mux.Register(rpc.MethodProvingCompute, rpc.PermWrite, p.provingCompute)
	if api == "" {
		if o.Poster {
			return nil, errors.New("--poster needs a chain: set Chain.API in config.toml or give --chain-api (a FULLNODE_API_INFO string)")
		}
		log.Info("no chain configured (Chain.API, --chain-api): this node neither schedules nor proves deadlines")
		return p, nil
	}
	chain, err := fullnode.Dial(api, log.Named("chain"), fullnode.WithCallTimeout(30*time.Second))
	if err != nil {
		return nil, fmt.Errorf("chain api: %w", err)
	}
	conf := o.Config.PoSt
	delay, err := debugWriteDelay()
	if err != nil {
		return nil, err
	}
	p.sched = scheduler.NewScheduler(server, chain, scheduler.SchedulerConfig{
		Schedule:        schedule.Config{Confidence: schedule.Epoch(conf.Confidence)},
		Events:          server.Gossip().Subscribe(),
		DebugWriteDelay: delay,
		Logger:          log.Named("scheduler"),
		Metrics:         reg,
	})
	server.RegisterLeaderTask("scheduler", func(ctx context.Context, l *cluster.Leadership) { p.sched.Lead(ctx, l) })
	go p.sched.Warm(ctx)

	if chain.V0() {
		log.Warn("the chain API is a v0 endpoint (/rpc/v0): StateWaitMsg and StateSearchMsg use v0's shorter forms; prefer /rpc/v1", zap.String("url", chain.Info().URL))
	}
	maxFee, err := conf.MaxFee()
	if err != nil {
		return nil, err
	}
	sender, err := conf.SenderAddress()
	if err != nil {
		return nil, err
	}
	if sup != nil {
		p.runner, err = runner.New(runner.Config{
			NodeID: o.Config.Node.ID,
			Chain:  chain,
			Prover: sup,
			Store:  server.FSM(),
			Local:  o.Config.StoragePaths,
			Ready:  server.ReadReady,
			Record: func(ctx context.Context, r fsm.DeadlineRecord) error {
				_, err := server.Apply(ctx, fsm.RecordDeadline{Record: r})
				return err
			},
			Confidence:              int64(conf.Confidence),
			MaxPartitionsPerMessage: int(conf.MaxPartitionsPerMessage),
			Sender:                  sender,
			MaxFee:                  maxFee,
			GasOverEstimation:       conf.GasOverEstimation,
			MaximizeFeeCap:          conf.MaximizeFeeCap,
			MessageConfidence:       conf.MessageConfidence,
			NoVerify:                !conf.VerifyProofs,
			Logger:                  log.Named("runner"),
			Metrics:                 reg,
		})
		if err != nil {
			return nil, err
		}
	}
	if o.Poster {
		if p.runner == nil {
			return nil, errors.New("--poster needs prover children: add --ext-prover (children come from ext-prover.cfg)")
		}
		go p.runner.Run(ctx)
		log.Info("deadline runner started", zap.String("node", o.Config.Node.ID), zap.String("chain", chain.Info().URL))
	}
	return p, nil
}

// debugWriteDelayEnv names the test-only pause between a scheduling round's
// decision and its writes (see scheduler.SchedulerConfig.DebugWriteDelay).
const debugWriteDelayEnv = "VSM_DEBUG_SCHEDULER_WRITE_DELAY"

func debugWriteDelay() (time.Duration, error) {
	v := os.Getenv(debugWriteDelayEnv)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: want a duration such as 5s (a test-only setting; unset it in production)", debugWriteDelayEnv, v)
	}
	return d, nil
}

type post struct {
	node   string
	store  *fsm.FSM
	sched  *scheduler.Scheduler
	runner *runner.Runner
}

// ScheduleSlot and ScheduleView are VSM.ClusterSchedule's reply types,
// named with every other method in rpc/methods.go.
type (
	ScheduleSlot = rpc.ScheduleSlot
	ScheduleView = rpc.ScheduleView
)

// clusterSchedule is VSM.ClusterSchedule: params [miner?] (0: all).
func (p *post) clusterSchedule(ctx context.Context, params []json.RawMessage) (any, error) {
	var miner uint64
	if err := rpc.Params(params, 1, &miner); err != nil {
		return nil, err
	}
	return p.scheduleView(ctx, miner)
}

// scheduleView is the next 24 h of deadlines and owners (miner 0: all).
func (p *post) scheduleView(ctx context.Context, miner uint64) (ScheduleView, error) {
	if p.sched == nil {
		return ScheduleView{}, rpc.Errorf(rpc.CodeUnavailable, "node %s has no chain configured (Chain.API or --chain-api), so it cannot compute the schedule; ask a node that has", p.node)
	}
	plan, miners, err := p.sched.Preview(ctx)
	if err != nil {
		return ScheduleView{}, rpc.Errorf(rpc.CodeUnavailable, "schedule: %v", err)
	}
	// The owners shown are the replicated ones the runners act on; the
	// load summary is the plan's (the same unless moves are pending).
	var owners []schedule.Assignment
	for _, a := range plan.Assignments {
		owners = append(owners, a)
	}
	for _, m := range plan.Moves {
		for i := range owners {
			if owners[i].Key == m.Key {
				owners[i].Node = m.From
			}
		}
	}
	view := ScheduleView{Head: int64(plan.Now), Nodes: plan.Nodes, Unplaced: plan.Unplaced, Pending: plan.Moves,
		LowerBound: plan.LowerBound, PeakUtilization: plan.PeakUtilization}
	for _, s := range schedule.Timeline(miners, owners, schedule.Config{}, plan.Now, schedule.PeriodEpochs) {
		if miner != 0 && s.Key.Miner != miner {
			continue
		}
		slot := ScheduleSlot{Miner: s.Key.Miner, Deadline: s.Key.Deadline, Open: int64(s.Open), Close: int64(s.Close), Owner: s.Owner, Partitions: s.Partitions}
		if p.store != nil {
			if recs := p.store.Records(fsm.DeadlineKey{Miner: s.Key.Miner, Deadline: s.Key.Deadline}); len(recs) > 0 {
				last := recs[len(recs)-1]
				slot.LastOutcome, slot.LastMessage = last.Outcome.String(), last.Message
			}
		}
		view.Slots = append(view.Slots, slot)
	}
	if miner != 0 {
		view.Unplaced = filterKeys(view.Unplaced, func(u schedule.Unplaced) bool { return u.Key.Miner == miner })
		view.Pending = filterKeys(view.Pending, func(m schedule.Move) bool { return m.Key.Miner == miner })
	}
	return view, nil
}

func filterKeys[T any](xs []T, keep func(T) bool) []T {
	var out []T
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// provingCompute is VSM.ProvingCompute: params [miner, deadline, submit?].
func (p *post) provingCompute(ctx context.Context, params []json.RawMessage) (any, error) {
	var miner uint64
	var dl uint8
	var submit bool
	if err := rpc.Params(params, 1, &miner, &dl, &submit); err != nil {
		return nil, err
	}
	if p.runner == nil {
		return nil, rpc.Errorf(rpc.CodeUnavailable, "node %s cannot compute proofs: it needs prover children (--ext-prover) and a chain (Chain.API or --chain-api)", p.node)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, checkTimeout)
		defer cancel()
	}
	res, err := p.runner.Compute(ctx, miner, dl, submit)
	if err != nil {
		return nil, rpc.Errorf(rpc.CodeRejected, "proving compute t0%d deadline %d: %v", miner, dl, err)
	}
	return res, nil
}

// statusSchedule feeds the status page's timeline, unplaced deadlines and
// balance.
func (p *post) statusSchedule(ctx context.Context) (web.Schedule, error) {
	view, err := p.scheduleView(ctx, 0)
	if err != nil {
		return web.Schedule{}, err
	}
	out := web.Schedule{Head: view.Head, Slots: make([]web.Slot, len(view.Slots)), LowerBound: view.LowerBound, PeakShare: view.PeakUtilization}
	for i, s := range view.Slots {
		out.Slots[i] = web.Slot{Miner: s.Miner, Deadline: s.Deadline, Open: s.Open, Close: s.Close, Owner: s.Owner, Partitions: s.Partitions, LastOutcome: s.LastOutcome, LastMessage: s.LastMessage}
	}
	for _, u := range view.Unplaced {
		out.Unplaced = append(out.Unplaced, web.Unplaced{Deadline: u.Key.String(), Reason: string(u.Reason), Owner: u.Owner, Detail: u.Detail})
	}
	return out, nil
}
