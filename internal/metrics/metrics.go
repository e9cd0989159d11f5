// Package metrics holds the engine's Prometheus metrics (listed in
// docs/operations.md).
// It implements the consumer and relay observer hooks, and computes stream
// length, lag and oldest-entry age per lane when scraped. Metrics register on
// a caller-supplied Registerer, never the global registry.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaystore"
)

// Stream names one stream the engine reads, for scrape-time gauges.
type Stream struct {
	Name     string
	Category string
	Lane     string
}

// Params configure New.
type Params struct {
	// Broker is inspected at scrape time for the stream gauges. Required.
	Broker lanewaybroker.Broker
	// Streams are the streams the engine reads.
	Streams []Stream
	// Lanes, when enabled, tells the relay's backfill streams from primary
	// ones. The zero value is lanes off: every stream is primary.
	Lanes lanes.Config
	// OutboxStats is called at scrape time for the outbox gauges. Defaults
	// to nil (no outbox gauges).
	OutboxStats func(ctx context.Context) (lanewaystore.OutboxStats, error)
}

// Metrics is safe for concurrent use.
type Metrics struct {
	lanes        lanes.Config
	handled      *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	endToEnd     *prometheus.HistogramVec
	retries      *prometheus.CounterVec
	dlqRouted    *prometheus.CounterVec
	reads        *prometheus.CounterVec
	relayPub     *prometheus.CounterVec
	relayLatency prometheus.Histogram
	relayFailed  prometheus.Counter
	relayAband   prometheus.Counter
	relayFound   prometheus.Counter
	brokerDown   prometheus.Gauge
}

// New registers the metrics on reg and a collector that inspects streams
// (length, consumer lag, oldest entry age, DLQ depth) and the outbox (rows by
// status) at scrape time.
func New(reg prometheus.Registerer, p Params) (*Metrics, error) {
	lat := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &Metrics{
		lanes: p.Lanes,
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "laneway_messages_handled_total",
			Help: "Messages handled, by handler, lane and outcome."}, []string{"handler", "lane", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "laneway_handler_duration_seconds",
			Help: "Handler execution time.", Buckets: lat}, []string{"handler", "lane"}),
		endToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "laneway_end_to_end_latency_seconds",
			Help: "Time from the message's creation (headers.time) to the end of its handling, per lane.", Buckets: lat}, []string{"handler", "lane"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "laneway_retries_total",
			Help: "Handler failures scheduled for another attempt."}, []string{"handler", "lane"}),
		dlqRouted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "laneway_dlq_routed_total",
			Help: "Entries moved to a dead-letter stream."}, []string{"handler", "lane", "stream"}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "laneway_reads_total",
			Help: "Stream reads by kind (blocking_both, probe, claim, ...)."}, []string{"handler", "kind"}),
		relayPub: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "laneway_relay_published_total",
			Help: "Outbox rows published, by stream and lane."}, []string{"stream", "lane"}),
		relayLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "laneway_outbox_publish_latency_seconds",
			Help: "Age of the oldest row of each published batch (commit to publish).", Buckets: lat}),
		relayFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "laneway_outbox_publish_failures_total",
			Help: "Outbox rows whose publish failed (retried with backoff)."}),
		relayAband: prometheus.NewCounter(prometheus.CounterOpts{Name: "laneway_outbox_abandoned_total",
			Help: "Outbox rows abandoned after max_attempts."}),
		relayFound: prometheus.NewCounter(prometheus.CounterOpts{Name: "laneway_outbox_found_appended_total",
			Help: "Outbox rows an unsettled earlier attempt had already appended: found in their stream and marked published without a second copy."}),
		brokerDown: prometheus.NewGauge(prometheus.GaugeOpts{Name: "laneway_outbox_broker_unreachable",
			Help: "1 while the outbox relay is paused on an unreachable broker (rows keep their attempts), else 0."}),
	}
	for _, c := range []prometheus.Collector{m.handled, m.duration, m.endToEnd, m.retries, m.dlqRouted, m.reads,
		m.relayPub, m.relayLatency, m.relayFailed, m.relayAband, m.relayFound, m.brokerDown,
		&streamCollector{b: p.Broker, streams: p.Streams, naming: p.Lanes.Naming}, &outboxCollector{stats: p.OutboxStats}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Series exist from the start, at 0, so dashboards and alerts see both
	// lanes before the first message (a missing series is not a zero).
	for _, s := range p.Streams {
		m.relayPub.WithLabelValues(s.Name, m.LaneOf(s.Name))
	}
	return m, nil
}

// LaneOf is the lane the relay publishes stream to: "backfill" for a
// backfill lane when lanes are on, else "primary".
func (m *Metrics) LaneOf(stream string) string {
	if m.lanes.Enabled && m.lanes.Naming.IsBackfill(stream) {
		return consumer.Backfill.String()
	}
	return consumer.Primary.String()
}

// Consumer returns the observer for one handler's consumer on primary and
// backfill ("" when lanes are off), with its series created at 0.
func (m *Metrics) Consumer(handler, primary, backfill string) consumer.Observer {
	o := &consumerObs{m: m, handler: handler}
	lanes := map[consumer.Lane]string{consumer.Primary: primary}
	if backfill != "" {
		lanes[consumer.Backfill] = backfill
	}
	// The series of every handled message are resolved here, once: a
	// WithLabelValues per message hashes the labels and takes the vector's
	// lock on the consume path.
	for lane, stream := range lanes {
		o.lanes[lane] = m.laneSeries(handler, lane)
		m.dlqRouted.WithLabelValues(handler, lane.String(), m.lanes.Naming.DLQ(stream))
	}
	return o
}

func (m *Metrics) laneSeries(handler string, lane consumer.Lane) laneSeries {
	l := lane.String()
	return laneSeries{
		ok:       m.handled.WithLabelValues(handler, l, consumer.OutcomeOK),
		failed:   m.handled.WithLabelValues(handler, l, consumer.OutcomeError),
		duration: m.duration.WithLabelValues(handler, l),
		endToEnd: m.endToEnd.WithLabelValues(handler, l),
		retries:  m.retries.WithLabelValues(handler, l),
	}
}

// laneSeries are one lane's per-message series of one handler.
type laneSeries struct {
	ok, failed         prometheus.Counter
	duration, endToEnd prometheus.Observer
	retries            prometheus.Counter
}

type consumerObs struct {
	m       *Metrics
	handler string
	lanes   [2]laneSeries // resolved for the consumer's lanes; zero for the others
}

// lane returns l's series; a lane the consumer was not built with (backfill
// with lanes off) gets its series created on use, as every series was.
func (o *consumerObs) lane(l consumer.Lane) laneSeries {
	if l == consumer.Primary || l == consumer.Backfill {
		if s := o.lanes[l]; s.ok != nil {
			return s
		}
	}
	return o.m.laneSeries(o.handler, l)
}

func (o *consumerObs) Read(kind consumer.ReadMode, n int) {
	o.m.reads.WithLabelValues(o.handler, kind.String()).Inc()
}

func (o *consumerObs) Handled(lane consumer.Lane, outcome string, d time.Duration, msg *consumer.Message) {
	s := o.lane(lane)
	switch outcome {
	case consumer.OutcomeOK:
		s.ok.Inc()
	case consumer.OutcomeError:
		s.failed.Inc()
	default:
		o.m.handled.WithLabelValues(o.handler, lane.String(), outcome).Inc()
	}
	s.duration.Observe(d.Seconds())
	if msg != nil {
		if t, err := time.Parse(time.RFC3339Nano, msg.Envelope.Metadata.Headers.Time); err == nil {
			s.endToEnd.Observe(time.Since(t).Seconds())
		}
	}
}

func (o *consumerObs) Retried(lane consumer.Lane) {
	o.lane(lane).retries.Inc()
}

func (o *consumerObs) DeadLettered(lane consumer.Lane, stream string) {
	o.m.dlqRouted.WithLabelValues(o.handler, lane.String(), stream).Inc()
}

// Published counts n rows relayed to stream and their commit-to-publish
// latency (it, Failed and Abandoned implement the relay observer).
func (m *Metrics) Published(stream string, n int, latency time.Duration) {
	m.relayPub.WithLabelValues(stream, m.LaneOf(stream)).Add(float64(n))
	m.relayLatency.Observe(latency.Seconds())
}

// Failed counts rows whose publish failed.
func (m *Metrics) Failed(n int) { m.relayFailed.Add(float64(n)) }

// BrokerUnreachable sets the relay's broker gauge.
func (m *Metrics) BrokerUnreachable(down bool) {
	v := 0.0
	if down {
		v = 1
	}
	m.brokerDown.Set(v)
}

// Abandoned counts abandoned rows.
func (m *Metrics) Abandoned(n int) { m.relayAband.Add(float64(n)) }

// FoundAppended counts rows found already appended by an unsettled attempt.
func (m *Metrics) FoundAppended(n int) { m.relayFound.Add(float64(n)) }

var (
	descLen    = prometheus.NewDesc("laneway_stream_length", "Entries in the stream (XLEN): the lane's backlog, since handled entries are trimmed.", []string{"stream", "category", "lane"}, nil)
	descLag    = prometheus.NewDesc("laneway_consumer_lag", "Entries not yet delivered to the consumer group.", []string{"stream", "lane", "group"}, nil)
	descPend   = prometheus.NewDesc("laneway_consumer_pending", "Entries delivered but not acknowledged.", []string{"stream", "lane", "group"}, nil)
	descOldest = prometheus.NewDesc("laneway_oldest_entry_age_seconds", "Age of the oldest entry still in the stream (handled entries are trimmed, so the oldest waiting one); 0 when empty.", []string{"stream", "lane"}, nil)
	descDLQ    = prometheus.NewDesc("laneway_dlq_depth", "Entries in the lane's dead-letter stream.", []string{"stream", "lane"}, nil)
)

type streamCollector struct {
	b       lanewaybroker.Broker
	streams []Stream
	naming  lanes.Naming
}

func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLen, descLag, descPend, descOldest, descDLQ} {
		ch <- d
	}
}

func (c *streamCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range c.streams {
		if n, err := c.b.Len(ctx, s.Name); err == nil {
			ch <- prometheus.MustNewConstMetric(descLen, prometheus.GaugeValue, float64(n), s.Name, s.Category, s.Lane)
		}
		if n, err := c.b.Len(ctx, c.naming.DLQ(s.Name)); err == nil {
			ch <- prometheus.MustNewConstMetric(descDLQ, prometheus.GaugeValue, float64(n), s.Name, s.Lane)
		}
		if groups, err := c.b.Groups(ctx, s.Name); err == nil {
			for _, g := range groups {
				ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(g.Lag), s.Name, s.Lane, g.Name)
				ch <- prometheus.MustNewConstMetric(descPend, prometheus.GaugeValue, float64(g.Pending), s.Name, s.Lane, g.Name)
			}
		}
		if es, err := c.b.Range(ctx, s.Name, "-", "+", 1); err == nil {
			age := 0.0 // an empty lane has nothing waiting
			if len(es) == 1 {
				age = IDAge(es[0].ID).Seconds()
			}
			ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age, s.Name, s.Lane)
		}
	}
}

var (
	descOutbox       = prometheus.NewDesc("laneway_outbox_rows", "Rows in the outbox table, by status.", []string{"status"}, nil)
	descOutboxOldest = prometheus.NewDesc("laneway_outbox_oldest_pending_age_seconds", "Age of the oldest pending or failed outbox row (0 when there is none).", nil, nil)
	outboxStatuses   = []lanewaystore.OutboxStatus{lanewaystore.StatusPending, lanewaystore.StatusProcessing,
		lanewaystore.StatusPublished, lanewaystore.StatusFailed, lanewaystore.StatusAbandoned}
)

// outboxCollector counts outbox rows by status when scraped. A database that
// does not answer yields no outbox samples (absent, not zero), so an alert
// on the gauge cannot mistake an outage for an empty outbox.
type outboxCollector struct {
	stats func(ctx context.Context) (lanewaystore.OutboxStats, error)
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descOutbox
	ch <- descOutboxOldest
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	if c.stats == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.stats(ctx)
	if err != nil {
		return
	}
	for _, m := range OutboxRows(st) {
		ch <- m
	}
}

// OutboxRows turns OutboxStats into the outbox gauges: one sample per status
// (every status, 0 when it has no rows), summed over priorities, and the
// oldest pending row's age.
func OutboxRows(st lanewaystore.OutboxStats) []prometheus.Metric {
	by := map[lanewaystore.OutboxStatus]int64{}
	for _, c := range st.Counts {
		by[c.Status] += c.Count
	}
	out := make([]prometheus.Metric, 0, len(outboxStatuses)+1)
	for _, s := range outboxStatuses {
		out = append(out, prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(by[s]), string(s)))
	}
	var age float64
	if st.OldestPending != nil {
		age = max(time.Since(*st.OldestPending).Seconds(), 0)
	}
	return append(out, prometheus.MustNewConstMetric(descOutboxOldest, prometheus.GaugeValue, age))
}

// IDAge is the age of a stream entry from its id's millisecond timestamp.
func IDAge(id string) time.Duration {
	var ms int64
	for _, r := range id {
		if r < '0' || r > '9' {
			break
		}
		ms = ms*10 + int64(r-'0')
	}
	if ms == 0 {
		return 0
	}
	return time.Since(time.UnixMilli(ms))
}
