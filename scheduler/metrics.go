package scheduler

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/vsm-project/vsm/cluster/schedule"
)

// schedulerMetrics are the leader's view of its last plan. Only the leader
// plans, so on other members the gauges stay at zero.
type schedulerMetrics struct {
	unplaced   *prometheus.GaugeVec
	lowerBound prometheus.Gauge
	peakShare  prometheus.Gauge
	moves      *prometheus.CounterVec
}

// newSchedulerMetrics registers the families with reg (nil: none). A
// registration that fails is logged and the loop goes on without it: the
// schedule matters more than its gauges.
func newSchedulerMetrics(reg prometheus.Registerer, log *zap.Logger) *schedulerMetrics {
	m := &schedulerMetrics{
		unplaced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vsm_scheduler_unplaced_deadlines",
			Help: "Deadlines the leader's last plan could not give a fitting owner, by reason (no-capacity, too-big, too-late); `vsm cluster schedule` lists them.",
		}, []string{"reason"}),
		lowerBound: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vsm_scheduler_lower_bound",
			Help: "The busiest moment of the cluster's GPU demand over all usable GPUs (0..1): no placement can make the busiest node's share lower.",
		}),
		peakShare: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vsm_scheduler_peak_share",
			Help: "The busiest node's peak GPU demand over its GPUs (0..1) in the leader's last plan.",
		}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vsm_scheduler_moves_total",
			Help: "Deadlines the leader gave a new owner, by reason (new, owner-dead, rebalance, make-room, ...).",
		}, []string{"reason"}),
	}
	if reg == nil {
		return m
	}
	for _, c := range []prometheus.Collector{m.unplaced, m.lowerBound, m.peakShare, m.moves} {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			log.Warn("scheduler: metrics not registered", zap.Error(err))
		}
	}
	return m
}

// observe records a plan the leader wrote.
func (m *schedulerMetrics) observe(p schedule.Plan) {
	counts := map[schedule.UnplacedReason]int{schedule.UnplacedNoCapacity: 0, schedule.UnplacedTooBig: 0, schedule.UnplacedTooLate: 0}
	for _, u := range p.Unplaced {
		counts[u.Reason]++
	}
	for r, n := range counts {
		m.unplaced.WithLabelValues(string(r)).Set(float64(n))
	}
	m.lowerBound.Set(p.LowerBound)
	m.peakShare.Set(p.PeakUtilization)
	for _, mv := range p.Moves {
		m.moves.WithLabelValues(string(mv.Reason)).Inc()
	}
}
