package laneway_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
)

func TestProcessBatch(t *testing.T) {
	for _, sc := range stores() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()

			t.Run("one unit of work, priority and ids per command", func(t *testing.T) {
				app := openApp(t, sc, nil)
				var commits atomic.Int32
				app.OnCommit(func() { commits.Add(1) })
				low := laneway.WithPriority(ctx, laneway.Low)
				err := app.ProcessBatch(low, []laneway.Command{
					OpenAccount{ID: "1", Owner: "ann"},
					Deposit{ID: "1", Amount: 5}, // sees the account opened just before, in the same transaction
					OpenAccount{ID: "2", Owner: "bob"},
				})
				require.NoError(t, err)
				require.EqualValues(t, 1, commits.Load(), "the whole batch commits once")

				rows := outboxRows(t, app)
				require.Len(t, rows, 3)
				var ids []string
				for _, r := range rows {
					require.Equal(t, -50, r.priority, r.id)
					ids = append(ids, r.id)
				}
				require.Equal(t, []string{"account-1-1.1", "account-1-2.1", "account-2-1.1"}, ids)
				// Each command has its own correlation id.
				require.NotEqual(t, corrOf(t, rows[0].meta), corrOf(t, rows[2].meta))

				require.NoError(t, app.ProcessBatch(low, []laneway.Command{Deposit{ID: "2", Amount: 1}}, laneway.AtPriority(laneway.Bulk)))
				require.Equal(t, -100, outboxRows(t, app)[3].priority, "the per-call option beats the context")
			})

			t.Run("a failed command is retried alone", func(t *testing.T) {
				app := openApp(t, sc, nil)
				require.NoError(t, app.Process(ctx, OpenAccount{ID: "1", Owner: "ann"}))
				var commits atomic.Int32
				app.OnCommit(func() { commits.Add(1) })
				err := app.ProcessBatch(ctx, []laneway.Command{
					Deposit{ID: "1", Amount: 1},
					Deposit{ID: "nobody", Amount: 1}, // not found
					Deposit{ID: "1", Amount: 2},
					Deposit{ID: "1", Amount: 9, Fail: true},
				})
				var be *laneway.BatchError
				require.ErrorAs(t, err, &be)
				require.Equal(t, 2, be.Failed())
				require.Len(t, be.Errs, 4)
				require.NoError(t, be.Errs[0])
				require.ErrorIs(t, be.Errs[1], laneway.ErrNotFound)
				require.NoError(t, be.Errs[2])
				require.ErrorContains(t, be.Errs[3], "boom after save")
				require.ErrorIs(t, err, laneway.ErrNotFound, "errors.Is sees the individual errors")
				require.ErrorContains(t, err, "2 of 4 commands failed; first (#1)")
				require.EqualValues(t, 2, commits.Load(), "the two good commands committed alone")

				require.Len(t, outboxRows(t, app), 3, "the account's opening and the two good deposits")
				require.NoError(t, app.Store().InTx(ctx, func(ctx context.Context, st lanewaystore.Tx) error {
					rec, err := st.LoadAggregate(ctx, "account", "1")
					require.NoError(t, err)
					require.JSONEq(t, `{"owner":"ann","balance":3}`, string(rec.Data))
					return nil
				}))
			})

			t.Run("empty batch and unregistered command", func(t *testing.T) {
				app := openApp(t, sc, nil)
				require.NoError(t, app.ProcessBatch(ctx, nil))
				err := app.ProcessBatch(ctx, []laneway.Command{OpenAccount{ID: "1", Owner: "a"}, closeAccount{}})
				require.ErrorContains(t, err, "batch command #1")
				require.ErrorContains(t, err, "is not registered")
				require.Empty(t, outboxRows(t, app), "an unregistered command writes nothing")
			})

			t.Run("async batch writes the commands in one transaction", func(t *testing.T) {
				cfg := lanewayconfig.Default()
				cfg.CommandProcessing = "async"
				app := openApp(t, sc, cfg)
				var commits atomic.Int32
				app.OnCommit(func() { commits.Add(1) })
				require.NoError(t, app.ProcessBatch(ctx, []laneway.Command{OpenAccount{ID: "7", Owner: "z"}, OpenAccount{ID: "8", Owner: "z"}}, laneway.AtPriority(laneway.Low)))
				require.EqualValues(t, 1, commits.Load())
				rows := outboxRows(t, app)
				require.Len(t, rows, 2)
				require.Equal(t, "account:command-7", rows[0].stream)
				require.Equal(t, "account:command-8", rows[1].stream)
				require.Equal(t, -50, rows[1].priority)
			})

			t.Run("cancelled context", func(t *testing.T) {
				app := openApp(t, sc, nil)
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				err := app.ProcessBatch(cctx, []laneway.Command{OpenAccount{ID: "1", Owner: "a"}})
				require.True(t, errors.Is(err, context.Canceled), "got %v", err)
				require.Empty(t, outboxRows(t, app))
			})
		})
	}
}

func corrOf(t *testing.T, meta string) string {
	t.Helper()
	var m struct {
		Domain struct {
			CorrelationID string `json:"correlation_id"`
		} `json:"domain"`
	}
	require.NoError(t, json.Unmarshal([]byte(meta), &m))
	require.NotEmpty(t, m.Domain.CorrelationID)
	return m.Domain.CorrelationID
}

// closeAccount is a command the test domain does not register.
type closeAccount struct{}

func (closeAccount) Kind() string { return "CloseAccount" }

// A removed OnCommit registration is not called again; the others are.
func TestOnCommitRemove(t *testing.T) {
	for _, sc := range stores() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			app := openApp(t, sc, nil)
			var kept, removed atomic.Int32
			app.OnCommit(func() { kept.Add(1) })
			remove := app.OnCommit(func() { removed.Add(1) })
			require.NoError(t, app.Process(ctx, OpenAccount{ID: "1", Owner: "ann"}))
			remove()
			remove() // twice is harmless
			require.NoError(t, app.Process(ctx, OpenAccount{ID: "2", Owner: "bob"}))
			require.EqualValues(t, 2, kept.Load())
			require.EqualValues(t, 1, removed.Load())
		})
	}
}
