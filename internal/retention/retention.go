// Package retention trims stream entries that every consumer group has
// handled.
//
// Why: Redis Streams keep entries after they are acknowledged, so without
// trimming XLEN only grows and says nothing. Trimming up to the slowest
// group's oldest unhandled entry (XTRIM MINID) makes XLEN of a lane its
// backlog: during a backfill XLEN customer:backfill grows, and after it the
// stream drains, which is what the user's verification step checks.
//
// The low-water mark of a group is its oldest pending entry (delivered but
// not acked: a consumer may still be handling it, or it may be claimed
// after a crash), or else the entry right after its last-delivered id. A
// group that has never read (last-delivered 0-0) keeps everything, and a
// stream without groups is never trimmed: nobody has said what is handled.
//
// Dead-letter streams have no groups; they are trimmed by age instead
// (dlq_retention_hours), when a retention is configured.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/startstop"
	"github.com/laneway/laneway/lanewaybroker"
)

// Trim removes the entries of stream that every consumer group has handled
// and returns how many were removed.
func Trim(ctx context.Context, b lanewaybroker.Broker, stream string) (int64, error) {
	minID, ok, err := LowWater(ctx, b, stream)
	if err != nil || !ok {
		return 0, err
	}
	n, err := b.TrimMinID(ctx, stream, minID)
	if err != nil {
		return 0, fmt.Errorf("retention: trim %s to %s: %w", stream, minID, err)
	}
	return n, nil
}

// LowWater returns the id below which every group of stream has handled
// every entry. ok is false when nothing may be trimmed (no group, or a group
// that never read).
func LowWater(ctx context.Context, b lanewaybroker.Broker, stream string) (minID string, ok bool, err error) {
	groups, err := b.Groups(ctx, stream)
	if err != nil {
		return "", false, fmt.Errorf("retention: groups of %s: %w", stream, err)
	}
	if len(groups) == 0 {
		return "", false, nil
	}
	var low lanes.ID
	have := false
	for _, g := range groups {
		pend, err := b.Pending(ctx, lanewaybroker.PendingParams{
			Stream: stream, Group: g.Name, Start: "-", End: "+", Count: 1,
		})
		if errors.Is(err, lanewaybroker.ErrNoGroup) {
			// Deleted between XINFO and XPENDING: it no longer holds anything back.
			continue
		}
		if err != nil {
			return "", false, fmt.Errorf("retention: pending of %s/%s: %w", stream, g.Name, err)
		}
		var id lanes.ID
		if len(pend) > 0 {
			if id, err = lanes.ParseID(pend[0].ID); err != nil {
				return "", false, err
			}
		} else {
			last, err := lanes.ParseID(g.LastDeliveredID)
			if err != nil {
				return "", false, err
			}
			if last == (lanes.ID{}) {
				return "", false, nil // never read: keep everything
			}
			id = last.Next()
		}
		if !have || id.Less(low) {
			low, have = id, true
		}
	}
	if !have {
		return "", false, nil
	}
	return low.String(), true, nil
}

// TrimOlder removes the entries of stream written before cutoff (entry ids
// start with their time in milliseconds) and returns how many were removed.
func TrimOlder(ctx context.Context, b lanewaybroker.Broker, stream string, cutoff time.Time) (int64, error) {
	ms := cutoff.UnixMilli()
	if ms <= 0 {
		return 0, nil
	}
	minID := lanes.ID{Ms: uint64(ms)}.String()
	n, err := b.TrimMinID(ctx, stream, minID)
	if err != nil {
		return 0, fmt.Errorf("retention: trim %s to %s: %w", stream, minID, err)
	}
	return n, nil
}

// IntervalDefault is the default time between two trims.
const IntervalDefault = 10 * time.Second

// TrimmerParams configures a Trimmer.
type TrimmerParams struct {
	// Streams are the lane streams, trimmed up to their groups' low water.
	Streams []string
	// DLQs are dead-letter streams, trimmed by age: entries older than
	// DLQRetention are removed. Zero DLQRetention keeps them forever.
	DLQs         []string
	DLQRetention time.Duration
	// Now is the clock of the DLQ cutoff. Defaults to time.Now.
	Now func() time.Time
	// Interval is the time between two trims. Defaults to 10s.
	Interval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnTrim, when set, is called after a stream lost n > 0 entries
	// (metrics).
	OnTrim func(stream string, n int64)
}

// Trimmer trims a set of streams every Interval. Create it with
// NewTrimmer; Start and Stop own its goroutine.
type Trimmer struct {
	b       lanewaybroker.Broker
	p       TrimmerParams
	life    startstop.Runner
	failing bool // only the loop goroutine touches it
}

// NewTrimmer returns a stopped Trimmer.
func NewTrimmer(b lanewaybroker.Broker, p TrimmerParams) *Trimmer {
	if p.Interval <= 0 {
		p.Interval = IntervalDefault
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	p.Streams = append([]string(nil), p.Streams...)
	p.DLQs = append([]string(nil), p.DLQs...)
	return &Trimmer{b: b, p: p}
}

// TrimAll trims every stream once and returns the total removed. It goes on
// after an error and returns the errors joined.
func (t *Trimmer) TrimAll(ctx context.Context) (int64, error) {
	var total int64
	var errs []error
	note := func(s string, n int64, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		total += n
		if n > 0 && t.p.OnTrim != nil {
			t.p.OnTrim(s, n)
		}
	}
	for _, s := range t.p.Streams {
		n, err := Trim(ctx, t.b, s)
		note(s, n, err)
	}
	if t.p.DLQRetention > 0 {
		cutoff := t.p.Now().Add(-t.p.DLQRetention)
		for _, s := range t.p.DLQs {
			n, err := TrimOlder(ctx, t.b, s, cutoff)
			note(s, n, err)
		}
	}
	return total, errors.Join(errs...)
}

// Start starts the trim loop; it does not block. The loop runs until Stop
// or until ctx is done.
func (t *Trimmer) Start(ctx context.Context) error {
	ctx, err := t.life.Start(ctx)
	if err != nil {
		return fmt.Errorf("retention: trimmer: %w", err)
	}
	t.life.GoEvery(ctx, t.p.Interval, func(ctx context.Context) {
		_, err := t.TrimAll(ctx)
		t.report(ctx, err)
	})
	return nil
}

func (t *Trimmer) report(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	switch {
	case err != nil && !t.failing:
		t.failing = true
		t.p.Logger.Warn("stream retention failing", "error", err)
	case err == nil && t.failing:
		t.failing = false
		t.p.Logger.Info("stream retention recovered")
	}
}

// Stop stops the loop and waits for it, at most until ctx is done.
func (t *Trimmer) Stop(ctx context.Context) error {
	if err := t.life.Stop(ctx); err != nil {
		return fmt.Errorf("retention: trimmer: %w", err)
	}
	return nil
}
