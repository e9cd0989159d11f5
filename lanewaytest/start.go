package lanewaytest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/retention"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

// Start is New outside a test (a demo, a playground, a tool): it runs dom
// with SQLite in dir and the embedded broker, and the caller calls Close.
// Errors name the step that failed.
func Start(ctx context.Context, dom *laneway.Domain, dir string, opts Options) (_ *Harness, err error) {
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
	h := &Harness{opts: opts}
	defer func() {
		if err != nil {
			err = errors.Join(err, h.Close())
		}
	}()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "laneway.db"))
	if err != nil {
		return nil, fmt.Errorf("lanewaytest: open sqlite: %w", err)
	}
	h.close = append(h.close, st.Close)
	b, err := redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
	if err != nil {
		return nil, fmt.Errorf("lanewaytest: start embedded broker: %w", err)
	}
	h.Broker = b
	h.close = append(h.close, b.Close)
	h.App, err = laneway.Open(ctx, dom, cfg, laneway.Options{Store: st})
	if err != nil {
		return nil, fmt.Errorf("lanewaytest: open app: %w", err)
	}
	h.Engine = laneway.NewEngine(h.App, laneway.EngineOptions{Broker: b, DisableHTTP: true})
	if err := h.Engine.Start(ctx); err != nil {
		return nil, fmt.Errorf("lanewaytest: start engine: %w", err)
	}
	eng := h.Engine
	h.close = append(h.close, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := eng.Stop(ctx); err != nil {
			return fmt.Errorf("lanewaytest: stop engine: %w", err)
		}
		return nil
	})
	return h, nil
}

// Close stops the engine and releases the broker and the database, in the
// reverse order of Start. A second call does nothing.
func (h *Harness) Close() error {
	var errs []error
	for i := len(h.close) - 1; i >= 0; i-- {
		errs = append(errs, h.close[i]())
	}
	h.close = nil
	return errors.Join(errs...)
}

// Wait is Drain outside a test: it returns nil once everything is handled,
// or an error naming what is still busy when ctx ends.
func (h *Harness) Wait(ctx context.Context) error {
	for {
		busy, what := h.busy(ctx)
		if !busy {
			streams, err := h.Broker.Streams(ctx, "*")
			if err != nil {
				return fmt.Errorf("lanewaytest: list streams: %w", err)
			}
			for _, s := range streams {
				if !(lanes.Naming{}).IsDLQ(s) {
					if _, err := retention.Trim(ctx, h.Broker, s); err != nil {
						return fmt.Errorf("lanewaytest: trim %s: %w", s, err)
					}
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lanewaytest: not drained: %s (%w)", what, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Publication is one outbox row the relay published: which event (or
// async command) went to which stream, i.e. which lane.
type Publication struct {
	// MessageID is the message's id (Meta.ID in the handler).
	MessageID string
	// Type is "<Domain>.<Kind>.v<N>".
	Type string
	// Category is "customer" for events, "customer:command" for async
	// commands.
	Category string
	// Priority is the priority the message was written with.
	Priority laneway.Priority
	// Stream is the physical stream it was published to: the category
	// stream (primary lane) or "<category>:backfill" (backfill lane).
	Stream string
}

// Published lists every message the relay has published, oldest first,
// with the stream each went to. It reads the outbox's published rows, so it
// stays right after Drain trimmed the streams.
func (h *Harness) Published(ctx context.Context) ([]Publication, error) {
	rows, err := h.App.Store().ListOutbox(ctx, lanewaystore.ListOutboxParams{Status: lanewaystore.StatusPublished, Limit: publishedLimit})
	if err != nil {
		return nil, fmt.Errorf("lanewaytest: list published outbox rows: %w", err)
	}
	out := make([]Publication, len(rows))
	for i, r := range rows { // ListOutbox lists newest first
		out[len(rows)-1-i] = Publication{MessageID: r.MessageID, Type: r.Type, Category: r.StreamCategory, Priority: laneway.Priority(r.Priority), Stream: r.PublishedStream}
	}
	return out, nil
}

// publishedLimit bounds Published; a test publishes far fewer rows.
const publishedLimit = 100_000
