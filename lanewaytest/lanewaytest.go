// Package lanewaytest runs a domain in a test, the way rivertest does for
// River: SQLite in the test's temp dir, the embedded broker, the real engine.
// Process commands, Drain until everything is handled, then assert on
// streams, lanes and DLQs.
package lanewaytest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/retention"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

// Options adjust the harness. The zero value runs with lanes enabled, fast
// retries (max_retries 3, 10 ms apart) and no HTTP listener.
type Options struct {
	// LanesOff runs with priority lanes disabled.
	LanesOff bool
	// Configure edits the configuration before the engine starts.
	Configure func(cfg *lanewayconfig.Config)
	// DrainTimeout bounds Drain. Defaults to 30s.
	DrainTimeout time.Duration
}

// Harness is a running domain. Its resources are released by t.Cleanup.
type Harness struct {
	App    *laneway.App
	Engine *laneway.Engine
	Broker lanewaybroker.Broker
	opts   Options
}

// New starts dom with SQLite and the embedded broker; it fails the test on error.
func New(t testing.TB, dom *laneway.Domain, opts Options) *Harness {
	t.Helper()
	ctx := context.Background()
	cfg := lanewayconfig.Default()
	cfg.Server.PriorityLanes.Enabled = !opts.LanesOff
	cfg.Server.StreamSubscription.RetryDelaySeconds = 0.01
	cfg.Server.StreamSubscription.BlockingTimeoutMS = 200
	cfg.Server.HTTP.Listen = ""
	if opts.Configure != nil {
		opts.Configure(cfg)
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "laneway.db"))
	if err != nil {
		t.Fatalf("lanewaytest: open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b, err := redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
	if err != nil {
		t.Fatalf("lanewaytest: start embedded broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
	if err != nil {
		t.Fatalf("lanewaytest: open app: %v", err)
	}
	eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: b, DisableHTTP: true})
	if err := eng.Start(ctx); err != nil {
		t.Fatalf("lanewaytest: start engine: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := eng.Stop(ctx); err != nil {
			t.Errorf("lanewaytest: stop engine: %v", err)
		}
	})
	return &Harness{App: app, Engine: eng, Broker: b, opts: opts}
}

// Process is App.Process, failing the test on error.
func (h *Harness) Process(t testing.TB, ctx context.Context, cmd laneway.Command, opts ...laneway.ProcessOption) {
	t.Helper()
	if err := h.App.Process(ctx, cmd, opts...); err != nil {
		t.Fatalf("lanewaytest: process %s: %v", cmd.Kind(), err)
	}
}

// Drain waits until the outbox has nothing left to publish and every
// consumer group of every stream has no undelivered and no pending entry
// (failing handlers have reached their DLQ).
func (h *Harness) Drain(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(h.opts.DrainTimeout)
	for {
		busy, what := h.busy(ctx)
		if !busy {
			// The engine trims handled entries periodically; do it now so
			// XLEN shows the backlog (0) right after Drain.
			streams, _ := h.Broker.Streams(ctx, "*")
			for _, s := range streams {
				if !(lanes.Naming{}).IsDLQ(s) {
					_, _ = retention.Trim(ctx, h.Broker, s)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lanewaytest: not drained after %s: %s", h.opts.DrainTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *Harness) busy(ctx context.Context) (bool, string) {
	stats, err := h.App.Store().OutboxStats(ctx)
	if err != nil {
		return true, "outbox: " + err.Error()
	}
	for _, c := range stats.Counts {
		switch c.Status {
		case lanewaystore.StatusPending, lanewaystore.StatusProcessing, lanewaystore.StatusFailed:
			if c.Count > 0 {
				return true, "outbox rows " + string(c.Status)
			}
		}
	}
	streams, err := h.Broker.Streams(ctx, "*")
	if err != nil {
		return true, err.Error()
	}
	for _, s := range streams {
		if (lanes.Naming{}).IsDLQ(s) {
			continue
		}
		groups, err := h.Broker.Groups(ctx, s)
		if err != nil {
			return true, err.Error()
		}
		for _, g := range groups {
			if g.Lag > 0 || g.Pending > 0 {
				return true, "stream " + s + " group " + g.Name + " not done"
			}
		}
	}
	return false, ""
}

// Len is XLEN of stream.
func (h *Harness) Len(t testing.TB, stream string) int64 {
	t.Helper()
	n, err := h.Broker.Len(context.Background(), stream)
	if err != nil {
		t.Fatalf("lanewaytest: XLEN %s: %v", stream, err)
	}
	return n
}

// Entries returns every entry of stream (e.g. "customer:backfill:dlq").
func (h *Harness) Entries(t testing.TB, stream string) []lanewaybroker.Entry {
	t.Helper()
	es, err := h.Broker.Range(context.Background(), stream, "-", "+", 0)
	if err != nil {
		t.Fatalf("lanewaytest: XRANGE %s: %v", stream, err)
	}
	return es
}
