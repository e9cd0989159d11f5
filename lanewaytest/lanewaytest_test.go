package lanewaytest_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/lanewaytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type Order struct {
	laneway.AggregateRoot
	Item string `json:"item"`
}

type PlaceOrder struct{ ID, Item string }

func (PlaceOrder) Kind() string { return "PlaceOrder" }

type OrderPlaced struct {
	ID   string `json:"id"`
	Item string `json:"item"`
}

func (OrderPlaced) Kind() string { return "OrderPlaced" }

func domain(t *testing.T, seen *sync.Map) *laneway.Domain {
	b := laneway.NewDomain("Shop")
	laneway.RegisterAggregate[Order](b, laneway.AggregateOptions{})
	laneway.RegisterEvent[Order, OrderPlaced](b)
	laneway.RegisterCommand[Order, PlaceOrder](b, func(ctx context.Context, tx *laneway.Tx, c PlaceOrder) error {
		o := laneway.New[Order](c.ID)
		o.Item = c.Item
		o.Raise(OrderPlaced{ID: c.ID, Item: c.Item})
		return tx.Save(ctx, o)
	})
	h := laneway.NewHandler("Fulfilment")
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, e OrderPlaced, m laneway.Meta) error {
		if e.Item == "poison" {
			return errors.New("cannot fulfil poison")
		}
		seen.Store(e.ID, m.Priority)
		return nil
	})
	b.AddHandler(h)
	d, err := b.Build()
	require.NoError(t, err)
	return d
}

func TestHarness(t *testing.T) {
	var seen sync.Map
	h := lanewaytest.New(t, domain(t, &seen), lanewaytest.Options{})
	ctx := context.Background()
	h.Process(t, ctx, PlaceOrder{ID: "1", Item: "book"})
	h.Process(t, laneway.WithPriority(ctx, laneway.Low), PlaceOrder{ID: "2", Item: "lamp"})
	h.Process(t, laneway.WithPriority(ctx, laneway.Low), PlaceOrder{ID: "3", Item: "poison"})
	h.Drain(t)

	p, ok := seen.Load("1")
	require.True(t, ok)
	require.Equal(t, laneway.Normal, p)
	p, ok = seen.Load("2")
	require.True(t, ok)
	require.Equal(t, laneway.Low, p, "the handler ran under the backfill message's priority")

	dlq := h.Entries(t, "order:backfill:dlq")
	require.Len(t, dlq, 1, "the poison backfill event is dead-lettered on its own lane")
	var entry struct {
		DLQ struct {
			OriginalStream string `json:"original_stream"`
			RetryCount     int    `json:"retry_count"`
			FailureReason  string `json:"failure_reason"`
		} `json:"_dlq_metadata"`
	}
	require.NoError(t, json.Unmarshal([]byte(dlq[0].Data), &entry))
	require.Equal(t, "order:backfill", entry.DLQ.OriginalStream)
	require.Equal(t, 3, entry.DLQ.RetryCount)
	require.Contains(t, entry.DLQ.FailureReason, "cannot fulfil poison")
	require.Empty(t, h.Entries(t, "order:dlq"))
	require.Zero(t, h.Len(t, "order:backfill"), "Drain trims handled entries, so lengths say nothing of routing")

	// Routing is read from the outbox: the stream each message went to.
	pubs, err := h.Published(context.Background())
	require.NoError(t, err)
	lanes := map[string]string{}
	for _, p := range pubs {
		require.Equal(t, "Shop.OrderPlaced.v1", p.Type)
		require.Equal(t, "order", p.Category)
		lanes[p.MessageID] = p.Stream
	}
	require.Equal(t, map[string]string{"order-1-1.1": "order", "order-2-1.1": "order:backfill", "order-3-1.1": "order:backfill"}, lanes)
}

// TestStartOutsideATest: the harness without a testing.TB, as a demo or a
// tool would run it; Close releases everything (goleak checks it).
func TestStartOutsideATest(t *testing.T) {
	var seen sync.Map
	ctx := context.Background()
	h, err := lanewaytest.Start(ctx, domain(t, &seen), t.TempDir(), lanewaytest.Options{LanesOff: true})
	require.NoError(t, err)
	require.NoError(t, h.App.Process(laneway.WithPriority(ctx, laneway.Low), PlaceOrder{ID: "9", Item: "pen"}))
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, h.Wait(wctx))
	_, ok := seen.Load("9")
	require.True(t, ok)
	pubs, err := h.Published(ctx)
	require.NoError(t, err)
	require.Len(t, pubs, 1)
	require.Equal(t, "order", pubs[0].Stream, "lanes off: everything on the primary stream")
	require.NoError(t, h.Close())
	require.NoError(t, h.Close(), "a second Close does nothing")

	notADir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notADir, nil, 0o600))
	bad, err := lanewaytest.Start(ctx, domain(t, &seen), notADir, lanewaytest.Options{})
	if err == nil {
		_ = bad.Close()
	}
	require.ErrorContains(t, err, "lanewaytest: open sqlite")
}
