package runner

import (
	"strconv"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vsm-project/vsm/fsm"
)

// nominalEpoch converts epochs to seconds for metrics: the chain's 30 s,
// whatever speed a devnet runs at, so dashboards read the same everywhere.
const nominalEpoch = 30

type metrics struct {
	outcomes     *prometheus.CounterVec
	beforeClose  prometheus.Histogram
	partitions   prometheus.Counter
	submissions  prometheus.Counter
	proveSeconds prometheus.Histogram
	receipts     *prometheus.CounterVec
	// invalidProofs and unverifiedProofs count self-verification.
	invalidProofs    prometheus.Counter
	unverifiedProofs prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vsm_deadlines_total",
			Help: "Deadlines this node proved, by outcome (proven, submitted, failed, faulty).",
		}, []string{"outcome"}),
		beforeClose: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vsm_deadline_submit_seconds_before_close",
			Help:    "Time left in the window when a SubmitWindowedPoSt went out, in nominal chain seconds (epochs x 30 s).",
			Buckets: []float64{30, 60, 120, 300, 600, 900, 1200, 1800},
		}),
		partitions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vsm_partitions_proven_total",
			Help: "Partitions this node proved on its children.",
		}),
		submissions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vsm_post_messages_total",
			Help: "SubmitWindowedPoSt messages this node sent.",
		}),
		proveSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vsm_deadline_prove_seconds",
			Help:    "Wall time from starting a deadline to recording its outcome.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
		}),
		receipts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vsm_chain_message_receipts_total",
			Help: "Receipts of the messages this node sent, by method and exit code (0 accepted; a non-zero code is the miner actor's refusal; \"none\": no receipt came).",
		}, []string{"method", "exit_code"}),
		invalidProofs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vsm_post_proofs_invalid_total",
			Help: "WindowPoSt proofs made on this node's children that failed self-verification before sending (each is made again once, then the batch is not sent).",
		}),
		unverifiedProofs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vsm_post_proofs_unverified_total",
			Help: "WindowPoSt proofs sent without self-verification because no child could verify them.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.outcomes, m.beforeClose, m.partitions, m.submissions, m.proveSeconds, m.receipts, m.invalidProofs, m.unverifiedProofs} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) recorded(r fsm.DeadlineRecord) {
	m.outcomes.WithLabelValues(r.Outcome.String()).Inc()
	m.proveSeconds.Observe(float64(r.DurationMS) / 1000)
}

func (m *metrics) submitted(head, close abi.ChainEpoch, partitions int) {
	m.submissions.Inc()
	m.partitions.Add(float64(partitions))
	m.beforeClose.Observe(float64(close-head) * nominalEpoch)
}

// receipt counts one receipt; exit < 0 means none came.
func (m *metrics) receipt(method string, exit int64) {
	code := "none"
	if exit >= 0 {
		code = strconv.FormatInt(exit, 10)
	}
	m.receipts.WithLabelValues(method, code).Inc()
}
