package laneway

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/lanecontrol"
)

// newControls prepares the engine's lane controls (pause, backfill rate,
// governor), shared with every engine of the domain through the broker's
// Redis. A broker that is not Redis-backed has none; the engine then runs
// without them and says so.
func (e *Engine) newControls(reg prometheus.Registerer) (*lanecontrol.Controller, error) {
	rc, ok := e.broker.(interface{ RedisClient() redis.UniversalClient })
	if !ok {
		e.log.Warn("lane controls (pause, throttle, governor) unavailable: the broker is not Redis-backed")
		return nil, nil
	}
	lanes := e.app.cfg.Server.PriorityLanes
	ctl := lanecontrol.New(lanecontrol.Params{
		Client: rc.RedisClient(), Domain: e.app.dom.name, Engine: e.hb.ID,
		RatePerSecond: lanes.BackfillRatePerSecond,
		Governor:      lanecontrol.Governor{Target: time.Duration(lanes.Governor.PrimaryLatencyTargetMS) * time.Millisecond},
		Logger:        e.log,
	})
	if err := reg.Register(lanecontrol.NewCollector(ctl)); err != nil {
		return nil, err
	}
	return ctl, nil
}

// controlFor is the Control of one consumer (nil without controls: an
// untyped nil, so the consumer sees none).
func (e *Engine) controlFor(group, primary, backfill string) consumer.Control {
	if e.controls == nil {
		return nil
	}
	return e.controls.Consumer(group, primary, backfill, e.app.cfg.Server.PriorityLanes.BackfillConcurrency)
}

// observeLane feeds the governor: a primary message's latency from the
// moment its entry was added to the stream (the entry id's time, on the
// Redis server's clock) to its handler's end, and each backfill message
// handled.
func (e *Engine) observeLane(group string, m *consumer.Message) {
	if e.controls == nil || !e.controls.Governed() {
		return // nothing to feed: no clock read, no id parse per message
	}
	done := time.Now()
	if m.Lane == consumer.Backfill {
		e.controls.ObserveBackfill(m.Stream, group, done)
		return
	}
	ms, _, _ := strings.Cut(m.EntryID, "-")
	if v, err := strconv.ParseInt(ms, 10, 64); err == nil {
		e.controls.ObservePrimary(time.UnixMilli(v), done)
	}
}
