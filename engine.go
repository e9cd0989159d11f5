package laneway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/laneway/laneway/internal/backend"
	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/instance"
	"github.com/laneway/laneway/internal/lanecontrol"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/metrics"
	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/retention"
	"github.com/laneway/laneway/internal/startstop"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaystore"
)

// CommandGroup is the consumer group of async command handling on every
// command stream ("<category>:command").
const CommandGroup = lanes.CommandGroup

// HeartbeatPrefix prefixes the Redis keys running engines keep alive.
const HeartbeatPrefix = "laneway:engine:"

// EngineOptions configure an Engine. The zero value connects to the broker
// named by the configuration and serves HTTP on server.http.listen.
type EngineOptions struct {
	// Broker overrides the configured broker (tests, embedding).
	Broker lanewaybroker.Broker
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics. Defaults to a fresh registry served
	// at /metrics.
	Registerer prometheus.Registerer
	// DisableHTTP turns off the /metrics, /healthz and /readyz listener.
	DisableHTTP bool
	// HTTPHandlers are served on the same listener, keyed by
	// http.ServeMux pattern ("/ui/" for the dashboard of laneway server).
	HTTPHandlers map[string]http.Handler
	// OnHandled is called after each handler execution (tests, demos,
	// tracing). It runs on the handler's goroutine: keep it fast, and do
	// not call the engine from it (Stop waits for the handlers to return).
	OnHandled func(Handled)
	// TracerProvider receives the relay's and the handlers' spans.
	// Defaults to the App's (laneway.Options.TracerProvider); nil in both
	// turns tracing off.
	TracerProvider trace.TracerProvider
}

// Heartbeat is the value of an engine's heartbeat key.
type Heartbeat struct {
	ID               string    `json:"id"`
	Host             string    `json:"host"`
	PID              int       `json:"pid"`
	StartedAt        time.Time `json:"started_at"`
	Domain           string    `json:"domain"`
	Env              string    `json:"env"`
	LanesFingerprint string    `json:"lanes_fingerprint"`
	LanesEnabled     bool      `json:"lanes_enabled"`
	ConfigSource     string    `json:"config_source"`
	Subscriptions    []string  `json:"subscriptions"`
	// ConsumerSuffix ends the name of every consumer of this engine. Empty
	// in heartbeats of releases that did not write it (see OwnsConsumer).
	ConsumerSuffix string `json:"consumer_suffix,omitempty"`
}

// Engine runs the outbox relay, one lane-scheduling consumer per handler ×
// category (and per command category), stream retention, the heartbeat and
// the HTTP endpoints. Start does not block; Stop is graceful.
type Engine struct {
	app       *App
	opts      EngineOptions
	log       *slog.Logger
	broker    lanewaybroker.Broker
	ownBroker bool
	relay     *outbox.Relay
	offCommit func() // removes the relay's wake-up from the app
	consumers []*consumer.Consumer
	controls  *lanecontrol.Controller // nil without a Redis-backed broker
	trimmer   *retention.Trimmer
	http      *http.Server
	httpAddr  string
	hb        Heartbeat
	live      *liveness

	life    startstop.Runner // the heartbeat loop and the HTTP server
	mu      sync.Mutex
	started bool
	ready   bool
	stopped chan struct{}
}

// NewEngine prepares an engine for app; nothing runs until Start.
func NewEngine(app *App, opts EngineOptions) *Engine {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Engine{app: app, opts: opts, log: log, stopped: make(chan struct{})}
}

// Broker returns the engine's broker (after Start).
func (e *Engine) Broker() lanewaybroker.Broker { return e.broker }

// HTTPAddr is the address the HTTP endpoints listen on ("" when disabled).
func (e *Engine) HTTPAddr() string { return e.httpAddr }

// RelayStats returns the outbox relay's counters (zero when the engine runs
// no relay: before Start, or on an app opened without a database).
func (e *Engine) RelayStats() RelayStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.relay == nil {
		return RelayStats{}
	}
	return relayStatsFrom(e.relay.Stats())
}

// ConsumerStats returns each subscription's counters keyed by
// "group@category" ("CustomerProjector@customer"), the names the heartbeat
// lists.
func (e *Engine) ConsumerStats() map[string]SubscriptionStats {
	e.mu.Lock() // Start builds the subscriptions under it
	defer e.mu.Unlock()
	out := map[string]SubscriptionStats{}
	for i, c := range e.consumers {
		out[e.hb.Subscriptions[i]] = subscriptionStatsFrom(c.Stats())
	}
	return out
}

// Stopped is closed when Stop has finished.
func (e *Engine) Stopped() <-chan struct{} { return e.stopped }

// Start connects, creates consumer groups, and starts every component. It
// fails fast when the broker or database is unreachable.
func (e *Engine) Start(ctx context.Context) (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("laneway: engine already started")
	}
	if err := e.connect(ctx); err != nil {
		return err
	}
	runCtx, err := e.life.Start(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = e.stopAll(context.Background()) // Start's error is the one to report
		}
	}()
	topo, err := e.app.topology()
	if err != nil {
		return err
	}
	e.hb.ID = instance.ID("")
	m, gatherer, err := e.registerMetrics(topo)
	if err != nil {
		return err
	}
	if err := e.newRelay(m); err != nil {
		return err
	}
	e.identify()
	if err := e.newConsumers(topo, m); err != nil {
		return err
	}
	// Beat before the consumers start: a consumer whose engine has no
	// heartbeat is taken for dead by the others.
	if err := e.startHeartbeat(runCtx); err != nil {
		return err
	}
	if err := e.startParts(runCtx, topo); err != nil {
		return err
	}
	if !e.opts.DisableHTTP && e.app.cfg.Server.HTTP.Listen != "" {
		if err := e.startHTTP(gatherer); err != nil {
			return err
		}
	}
	e.started, e.ready = true, true
	e.log.Info("laneway engine started", "domain", e.app.dom.name, "subscriptions", len(e.consumers),
		"lanes", topo.Lanes.Enabled, "database", e.app.dialect(), "http", e.httpAddr)
	return nil
}

// connect checks the database and opens the configured broker unless one
// was given.
func (e *Engine) connect(ctx context.Context) error {
	if e.app.store != nil {
		if err := e.app.store.Ping(ctx); err != nil {
			return fmt.Errorf("database unreachable: %w", err)
		}
	}
	e.broker = e.opts.Broker
	if e.broker == nil {
		b, err := backend.OpenBroker(ctx, e.app.cfg.Brokers["default"])
		if err != nil {
			return err
		}
		e.broker, e.ownBroker = b, true
	}
	return nil
}

// registerMetrics registers the engine's metrics for the streams of topo
// with the configured registerer, or a fresh registry it then serves.
func (e *Engine) registerMetrics(topo lanes.Topology) (*metrics.Metrics, prometheus.Gatherer, error) {
	reg := e.opts.Registerer
	gatherer := prometheus.DefaultGatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, gatherer = r, r
	}
	var streams []metrics.Stream
	for _, st := range topo.ReadStreams() {
		streams = append(streams, metrics.Stream{Name: st.Name, Category: st.Primary, Lane: string(st.Lane)})
	}
	mp := metrics.Params{Broker: e.broker, Streams: streams, Lanes: topo.Lanes}
	if e.app.store != nil {
		mp.OutboxStats = e.app.store.OutboxStats
	}
	m, err := metrics.New(reg, mp)
	if err != nil {
		return nil, nil, fmt.Errorf("register metrics: %w", err)
	}
	if e.controls, err = e.newControls(reg); err != nil {
		return nil, nil, fmt.Errorf("register lane control metrics: %w", err)
	}
	return m, gatherer, nil
}

// newRelay prepares the outbox relay, woken by the app's commits. An app
// without a database has no outbox, so no relay.
func (e *Engine) newRelay(m *metrics.Metrics) error {
	if e.app.store == nil {
		return nil
	}
	rcfg, err := outbox.ConfigFrom(e.app.cfg, e.app.dom.name)
	if err != nil {
		return err
	}
	rcfg.Logger = e.log
	rcfg.Observer = m
	rcfg.WorkerID = relayWorkerID(e.hb.ID)
	rcfg.StoppedRelays = e.stoppedRelays
	rcfg.Trace = tracePublish(e.tracer())
	e.relay = outbox.New(e.app.store, e.broker, rcfg)
	offNotify := e.app.onCommitPriorities(e.relay.NotifyPriorities)
	offHandOff := e.app.handOffTo(e.relay)
	e.offCommit = func() { offHandOff(); offNotify() }
	return nil
}

// newConsumers prepares one consumer per subscription of topo.
func (e *Engine) newConsumers(topo lanes.Topology, m *metrics.Metrics) error {
	cfg := e.app.cfg
	sc, pl := cfg.Server.StreamSubscription, cfg.Server.PriorityLanes
	tr := e.tracer()
	groups, err := e.app.dom.ConsumerGroups(cfg)
	if err != nil {
		return err
	}
	handlers := map[string]*Handler{} // by consumer group (ConsumerGroups keeps them unique)
	for _, h := range e.app.dom.handlers {
		handlers[groups[h.name]] = h
	}
	gates := map[[2]string]*consumer.Gate{}
	for _, s := range topo.Subscriptions {
		h := handlers[s.Group] // nil for the command dispatcher
		// The partitions of a category are one consumer each; a gate per
		// handler and category keeps their backfill behind every
		// partition's primary (strict priority only: with a backfill share
		// each partition grants its own).
		var gate *consumer.Gate
		if s.Partitions > 1 && s.Backfill != "" && pl.MinBackfillShare == 0 {
			k := [2]string{s.Group, s.Category}
			if gates[k] == nil {
				gates[k] = consumer.NewGate()
			}
			gate = gates[k]
		}
		c, err := consumer.New(e.broker, consumer.Config{
			Group:               s.Group,
			Consumer:            s.Group + e.hb.ConsumerSuffix,
			Alive:               e.live.alive,
			TakeoverGrace:       outageGrace,
			StartGrace:          startGrace,
			HandlerTimeout:      sc.HandlerTimeout(),
			Primary:             s.Primary,
			Backfill:            s.Backfill,
			Naming:              topo.Naming(),
			Count:               cfg.Server.MessagesPerTick,
			Block:               sc.BlockingTimeout(),
			MaxRetries:          sc.MaxRetries,
			RetryDelay:          sc.RetryDelay(),
			EnableDLQ:           sc.EnableDLQ,
			ClaimIdle:           sc.ClaimIdle(),
			Concurrency:         sc.Concurrency,
			BackfillConcurrency: pl.BackfillConcurrency,
			MinBackfillShare:    pl.MinBackfillShare,
			PrimaryReader:       pl.PrimaryReader,
			BackfillYield:       pl.BackfillYield,
			BackfillShortSlice:  pl.BackfillShortSlice,
			BackfillNice:        pl.BackfillNice,
			ShutdownTimeout:     sc.ShutdownTimeout(),
			Decode:              e.decode,
			Handle: traceHandle(tr, s.Group, func(ctx context.Context, msg *consumer.Message) error {
				if g := msg.Envelope.Metadata.ReplayGroup; g != "" && g != s.Group {
					return nil // a DLQ replay for another handler; this one handled the original
				}
				// msg is the consumer's own: read it, never write it.
				prio := Priority(msg.Envelope.Metadata.Domain.Priority)
				if msg.Lane == consumer.Backfill {
					prio = topo.Lanes.ReadPriority(lanes.Backfill, prio)
					// On a store with one writer, production writes go first.
					ctx = lanewaystore.AsBackfill(ctx)
				}
				_, err := e.app.dispatch(ctx, h, &msg.Envelope, prio, pl.Propagate)
				e.observeLane(s.Group, msg)
				if e.opts.OnHandled != nil {
					e.opts.OnHandled(handledFrom(s.Group, msg, prio, err))
				}
				if errors.Is(err, errUpcast) {
					return consumer.Permanent(err) // no retry can change an upcaster's verdict
				}
				return err
			}),
			OnDeadLetter: traceDeadLetter(tr, s.Group),
			Outage:       e.databaseDown,
			Logger:       e.log,
			Observer:     m.Consumer(s.Group, s.Primary, s.Backfill),
			Control:      e.controlFor(s.Group, s.Primary, s.Backfill),
			Gate:         gate,
		})
		if err != nil {
			return fmt.Errorf("subscription %s on %s: %w", s.Group, s.Primary, err)
		}
		e.consumers = append(e.consumers, c)
		e.hb.Subscriptions = append(e.hb.Subscriptions, s.Group+"@"+s.Primary)
	}
	return nil
}

// startParts starts the relay, the consumers and the stream trimmer.
func (e *Engine) startParts(ctx context.Context, topo lanes.Topology) error {
	if e.controls != nil {
		if err := e.controls.Start(ctx); err != nil {
			return fmt.Errorf("read lane controls: %w", err)
		}
	}
	if e.relay != nil {
		if err := e.relay.Start(ctx); err != nil {
			return fmt.Errorf("start outbox relay: %w", err)
		}
	}
	for _, c := range e.consumers {
		if err := c.Start(ctx); err != nil {
			return err
		}
	}
	var trim []string
	for _, st := range topo.ReadStreams() {
		trim = append(trim, st.Name)
	}
	e.trimmer = retention.NewTrimmer(e.broker, retention.TrimmerParams{Streams: trim, Logger: e.log,
		DLQs: topo.DLQStreams(), DLQRetention: e.app.cfg.Server.StreamSubscription.DLQRetention()})
	if err := e.trimmer.Start(ctx); err != nil {
		return err
	}
	e.warnLeftovers(ctx, topo)
	return nil
}

// identify gives the engine its heartbeat identity. It comes before the
// consumers: every consumer's name ends with it, which is how the survivors
// tell a dead engine's consumers from a live one's (see liveness.go).
func (e *Engine) identify() {
	cfg := e.app.cfg
	e.hb = Heartbeat{
		ID: e.hb.ID, Host: instance.Host(), PID: os.Getpid(),
		StartedAt: time.Now().UTC(), Domain: e.app.dom.name, Env: cfg.EnvName(),
		LanesFingerprint: cfg.LanesFingerprint(), LanesEnabled: cfg.Server.PriorityLanes.Enabled, ConfigSource: cfg.Source(),
	}
	e.hb.ConsumerSuffix = "-" + e.hb.ID
	e.live = newLiveness(e.broker)
}

// decode turns a stream entry into an envelope, rejecting (for the DLQ) what
// this domain can never handle: unknown types and versions without an
// upcaster path.
func (e *Engine) decode(entry lanewaybroker.Entry) (envelope.Envelope, error) {
	env, err := envelope.DecodeString(entry.Data)
	if err != nil {
		return env, err
	}
	_, name, version, err := envelope.ParseType(env.Metadata.Headers.Type)
	if err != nil {
		return env, err
	}
	if env.Metadata.Domain.Class == envelope.ClassCommand {
		if _, ok := e.app.dom.commands[name]; !ok {
			return env, fmt.Errorf("command type %s is not registered in domain %s", env.Metadata.Headers.Type, e.app.dom.name)
		}
		return env, nil
	}
	if _, ok := e.app.dom.events[name]; !ok {
		return env, fmt.Errorf("event type %s is not registered in domain %s", env.Metadata.Headers.Type, e.app.dom.name)
	}
	if _, err := e.app.dom.upcasts.Path(name, version); err != nil {
		return env, err
	}
	return env, nil
}

// databaseDown is the consumers' outage test: a handler error counts as an
// attempt unless the database does not answer a ping right after it. Asking
// the database, instead of matching error texts, keeps a handler's own
// failures (a refused HTTP call, a constraint) from being mistaken for an
// outage, and catches store errors a handler wrapped without %w.
func (e *Engine) databaseDown(error) bool {
	if e.app.store == nil {
		return false // no database to be down
	}
	ctx, cancel := context.WithTimeout(context.Background(), outagePingTimeout)
	defer cancel()
	return e.app.store.Ping(ctx) != nil
}

// outagePingTimeout bounds databaseDown's ping; a database that does not
// answer within it is treated as down.
const outagePingTimeout = 5 * time.Second

func (e *Engine) startHTTP(g prometheus.Gatherer) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	for pattern, h := range e.opts.HTTPHandlers {
		mux.Handle(pattern, h)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		e.mu.Lock()
		ready := e.ready
		e.mu.Unlock()
		var problems []string
		if !ready {
			problems = append(problems, "subscriptions not running")
		}
		if e.app.store != nil {
			if err := e.app.store.Ping(ctx); err != nil {
				problems = append(problems, "database: "+err.Error())
			}
		}
		if err := e.broker.Ping(ctx); err != nil {
			problems = append(problems, "redis: "+err.Error())
		} else if e.relay.BrokerUnreachable() {
			problems = append(problems, "outbox relay: waiting for the broker")
		}
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, p := range problems {
				fmt.Fprintln(w, p)
			}
			return
		}
		fmt.Fprintln(w, "ready")
	})
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", e.app.cfg.Server.HTTP.Listen) // a local bind; nothing to cancel
	if err != nil {
		return fmt.Errorf("server.http.listen %q: %w (set another address, or \"\" to disable)", e.app.cfg.Server.HTTP.Listen, err)
	}
	e.httpAddr = ln.Addr().String()
	e.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	e.life.Go(func() {
		if err := e.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("http server", "err", err)
		}
	})
	return nil
}

// Stop stops reading, lets in-flight handlers finish (bounded by
// shutdown_timeout_seconds and ctx), acks them, stops the relay and closes
// the broker it opened. Entries not finished stay pending for the next start
// without counting as an attempt.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started {
		return nil
	}
	e.started, e.ready = false, false
	err := e.stopAll(ctx)
	close(e.stopped)
	return err
}

func (e *Engine) stopAll(ctx context.Context) error {
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, c := range e.consumers {
		wg.Add(1)
		go func(c *consumer.Consumer) {
			defer wg.Done()
			if err := c.Stop(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	if e.controls != nil {
		e.controls.Stop()
	}
	if e.offCommit != nil {
		e.offCommit()
		e.offCommit = nil
	}
	relayStopped := false
	if e.relay != nil {
		if err := e.relay.Stop(ctx); err != nil {
			errs = append(errs, err)
		} else {
			relayStopped = true
		}
	}
	if e.trimmer != nil {
		if err := e.trimmer.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if e.http != nil {
		_ = e.http.Shutdown(ctx)
	}
	// The heartbeat loop and the HTTP server end once cancelled; wait for
	// them whatever ctx says, so nothing outlives Stop, and before the keys
	// are deleted, so no renewal writes them again.
	_ = e.life.Stop(context.WithoutCancel(ctx))
	if e.broker != nil && e.hb.ID != "" {
		e.deleteKeys(ctx, relayStopped)
	}
	if e.ownBroker && e.broker != nil {
		_ = e.broker.Close()
	}
	return errors.Join(errs...)
}

// endOwnLeasesTimeout bounds the statement that ends the leases a
// stopped relay still holds, so that Stop ends when the database hangs.
const endOwnLeasesTimeout = 5 * time.Second

// deleteKeys deletes the engine's heartbeat, and its relay's leases key
// once the relay holds no lease: its rows were all published or handed
// back, or the leases it still held were ended here. Otherwise the key
// stays, and the other engines end those leases as they would a dead
// engine's. Bounded: with Redis unreachable the keys expire by themselves.
func (e *Engine) deleteKeys(ctx context.Context, relayStopped bool) {
	ctx = context.WithoutCancel(ctx)
	if relayStopped {
		ectx, cancel := context.WithTimeout(ctx, endOwnLeasesTimeout)
		_, err := e.relay.EndOwnLeases(ectx)
		cancel()
		switch {
		case errors.Is(err, outbox.ErrCannotEndLeases):
			// Leases run out by themselves; the key expires after them.
		case err != nil:
			e.log.Warn("outbox rows may still be leased to this engine's relay; the other engines end those leases", "error", err)
		default:
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_ = e.broker.DeleteKey(dctx, relayLeasesPrefix+e.hb.ID)
			cancel()
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_ = e.broker.DeleteKey(dctx, HeartbeatPrefix+e.hb.ID)
	cancel()
}
