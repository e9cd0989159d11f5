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
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/laneway/laneway/internal/lanes"
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

// IntervalDefault is the default time between two trims.
const IntervalDefault = 10 * time.Second

// TrimmerParams configures a Trimmer.
type TrimmerParams struct {
	// Streams are the streams to trim.
	Streams []string
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
	b lanewaybroker.Broker
	p TrimmerParams

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	failing bool
}

// NewTrimmer returns a stopped Trimmer.
func NewTrimmer(b lanewaybroker.Broker, p TrimmerParams) *Trimmer {
	if p.Interval <= 0 {
		p.Interval = IntervalDefault
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	p.Streams = append([]string(nil), p.Streams...)
	return &Trimmer{b: b, p: p}
}

// TrimAll trims every stream once and returns the total removed. It goes on
// after an error and returns the errors joined.
func (t *Trimmer) TrimAll(ctx context.Context) (int64, error) {
	var total int64
	var errs []error
	for _, s := range t.p.Streams {
		n, err := Trim(ctx, t.b, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		total += n
		if n > 0 && t.p.OnTrim != nil {
			t.p.OnTrim(s, n)
		}
	}
	return total, errors.Join(errs...)
}

// Start starts the trim loop; it does not block. The loop runs until Stop
// or until ctx is done.
func (t *Trimmer) Start(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancel != nil {
		return errors.New("retention: trimmer already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t.cancel, t.done = cancel, done
	go func() {
		defer close(done)
		tick := time.NewTicker(t.p.Interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			_, err := t.TrimAll(ctx)
			t.report(ctx, err)
		}
	}()
	return nil
}

// report logs once per state change, not per run.
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
	t.mu.Lock()
	cancel, done := t.cancel, t.done
	t.cancel, t.done = nil, nil
	t.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("retention: stop trimmer: %w", ctx.Err())
	}
}
