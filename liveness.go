package laneway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/laneway/laneway/lanewaybroker"
)

// heartbeatTTL is how long an engine's heartbeat key lives without renewal;
// heartbeatEvery how often a running engine renews it. An engine is known
// dead at most heartbeatTTL after its last renewal, and its work is then
// taken over by the survivors (see docs/operations.md).
const (
	heartbeatTTL   = 15 * time.Second
	heartbeatEvery = 5 * time.Second
	// heartbeatRetry is how soon a failed renewal is tried again, and
	// beatTimeout how long one attempt may take: an engine whose renewals
	// failed during an outage has its heartbeat back within about
	// beatTimeout+heartbeatRetry of the outage's end.
	heartbeatRetry = time.Second
	beatTimeout    = 2 * time.Second
	// startGrace is how long a new engine's consumers take nothing over
	// (neither a dead engine's entries nor idle ones). It cannot tell an
	// engine that died from one whose heartbeat expired during an outage
	// that ended just before it started (Redis unreachable to everyone, a
	// network partition), and taking that one's entries would run them
	// twice. A heartbeat expires only after renewals failed for a TTL, so
	// such an engine is retrying every heartbeatRetry and is back within
	// beatTimeout+heartbeatRetry of the outage's end; one more retry is
	// the margin. It also delays the takeover of a dead engine's entries
	// by a newcomer, so it is kept that short.
	startGrace = beatTimeout + 2*heartbeatRetry
	// outageGrace is how long, after this engine's heartbeat or one of
	// its consumers' reads got through again after an outage, nobody is
	// called dead. The outage may have been everyone's, and the live
	// engines, retrying every heartbeatRetry with beatTimeout per attempt,
	// have their heartbeats back within beatTimeout+heartbeatRetry of its
	// end; one more retry and the liveness view's reuse (livenessTTL) are
	// the margin.
	outageGrace = beatTimeout + 3*heartbeatRetry
)

// errUpcast marks a failed upcast: deterministic, so the consumer sends the
// message to the DLQ at once instead of retrying it.
var errUpcast = errors.New("upcast failed")

// OwnsConsumer reports whether the consumer called name belongs to the
// engine of this heartbeat. Engines name their consumers "<group>" +
// ConsumerSuffix; heartbeats without ConsumerSuffix come from releases that
// named them "<group>-<host>-<pid>-<hex>" with a hex of their own, and are
// matched on host and pid so a running engine of the previous release is
// never taken for dead during a rolling deploy.
func (h Heartbeat) OwnsConsumer(name string) bool {
	if h.ConsumerSuffix != "" {
		return strings.HasSuffix(name, h.ConsumerSuffix)
	}
	return strings.Contains(name, fmt.Sprintf("-%s-%d-", h.Host, h.PID))
}

// liveness answers the consumers' "is this consumer's engine running?"
// from the heartbeat keys, read at most once per livenessTTL for all of
// the engine's consumers together.
type liveness struct {
	broker lanewaybroker.Broker

	mu       sync.Mutex
	at       time.Time
	hbs      []Heartbeat
	beating  map[string]bool // the IDs of the heartbeat keys
	suffixes []string        // of every registered engine, alive or not
	// leasesAt is when relays was last read; relays maps engine IDs to
	// their relays' worker ids (relayLeasesPrefix).
	leasesAt time.Time
	relays   map[string]string
	// While this engine fails to write its own heartbeat, and for
	// outageGrace after a write got through again, others' heartbeats may
	// be missing for the same reason (Redis was unreachable), so nobody is
	// called dead.
	failing   bool      // the last write failed
	recovered time.Time // when a write got through after failures
	now       func() time.Time
}

// beat records the outcome of this engine's heartbeat write and reports
// whether it is the first failure after a success (or the start).
func (l *liveness) beat(err error) (firstFailure bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		if l.failing {
			l.recovered = l.now()
		}
		l.failing = false
		return false
	}
	firstFailure, l.failing = !l.failing, true
	return firstFailure
}

// doubtful reports whether a missing heartbeat may be this engine's own
// outage rather than its owner's death (see failing). The caller holds
// l.mu.
func (l *liveness) doubtful() bool {
	return l.failing || l.now().Sub(l.recovered) < outageGrace
}

// registryPrefix prefixes the keys that record, for a day after an
// engine's last heartbeat, that consumers ending with its ConsumerSuffix
// are Laneway's. Only those are taken over when their engine's heartbeat is
// gone: a consumer group may be shared with another service's consumers
// (a Protean worker), which have no heartbeat and must never be called dead.
const (
	registryPrefix = "laneway:consumers-of:"
	registryTTL    = 24 * time.Hour
)

// relayLeasesPrefix prefixes the keys that name an engine's outbox relay
// (the value is its worker id) for as long as rows may be leased to it:
// each beat writes it with a TTL of heartbeatTTL plus the relay's lease,
// which outlasts every lease the relay took before it stopped. An engine
// whose key is there but whose heartbeat is not has stopped, and rows may
// still be leased to its relay (see stopped); once the key is gone, every
// such lease has ended.
const relayLeasesPrefix = "laneway:relay-leases:"

// livenessTTL is how long one read of the heartbeat keys is reused.
const livenessTTL = 500 * time.Millisecond

func newLiveness(b lanewaybroker.Broker) *liveness { return &liveness{broker: b, now: time.Now} }

func (l *liveness) alive(ctx context.Context) (func(string) bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.doubtful() {
		return func(string) bool { return true }, nil
	}
	if err := l.refresh(ctx); err != nil {
		return nil, err
	}
	hbs, suffixes := l.hbs, slices.Clone(l.suffixes)
	return func(name string) bool {
		for _, h := range hbs {
			if h.OwnsConsumer(name) {
				return true
			}
		}
		// Dead only if a Laneway engine registered it; anything else is
		// left to the claim_idle_seconds reclaim.
		for _, s := range suffixes {
			if s != "" && strings.HasSuffix(name, s) {
				return false
			}
		}
		return true
	}, nil
}

// refresh reads the heartbeat and registry keys again once the last read
// is livenessTTL old. The caller holds l.mu.
func (l *liveness) refresh(ctx context.Context) error {
	if time.Since(l.at) < livenessTTL {
		return nil
	}
	keys, err := l.broker.GetKeys(ctx, HeartbeatPrefix+"*")
	if err != nil {
		return err
	}
	reg, err := l.broker.GetKeys(ctx, registryPrefix+"*")
	if err != nil {
		return err
	}
	l.hbs = parseHeartbeats(keys)
	l.beating = make(map[string]bool, len(keys))
	for k := range keys {
		l.beating[strings.TrimPrefix(k, HeartbeatPrefix)] = true
	}
	l.suffixes = l.suffixes[:0]
	for _, v := range reg {
		l.suffixes = append(l.suffixes, v)
	}
	l.at = time.Now()
	return nil
}

// stopped returns the worker ids of the relays of engines whose heartbeat
// is gone while rows may still be leased to their relays
// (relayLeasesPrefix), by the rules of alive: none while this engine's own
// heartbeat is doubtful.
func (l *liveness) stopped(ctx context.Context) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.doubtful() {
		return nil, nil
	}
	if err := l.refresh(ctx); err != nil {
		return nil, err
	}
	if time.Since(l.leasesAt) >= livenessTTL {
		keys, err := l.broker.GetKeys(ctx, relayLeasesPrefix+"*")
		if err != nil {
			return nil, err
		}
		l.relays = make(map[string]string, len(keys))
		for k, v := range keys {
			l.relays[strings.TrimPrefix(k, relayLeasesPrefix)] = v
		}
		l.leasesAt = time.Now()
	}
	var out []string
	for id, worker := range l.relays {
		if !l.beating[id] && worker != "" {
			out = append(out, worker)
		}
	}
	slices.Sort(out)
	return out, nil
}

// relayWorkerID is the outbox relay's locked_by value of the engine id:
// another engine that finds id stopped ends the relay's leases.
func relayWorkerID(id string) string { return "relay-" + id }

// stoppedRelays names the relays of stopped engines (outbox
// Config.StoppedRelays). A newly started engine names none for startGrace,
// for the reason its consumers take nothing over then.
func (e *Engine) stoppedRelays(ctx context.Context) ([]string, error) {
	if time.Since(e.hb.StartedAt) < startGrace {
		return nil, nil
	}
	return e.live.stopped(ctx)
}

// parseHeartbeats decodes heartbeat keys. A value that does not decode
// still proves its engine alive: its consumers are matched on the key's ID.
func parseHeartbeats(keys map[string]string) []Heartbeat {
	out := make([]Heartbeat, 0, len(keys))
	for k, v := range keys {
		id := strings.TrimPrefix(k, HeartbeatPrefix)
		var h Heartbeat
		if json.Unmarshal([]byte(v), &h) != nil || (h.ConsumerSuffix == "" && h.Host == "") {
			h = Heartbeat{ID: id, ConsumerSuffix: "-" + id}
		}
		out = append(out, h)
	}
	return out
}

// startHeartbeat writes the engine's heartbeat and keeps it alive.
func (e *Engine) startHeartbeat(ctx context.Context) error {
	// The first write may have to dial Redis: give it a renewal period.
	if err := e.beat(ctx, heartbeatEvery); err != nil {
		return fmt.Errorf("write heartbeat: %w", err)
	}
	e.life.GoEvery(ctx, heartbeatEvery, e.heartbeat)
	return nil
}

func (e *Engine) beat(ctx context.Context, timeout time.Duration) error {
	v, _ := json.Marshal(e.hb)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := e.broker.SetKey(ctx, HeartbeatPrefix+e.hb.ID, string(v), heartbeatTTL); err != nil {
		return err
	}
	if e.relay != nil {
		if err := e.broker.SetKey(ctx, relayLeasesPrefix+e.hb.ID, e.relay.WorkerID(), heartbeatTTL+e.relay.LeaseTime()); err != nil {
			return err
		}
	}
	return e.broker.SetKey(ctx, registryPrefix+e.hb.ID, e.hb.ConsumerSuffix, registryTTL)
}

// heartbeat renews the heartbeat key (every heartbeatEvery, for a
// heartbeatTTL time to live) and tells the liveness view when it failed. A
// failed renewal is retried every heartbeatRetry until one succeeds: after
// an outage the other engines, and any engine started since, must see this
// one alive again before they would take it for dead.
func (e *Engine) heartbeat(ctx context.Context) {
	for failures := 0; ; failures++ {
		err := e.beat(ctx, beatTimeout)
		first := e.live.beat(err)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			if failures > 0 {
				e.log.Info("heartbeat written again", "failed_attempts", failures)
			}
			return
		case first:
			e.log.Warn("heartbeat failed; retrying every second", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(heartbeatRetry):
		}
	}
}
