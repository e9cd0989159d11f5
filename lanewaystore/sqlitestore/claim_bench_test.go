package sqlitestore

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/laneway/laneway/lanewaystore"
)

// BenchmarkClaimOne is the production relay's claim of the one row a
// command just committed, on an otherwise empty outbox.
func BenchmarkClaimOne(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	prod := &lanewaystore.PriorityRange{Min: 0, Max: math.MaxInt}
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		id := fmt.Sprint(i)
		if err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
			return tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{{
				MessageID: "m-" + id, StreamName: "customer-" + id, StreamCategory: "customer",
				Type: "Shop.CustomerRegistered.v1", Data: []byte(`{"name":"Ada"}`), Metadata: []byte(`{}`)}})
		}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rows, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: "w", Limit: 50, Priorities: prod})
		if err != nil || len(rows) != 1 {
			b.Fatal(err, len(rows))
		}
		b.StopTimer()
		if err := s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w", Rows: []lanewaystore.PublishedRow{{ID: rows[0].ID, Stream: "customer"}}}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkClaimByTurns is the relay with lanes on behind a migration: the
// backfill worker claims and marks 10 rows, then the production worker
// claims with its own, larger limit. Before the claim's LIMIT became a cast
// each of those claims compiled the statement again (docs/benchmarks-production-lane.md).
func BenchmarkClaimByTurns(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	prod := &lanewaystore.PriorityRange{Min: 0, Max: math.MaxInt}
	back := &lanewaystore.PriorityRange{Min: math.MinInt, Max: -1}
	next := 0
	refill := func() {
		rows := make([]lanewaystore.OutboxRow, 5000)
		for j := range rows {
			next++
			id := fmt.Sprint(next)
			rows[j] = lanewaystore.OutboxRow{MessageID: "m-" + id, StreamName: "customer-" + id, StreamCategory: "customer",
				Priority: -50, Type: "Shop.CustomerImported.v1", Data: []byte(`{"name":"Ada"}`), Metadata: []byte(`{}`)}
		}
		if err := s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error { return tx.InsertOutbox(ctx, rows) }); err != nil {
			b.Fatal(err)
		}
	}
	refill()
	for b.Loop() {
		rows, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: "w", Limit: 10, Priorities: back})
		if err != nil {
			b.Fatal(err)
		}
		if len(rows) == 0 {
			b.StopTimer()
			refill()
			b.StartTimer()
			continue
		}
		marks := make([]lanewaystore.PublishedRow, len(rows))
		for i, r := range rows {
			marks[i] = lanewaystore.PublishedRow{ID: r.ID, Stream: "customer"}
		}
		if err := s.MarkPublished(ctx, lanewaystore.MarkPublishedParams{WorkerID: "w", Rows: marks}); err != nil {
			b.Fatal(err)
		}
		if _, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: "w", Limit: 100, Priorities: prod}); err != nil {
			b.Fatal(err)
		}
	}
}
