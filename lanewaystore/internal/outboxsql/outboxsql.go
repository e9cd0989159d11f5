// Package outboxsql holds what the SQLite and PostgreSQL stores share of the
// outbox: the statements they run word for word (both accept $N
// placeholders), and the parameters' defaults and the claim's order.
// Statements that differ between the two (the claim, the marks, the
// cleanup) stay in their store, next to the reason they differ.
package outboxsql

import (
	"cmp"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/laneway/laneway/lanewaystore"
)

// Defaults for zero-valued parameters, the same in every store.
const (
	// LeaseDefault is the claim lease when ClaimParams.Lease is zero.
	LeaseDefault = 5 * time.Minute
	// CleanupLimitDefault bounds CleanupOutbox when CleanupParams.Limit is zero.
	CleanupLimitDefault = 1000
	// ListLimitDefault bounds ListOutbox when ListOutboxParams.Limit is zero.
	ListLimitDefault = 100
)

// Columns are the outbox columns in the order the stores scan them.
const Columns = `id, message_id, stream_name, stream_category, type, data, metadata, priority, status,
	retry_count, next_retry_at, locked_by, locked_until, last_error, created_at, published_at, published_stream,
	lapsed_lease_until`

// ClaimLapsed is the claim's assignment of lapsed_lease_until
// (OutboxRow.LapsedLease): a row still holding a lease when it is claimed
// was left by a relay whose lease ran out, and the end of that lease is
// recorded unless an earlier one already is (every attempt since the first
// unsettled one may have appended the row); a row without a lease keeps
// what a failed publish recorded. SET expressions read the row as it was
// before the claim.
const ClaimLapsed = `lapsed_lease_until = CASE WHEN locked_by IS NOT NULL` + lapsedThen

// FailedLapsed is MarkFailed's assignment of lapsed_lease_until, with the
// placeholder of a boolean parameter that is true when the rows were sent
// to the broker: a failed reply says nothing of whether the append landed.
func FailedLapsed(sentParam string) string {
	return `lapsed_lease_until = CASE WHEN ` + sentParam + lapsedThen
}

// lapsedThen ends both assignments: the row's lease end is recorded unless
// an earlier one is.
const lapsedThen = ` THEN COALESCE(lapsed_lease_until, locked_until) ELSE lapsed_lease_until END`

// ReportedStatus is lanewaystore.ReportedStatus in SQL: a leased row
// (locked_by set) that is stored pending or failed is reported processing.
const ReportedStatus = `CASE WHEN locked_by IS NOT NULL AND status IN ('pending', 'failed')
	THEN 'processing' ELSE status END`

// Counts counts rows by reported status and priority.
const Counts = `SELECT ` + ReportedStatus + ` AS s, priority, count(*) FROM outbox GROUP BY s, priority ORDER BY s, priority DESC`

// OldestPending is the creation time of the oldest row waiting for a claim.
const OldestPending = `SELECT min(created_at) FROM outbox WHERE status IN ('pending', 'failed') AND locked_by IS NULL`

// List lists rows newest first, of reported status $1 (” for all), at most $2.
const List = `SELECT ` + Columns + ` FROM outbox
	WHERE ($1 = '' OR ` + ReportedStatus + ` = $1) ORDER BY created_at DESC, id DESC LIMIT $2`

// ListLimit is p's limit, ListLimitDefault when zero.
func ListLimit(p lanewaystore.ListOutboxParams) int {
	if p.Limit <= 0 {
		return ListLimitDefault
	}
	return p.Limit
}

// Retry is the statement of RetryOutbox: it resets failed or abandoned rows
// to pending (the row p.ID, or every abandoned row when p.Abandoned is set)
// with retry_count 0 and no lease or next_retry_at; last_error stays as
// history until the next failure overwrites it. Rows in other states, and
// leased rows, are left alone.
func Retry(p lanewaystore.RetryOutboxParams) (query string, args []any, err error) {
	const reset = `UPDATE outbox SET status = 'pending', retry_count = 0, next_retry_at = NULL,
		locked_by = NULL, locked_until = NULL WHERE `
	switch {
	case p.ID != 0 && p.Abandoned:
		return "", nil, errors.New("retry outbox: set ID or Abandoned, not both")
	case p.ID != 0:
		return reset + `id = $1 AND status IN ('failed', 'abandoned') AND locked_by IS NULL`, []any{p.ID}, nil
	case p.Abandoned:
		return reset + `status = 'abandoned'`, nil, nil
	}
	return "", nil, errors.New("retry outbox: set ID or Abandoned")
}

// Claim is a claim's parameters with the defaults applied, the same in
// every store; only the statement that leases the rows differs.
type Claim struct {
	WorkerID string
	Limit    int
	// Now is the claim's clock: a lease or a retry delay that ended by then
	// no longer holds a row back.
	Now time.Time
	// LockedUntil is Now plus the lease.
	LockedUntil time.Time
	// MinPriority and MaxPriority bound the priority predicate ("priority
	// BETWEEN min AND max").
	MinPriority, MaxPriority int32
}

// NewClaim applies p's defaults: a zero Lease is LeaseDefault, a zero Now
// the wall clock, no Priorities the whole 32-bit range of the column. ok is
// false when p claims nothing (Limit <= 0).
func NewClaim(p lanewaystore.ClaimParams) (c Claim, ok bool, err error) {
	if p.Limit <= 0 {
		return Claim{}, false, nil
	}
	if p.WorkerID == "" {
		return Claim{}, false, errors.New("claim outbox: empty WorkerID")
	}
	c = Claim{WorkerID: p.WorkerID, Limit: p.Limit, Now: p.Now}
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
	lease := p.Lease
	if lease <= 0 {
		lease = LeaseDefault
	}
	c.LockedUntil = c.Now.Add(lease)
	c.MinPriority, c.MaxPriority = claimPriorities(p.Priorities)
	return c, true, nil
}

// SortClaimed puts claimed rows in the order ClaimOutbox returns them,
// priority DESC, created_at, id: the order of an UPDATE's RETURNING is
// unspecified.
func SortClaimed(rows []lanewaystore.OutboxRow) {
	slices.SortFunc(rows, func(a, b lanewaystore.OutboxRow) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// CleanupLimit is p's limit, CleanupLimitDefault when zero.
func CleanupLimit(p lanewaystore.CleanupParams) int {
	if p.Limit <= 0 {
		return CleanupLimitDefault
	}
	return p.Limit
}

// claimPriorities are the bounds of a claim's priority predicate, the whole
// 32-bit range of the column when p is nil. Out-of-range bounds are clamped,
// since PostgreSQL rejects an int4 parameter beyond it.
func claimPriorities(p *lanewaystore.PriorityRange) (lo, hi int32) {
	if p == nil {
		return math.MinInt32, math.MaxInt32
	}
	return clamp32(p.Min), clamp32(p.Max)
}

func clamp32(v int) int32 {
	return int32(max(min(v, math.MaxInt32), math.MinInt32))
}

// Now is now, or the wall clock when now is zero.
func Now(now time.Time) time.Time {
	if now.IsZero() {
		return time.Now()
	}
	return now
}
