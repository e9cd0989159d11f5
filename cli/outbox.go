package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/laneway/laneway/cli/internal/ops"
	"github.com/laneway/laneway/internal/backend"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
)

func newOutboxCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "outbox", Short: "The outbox table: counts, rows, retry of failed and abandoned rows"}
	c.AddCommand(outboxStatus(g), outboxList(g), outboxRetry(g))
	return c
}

// openStore opens the configured database without migrating it: these
// commands look at what is there and must not create tables as a side
// effect.
func (g *globals) openStore(ctx context.Context) (lanewaystore.Store, lanewayconfig.Database, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, lanewayconfig.Database{}, err
	}
	db := cfg.Databases["default"]
	st, err := backend.OpenStore(ctx, db)
	if err != nil {
		return nil, db, fmt.Errorf("%w (database of %s)", err, cfg.Source())
	}
	return st, db, nil
}

func outboxStatus(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Outbox rows by status and by priority, and the age of the oldest unpublished row",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, db, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			rep, err := ops.CountOutbox(cmd.Context(), st, db)
			if err != nil {
				return err
			}
			if asJSON {
				return g.writeJSON(rep)
			}
			byStatus, total := rep.ByStatus, rep.Total
			fmt.Fprintf(g.stdout, "outbox (%s): %d rows\n\n", db.Provider, total)
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprint(tw, "PRIORITY\t")
			for _, s := range ops.OutboxStatuses {
				fmt.Fprintf(tw, "%s\t", strings.ToUpper(string(s)))
			}
			fmt.Fprintln(tw, "TOTAL\t")
			row := func(label string, counts map[string]int64, sum int64) {
				fmt.Fprintf(tw, "%s\t", label)
				for _, s := range ops.OutboxStatuses {
					fmt.Fprintf(tw, "%d\t", counts[string(s)])
				}
				fmt.Fprintf(tw, "%d\t\n", sum)
			}
			for _, p := range rep.ByPriority {
				row(fmt.Sprintf("%s (%d)", p.Name, p.Priority), p.ByStatus, p.Total)
			}
			row("all", byStatus, total)
			tw.Flush()
			if rep.OldestPendingAt != nil {
				fmt.Fprintf(g.stdout, "\noldest unpublished row (pending or failed): created %s, %s ago\n",
					rep.OldestPendingAt.Format(time.RFC3339), time.Duration(*rep.OldestPendingAgeSeconds*float64(time.Second)).Round(time.Millisecond))
			} else {
				fmt.Fprintln(g.stdout, "\nnothing waiting to be published")
			}
			if n := byStatus[string(lanewaystore.StatusAbandoned)]; n > 0 {
				fmt.Fprintf(g.stdout, "%d abandoned rows: see `laneway outbox list --status abandoned`, retry with `laneway outbox retry --abandoned`\n", n)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func outboxList(g *globals) *cobra.Command {
	var status string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Outbox rows, newest first, with their last error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			want, err := ops.ParseOutboxStatus(status)
			if err != nil {
				return err
			}
			if limit <= 0 {
				return fmt.Errorf("--limit %d: must be at least 1", limit)
			}
			st, db, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			rows, err := ops.ListOutbox(cmd.Context(), st, db, want, limit)
			if err != nil {
				return err
			}
			if asJSON {
				return g.writeJSON(rows)
			}
			if len(rows) == 0 {
				if want == "" {
					fmt.Fprintln(g.stdout, "The outbox is empty.")
				} else {
					fmt.Fprintf(g.stdout, "No %s outbox rows.\n", want)
				}
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tMESSAGE ID\tTYPE\tPRIORITY\tSTATUS\tRETRIES\tCREATED\tNEXT RETRY\tPUBLISHED TO\tLAST ERROR")
			for _, r := range rows {
				next := "-"
				if r.NextRetryAt != nil && r.Status == string(lanewaystore.StatusFailed) {
					next = r.NextRetryAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", r.ID, r.MessageID, r.Type, r.Priority, r.Status,
					r.RetryCount, r.CreatedAt.Format(time.RFC3339), next, dash(r.PublishedStream), clip(dash(r.LastError), 200))
			}
			tw.Flush()
			fmt.Fprintf(g.stdout, "\n%d rows shown, newest first (--limit %d).\n", len(rows), limit)
			return nil
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only rows in this status: pending, processing, published, failed or abandoned")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many rows")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func outboxRetry(g *globals) *cobra.Command {
	var abandoned, yes, asJSON bool
	cmd := &cobra.Command{
		Use:   "retry ID | --abandoned",
		Short: "Reset a failed or abandoned row (or every abandoned row) to pending: retry_count 0, due now",
		Args:  atMostArgs(1, "the outbox id, as `laneway outbox list` shows it"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var id int64
			switch {
			case abandoned && len(args) > 0:
				return fmt.Errorf("give an outbox id or --abandoned, not both")
			case !abandoned && len(args) != 1:
				return fmt.Errorf("outbox retry takes one outbox id (as `laneway outbox list` shows it) or --abandoned")
			case !abandoned:
				n, err := strconv.ParseInt(args[0], 10, 64)
				if err != nil || n <= 0 {
					return fmt.Errorf("outbox id %q: want the numeric id that `laneway outbox list` shows", args[0])
				}
				id = n
			}
			st, db, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ctx := cmd.Context()
			if abandoned {
				n, err := ops.AbandonedCount(ctx, st, db)
				if err != nil {
					return err
				}
				if n == 0 {
					return g.retried(asJSON, 0, "No abandoned outbox rows: nothing to retry.")
				}
				if err := g.confirm(yes, "retry abandoned outbox rows", fmt.Sprintf("Reset all %d abandoned outbox rows to pending (they will be published again)?", n)); err != nil {
					return err
				}
			}
			res, err := ops.RetryOutbox(ctx, st, db, id, abandoned)
			if err != nil {
				return err
			}
			n := res.Reset
			what := fmt.Sprintf("row %d", id)
			if abandoned {
				what = fmt.Sprintf("%d abandoned rows", n)
			}
			return g.retried(asJSON, n, fmt.Sprintf("Reset %s to pending (retry_count 0, due now); the relay publishes them on its next cycle.", what))
		},
	}
	cmd.Flags().BoolVar(&abandoned, "abandoned", false, "retry every abandoned row (asks first unless --yes)")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation (required with --abandoned when stdin is not a terminal)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (g *globals) retried(asJSON bool, n int64, msg string) error {
	if asJSON {
		return g.writeJSON(map[string]any{"reset": n})
	}
	fmt.Fprintln(g.stdout, msg)
	return nil
}
