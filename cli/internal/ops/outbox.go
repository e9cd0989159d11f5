package ops

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
)

// OutboxStatuses lists the row statuses in lifecycle order.
var OutboxStatuses = []lanewaystore.OutboxStatus{
	lanewaystore.StatusPending, lanewaystore.StatusProcessing, lanewaystore.StatusPublished,
	lanewaystore.StatusFailed, lanewaystore.StatusAbandoned,
}

// ParseOutboxStatus reads a --status value ("" is every status).
func ParseOutboxStatus(s string) (lanewaystore.OutboxStatus, error) {
	if s == "" {
		return "", nil
	}
	for _, st := range OutboxStatuses {
		if strings.EqualFold(s, string(st)) {
			return st, nil
		}
	}
	return "", fmt.Errorf("--status %q: use pending, processing, published, failed or abandoned", s)
}

// StoreErr turns a missing outbox table into the command that creates it.
func StoreErr(err error, db lanewayconfig.Database) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if strings.Contains(msg, "no such table") || (strings.Contains(msg, "outbox") && strings.Contains(msg, "does not exist")) {
		return fmt.Errorf("the %s database %s has no outbox table: run `laneway db setup` (or start the engine)", db.Provider, lanewayconfig.RedactURL(db.URL))
	}
	return err
}

// OutboxStatus is `laneway outbox status --json`.
type OutboxStatus struct {
	Database   string           `json:"database"`
	Total      int64            `json:"total"`
	ByStatus   map[string]int64 `json:"by_status"`
	ByPriority []OutboxPriority `json:"by_priority"`
	// OldestPendingAt is the creation time of the oldest row not yet
	// published (pending or failed); nil when there is none.
	OldestPendingAt         *time.Time `json:"oldest_pending_at"`
	OldestPendingAgeSeconds *float64   `json:"oldest_pending_age_seconds"`
}

// OutboxPriority counts one priority's rows by status.
type OutboxPriority struct {
	Priority int              `json:"priority"`
	Name     string           `json:"name"`
	Total    int64            `json:"total"`
	ByStatus map[string]int64 `json:"by_status"`
}

func zeroCounts() map[string]int64 {
	m := map[string]int64{}
	for _, s := range OutboxStatuses {
		m[string(s)] = 0
	}
	return m
}

// CountOutbox counts the outbox rows by status and priority, highest
// priority first.
func CountOutbox(ctx context.Context, st lanewaystore.Store, db lanewayconfig.Database) (OutboxStatus, error) {
	stats, err := st.OutboxStats(ctx)
	if err != nil {
		return OutboxStatus{}, StoreErr(err, db)
	}
	out := OutboxStatus{Database: db.Provider, ByStatus: zeroCounts(), ByPriority: []OutboxPriority{}, OldestPendingAt: stats.OldestPending}
	if out.Database == "" {
		out.Database = lanewayconfig.DatabaseProviderSQLite
	}
	prios := map[int]*OutboxPriority{}
	for _, c := range stats.Counts {
		out.Total += c.Count
		out.ByStatus[string(c.Status)] += c.Count
		p := prios[c.Priority]
		if p == nil {
			p = &OutboxPriority{Priority: c.Priority, Name: laneway.Priority(c.Priority).String(), ByStatus: zeroCounts()}
			prios[c.Priority] = p
		}
		p.Total += c.Count
		p.ByStatus[string(c.Status)] += c.Count
	}
	for _, p := range prios {
		out.ByPriority = append(out.ByPriority, *p)
	}
	sort.Slice(out.ByPriority, func(i, j int) bool { return out.ByPriority[i].Priority > out.ByPriority[j].Priority })
	if stats.OldestPending != nil {
		a := time.Since(*stats.OldestPending).Seconds()
		out.OldestPendingAgeSeconds = &a
	}
	return out, nil
}

// OutboxRow is one row of `laneway outbox list --json` (the payload is left
// out: it can be large, and SQL shows it when needed).
type OutboxRow struct {
	ID              int64      `json:"id"`
	MessageID       string     `json:"message_id"`
	StreamName      string     `json:"stream_name"`
	StreamCategory  string     `json:"stream_category"`
	Type            string     `json:"type"`
	Priority        int        `json:"priority"`
	Status          string     `json:"status"`
	RetryCount      int        `json:"retry_count"`
	NextRetryAt     *time.Time `json:"next_retry_at"`
	LockedBy        string     `json:"locked_by"`
	LockedUntil     *time.Time `json:"locked_until"`
	LastError       string     `json:"last_error"`
	CreatedAt       time.Time  `json:"created_at"`
	PublishedAt     *time.Time `json:"published_at"`
	PublishedStream string     `json:"published_stream"`
	// LapsedLeaseUntil is set on a row an earlier attempt left unsettled:
	// the relay looks for it in its stream before appending it again.
	LapsedLeaseUntil *time.Time `json:"lapsed_lease_until"`
}

// ListOutbox returns rows, newest first, of one status ("" for all).
func ListOutbox(ctx context.Context, st lanewaystore.Store, db lanewayconfig.Database, status lanewaystore.OutboxStatus, limit int) ([]OutboxRow, error) {
	rows, err := st.ListOutbox(ctx, lanewaystore.ListOutboxParams{Status: status, Limit: limit})
	if err != nil {
		return nil, StoreErr(err, db)
	}
	out := make([]OutboxRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, OutboxRow{
			ID: r.ID, MessageID: r.MessageID, StreamName: r.StreamName, StreamCategory: r.StreamCategory,
			Type: r.Type, Priority: r.Priority, Status: string(r.Status), RetryCount: r.RetryCount,
			NextRetryAt: r.NextRetryAt, LockedBy: r.LockedBy, LockedUntil: r.LockedUntil, LastError: r.LastError,
			CreatedAt: r.CreatedAt, PublishedAt: r.PublishedAt, PublishedStream: r.PublishedStream,
			LapsedLeaseUntil: r.LapsedLease,
		})
	}
	return out, nil
}

// ErrNotRetryable is returned when RetryOutbox is given the id of a row
// that is not failed or abandoned (or of no row at all).
var ErrNotRetryable = errors.New("not a failed or abandoned outbox row")

type notRetryable int64

func (id notRetryable) Error() string {
	return fmt.Sprintf("no failed or abandoned outbox row with id %d (only those can be retried; see `laneway outbox list --status failed`)", int64(id))
}

func (notRetryable) Is(target error) bool { return target == ErrNotRetryable }

// Retried is `laneway outbox retry --json`: how many rows were reset.
type Retried struct {
	Reset int64 `json:"reset"`
}

// RetryOutbox resets one failed or abandoned row (id > 0), or every
// abandoned row, to pending. Retrying an id that is not failed or
// abandoned is an error saying so.
func RetryOutbox(ctx context.Context, st lanewaystore.Store, db lanewayconfig.Database, id int64, abandoned bool) (Retried, error) {
	n, err := st.RetryOutbox(ctx, lanewaystore.RetryOutboxParams{ID: id, Abandoned: abandoned})
	if err != nil {
		return Retried{}, StoreErr(err, db)
	}
	if !abandoned && n == 0 {
		return Retried{}, notRetryable(id)
	}
	return Retried{Reset: n}, nil
}

// AbandonedCount is the number of abandoned rows.
func AbandonedCount(ctx context.Context, st lanewaystore.Store, db lanewayconfig.Database) (int64, error) {
	stats, err := st.OutboxStats(ctx)
	if err != nil {
		return 0, StoreErr(err, db)
	}
	var n int64
	for _, c := range stats.Counts {
		if c.Status == lanewaystore.StatusAbandoned {
			n += c.Count
		}
	}
	return n, nil
}
