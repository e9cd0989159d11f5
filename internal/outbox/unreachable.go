package outbox

import (
	"context"
	"time"

	"github.com/laneway/laneway/internal/netfail"
)

// An unreachable broker is no fault of the rows being published. When a
// publish fails and the broker does not answer (or answers with an error
// that says it cannot take writes now), the relay releases the batch
// without counting an attempt, stops claiming, and probes the broker with a
// capped backoff until it answers again; only then does it claim again.
// Rows therefore use up their attempts (and end up abandoned) only through
// errors of their own, whatever the length of the outage.

// brokerProbeTimeout bounds one probe of the broker.
const brokerProbeTimeout = 2 * time.Second

// brokerUnreachable decides whether a failed publish was the broker's
// fault: by the error itself, or else by whether the broker answers a ping.
func (r *Relay) brokerUnreachable(ctx context.Context, err error) bool {
	if netfail.Unreachable(err) {
		return true
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), brokerProbeTimeout)
	defer cancel()
	return r.broker.Ping(pctx) != nil
}

// BrokerUnreachable reports whether the relay is paused on an unreachable
// broker (for /readyz).
func (r *Relay) BrokerUnreachable() bool { return r.brokerDown.Load() }

// brokerStateObserver is implemented by observers that export the
// relay's view of the broker (the metrics do).
type brokerStateObserver interface {
	BrokerUnreachable(down bool)
}

// setBrokerDown records that a publish met an unreachable broker: claims
// stop until it answers a ping, /readyz and the gauge say so, and the first
// time in an outage one WARN is logged.
func (r *Relay) setBrokerDown(cause error) {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	if r.brokerDown.Swap(true) {
		return
	}
	r.setGauge(true)
	if !r.downLogged.Swap(true) {
		r.log.Warn("broker unreachable; outbox relay paused, rows keep their attempts", "error", cause)
	}
}

// brokerAnswers records a ping answered after an outage: claims resume.
// The outage is not over for the log until a drain succeeds (brokerBack):
// a broker that answers pings but refuses writes (read-only during a
// failover) must not log a recovery per probe.
func (r *Relay) brokerAnswers() {
	if r.brokerDown.Swap(false) {
		r.setGauge(false)
	}
}

// brokerBack logs the end of an outage once a drain succeeded.
func (r *Relay) brokerBack() {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	if r.downLogged.Swap(false) {
		r.log.Info("broker reachable again; outbox relay resumed")
		r.failing.Store(healthy) // that was the failure; its recovery is logged
	}
}

func (r *Relay) setGauge(down bool) {
	if o, ok := r.cfg.Observer.(brokerStateObserver); ok {
		o.BrokerUnreachable(down)
	}
}

// waitForBroker probes the broker with a capped, jittered backoff until it
// answers or ctx is done. It reports whether the broker answered.
func (r *Relay) waitForBroker(ctx context.Context) bool {
	for streak := 1; ; streak++ {
		pctx, cancel := context.WithTimeout(ctx, brokerProbeTimeout)
		err := r.broker.Ping(pctx)
		cancel()
		if err == nil {
			r.brokerAnswers()
			return true
		}
		t := time.NewTimer(errorBackoff(r.cfg.TickInterval, streak))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}
