package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/laneway/laneway/cli/internal/dlq"
	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/cli/internal/ops"
	"github.com/laneway/laneway/internal/backend"
	"github.com/laneway/laneway/lanewaybroker"
)

func newDLQCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "dlq",
		Short: "Dead-letter queues: list, inspect, replay, purge",
		Long: "Dead-letter queues of every handler (event handlers, projectors, the command dispatcher)\n" +
			"on both lanes, found on the broker whether or not lanes are enabled now.\n" +
			"--stream takes a DLQ stream (customer:backfill:dlq) or the lane it belongs to (customer:backfill).",
	}
	c.AddCommand(dlqList(g), dlqInspect(g), dlqReplay(g), dlqReplayAll(g), dlqPurge(g))
	return c
}

// dlqManager connects to the configured broker (never starting one) for
// the domain's DLQs. The caller closes the broker.
func (g *globals) dlqManager(ctx context.Context) (*dlq.Manager, lanewaybroker.Broker, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	dom, err := g.domain()
	if err != nil {
		return nil, nil, err
	}
	topo, err := inspect.NewTopology(dom, cfg)
	if err != nil {
		return nil, nil, err
	}
	b, err := backend.OpenToolBroker(ctx, cfg.Brokers["default"])
	if err != nil {
		return nil, nil, fmt.Errorf("%w (broker of %s)", err, cfg.Source())
	}
	return dlq.New(b, topo.Topology), b, nil
}

// dlqStream connects like dlqManager and resolves the --stream value of the
// whole-stream commands (replay-all, purge). The caller closes the broker.
func (g *globals) dlqStream(ctx context.Context, stream string) (*dlq.Manager, lanewaybroker.Broker, dlq.Stream, error) {
	m, b, err := g.dlqManager(ctx)
	if err != nil {
		return nil, nil, dlq.Stream{}, err
	}
	s, err := m.Resolve(ctx, stream)
	if err != nil {
		_ = b.Close()
		return nil, nil, dlq.Stream{}, err
	}
	return m, b, s, nil
}

func dlqList(g *globals) *cobra.Command {
	var stream string
	var limit int
	var asJSON bool
	var filter dlq.Filter
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List DLQ entries, oldest first, with their failure reasons",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit <= 0 {
				return fmt.Errorf("--limit %d: must be at least 1", limit)
			}
			m, b, err := g.dlqManager(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			res, err := ops.ListDLQ(cmd.Context(), m, dlq.ListParams{Stream: stream, Limit: limit, Filter: filter})
			if err != nil {
				return err
			}
			if asJSON {
				return g.writeJSON(res)
			}
			if len(res.Streams) == 0 {
				fmt.Fprintln(g.stdout, "No DLQ entries.")
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "DLQ STREAM\tLANE\tKIND\tDEPTH")
			for _, s := range res.Streams {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", s.Name, s.Lane, s.Class, s.Depth)
			}
			tw.Flush()
			if len(res.Entries) == 0 {
				fmt.Fprintln(g.stdout, "\nNo DLQ entries.")
				return nil
			}
			fmt.Fprintln(g.stdout)
			tw = tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tDLQ STREAM\tGROUP\tTYPE\tFAILED AT\tRETRIES\tREASON")
			for _, e := range res.Entries {
				reason := e.Meta.FailureReason
				if e.Problem != "" {
					reason = "unreadable entry: " + e.Problem
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.ID, e.Stream, dash(e.Meta.ConsumerGroup), dash(e.Type),
					dash(e.Meta.FailedAt), e.Meta.RetryCount, clip(dash(reason), 200))
			}
			tw.Flush()
			of := count(res.Total, "entry", "entries")
			if !filter.IsZero() {
				of = fmt.Sprintf("%d matching (%s in all)", res.Matched, of)
			}
			fmt.Fprintf(g.stdout, "\n%d of %s shown (laneway dlq inspect ID for the full reason and payload).\n", len(res.Entries), of)
			return nil
		},
	}
	cmd.Flags().StringVar(&stream, "stream", "", "only this DLQ stream (or the lane it belongs to)")
	cmd.Flags().IntVar(&limit, "limit", dlq.LimitDefault, "at most this many entries")
	cmd.Flags().StringVar(&filter.Handler, "handler", "", "only entries this handler (consumer group) dead-lettered")
	cmd.Flags().StringVar(&filter.Reason, "reason", "", "only entries whose failure reason contains this text (case-insensitive)")
	cmd.Flags().StringVar(&filter.Type, "type", "", "only entries whose message type contains this text (case-insensitive)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func dlqInspect(g *globals) *cobra.Command {
	var stream string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect ID",
		Short: "Show one DLQ entry: its failure metadata and its payload (without _dlq_metadata)",
		Args:  exactArgs(1, "the DLQ entry id, as `laneway dlq list` shows it"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, b, err := g.dlqManager(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			rep, err := ops.InspectDLQ(cmd.Context(), m, args[0], stream)
			if err != nil {
				return err
			}
			if asJSON {
				return g.writeJSON(rep)
			}
			e := rep.Entry
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
			row("DLQ entry", e.ID+" in "+e.Stream)
			row("original stream", dash(e.Meta.OriginalStream))
			row("original id", dash(e.Meta.OriginalID))
			row("consumer group", dash(e.Meta.ConsumerGroup))
			row("consumer", dash(e.Meta.Consumer))
			row("failed at", dash(e.Meta.FailedAt))
			row("retry count", fmt.Sprint(e.Meta.RetryCount))
			row("failure reason", dash(e.Meta.FailureReason))
			row("type", dash(e.Type))
			row("message id", dash(e.MessageID))
			if rep.ReplayProblem == "" {
				row("replays to", rep.ReplayTarget+" (laneway dlq replay "+e.ID+"; --to primary|backfill to change)")
			} else {
				row("replays to", rep.ReplayProblem)
			}
			tw.Flush()
			switch {
			case e.Problem != "":
				fmt.Fprintf(g.stdout, "unreadable entry: %s\n", e.Problem)
			case e.Raw:
				fmt.Fprintf(g.stdout, "payload (raw text, not an envelope):\n%s\n", e.Payload)
			default:
				var buf bytes.Buffer
				if json.Indent(&buf, e.Payload, "", "  ") != nil {
					buf.Reset()
					buf.Write(e.Payload)
				}
				fmt.Fprintf(g.stdout, "payload (without _dlq_metadata):\n%s\n", buf.String())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&stream, "stream", "", "look only in this DLQ stream (needed when the id is in several)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func dlqReplay(g *globals) *cobra.Command {
	var stream, to string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "replay ID",
		Short: "Re-publish one DLQ entry (default: to the lane it failed on), then remove it from the DLQ",
		Args:  exactArgs(1, "the DLQ entry id, as `laneway dlq list` shows it"),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := dlq.ParseTarget(to) // before connecting: a typo costs nothing
			if err != nil {
				return err
			}
			m, b, err := g.dlqManager(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			r, err := ops.ReplayDLQ(cmd.Context(), m, dlq.ReplayParams{ID: args[0], Stream: stream, To: target})
			if err != nil {
				return err
			}
			if asJSON {
				return g.writeJSON(r)
			}
			fmt.Fprintf(g.stdout, "Replayed %s from %s to %s (new id %s).\n", r.DLQID, r.DLQStream, r.Target, r.NewID)
			return nil
		},
	}
	cmd.Flags().StringVar(&stream, "stream", "", "look only in this DLQ stream (needed when the id is in several)")
	cmd.Flags().StringVar(&to, "to", "original", "target lane: original (the lane it failed on), primary or backfill")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func dlqReplayAll(g *globals) *cobra.Command {
	var stream, to string
	var yes, asJSON bool
	cmd := &cobra.Command{
		Use:   "replay-all --stream S",
		Short: "Replay every entry of one DLQ stream (asks first unless --yes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			target, err := dlq.ParseTarget(to) // before connecting: a typo costs nothing
			if err != nil {
				return err
			}
			m, b, s, err := g.dlqStream(cmd.Context(), stream)
			if err != nil {
				return err
			}
			defer b.Close()
			if s.Depth == 0 {
				return g.emptyDLQ(asJSON, s, "replayed")
			}
			where, err := m.StreamTarget(s, target) // refused here, before asking, when nothing reads it
			if err != nil {
				return err
			}
			if err := g.confirm(yes, "replay "+s.Name, fmt.Sprintf("Replay %s of %s to %s?", allOf(s.Depth), s.Name, where)); err != nil {
				return err
			}
			res, err := ops.ReplayAllDLQ(cmd.Context(), m, s.Name, target)
			if err != nil {
				return err
			}
			if asJSON {
				if err := g.writeJSON(res); err != nil {
					return err
				}
			} else {
				var to []string
				for t, n := range res.Targets {
					to = append(to, fmt.Sprintf("%d to %s", n, t))
				}
				fmt.Fprintf(g.stdout, "Replayed %s from %s (%s).\n", count(res.Replayed, "entry", "entries"), s.Name, strings.Join(to, ", "))
				for i, e := range res.Skipped {
					if i == 10 {
						fmt.Fprintf(g.stderr, "... and %d more (laneway dlq list --stream %s)\n", len(res.Skipped)-i, s.Name)
						break
					}
					fmt.Fprintf(g.stderr, "kept %s in %s: %s\n", e.DLQID, s.Name, e.Problem)
				}
			}
			if len(res.Skipped) > 0 {
				return exitError{code: 1, msg: fmt.Sprintf("%s could not be replayed and stay in %s", count(int64(len(res.Skipped)), "entry", "entries"), s.Name)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&stream, "stream", "", "the DLQ stream (or the lane it belongs to); required")
	cmd.Flags().StringVar(&to, "to", "original", "target lane: original (the lane it failed on), primary or backfill")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation (required when stdin is not a terminal)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("stream")
	return cmd
}

func dlqPurge(g *globals) *cobra.Command {
	var stream string
	var yes, asJSON bool
	cmd := &cobra.Command{
		Use:   "purge --stream S",
		Short: "Delete every entry of one DLQ stream (asks first unless --yes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, b, s, err := g.dlqStream(cmd.Context(), stream)
			if err != nil {
				return err
			}
			defer b.Close()
			if s.Depth == 0 {
				return g.emptyDLQ(asJSON, s, "purged")
			}
			if err := g.confirm(yes, "purge "+s.Name, fmt.Sprintf("Delete %s of %s? This cannot be undone.", allOf(s.Depth), s.Name)); err != nil {
				return err
			}
			res, err := ops.PurgeDLQ(cmd.Context(), m, s.Name)
			if err != nil {
				return err
			}
			if asJSON {
				return g.writeJSON(res)
			}
			n := res.Purged
			fmt.Fprintf(g.stdout, "Purged %s from %s.\n", count(n, "entry", "entries"), s.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&stream, "stream", "", "the DLQ stream (or the lane it belongs to); required")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation (required when stdin is not a terminal)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("stream")
	return cmd
}

func (g *globals) emptyDLQ(asJSON bool, s dlq.Stream, verb string) error {
	if asJSON {
		if verb == "purged" {
			return g.writeJSON(ops.Purged{DLQStream: s.Name})
		}
		return g.writeJSON(ops.ReplayedAll{DLQStream: s.Name, Targets: map[string]int64{}, Skipped: []ops.Skipped{}})
	}
	fmt.Fprintf(g.stdout, "%s is empty: nothing %s.\n", s.Name, verb)
	return nil
}

// allOf names every entry of a stream in a confirmation question.
func allOf(n int64) string {
	if n == 1 {
		return "the 1 entry"
	}
	return fmt.Sprintf("all %d entries", n)
}
