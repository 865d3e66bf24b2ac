package prover

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exports Capacity at scrape time, so the figures on /metrics and
// in gossip come from the same snapshot code.
type collector struct {
	s                                              *Supervisor
	up, slots, busy, spp, restarts, proven, failed *prometheus.Desc
	protoErr                                       *prometheus.Desc
}

// Collectors returns the supervisor's prometheus collectors. Register them
// on the node's own registry (the default global registry is not used).
func (s *Supervisor) Collectors() []prometheus.Collector {
	l := []string{"child"}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("vsm_prover_child_"+name, help, l, nil)
	}
	return []prometheus.Collector{s.partitionSeconds, &collector{
		s:        s,
		up:       d("up", "1 when the ext-prover child is ready for requests."),
		slots:    d("slots", "Concurrent slots of the child."),
		busy:     d("busy_slots", "Slots holding a request (including abandoned ones the child has not answered)."),
		spp:      d("seconds_per_partition", "Moving average of the child's time per partition (0 until measured)."),
		restarts: d("restarts_total", "Times the child died or was killed and restarted."),
		proven:   d("requests_ok_total", "Requests the child answered with an output."),
		failed:   d("requests_failed_total", "Requests that failed (child error, timeout or lost child)."),
		protoErr: d("protocol_errors_total", "Lines on the child's stdout that were not valid responses, and answers whose output was not of the task's shape."),
	}}
}

// Register registers Collectors on reg.
func (s *Supervisor) Register(reg prometheus.Registerer) error {
	for _, c := range s.Collectors() {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.slots, c.busy, c.spp, c.restarts, c.proven, c.failed, c.protoErr} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, cc := range c.s.Capacity().Children {
		up := 0.0
		if cc.State == StateReady {
			up = 1
		}
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, cc.Name)
		}
		k := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, cc.Name)
		}
		g(c.up, up)
		g(c.slots, float64(cc.Concurrent))
		g(c.busy, float64(cc.Busy))
		g(c.spp, cc.SecondsPerPartition)
		k(c.restarts, float64(cc.Restarts))
		k(c.proven, float64(cc.Proven))
		k(c.failed, float64(cc.Failed))
		k(c.protoErr, float64(cc.ProtocolErrors))
	}
}
