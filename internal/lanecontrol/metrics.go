package lanecontrol

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the controls an engine applies, read when scraped.
type Collector struct {
	c                                    *Controller
	paused, rate, conc                   *prometheus.Desc
	allowance, p99, target, decisionSecs *prometheus.Desc
}

// NewCollector returns the metrics of c.
func NewCollector(c *Controller) *Collector {
	return &Collector{
		c: c,
		paused: prometheus.NewDesc("laneway_lane_paused",
			"1 while an operator has paused this lane for this handler (laneway lanes pause), else 0.",
			[]string{"stream", "handler"}, nil),
		rate: prometheus.NewDesc("laneway_backfill_rate_limit_per_second",
			"Backfill rate in force for this handler on this lane, shared by every engine (0: unlimited).",
			[]string{"stream", "handler"}, nil),
		conc: prometheus.NewDesc("laneway_backfill_concurrency_allowed",
			"Backfill handler slots this engine's consumer may use now (the governor's share of backfill_concurrency).",
			[]string{"stream", "handler"}, nil),
		allowance: prometheus.NewDesc("laneway_governor_allowance",
			"The governor's backfill allowance: the fraction of the backfill caps in use (1 = full).", nil, nil),
		p99: prometheus.NewDesc("laneway_governor_primary_p99_seconds",
			"The fleet's primary-lane p99 latency (entry written to handler done) at the governor's last decision.", nil, nil),
		target: prometheus.NewDesc("laneway_governor_primary_target_seconds",
			"The governor's primary p99 latency target.", nil, nil),
		decisionSecs: prometheus.NewDesc("laneway_governor_samples",
			"Primary messages the governor's last decision measured.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.paused, m.rate, m.conc, m.allowance, m.p99, m.target, m.decisionSecs} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Collector) Collect(ch chan<- prometheus.Metric) {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, l := range m.c.Lanes() {
		ch <- prometheus.MustNewConstMetric(m.paused, prometheus.GaugeValue, b(l.PrimaryPaused), l.Primary, l.Group)
		if l.Backfill == "" {
			continue
		}
		ch <- prometheus.MustNewConstMetric(m.paused, prometheus.GaugeValue, b(l.BackfillPaused), l.Backfill, l.Group)
		ch <- prometheus.MustNewConstMetric(m.rate, prometheus.GaugeValue, l.RatePerSecond, l.Backfill, l.Group)
		if l.BackfillConcurrency > 0 {
			ch <- prometheus.MustNewConstMetric(m.conc, prometheus.GaugeValue, float64(l.BackfillConcurrency), l.Backfill, l.Group)
		}
	}
	if !m.c.governed() {
		return
	}
	ch <- prometheus.MustNewConstMetric(m.target, prometheus.GaugeValue, m.c.p.Governor.Target.Seconds())
	if g := m.c.Snapshot().Governor; g != nil {
		ch <- prometheus.MustNewConstMetric(m.allowance, prometheus.GaugeValue, g.Allowance)
		ch <- prometheus.MustNewConstMetric(m.p99, prometheus.GaugeValue, g.PrimaryP99MS/1000)
		ch <- prometheus.MustNewConstMetric(m.decisionSecs, prometheus.GaugeValue, float64(g.Samples))
	}
}
