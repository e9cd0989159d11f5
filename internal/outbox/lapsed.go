package outbox

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaystore"
)

// A row claimed with a LapsedLease was left unsettled by an earlier attempt
// that may have appended it: the relay died between the append and the
// mark, the database went away before the mark, or the append's reply was
// lost. Appending it again would put a second copy in the stream, which
// every consumer then handles twice. So before a claimed batch is
// appended, the relay reads the streams of such rows from just before the
// first unsettled attempt began, and rows it finds there are marked
// published without a second append. The read is bounded; a row not found
// within the bound is appended again (at-least-once, as before).
const (
	// lapsedClockSkew widens the window read below the attempt's start:
	// stream ids come from the Redis server's clock, leases from the
	// relay's.
	lapsedClockSkew = 10 * time.Second
	// lapsedScanLimit bounds the entries read from one stream per batch:
	// past it the remaining rows are appended again.
	lapsedScanLimit = 100_000
	lapsedPage      = 1000
)

// findAppended returns which of rows (published to pubs[i].Stream) are
// already in their streams: found[i] is set for each. It reads only for
// rows with a LapsedLease, and returns nil when there are none.
//
// With MinReplicasAcked set, a copy found on the primary may not have
// reached the replicas (the reply lost may have been WAIT's), and a
// failover would then lose the row. The copies found precede, in the
// primary's replication stream, every write made after the search: the
// rows appended with them are published under WAIT (publishEntries), and
// when none is left to append appendRows waits for replicas itself
// (waitFound). On a broker that cannot wait it returns nil: the rows are
// appended again under WAIT, a duplicate rather than a loss.
func (r *Relay) findAppended(ctx context.Context, rows []lanewaystore.OutboxRow, pubs []lanewaybroker.Publication) ([]bool, error) {
	if r.cfg.MinReplicasAcked > 0 {
		if _, ok := r.broker.(lanewaybroker.ReplicaWaiter); !ok {
			return nil, nil
		}
	}
	type search struct {
		from   time.Time
		sought map[string]int // message id → index in rows
	}
	var byStream map[string]*search
	var order []string
	for i, row := range rows {
		if row.LapsedLease == nil {
			continue
		}
		// The attempt began at the latest one lease before its end.
		from := row.LapsedLease.Add(-r.cfg.Lease - lapsedClockSkew)
		if byStream == nil {
			byStream = map[string]*search{}
		}
		s := byStream[pubs[i].Stream]
		if s == nil {
			s = &search{from: from, sought: map[string]int{}}
			byStream[pubs[i].Stream] = s
			order = append(order, pubs[i].Stream)
		}
		if from.Before(s.from) {
			s.from = from
		}
		s.sought[row.MessageID] = i
	}
	if byStream == nil {
		return nil, nil
	}
	found := make([]bool, len(rows))
	for _, stream := range order {
		s := byStream[stream]
		if err := r.scanFor(ctx, stream, s.from, s.sought, found); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// scanFor reads stream from the entries written at from onwards, sets
// found[i] for each sought message id it meets, and stops when all are
// found, the stream ends, or lapsedScanLimit entries were read.
func (r *Relay) scanFor(ctx context.Context, stream string, from time.Time, sought map[string]int, found []bool) error {
	start := "-"
	if ms := from.UnixMilli(); ms > 0 {
		start = strconv.FormatInt(ms, 10) + "-0"
	}
	left := len(sought)
	for read := 0; read < lapsedScanLimit && left > 0; {
		entries, err := r.broker.Range(ctx, stream, start, "+", lapsedPage)
		if err != nil {
			return fmt.Errorf("outbox: look for rows already in %s: %w", stream, err)
		}
		for _, e := range entries {
			env, err := envelope.DecodeString(e.Data)
			if err != nil {
				continue // not an entry of ours: it cannot be one of the rows
			}
			if i, ok := sought[env.Metadata.Headers.ID]; ok && !found[i] {
				found[i] = true
				left--
			}
		}
		read += len(entries)
		if len(entries) < lapsedPage {
			break
		}
		start = "(" + entries[len(entries)-1].ID
	}
	return nil
}

// withoutFound returns rows and pubs without the ones found appended.
func withoutFound(rows []lanewaystore.OutboxRow, pubs []lanewaybroker.Publication, found []bool) ([]lanewaystore.OutboxRow, []lanewaybroker.Publication) {
	restRows := make([]lanewaystore.OutboxRow, 0, len(rows))
	restPubs := make([]lanewaybroker.Publication, 0, len(pubs))
	for i := range rows {
		if !found[i] {
			restRows = append(restRows, rows[i])
			restPubs = append(restPubs, pubs[i])
		}
	}
	return restRows, restPubs
}

// countFound counts and logs n rows found appended; appended rows of the
// same batch are appended now.
func (r *Relay) countFound(n, appended int) {
	if n == 0 {
		return
	}
	r.foundAppended.Add(int64(n))
	if o, ok := r.cfg.Observer.(foundAppendedObserver); ok {
		o.FoundAppended(n)
	}
	r.log.Info("outbox rows an unsettled attempt had appended are marked published without a second copy",
		"rows", n, "appended_now", appended)
}

// foundAppendedObserver is implemented by observers that count the rows
// found already appended (the metrics do).
type foundAppendedObserver interface {
	FoundAppended(n int)
}

// waitFound makes sure, with MinReplicasAcked set, that the copies found by
// findAppended reached the replicas, when no append of the batch does.
func (r *Relay) waitFound(ctx context.Context) error {
	if r.cfg.MinReplicasAcked <= 0 {
		return nil
	}
	rw, ok := r.broker.(lanewaybroker.ReplicaWaiter)
	if !ok {
		return nil // findAppended found nothing on such a broker
	}
	return rw.WaitReplicated(ctx, r.cfg.MinReplicasAcked, r.cfg.ReplicasTimeout)
}
