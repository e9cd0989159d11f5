package outbox

import (
	"context"
	"errors"
	"sync"

	"github.com/laneway/laneway/lanewaystore"
)

// The hand-off's marks run behind its publishes.
//
// Once a hand-off batch is in the broker, marking its rows published is
// bookkeeping: a mark that fails or never runs leaves the rows leased, and
// they are published again when the lease ends (at-least-once). So the
// production worker does not wait for a mark before it publishes the next
// rows handed over. A mark waits for the database behind a migration's
// claims and marks (on SQLite behind its one writer, on PostgreSQL behind
// their statements on two busy cores): a one-row mark took up to 38 ms on
// PostgreSQL, and production rows committed meanwhile waited with it
// (docs/benchmarks-production-lane.md).
//
// One mark runs at a time, so the hand-off holds at most one of the
// store's connections for its marks, and the rows published while it runs
// are marked together by the next: the slower the database, the fewer and
// larger the marks. Past maxUnmarkedRows published and not yet marked, the
// worker waits for the marks before it publishes more: the rows published
// and not marked when the process dies or the database goes away stay
// leased and are published again when their lease ends, so the bound is
// the duplicates this design can add to the batch in flight.

// maxUnmarkedRows bounds the hand-off's rows published and not yet marked.
// Behind a migration a mark took up to 38 ms, in which about 8 production
// rows arrive at 200 a second; 128 leaves room for a faster producer or a
// slower mark without holding the worker, and keeps a database outage's
// duplicates near the one batch the worker held back before the marks ran
// behind.
const maxUnmarkedRows = 128

// marker marks the hand-off's published rows in the background, one
// MarkPublished at a time. Its goroutine runs while rows wait, and wait
// returns once it has ended; the production worker waits for it before it
// stops.
type marker struct {
	r *Relay

	mu      sync.Mutex
	rows    []lanewaystore.OutboxRow
	marks   []lanewaystore.PublishedRow
	idle    chan struct{} // closed when the goroutine ends; nil while none runs
	marked  int           // rows marked since the last collect
	err     error         // marks failed since the last collect
	unsaved int           // rows handed to the marker and not yet marked or failed
}

// add queues published rows for marking and starts the goroutine if none
// runs. ctx is the worker's; a mark outlives its cancellation for
// batchFinishTimeout, as every mark does.
func (m *marker) add(ctx context.Context, rows []lanewaystore.OutboxRow, marks []lanewaystore.PublishedRow) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = append(m.rows, rows...)
	m.marks = append(m.marks, marks...)
	m.unsaved += len(rows)
	if m.idle != nil {
		return
	}
	idle := make(chan struct{})
	m.idle = idle
	go func() {
		defer close(idle)
		m.run(ctx)
	}()
}

// run marks the queued rows until none is left.
func (m *marker) run(ctx context.Context) {
	for {
		m.mu.Lock()
		rows, marks := m.rows, m.marks
		m.rows, m.marks = nil, nil
		if len(rows) == 0 {
			m.idle = nil
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		n, err := m.r.markPublished(ctx, rows, marks)
		m.mu.Lock()
		m.marked += n
		m.err = errors.Join(m.err, err)
		m.unsaved -= len(rows)
		m.mu.Unlock()
	}
}

// full reports whether the worker should wait for the marks before it
// publishes more.
func (m *marker) full() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unsaved >= maxUnmarkedRows
}

// collect returns the rows marked and the marks' errors since the last
// collect, without waiting.
func (m *marker) collect() (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.marked, m.err
	m.marked, m.err = 0, nil
	return n, err
}

// wait waits until every queued row is marked (or its mark failed), then
// collects.
func (m *marker) wait() (int, error) {
	m.mu.Lock()
	idle := m.idle
	m.mu.Unlock()
	if idle != nil {
		<-idle
	}
	return m.collect()
}
