package metrics

import (
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewaystore"
)

// newTest registers the metrics without streams (the stream collector needs
// a broker; the engine tests cover it) on a fresh registry.
func newTest(t *testing.T, suffix string) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg, Params{Lanes: lanes.Config{Enabled: suffix != "", Naming: lanes.Naming{BackfillSuffix: suffix}}})
	require.NoError(t, err)
	return m, reg
}

func TestLaneOf(t *testing.T) {
	on, _ := newTest(t, "backfill")
	off, _ := newTest(t, "")
	for _, tc := range []struct {
		stream, on, off string
	}{
		{"customer", "primary", "primary"},
		{"customer:backfill", "backfill", "primary"},
		{"customer:command:backfill", "backfill", "primary"},
		{"customer:command", "primary", "primary"},
		{"customerbackfill", "primary", "primary"},
		{"customer:backfill:dlq", "primary", "primary"},
	} {
		assert.Equal(t, tc.on, on.LaneOf(tc.stream), "lanes on: %s", tc.stream)
		assert.Equal(t, tc.off, off.LaneOf(tc.stream), "lanes off: %s", tc.stream)
	}
}

// Every per-lane series exists at 0 before the first message, on both lanes
// when lanes are on and on primary alone when they are off.
func TestConsumerSeriesExistOnBothLanes(t *testing.T) {
	m, _ := newTest(t, "backfill")
	m.Consumer("Projector", "customer", "customer:backfill")
	m.Consumer("Mailer", "customer", "")
	for _, lane := range []string{"primary", "backfill"} {
		for _, outcome := range []string{consumer.OutcomeOK, consumer.OutcomeError} {
			assert.Zero(t, value(t, m.handled.WithLabelValues("Projector", lane, outcome)))
		}
		assert.Zero(t, value(t, m.retries.WithLabelValues("Projector", lane)))
	}
	assert.Zero(t, value(t, m.dlqRouted.WithLabelValues("Projector", "backfill", "customer:backfill:dlq")))
	// Projector: 2 lanes x 2 outcomes; Mailer: primary x 2 outcomes.
	assert.Equal(t, 6, series(t, m.handled))
	assert.Equal(t, 3, series(t, m.retries))
	assert.Equal(t, 3, series(t, m.dlqRouted))
	assert.Equal(t, 3, series(t, m.duration))
	assert.Equal(t, 3, series(t, m.endToEnd))
}

func TestConsumerObserver(t *testing.T) {
	m, _ := newTest(t, "backfill")
	o := m.Consumer("Projector", "customer", "customer:backfill")
	msg := func(at string) *consumer.Message {
		return &consumer.Message{Envelope: envelope.Envelope{Metadata: envelope.Metadata{Headers: envelope.Headers{Time: at}}}}
	}
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	o.Handled(consumer.Backfill, consumer.OutcomeOK, time.Millisecond, msg(past))
	o.Handled(consumer.Backfill, consumer.OutcomeError, time.Millisecond, msg("not a time"))
	o.Handled(consumer.Primary, consumer.OutcomeOK, time.Millisecond, nil)
	o.Retried(consumer.Backfill)
	o.DeadLettered(consumer.Backfill, "customer:backfill:dlq")
	o.Read(consumer.ReadBlockingBoth, 3)

	assert.Equal(t, 1.0, value(t, m.handled.WithLabelValues("Projector", "backfill", "ok")))
	assert.Equal(t, 1.0, value(t, m.handled.WithLabelValues("Projector", "backfill", "error")))
	assert.Equal(t, 1.0, value(t, m.handled.WithLabelValues("Projector", "primary", "ok")))
	assert.Zero(t, value(t, m.handled.WithLabelValues("Projector", "primary", "error")))
	assert.Equal(t, 1.0, value(t, m.retries.WithLabelValues("Projector", "backfill")))
	assert.Equal(t, 1.0, value(t, m.dlqRouted.WithLabelValues("Projector", "backfill", "customer:backfill:dlq")))
	assert.Equal(t, 1.0, value(t, m.reads.WithLabelValues("Projector", "blocking_both")))

	// Handler duration: every run; end-to-end: only runs whose message has
	// a parsable creation time, which is a minute old here.
	assert.Equal(t, map[string]uint64{"primary": 1, "backfill": 2}, histCounts(t, m.duration))
	assert.Equal(t, map[string]uint64{"primary": 0, "backfill": 1}, histCounts(t, m.endToEnd))
	assert.Equal(t, 1, series(t, m.reads))
}

// value is the sum of the counter or gauge samples c collects (one sample
// for a child such as vec.WithLabelValues(...)). testutil would do, but it
// pulls a module this one does not require.
func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var v float64
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			v += metric.GetCounter().GetValue() + metric.GetGauge().GetValue()
		}
	}
	return v
}

// series is the number of series c collects.
func series(t *testing.T, c prometheus.Collector) int {
	t.Helper()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return n
}

// histCounts gathers h and returns the observation count per lane.
func histCounts(t *testing.T, h prometheus.Collector) map[string]uint64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(h))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]uint64{}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "lane" {
					out[l.GetValue()] += metric.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return out
}

func TestRelayPublishedPerLane(t *testing.T) {
	m, _ := newTest(t, "backfill")
	m.Published("customer", 3, 10*time.Millisecond)
	m.Published("customer:backfill", 5, time.Second)
	m.Published("customer:backfill", 1, time.Second)
	m.Failed(2)
	m.Abandoned(1)
	m.FoundAppended(4)
	assert.Equal(t, 3.0, value(t, m.relayPub.WithLabelValues("customer", "primary")))
	assert.Equal(t, 6.0, value(t, m.relayPub.WithLabelValues("customer:backfill", "backfill")))
	assert.Equal(t, 2.0, value(t, m.relayFailed))
	assert.Equal(t, 1.0, value(t, m.relayAband))
	assert.Equal(t, 4.0, value(t, m.relayFound))
	assert.Equal(t, 1, series(t, m.relayLatency))
}

func TestOutboxRows(t *testing.T) {
	old := time.Now().Add(-time.Hour)
	got := map[string]float64{}
	var age float64
	for _, metric := range OutboxRows(lanewaystore.OutboxStats{
		Counts: []lanewaystore.OutboxCount{
			{Status: lanewaystore.StatusPending, Priority: 0, Count: 2},
			{Status: lanewaystore.StatusPending, Priority: -50, Count: 3},
			{Status: lanewaystore.StatusPublished, Priority: 100, Count: 7},
			{Status: lanewaystore.StatusAbandoned, Priority: 0, Count: 1},
		},
		OldestPending: &old,
	}) {
		g := prometheus.NewRegistry()
		require.NoError(t, g.Register(constCollector{metric}))
		mfs, err := g.Gather()
		require.NoError(t, err)
		require.Len(t, mfs, 1)
		mf := mfs[0]
		v := mf.GetMetric()[0].GetGauge().GetValue()
		switch mf.GetName() {
		case "laneway_outbox_rows":
			got[mf.GetMetric()[0].GetLabel()[0].GetValue()] = v
		case "laneway_outbox_oldest_pending_age_seconds":
			age = v
		default:
			t.Fatalf("unexpected metric %s", mf.GetName())
		}
	}
	assert.Equal(t, map[string]float64{"pending": 5, "processing": 0, "published": 7, "failed": 0, "abandoned": 1}, got)
	assert.GreaterOrEqual(t, age, time.Hour.Seconds())

	n := 0
	for range OutboxRows(lanewaystore.OutboxStats{}) {
		n++
	}
	assert.Equal(t, 6, n, "every status at 0, and an age of 0, for an empty outbox")
}

type constCollector struct{ m prometheus.Metric }

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.Desc() }
func (c constCollector) Collect(ch chan<- prometheus.Metric) { ch <- c.m }

func TestIDAge(t *testing.T) {
	assert.Zero(t, IDAge("0-0"))
	assert.Zero(t, IDAge("garbage"))
	id := time.Now().Add(-time.Minute).UnixMilli()
	got := IDAge(strconv.FormatInt(id, 10) + "-3")
	assert.GreaterOrEqual(t, got, time.Minute)
}
