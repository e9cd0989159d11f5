package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/cli/internal/ops"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/tools/term"
)

func newLanesCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "lanes", Short: "Inspect the priority lanes' streams; pause, resume or throttle a lane"}
	c.AddCommand(newLanesStatusCmd(g), newLanesWatchCmd(g), newLanesPauseCmd(g), newLanesResumeCmd(g), newLanesThrottleCmd(g))
	return c
}

func newLanesStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	var stream string
	c := &cobra.Command{
		Use:   "status",
		Short: "Per category and lane: length, pending, lag, oldest unhandled age, consumers, DLQ depth, groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			i, err := g.openInspection(ctx, false)
			if err != nil {
				return err
			}
			defer i.close()
			if err := i.filter(stream); err != nil {
				return err
			}
			st, err := i.in.Status(ctx, i.cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return g.writeJSON(st)
			}
			printStatus(g.stdout, st)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().StringVar(&stream, "stream", "", "only the category of this stream (a primary, backfill or DLQ stream name)")
	return c
}

// filter narrows the inspection to one category.
func (i *inspection) filter(stream string) error {
	t, err := i.topo.Filter(stream)
	if err != nil {
		return err
	}
	i.topo = t
	i.in = inspect.New(i.broker, t, inspect.Options{ActiveIdle: ops.ActiveIdle(i.cfg)})
	return nil
}

func printStatus(w io.Writer, st inspect.Status) {
	env := st.Env
	if env == "" {
		env = "(none)"
	}
	lanes := "lanes disabled"
	if st.LanesEnabled {
		lanes = fmt.Sprintf("lanes enabled (backfill suffix %q)", st.BackfillSuffix)
	}
	fmt.Fprintf(w, "domain %s, environment %s, %s, %d engine(s) running\n", st.Domain, env, lanes, len(st.Engines))
	for _, e := range st.Engines {
		fp := "matches the file"
		if !e.FingerprintMatches {
			fp = "DIFFERS from the file: restart it"
		}
		fmt.Fprintf(w, "  engine %s started %s, lanes=%t, fingerprint %s %s\n", e.ID, e.StartedAt.Format(time.RFC3339), e.LanesEnabled, e.LanesFingerprint, fp)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tLANE\tLENGTH\tPENDING\tLAG\tOLDEST\tCONSUMERS\tDLQ\tGROUPS")
	for _, cs := range st.Categories {
		for _, l := range cs.Lanes {
			lane := l.Lane
			if !l.Enabled {
				lane += " (off)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d\t%s\n", l.Stream, lane, l.Length, l.Pending, l.Lag,
				age(l.OldestUnhandledID, l.OldestUnhandledAge), l.Consumers, l.DLQDepth, groupList(l))
		}
	}
	_ = tw.Flush()
	printControls(w, st, "")
	if len(st.Warnings) > 0 {
		fmt.Fprintln(w)
		for _, m := range st.Warnings {
			fmt.Fprintln(w, "WARNING: "+m)
		}
	}
}

// groupList is "Name(pending/lag)" per group, and the missing ones.
func groupList(l inspect.LaneStatus) string {
	var parts []string
	for _, g := range l.Groups {
		parts = append(parts, fmt.Sprintf("%s(p=%d,lag=%d)", g.Name, g.Pending, g.Lag))
	}
	for _, m := range l.MissingGroups {
		parts = append(parts, m+"(MISSING)")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func age(id string, secs float64) string {
	if id == "" {
		return "-"
	}
	return time.Duration(secs * float64(time.Second)).Truncate(time.Second).String()
}

func newLanesWatchCmd(g *globals) *cobra.Command {
	var interval time.Duration
	var count int
	var stream string
	c := &cobra.Command{
		Use:   "watch",
		Short: "Live view of the lanes: backlog, progress bar, drain rate and ETA of each draining backfill lane",
		Long: "Refreshes every --interval. On a terminal it redraws the screen; otherwise it prints\n" +
			"one block of plain lines per refresh. Stops on Ctrl-C, or after --count refreshes.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 {
				return fmt.Errorf("--interval %s: use a positive duration such as 1s", interval)
			}
			if count < 0 {
				return fmt.Errorf("--count %d: use 0 (until interrupted) or a positive number", count)
			}
			ctx := cmd.Context()
			i, err := g.openInspection(ctx, false)
			if err != nil {
				return err
			}
			defer i.close()
			if err := i.filter(stream); err != nil {
				return err
			}
			return watch(ctx, i, g.stdout, term.IsTerminal(g.stdout), interval, count)
		},
	}
	c.Flags().DurationVar(&interval, "interval", time.Second, "time between refreshes")
	c.Flags().IntVar(&count, "count", 0, "stop after this many refreshes (0: until interrupted)")
	c.Flags().StringVar(&stream, "stream", "", "only the category of this stream")
	return c
}

func watch(ctx context.Context, i *inspection, w io.Writer, live bool, interval time.Duration, count int) error {
	tr := inspect.NewDrainTracker()
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 1; ; n++ {
		st, err := i.in.Status(ctx, i.cfg)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil && n == 1:
			return err
		case err != nil:
			// A live view outlasts a Redis blip: say so and keep refreshing.
			fmt.Fprintf(w, "%s error: %v\n", time.Now().UTC().Format(time.RFC3339), err)
		}
		if err == nil {
			render(w, st, tr.Observe(st), live, interval)
		}
		if count > 0 && n >= count {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil // SIGINT: a clean stop
		case <-t.C:
		}
	}
}

func render(w io.Writer, st inspect.Status, drains []inspect.Drain, live bool, interval time.Duration) {
	if live {
		fmt.Fprint(w, "\033[H\033[2J")
		printStatus(w, st)
		printDrains(w, st, drains)
		fmt.Fprintf(w, "\nrefreshed %s every %s; Ctrl-C to stop\n", st.TakenAt.Local().Format("15:04:05"), interval)
		return
	}
	printPlain(w, st, drains)
}

const barWidth = 30

func printDrains(w io.Writer, st inspect.Status, drains []inspect.Drain) {
	shown := false
	for _, d := range drains {
		if !isBackfill(st, d.Stream) || d.Peak == 0 {
			continue
		}
		if !shown {
			fmt.Fprintln(w, "\nbackfill draining:")
			shown = true
		}
		done := d.Done()
		filled := int(done*barWidth + 0.5)
		fmt.Fprintf(w, "  %-28s [%s%s] %3.0f%%  %d left  %s\n", d.Stream,
			strings.Repeat("#", filled), strings.Repeat("-", barWidth-filled), done*100, d.Unhandled, rateETA(d))
	}
}

func rateETA(d inspect.Drain) string {
	switch {
	case d.Rate > 0 && d.ETA > 0:
		return fmt.Sprintf("%.1f/s  ETA %s", d.Rate, d.ETA.Round(time.Second))
	case d.Rate < 0:
		return fmt.Sprintf("growing %.1f/s", -d.Rate)
	}
	return "no progress yet"
}

func isBackfill(st inspect.Status, stream string) bool {
	for _, cs := range st.Categories {
		if cs.Lanes[1].Stream == stream {
			return true
		}
	}
	return false
}

// printPlain writes one line per lane, each prefixed with the snapshot's
// time, so a log or a pipe gets one block per refresh.
func printPlain(w io.Writer, st inspect.Status, drains []inspect.Drain) {
	ts := st.TakenAt.Format(time.RFC3339)
	k := 0
	for _, cs := range st.Categories {
		for _, l := range cs.Lanes {
			d := drains[k]
			k++
			line := fmt.Sprintf("%s stream=%s lane=%s enabled=%t length=%d unhandled=%d pending=%d lag=%d oldest=%s consumers=%d dlq=%d",
				ts, l.Stream, l.Lane, l.Enabled, l.Length, l.Unhandled, l.Pending, l.Lag, age(l.OldestUnhandledID, l.OldestUnhandledAge),
				l.Consumers, l.DLQDepth)
			if l.Lane == lanes.Backfill && d.Peak > 0 {
				line += fmt.Sprintf(" progress=%.0f%% rate=%.1f/s", d.Done()*100, d.Rate)
				if d.ETA > 0 {
					line += " eta=" + d.ETA.Round(time.Second).String()
				}
			}
			fmt.Fprintln(w, line)
		}
	}
	printControls(w, st, ts+" ")
	for _, m := range st.Warnings {
		fmt.Fprintln(w, ts+" WARNING: "+m)
	}
}
