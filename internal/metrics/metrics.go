// Package metrics holds the engine's Prometheus metrics (DESIGN.md section 8).
// It implements the consumer and relay observer hooks, and computes stream
// length, lag and oldest-entry age per lane when scraped. Metrics register on
// a caller-supplied Registerer, never the global registry.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/lanewaybroker"
)

// Stream names one stream the engine reads, for scrape-time gauges.
type Stream struct {
	Name     string
	Category string
	Lane     string
}

// Metrics is safe for concurrent use.
type Metrics struct {
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
}

// New registers the metrics on reg and a collector that inspects streams
// (length, consumer lag, oldest entry age, DLQ depth) through b at scrape time.
func New(reg prometheus.Registerer, b lanewaybroker.Broker, streams []Stream) (*Metrics, error) {
	lat := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &Metrics{
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
			Help: "Outbox rows published, by stream."}, []string{"stream"}),
		relayLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "laneway_outbox_publish_latency_seconds",
			Help: "Age of the oldest row of each published batch (commit to publish).", Buckets: lat}),
		relayFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "laneway_outbox_publish_failures_total",
			Help: "Outbox rows whose publish failed (retried with backoff)."}),
		relayAband: prometheus.NewCounter(prometheus.CounterOpts{Name: "laneway_outbox_abandoned_total",
			Help: "Outbox rows abandoned after max_attempts."}),
	}
	for _, c := range []prometheus.Collector{m.handled, m.duration, m.endToEnd, m.retries, m.dlqRouted, m.reads,
		m.relayPub, m.relayLatency, m.relayFailed, m.relayAband, &streamCollector{b: b, streams: streams}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Consumer returns the observer for one handler's consumer.
func (m *Metrics) Consumer(handler string) consumer.Observer { return consumerObs{m, handler} }

type consumerObs struct {
	m       *Metrics
	handler string
}

func (o consumerObs) Read(kind consumer.ReadKind, n int) {
	o.m.reads.WithLabelValues(o.handler, kind.String()).Inc()
}

func (o consumerObs) Handled(lane consumer.Lane, outcome string, d time.Duration, msg *consumer.Message) {
	l := lane.String()
	o.m.handled.WithLabelValues(o.handler, l, outcome).Inc()
	o.m.duration.WithLabelValues(o.handler, l).Observe(d.Seconds())
	if msg != nil {
		if t, err := time.Parse(time.RFC3339Nano, msg.Envelope.Metadata.Headers.Time); err == nil {
			o.m.endToEnd.WithLabelValues(o.handler, l).Observe(time.Since(t).Seconds())
		}
	}
}

func (o consumerObs) Retried(lane consumer.Lane) {
	o.m.retries.WithLabelValues(o.handler, lane.String()).Inc()
}

func (o consumerObs) DeadLettered(lane consumer.Lane, stream string) {
	o.m.dlqRouted.WithLabelValues(o.handler, lane.String(), stream).Inc()
}

// Published, Failed and Abandoned implement the relay observer.
func (m *Metrics) Published(stream string, n int, latency time.Duration) {
	m.relayPub.WithLabelValues(stream).Add(float64(n))
	m.relayLatency.Observe(latency.Seconds())
}

// Failed counts rows whose publish failed.
func (m *Metrics) Failed(n int) { m.relayFailed.Add(float64(n)) }

// Abandoned counts abandoned rows.
func (m *Metrics) Abandoned(n int) { m.relayAband.Add(float64(n)) }

var (
	descLen    = prometheus.NewDesc("laneway_stream_length", "Entries in the stream (XLEN): the lane's backlog, since handled entries are trimmed.", []string{"stream", "category", "lane"}, nil)
	descLag    = prometheus.NewDesc("laneway_consumer_lag", "Entries not yet delivered to the consumer group.", []string{"stream", "lane", "group"}, nil)
	descPend   = prometheus.NewDesc("laneway_consumer_pending", "Entries delivered but not acknowledged.", []string{"stream", "lane", "group"}, nil)
	descOldest = prometheus.NewDesc("laneway_oldest_entry_age_seconds", "Age of the oldest entry still in the stream.", []string{"stream", "lane"}, nil)
	descDLQ    = prometheus.NewDesc("laneway_dlq_depth", "Entries in the lane's dead-letter stream.", []string{"stream", "lane"}, nil)
)

type streamCollector struct {
	b       lanewaybroker.Broker
	streams []Stream
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
		if n, err := c.b.Len(ctx, s.Name+":dlq"); err == nil {
			ch <- prometheus.MustNewConstMetric(descDLQ, prometheus.GaugeValue, float64(n), s.Name, s.Lane)
		}
		if groups, err := c.b.Groups(ctx, s.Name); err == nil {
			for _, g := range groups {
				ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(g.Lag), s.Name, s.Lane, g.Name)
				ch <- prometheus.MustNewConstMetric(descPend, prometheus.GaugeValue, float64(g.Pending), s.Name, s.Lane, g.Name)
			}
		}
		if es, err := c.b.Range(ctx, s.Name, "-", "+", 1); err == nil && len(es) == 1 {
			ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, IDAge(es[0].ID).Seconds(), s.Name, s.Lane)
		}
	}
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
