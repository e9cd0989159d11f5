package laneway_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaytest"
)

type Welcome struct{ ID string }

func (Welcome) Kind() string       { return "Welcome" }
func (c Welcome) TargetID() string { return c.ID }

type Remind struct{ ID string }

func (Remind) Kind() string       { return "Remind" }
func (c Remind) TargetID() string { return c.ID }

type Welcomed struct {
	ID string `json:"id"`
}

func (Welcomed) Kind() string { return "Welcomed" }

// followUpDomain: a handler of Opened issues Welcome synchronously and
// Remind asynchronously through its Tx.
func followUpDomain(t *testing.T, reminded chan<- laneway.Priority, fail *atomic.Bool) *laneway.Domain {
	t.Helper()
	b := laneway.NewDomain("Bank")
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{})
	laneway.RegisterEvent[Account, Opened](b)
	laneway.RegisterEvent[Account, Welcomed](b)
	laneway.RegisterCommand[Account, OpenAccount](b, func(ctx context.Context, tx *laneway.Tx, c OpenAccount) error {
		a := laneway.New[Account](c.ID)
		a.Owner = c.Owner
		a.Raise(Opened{Owner: c.Owner})
		return tx.Save(ctx, a)
	})
	laneway.RegisterCommand[Account, Welcome](b, func(ctx context.Context, tx *laneway.Tx, c Welcome) error {
		a, err := laneway.Load[Account](ctx, tx, c.ID)
		if err != nil {
			return err
		}
		a.Raise(Welcomed{ID: c.ID})
		return tx.Save(ctx, a)
	})
	laneway.RegisterCommand[Account, Remind](b, func(ctx context.Context, tx *laneway.Tx, c Remind) error {
		reminded <- tx.Priority()
		return nil
	})
	h := laneway.NewHandler("Onboarding")
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, e Opened, m laneway.Meta) error {
		id := m.Stream[len("account-"):]
		if err := tx.Process(ctx, Welcome{ID: id}, laneway.Sync()); err != nil {
			return err
		}
		if err := tx.Process(ctx, Remind{ID: id}, laneway.Async()); err != nil {
			return err
		}
		if fail.Load() {
			return errors.New("handler failed after issuing its commands")
		}
		return nil
	})
	b.AddHandler(h)
	d, err := b.Build()
	require.NoError(t, err)
	return d
}

// TestHandlerIssuesCommands: a handler issues commands through its Tx, and
// the follow-up work of a LOW event stays on the backfill lane: the event
// raised by the synchronous command and the asynchronous command itself.
func TestHandlerIssuesCommands(t *testing.T) {
	reminded := make(chan laneway.Priority, 4)
	h := lanewaytest.New(t, followUpDomain(t, reminded, new(atomic.Bool)), lanewaytest.Options{})
	ctx := context.Background()
	h.Process(t, laneway.WithPriority(ctx, laneway.Low), OpenAccount{ID: "low", Owner: "a"})
	h.Process(t, ctx, OpenAccount{ID: "normal", Owner: "b"})
	h.Drain(t)

	pubs, err := h.Published(ctx)
	require.NoError(t, err)
	got := map[string]string{}
	for _, p := range pubs {
		got[p.Type+" "+p.Category+" "+p.Priority.String()] = p.Stream
	}
	require.Equal(t, map[string]string{
		"Bank.Opened.v1 account LOW":            "account:backfill",
		"Bank.Welcomed.v1 account LOW":          "account:backfill",
		"Bank.Remind.v1 account:command LOW":    "account:command:backfill",
		"Bank.Opened.v1 account NORMAL":         "account",
		"Bank.Welcomed.v1 account NORMAL":       "account",
		"Bank.Remind.v1 account:command NORMAL": "account:command",
	}, got)
	require.ElementsMatch(t, []laneway.Priority{laneway.Low, laneway.Normal}, []laneway.Priority{<-reminded, <-reminded})
}

// TestTxProcessRollsBackWithTheHandler: a command issued from a handler
// that then fails leaves nothing behind.
func TestTxProcessRollsBackWithTheHandler(t *testing.T) {
	for _, sc := range stores() {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			reminded := make(chan laneway.Priority, 1)
			var fail atomic.Bool
			dom := followUpDomain(t, reminded, &fail)
			app, err := laneway.Open(ctx, dom, nil, laneway.Options{Store: sc.open(t)})
			require.NoError(t, err)
			require.NoError(t, app.Process(laneway.WithPriority(ctx, laneway.Low), OpenAccount{ID: "1", Owner: "a"}))
			entry := firstEvent(t, app)
			fail.Store(true)
			_, err = app.HandleEntry(ctx, dom.Handlers()[0], entry)
			require.ErrorContains(t, err, "handler failed after issuing its commands")
			require.Len(t, outboxPriorities(t, app), 1, "only the Opened row: the handler's commands rolled back")
			assertNoWelcome(t, app)

			fail.Store(false)

			ok, err := app.HandleEntry(ctx, dom.Handlers()[0], entry)
			require.NoError(t, err)
			require.True(t, ok)
			rows := outboxPriorities(t, app)
			require.Len(t, rows, 3, "Opened, then Welcomed and the async Remind, written with the handler")
			for _, r := range rows {
				require.Equal(t, int(laneway.Low), r, "the propagated priority")
			}
		})
	}
}

// outboxPriorities returns the priority of every outbox row, oldest first.
func outboxPriorities(t *testing.T, app *laneway.App) []int {
	t.Helper()
	var out []int
	require.NoError(t, app.Store().InTx(context.Background(), func(ctx context.Context, tx lanewaystore.Tx) error {
		rs, err := tx.Query(ctx, "SELECT priority FROM outbox ORDER BY id")
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var p int
			if err := rs.Scan(&p); err != nil {
				return err
			}
			out = append(out, p)
		}
		return rs.Err()
	}))
	return out
}

// assertNoWelcome: the synchronous Welcome's aggregate write rolled back too
// (the account is still at version 1).
func assertNoWelcome(t *testing.T, app *laneway.App) {
	t.Helper()
	require.NoError(t, app.Store().InTx(context.Background(), func(ctx context.Context, tx lanewaystore.Tx) error {
		rec, err := tx.LoadAggregate(ctx, "account", "1")
		require.NoError(t, err)
		require.Equal(t, int64(1), rec.Version)
		return nil
	}))
}
