package sqlitestore

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/laneway/laneway/lanewaystore"
)

// parallelism makes b.RunParallel use about four goroutines.
func parallelism() int { return max(1, 4/runtime.GOMAXPROCS(0)) }

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkInsertOutboxTx is one unit of work: a new aggregate and one
// outbox row in one transaction.
func BenchmarkInsertOutboxTx(b *testing.B) {
	s := benchStore(b)
	var n atomic.Int64
	op := func(ctx context.Context) error {
		i := n.Add(1)
		return s.InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
			id := fmt.Sprint(i)
			if err := tx.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{Category: "customer", ID: id, Data: []byte(`{"name":"Ada"}`)}); err != nil {
				return err
			}
			return tx.InsertOutbox(ctx, []lanewaystore.OutboxRow{{
				MessageID: "m-" + id, StreamName: "customer-" + id, StreamCategory: "customer",
				Type: "Shop.CustomerRegistered.v1", Data: []byte(`{"name":"Ada"}`), Metadata: []byte(`{}`)}})
		})
	}
	runBench(b, op)
}

// BenchmarkRawInsert is a single-row autocommit INSERT into a plain table,
// the floor InsertOutboxTx compares with.
func BenchmarkRawInsert(b *testing.B) {
	s := benchStore(b)
	if _, err := s.write.ExecContext(b.Context(), `CREATE TABLE bench_raw (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	runBench(b, func(ctx context.Context) error {
		_, err := s.write.ExecContext(ctx, `INSERT INTO bench_raw (id, v) VALUES ($1, $2)`, n.Add(1), `{"name":"Ada"}`)
		return err
	})
}

func runBench(b *testing.B, op func(context.Context) error) {
	b.Run("sequential", func(b *testing.B) {
		ctx := b.Context()
		for b.Loop() {
			if err := op(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel4", func(b *testing.B) {
		ctx := b.Context()
		b.SetParallelism(parallelism())
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkCommitMark is one read of the commit mark, which ListenOutbox
// makes after the write-ahead log was written, instead of a claim
// (BenchmarkClaimEmpty).
func BenchmarkCommitMark(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	for b.Loop() {
		if _, err := s.CommitMark(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClaimEmpty is a claim that finds nothing: a write transaction.
func BenchmarkClaimEmpty(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	for b.Loop() {
		rows, err := s.ClaimOutbox(ctx, lanewaystore.ClaimParams{WorkerID: "w", Limit: 500})
		if err != nil || len(rows) != 0 {
			b.Fatal(rows, err)
		}
	}
}
