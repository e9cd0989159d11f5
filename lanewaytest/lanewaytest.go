// Package lanewaytest runs a domain in a test, the way rivertest does for
// River: SQLite in the test's temp dir, the embedded broker, the real engine.
// Process commands, Drain until everything is handled, then assert on
// streams, lanes and DLQs.
package lanewaytest

import (
	"context"
	"testing"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
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

// Harness is a running domain. New releases its resources by t.Cleanup;
// Start leaves that to Close.
type Harness struct {
	App    *laneway.App
	Engine *laneway.Engine
	Broker lanewaybroker.Broker
	opts   Options
	close  []func() error
}

// New starts dom with SQLite in the test's temp dir and the embedded
// broker; it fails the test on error.
func New(t testing.TB, dom *laneway.Domain, opts Options) *Harness {
	t.Helper()
	h, err := Start(context.Background(), dom, t.TempDir(), opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return h
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
// (failing handlers have reached their DLQ). Handled entries are then
// trimmed, as the engine does periodically: to see which lane an event
// went to, use Published.
func (h *Harness) Drain(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.DrainTimeout)
	defer cancel()
	if err := h.Wait(ctx); err != nil {
		t.Fatalf("%v", err)
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
