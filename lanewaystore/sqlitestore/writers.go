package sqlitestore

import (
	"context"
	"slices"
	"sync"
)

// writerQueue orders the process's write transactions on the one writer
// connection: production writes before backfill writes (those whose
// context is marked by lanewaystore.AsBackfill), each kind in arrival
// order. database/sql hands a freed connection to a random waiter, so
// without the queue a production command's commit, or the production
// relay's claim, could wait behind several backfill claims, marks and
// migration commits in turn; with it, it waits for at most the transaction
// that holds the writer (and, under a sustained production load, one
// backfill transaction per productionBurst).
type writerQueue struct {
	mu   sync.Mutex
	held bool
	// waiting: [0] production, [1] backfill, each oldest first.
	waiting [2][]*writeWaiter
	// passed counts the production writers let in, in a row, while a
	// backfill writer waited.
	passed int
}

// productionBurst bounds how many production writers in a row go before a
// waiting backfill writer: a production load that keeps the writer busy
// slows backfill down but never stops it. A relay batch whose mark never
// ran would otherwise be published again once its lease expired.
const productionBurst = 8

type writeWaiter struct{ granted chan struct{} }

// acquire waits for the writer. It fails only when ctx ends first.
func (q *writerQueue) acquire(ctx context.Context, backfill bool) error {
	q.mu.Lock()
	if !q.held {
		q.held = true
		q.mu.Unlock()
		return nil
	}
	kind := 0
	if backfill {
		kind = 1
	}
	me := &writeWaiter{granted: make(chan struct{})}
	q.waiting[kind] = append(q.waiting[kind], me)
	q.mu.Unlock()

	select {
	case <-me.granted:
		return nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	select {
	case <-me.granted:
		// Granted while ctx ended: hand the writer on.
		q.mu.Unlock()
		q.release()
		return ctx.Err()
	default:
	}
	q.waiting[kind] = slices.DeleteFunc(q.waiting[kind], func(w *writeWaiter) bool { return w == me })
	q.mu.Unlock()
	return ctx.Err()
}

// release hands the writer to the next waiter, or frees it.
func (q *writerQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	prod, back := len(q.waiting[0]) > 0, len(q.waiting[1]) > 0
	kind := 0
	switch {
	case prod && (!back || q.passed < productionBurst):
		if back {
			q.passed++
		}
	case back:
		kind, q.passed = 1, 0
	default:
		q.held, q.passed = false, 0
		return
	}
	next := q.waiting[kind][0]
	q.waiting[kind][0] = nil
	q.waiting[kind] = q.waiting[kind][1:]
	close(next.granted)
}

// queued returns how many writers of each kind wait (for tests).
func (q *writerQueue) queued() (production, backfill int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting[0]), len(q.waiting[1])
}
