package consumer

import (
	"container/heap"
	"time"
)

// This file holds the scheduler's pure decisions, kept free of the broker so
// they can be tested exhaustively.

// slots is the handler-slot accounting of one consumer.
type slots struct {
	Concurrency      int // total handler slots
	BackfillCap      int // most backfill handlers in flight
	PrimaryInflight  int
	BackfillInflight int
	// Lent counts backfill runs in flight whose worker pauses and whose
	// slot primary uses meanwhile (concurrency 1, lend.go).
	Lent int
}

// backfillCap is the backfill slot limit: BackfillConcurrency, but always one
// slot short of Concurrency so primary has a free slot (guarantee 4). At
// Concurrency 1 backfill may use the only slot: primary preempts it between
// messages instead.
func backfillCap(concurrency, backfillConcurrency int) int {
	if concurrency <= 1 {
		return 1
	}
	return max(1, min(backfillConcurrency, concurrency-1))
}

func (s slots) free() int { return s.Concurrency - s.PrimaryInflight - s.BackfillInflight + s.Lent }

// canStart reports whether a handler of lane may start now.
func (s slots) canStart(l Lane) bool {
	if s.free() <= 0 {
		return false
	}
	return l == Primary || s.BackfillInflight < s.BackfillCap
}

// shareCredit implements MinBackfillShare: every primary message started
// earns Share credit, every backfill message started while primary was also
// ready spends 1-Share, so that while primary is saturated backfill gets
// Share of the started messages. Credit is capped at one message so an idle
// backfill lane does not bank a burst.
type shareCredit struct {
	Share  float64
	Credit float64
}

// pick decides which lane starts next: primaryReady / backfillReady say
// whether each lane has a message that may start (slots and key permitting).
// ok is false when nothing may start.
func (c *shareCredit) pick(primaryReady, backfillReady bool) (Lane, bool) {
	switch {
	case primaryReady && backfillReady:
		if c.Share > 0 && c.Credit >= 1-c.Share {
			c.Credit -= 1 - c.Share
			return Backfill, true
		}
		c.earn()
		return Primary, true
	case primaryReady:
		c.earn()
		return Primary, true
	case backfillReady:
		return Backfill, true
	}
	return Primary, false
}

func (c *shareCredit) earn() {
	if c.Share > 0 {
		c.Credit = min(c.Credit+c.Share, 1)
	}
}

// readPlan is the next blocking read the scheduler wants.
type readPlan struct {
	Mode  ReadMode // ReadBlockingBoth or ReadBlockingPrimary; 0 = no read
	Count int
}

// planRead decides the blocking read to have outstanding. queuedP/queuedB
// are entries read but not started.
//
// The consumer keeps between one and two batches (count) read ahead of its
// handlers: it reads a full batch again as soon as no more than one batch
// is queued, so a read is nearly always in flight while handlers work, and
// reads stay large at any concurrency. (With less read-ahead the handlers
// of a no-op projector finished a batch before the next read was back.) (Reading only when
// the queue was empty left the handlers idle for a round trip per batch, and
// reading only as many entries as free slots capped the batches at the
// concurrency.) Read-ahead does not weaken the lane guarantees: primary
// entries queue apart and always start first, backfill handler slots are
// capped when they start (slots.canStart), and preemption comes from the
// reads and probes of primary, which still happen between backfill
// messages.
//
// Above concurrency 1, while backfill entries fill the read-ahead, a
// primary-only read is kept outstanding whenever primary has a free slot
// and nothing queued, so a primary entry is never left unread while a slot
// is free for it. At concurrency 1 the probe between backfill messages does
// that job.
func planRead(s slots, queuedP, queuedB, count int, lanes bool) readPlan {
	kind := ReadBlockingPrimary
	if lanes {
		kind = ReadBlockingBoth
	}
	if s.Concurrency <= 1 && lanes && (queuedB > 0 || s.BackfillInflight > 0) {
		// At concurrency 1 the probe between backfill messages is the check
		// of primary, and it must not run beside a read-ahead: the two
		// could deliver primary entries out of order, and a read-ahead
		// answered during a backfill handler says nothing about a primary
		// entry that came after it. So backfill work reads as before, once
		// the queue is empty and the slot free.
		if s.free() > 0 && queuedP == 0 && queuedB == 0 {
			return readPlan{Mode: kind, Count: count}
		}
		return readPlan{}
	}
	if queuedP+queuedB <= count {
		return readPlan{Mode: kind, Count: count}
	}
	if s.Concurrency <= 1 || !lanes || queuedP > 0 {
		return readPlan{}
	}
	// Backfill entries queued beyond what may start now do not take
	// primary's slots.
	startable := min(queuedB, max(s.BackfillCap-s.BackfillInflight, 0))
	if s.free()-startable > 0 {
		return readPlan{Mode: ReadBlockingPrimary, Count: count}
	}
	return readPlan{}
}

// retryItem is an entry waiting in memory for its next attempt (or for its
// DLQ move to be tried again).
type retryItem struct {
	due time.Time
	key string
}

// retryHeap orders retryItems by due time.
type retryHeap []retryItem

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(retryItem)) }
func (h *retryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func (h *retryHeap) add(it retryItem) { heap.Push(h, it) }

// popDue removes and returns the items due at now, earliest first.
func (h *retryHeap) popDue(now time.Time) []retryItem {
	var out []retryItem
	for h.Len() > 0 && !(*h)[0].due.After(now) {
		out = append(out, heap.Pop(h).(retryItem))
	}
	return out
}

// next is the earliest due time, ok false when empty.
func (h retryHeap) next() (time.Time, bool) {
	if len(h) == 0 {
		return time.Time{}, false
	}
	return h[0].due, true
}

// backoff is the capped exponential wait after broker errors, with jitter.
type backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// next returns the wait for the next attempt, between half and all of the
// current step; jitter in [0,1).
func (b *backoff) next(jitter float64) time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(b.cur*2, b.Max)
	}
	return b.cur/2 + time.Duration(float64(b.cur/2)*jitter)
}

func (b *backoff) reset() { b.cur = 0 }
