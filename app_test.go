package laneway_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/pgstore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

type Account struct {
	laneway.AggregateRoot
	Owner   string `json:"owner"`
	Balance int    `json:"balance"`
}

type Opened struct {
	Owner string `json:"owner"`
}

func (Opened) Kind() string { return "Opened" }

type Deposited struct {
	Amount int `json:"amount"`
}

func (Deposited) Kind() string { return "Deposited" }

type OpenAccount struct {
	ID, Owner string
}

func (OpenAccount) Kind() string       { return "OpenAccount" }
func (c OpenAccount) TargetID() string { return c.ID }

type Deposit struct {
	ID     string
	Amount int
	Times  int  // events raised
	Fail   bool // handler error after raising
}

func (Deposit) Kind() string { return "Deposit" }

func testDomain(t testing.TB) *laneway.Domain {
	b := laneway.NewDomain("Bank")
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{})
	laneway.RegisterEvent[Account, Opened](b)
	laneway.RegisterEvent[Account, Deposited](b)
	laneway.RegisterCommand[Account, OpenAccount](b, func(ctx context.Context, tx *laneway.Tx, c OpenAccount) error {
		a := laneway.New[Account](c.ID)
		a.Owner = c.Owner
		a.Raise(Opened{Owner: c.Owner})
		return tx.Save(ctx, a)
	})
	laneway.RegisterCommand[Account, Deposit](b, func(ctx context.Context, tx *laneway.Tx, c Deposit) error {
		a, err := laneway.Load[Account](ctx, tx, c.ID)
		if err != nil {
			return err
		}
		n := c.Times
		if n == 0 {
			n = 1
		}
		for i := 0; i < n; i++ {
			a.Balance += c.Amount
			a.Raise(Deposited{Amount: c.Amount})
		}
		if err := tx.Save(ctx, a); err != nil {
			return err
		}
		if c.Fail {
			return errors.New("boom after save")
		}
		return nil
	})
	d, err := b.Build()
	require.NoError(t, err)
	return d
}

type storeCase struct {
	name string
	open func(t testing.TB) lanewaystore.Store
}

func stores() []storeCase {
	return []storeCase{
		{"sqlite", func(t testing.TB) lanewaystore.Store {
			st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			return st
		}},
		{"postgres", func(t testing.TB) lanewaystore.Store {
			st, err := pgstore.Open(context.Background(), testsvc.PostgresURL(t))
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			return st
		}},
	}
}

func openApp(t *testing.T, sc storeCase, cfg *lanewayconfig.Config) *laneway.App {
	app, err := laneway.Open(context.Background(), testDomain(t), cfg, laneway.Options{Store: sc.open(t)})
	require.NoError(t, err)
	return app
}

type row struct {
	id, stream, category, typ string
	priority                  int
	meta                      string
}

func outboxRows(t *testing.T, app *laneway.App) []row {
	var out []row
	err := app.Store().InTx(context.Background(), func(ctx context.Context, tx lanewaystore.Tx) error {
		rs, err := tx.Query(ctx, "SELECT message_id, priority, stream_name, stream_category, type, metadata FROM outbox ORDER BY id")
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var r row
			if err := rs.Scan(&r.id, &r.priority, &r.stream, &r.category, &r.typ, &r.meta); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rs.Err()
	})
	require.NoError(t, err)
	return out
}

func TestProcess(t *testing.T) {
	for _, sc := range stores() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()

			t.Run("priority resolution and stamping", func(t *testing.T) {
				app := openApp(t, sc, nil)
				require.NoError(t, app.Process(ctx, OpenAccount{ID: "1", Owner: "ann"}))
				low := laneway.WithPriority(ctx, laneway.Low)
				require.NoError(t, app.Process(low, Deposit{ID: "1", Amount: 5, Times: 3}))
				require.NoError(t, app.Process(low, Deposit{ID: "1", Amount: 1}, laneway.AtPriority(laneway.High)))
				nested := laneway.WithPriority(laneway.WithPriority(ctx, laneway.Low), laneway.Bulk)
				require.NoError(t, app.Process(nested, Deposit{ID: "1", Amount: 1}))
				require.NoError(t, app.Process(ctx, Deposit{ID: "1", Amount: 1})) // LOW did not leak
				require.NoError(t, app.Process(ctx, Deposit{ID: "1", Amount: 1}, laneway.AtPriority(-10)))
				// LOW, then HIGH nested inside it, then LOW again after the
				// inner scope: the outer context is untouched by the inner.
				outer := laneway.WithPriority(ctx, laneway.Low)
				require.NoError(t, app.Process(outer, Deposit{ID: "1", Amount: 1}))
				inner := laneway.WithPriority(outer, laneway.High)
				require.NoError(t, app.Process(inner, Deposit{ID: "1", Amount: 1}))
				require.NoError(t, app.Process(outer, Deposit{ID: "1", Amount: 1}))

				got := outboxRows(t, app)
				var prios []int
				for _, r := range got {
					prios = append(prios, r.priority)
				}
				require.Equal(t, []int{0, -50, -50, -50, 50, -100, 0, -10, -50, 50, -50}, prios)
				require.Equal(t, "account-1", got[0].stream)
				require.Equal(t, "account", got[0].category)
				require.Equal(t, "Bank.Opened.v1", got[0].typ)
				require.Equal(t, "account-1-2.1", got[1].id)
				require.Equal(t, "account-1-2.3", got[3].id)

				md := got[1]
				var env envelope.Envelope
				raw := `{"data":{"amount":5},"metadata":` + md.meta + `}`
				env, err := envelope.Decode([]byte(raw))
				require.NoError(t, err, "envelope with checksum decodes")
				require.Equal(t, -50, env.Metadata.Domain.Priority)
				require.Equal(t, envelope.ClassEvent, env.Metadata.Domain.Class)
				require.NotEmpty(t, env.Metadata.Envelope.Checksum)
			})

			t.Run("seed query shows -50", func(t *testing.T) {
				app := openApp(t, sc, nil)
				require.NoError(t, app.Process(laneway.WithPriority(ctx, laneway.Low), OpenAccount{ID: "9", Owner: "x"}))
				err := app.Store().InTx(ctx, func(ctx context.Context, tx lanewaystore.Tx) error {
					var id, stream string
					var p int
					if err := tx.QueryRow(ctx, "SELECT message_id, priority, stream_name FROM outbox ORDER BY created_at DESC LIMIT 10;").Scan(&id, &p, &stream); err != nil {
						return err
					}
					require.Equal(t, -50, p)
					require.Equal(t, "account-9", stream)
					return nil
				})
				require.NoError(t, err)
			})

			t.Run("handler error rolls back state and outbox", func(t *testing.T) {
				app := openApp(t, sc, nil)
				require.NoError(t, app.Process(ctx, OpenAccount{ID: "1", Owner: "ann"}))
				err := app.Process(ctx, Deposit{ID: "1", Amount: 7, Fail: true})
				require.ErrorContains(t, err, "boom after save")
				require.Len(t, outboxRows(t, app), 1)
				require.NoError(t, app.Store().InTx(ctx, func(ctx context.Context, st lanewaystore.Tx) error {
					rec, err := st.LoadAggregate(ctx, "account", "1")
					require.NoError(t, err)
					require.EqualValues(t, 1, rec.Version)
					require.JSONEq(t, `{"owner":"ann","balance":0}`, string(rec.Data))
					return nil
				}))
			})

			t.Run("duplicate create is a version conflict", func(t *testing.T) {
				app := openApp(t, sc, nil)
				require.NoError(t, app.Process(ctx, OpenAccount{ID: "1", Owner: "ann"}))
				err := app.Process(ctx, OpenAccount{ID: "1", Owner: "bob"})
				require.ErrorIs(t, err, laneway.ErrVersionConflict)
				require.Len(t, outboxRows(t, app), 1)
			})

			t.Run("concurrent writers: one wins per version", func(t *testing.T) {
				app := openApp(t, sc, nil)
				require.NoError(t, app.Process(ctx, OpenAccount{ID: "1", Owner: "ann"}))
				// Every writer loads version 1 before any saves, so exactly one can win.
				const n = 3 // below the pool size: each holds a connection while waiting
				var loaded, wg sync.WaitGroup
				loaded.Add(n)
				release := make(chan struct{})
				errs := make([]error, n)
				for i := 0; i < n; i++ {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						errs[i] = app.Store().InTx(ctx, func(ctx context.Context, st lanewaystore.Tx) error {
							rec, err := st.LoadAggregate(ctx, "account", "1")
							loaded.Done()
							if err != nil {
								return err
							}
							<-release
							return st.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{Category: "account", ID: "1", ExpectedVersion: rec.Version, Data: rec.Data})
						})
					}(i)
				}
				if sc.name == "sqlite" {
					// SQLite has one writer: transactions run one after another,
					// so the later ones load the new version; release at once.
					close(release)
				} else {
					loaded.Wait()
					close(release)
				}
				wg.Wait()
				wins := 0
				for _, err := range errs {
					if err == nil {
						wins++
					} else {
						require.ErrorIs(t, err, laneway.ErrVersionConflict)
					}
				}
				if sc.name == "postgres" {
					require.Equal(t, 1, wins)
				}
			})

			t.Run("concurrent Process on one aggregate: winners and typed losers", func(t *testing.T) {
				app := openApp(t, sc, nil)
				require.NoError(t, app.Process(ctx, OpenAccount{ID: "1", Owner: "ann"}))
				const n = 8
				var wg sync.WaitGroup
				errs := make([]error, n)
				for i := 0; i < n; i++ {
					wg.Add(1)
					go func(i int) { defer wg.Done(); errs[i] = app.Process(ctx, Deposit{ID: "1", Amount: 1}) }(i)
				}
				wg.Wait()
				wins := 0
				for _, err := range errs {
					if err == nil {
						wins++
					} else {
						require.ErrorIs(t, err, laneway.ErrVersionConflict)
					}
				}
				rows := outboxRows(t, app)
				require.Len(t, rows, 1+wins, "one outbox row per winning deposit, none for losers")
				require.NoError(t, app.Store().InTx(ctx, func(ctx context.Context, st lanewaystore.Tx) error {
					rec, err := st.LoadAggregate(ctx, "account", "1")
					require.NoError(t, err)
					require.EqualValues(t, 1+wins, rec.Version)
					return nil
				}))
			})

			t.Run("async writes the command to the outbox", func(t *testing.T) {
				cfg := lanewayconfig.Default()
				cfg.CommandProcessing = "async"
				app := openApp(t, sc, cfg)
				require.NoError(t, app.Process(ctx, OpenAccount{ID: "7", Owner: "z"}, laneway.AtPriority(laneway.Low)))
				require.NoError(t, app.Process(ctx, OpenAccount{ID: "8", Owner: "z"}, laneway.Sync()))
				rows := outboxRows(t, app)
				require.Len(t, rows, 2)
				require.Equal(t, "account:command", rows[0].category)
				require.Equal(t, "account:command-7", rows[0].stream)
				require.Equal(t, -50, rows[0].priority)
				require.Equal(t, "Bank.OpenAccount.v1", rows[0].typ)
				require.Contains(t, rows[0].meta, `"kind":"COMMAND"`)
				require.Equal(t, "account", rows[1].category)
			})
		})
	}
}

func TestBuildErrors(t *testing.T) {
	b := laneway.NewDomain("Bank")
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{})
	laneway.RegisterAggregate[Account](b, laneway.AggregateOptions{})
	laneway.RegisterEvent[Account, Opened](b)
	laneway.RegisterEvent[Account, Opened](b)
	h := laneway.NewHandler("P")
	laneway.On(h, func(context.Context, *laneway.Tx, Deposited, laneway.Meta) error { return nil })
	b.AddHandler(h)
	b.AddUpcaster(laneway.Upcaster{Event: "Opened", From: 1, To: 2, Fn: func(m map[string]any) (map[string]any, error) { return m, nil }})
	laneway.RegisterCommand[Account, OpenAccount](b, nil)
	_, err := b.Build()
	require.Error(t, err)
	for _, want := range []string{
		"command OpenAccount: no handler",
		"aggregate Account registered twice",
		"event Opened registered twice",
		"handler P handles event Deposited, which is not registered",
		"Opened",
	} {
		require.ErrorContains(t, err, want)
	}
}

// A multi-word aggregate type gets a snake_case stream category, which
// reaches the outbox row and the instance stream name.
func TestDefaultCategoryIsSnakeCase(t *testing.T) {
	b := laneway.NewDomain("Loyalty")
	laneway.RegisterAggregate[LoyaltyAccount](b, laneway.AggregateOptions{})
	laneway.RegisterEvent[LoyaltyAccount, PointsEarned](b)
	laneway.RegisterCommand[LoyaltyAccount, EarnPoints](b, func(ctx context.Context, tx *laneway.Tx, c EarnPoints) error {
		a := laneway.New[LoyaltyAccount](c.ID)
		a.Raise(PointsEarned{})
		return tx.Save(ctx, a)
	})
	d, err := b.Build()
	require.NoError(t, err)
	require.Equal(t, []string{"loyalty_account"}, d.AllCategories())

	app, err := laneway.Open(context.Background(), d, nil, laneway.Options{Store: stores()[0].open(t)})
	require.NoError(t, err)
	require.NoError(t, app.Process(context.Background(), EarnPoints{ID: "7"}))
	rows := outboxRows(t, app)
	require.Len(t, rows, 1)
	require.Equal(t, "loyalty_account", rows[0].category)
	require.Equal(t, "loyalty_account-7", rows[0].stream)
	require.Equal(t, "Loyalty.PointsEarned.v1", rows[0].typ)
}

type LoyaltyAccount struct {
	laneway.AggregateRoot
}

type PointsEarned struct{}

func (PointsEarned) Kind() string { return "PointsEarned" }

type EarnPoints struct{ ID string }

func (EarnPoints) Kind() string       { return "EarnPoints" }
func (c EarnPoints) TargetID() string { return c.ID }

func TestPriorityParse(t *testing.T) {
	for in, want := range map[string]laneway.Priority{"low": laneway.Low, "BULK": laneway.Bulk, "Critical": laneway.Critical, "-10": -10, "7": 7} {
		got, err := laneway.ParsePriority(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got)
	}
	for _, bad := range []string{"urgent", "bogus", "", "1.5"} {
		got, err := laneway.ParsePriority(bad)
		require.ErrorContains(t, err, `invalid priority "`+bad+`"`)
		require.Equal(t, laneway.NoPriority, got, "a failed parse is no priority, not Normal")
		require.NotEqual(t, laneway.Normal, got)
	}
	p := laneway.High
	require.Error(t, p.Set("bogus"))
	require.Equal(t, laneway.High, p, "a failed Set leaves the value alone")
	require.Equal(t, "LOW", laneway.Low.String())
	require.Equal(t, "-10", laneway.Priority(-10).String())
	require.Equal(t, laneway.Normal, laneway.PriorityFrom(context.Background()))
}
