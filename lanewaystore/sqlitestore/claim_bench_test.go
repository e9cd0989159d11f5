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
