package laneway_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/lanewaystore"
)

// handlerDomain is the Bank domain with one event handler, run for each
// Opened event.
func handlerDomain(t *testing.T, fn func(ctx context.Context, tx *laneway.Tx) error) *laneway.Domain {
	t.Helper()
	b := laneway.NewDomain("Bank")
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{})
	laneway.RegisterEvent[Account, Opened](b)
	laneway.RegisterCommand[Account, OpenAccount](b, func(ctx context.Context, tx *laneway.Tx, c OpenAccount) error {
		a := laneway.New[Account](c.ID)
		a.Owner = c.Owner
		a.Raise(Opened{Owner: c.Owner})
		return tx.Save(ctx, a)
	})
	h := laneway.NewHandler("H")
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, _ Opened, _ laneway.Meta) error { return fn(ctx, tx) })
	b.AddHandler(h)
	d, err := b.Build()
	require.NoError(t, err)
	return d
}

// firstEvent returns the stream entry value of the oldest outbox row.
func firstEvent(t *testing.T, app *laneway.App) []byte {
	t.Helper()
	var env []byte
	require.NoError(t, app.Store().InTx(context.Background(), func(ctx context.Context, tx lanewaystore.Tx) error {
		var data, meta string
		if err := tx.QueryRow(ctx, "SELECT data, metadata FROM outbox ORDER BY id LIMIT 1").Scan(&data, &meta); err != nil {
			return err
		}
		env = []byte(`{"data":` + data + `,"metadata":` + meta + `}`)
		return nil
	}))
	return env
}

// TestUnitOfWorkBeginsOnFirstUse: a handler that does not touch the
// database holds no transaction while it works. On SQLite, whose one writer
// connection every unit of work shares, an eager transaction would block
// every other writer until the handler returned.
func TestUnitOfWorkBeginsOnFirstUse(t *testing.T) {
	for _, sc := range stores() {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			started, release := make(chan struct{}), make(chan struct{})
			dom := handlerDomain(t, func(ctx context.Context, _ *laneway.Tx) error {
				close(started)
				<-release // a slow email, say
				return nil
			})
			app, err := laneway.Open(ctx, dom, nil, laneway.Options{Store: sc.open(t)})
			require.NoError(t, err)
			require.NoError(t, app.Process(ctx, OpenAccount{ID: "1", Owner: "ann"}))
			h := dom.Handlers()[0]

			dispatched := make(chan error, 1)
			go func() {
				_, err := app.HandleEntry(ctx, h, firstEvent(t, app))
				dispatched <- err
			}()
			<-started
			// While the handler works, another unit of work commits.
			processed := make(chan error, 1)
			go func() { processed <- app.Process(ctx, OpenAccount{ID: "2", Owner: "bob"}) }()
			var perr error
			require.Eventually(t, func() bool {
				select {
				case perr = <-processed:
					return true
				default:
					return false
				}
			}, 30*time.Second, 5*time.Millisecond, "Process must not wait for a handler that holds no transaction")
			require.NoError(t, perr)
			close(release)
			require.NoError(t, <-dispatched)
		})
	}
}

func TestUnitOfWorkRollsBackAndReleases(t *testing.T) {
	for _, sc := range stores() {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			var mode string
			dom := handlerDomain(t, func(ctx context.Context, tx *laneway.Tx) error {
				if _, err := tx.Exec(ctx, "INSERT INTO side_effects (v) VALUES ($1)", mode); err != nil {
					return err
				}
				switch mode {
				case "panic":
					panic("handler bug")
				case "error":
					return errors.New("handler failed")
				}
				return nil
			})
			app, err := laneway.Open(ctx, dom, nil, laneway.Options{Store: sc.open(t)})
			require.NoError(t, err)
			require.NoError(t, app.Store().InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
				_, err := tx.Exec(ctx, "CREATE TABLE side_effects (v TEXT NOT NULL)")
				return err
			}))
			require.NoError(t, app.Process(ctx, OpenAccount{ID: "1", Owner: "ann"}))
			h, env := dom.Handlers()[0], firstEvent(t, app)

			mode = "panic"
			require.PanicsWithValue(t, "handler bug", func() { _, _ = app.HandleEntry(ctx, h, env) })
			mode = "error"
			_, err = app.HandleEntry(ctx, h, env)
			require.ErrorContains(t, err, "handler failed")
			mode = "ok"
			_, err = app.HandleEntry(ctx, h, env)
			require.NoError(t, err, "the connection was released after the panic and the error")

			var got []string
			require.NoError(t, app.Store().InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
				rs, err := tx.Query(ctx, "SELECT v FROM side_effects")
				if err != nil {
					return err
				}
				defer rs.Close()
				for rs.Next() {
					var v string
					if err := rs.Scan(&v); err != nil {
						return err
					}
					got = append(got, v)
				}
				return rs.Err()
			}))
			require.Equal(t, []string{"ok"}, got, "the panicking and the failing unit of work were rolled back")
		})
	}
}

func TestTxUsedAfterItsUnitOfWork(t *testing.T) {
	ctx := context.Background()
	var kept *laneway.Tx
	dom := handlerDomain(t, func(_ context.Context, tx *laneway.Tx) error { kept = tx; return nil })
	app, err := laneway.Open(ctx, dom, nil, laneway.Options{Store: stores()[0].open(t)})
	require.NoError(t, err)
	require.NoError(t, app.Process(ctx, OpenAccount{ID: "1", Owner: "ann"}))
	_, err = app.HandleEntry(ctx, dom.Handlers()[0], firstEvent(t, app))
	require.NoError(t, err)
	_, err = kept.Exec(ctx, "SELECT 1")
	require.ErrorContains(t, err, "transaction used after its unit of work ended")
}
