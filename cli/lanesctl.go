package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/internal/lanecontrol"
	"github.com/laneway/laneway/internal/lanes"
)

// laneFlags select lanes: a STREAM argument, --category with --lane, or
// --all-backfill.
type laneFlags struct {
	category, lane, handler string
	allBackfill             bool
}

func (f *laneFlags) add(c *cobra.Command, handler bool) {
	c.Flags().StringVar(&f.category, "category", "", "the category (primary stream), with --lane")
	c.Flags().StringVar(&f.lane, "lane", "", "primary or backfill, with --category")
	c.Flags().BoolVar(&f.allBackfill, "all-backfill", false, "every category's backfill lane")
	if handler {
		c.Flags().StringVar(&f.handler, "handler", "", "only this handler (consumer group); default every handler of the lane")
	}
}

// selected is one lane picked by laneFlags.
type selected struct {
	stream string
	lane   lanes.Lane
	groups []string
}

// resolve turns the arguments into lanes of the domain, or an error naming
// what is wrong and the names that would do.
func (f *laneFlags) resolve(topo inspect.Topology, args []string) ([]selected, error) {
	n := 0
	if len(args) > 0 {
		n++
	}
	if f.category != "" || f.lane != "" {
		n++
	}
	if f.allBackfill {
		n++
	}
	if n != 1 {
		return nil, fmt.Errorf("name the lanes one way: a STREAM argument (e.g. %s), --category C --lane primary|backfill, or --all-backfill", exampleLane(topo))
	}
	var out []selected
	switch {
	case f.allBackfill:
		for _, c := range topo.Categories {
			out = append(out, selected{topo.Backfill(c.Name), lanes.Backfill, c.Groups})
		}
	case len(args) > 0:
		for _, c := range topo.Categories {
			switch args[0] {
			case c.Name:
				out = append(out, selected{c.Name, lanes.Primary, c.Groups})
			case topo.Backfill(c.Name):
				out = append(out, selected{args[0], lanes.Backfill, c.Groups})
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%q is not a lane of domain %s: use one of %s", args[0], topo.Domain, strings.Join(laneNames(topo), ", "))
		}
	default:
		if f.lane != string(lanes.Primary) && f.lane != string(lanes.Backfill) {
			return nil, fmt.Errorf("--lane %q: use primary or backfill (with --category)", f.lane)
		}
		for _, c := range topo.Categories {
			if c.Name == f.category {
				s := selected{c.Name, lanes.Lane(f.lane), c.Groups}
				if s.lane == lanes.Backfill {
					s.stream = topo.Backfill(c.Name)
				}
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			names := make([]string, len(topo.Categories))
			for i, c := range topo.Categories {
				names[i] = c.Name
			}
			return nil, fmt.Errorf("--category %q is not a category of domain %s: use one of %s", f.category, topo.Domain, strings.Join(names, ", "))
		}
	}
	if f.handler != "" {
		for _, s := range out {
			if !contains(s.groups, f.handler) {
				return nil, fmt.Errorf("--handler %q does not read %s: its handlers are %s", f.handler, s.stream, strings.Join(s.groups, ", "))
			}
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func laneNames(topo inspect.Topology) []string {
	var out []string
	for _, c := range topo.Categories {
		out = append(out, c.Name, topo.Backfill(c.Name))
	}
	return out
}

func exampleLane(topo inspect.Topology) string {
	if len(topo.Categories) > 0 {
		return topo.Backfill(topo.Categories[0].Name)
	}
	return "customer:backfill"
}

// controlStore opens the domain's lane controls in the engine's Redis.
func (g *globals) controlStore(ctx context.Context) (*inspection, *lanecontrol.Store, error) {
	i, err := g.openInspection(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	rc, ok := i.broker.(interface{ RedisClient() redis.UniversalClient })
	if !ok {
		i.close()
		return nil, nil, fmt.Errorf("the broker keeps no lane controls")
	}
	return i, lanecontrol.NewStore(rc.RedisClient(), i.topo.Domain), nil
}

// onSelected opens the lane controls, resolves the lanes named by args and
// the flags, and runs do on them.
func (g *globals) onSelected(ctx context.Context, f *laneFlags, args []string, do func(*inspection, *lanecontrol.Store, []selected) error) error {
	i, store, err := g.controlStore(ctx)
	if err != nil {
		return err
	}
	defer i.close()
	sel, err := f.resolve(i.topo, args)
	if err != nil {
		return err
	}
	return do(i, store, sel)
}

// operator names who set a control, for lanes status and doctor.
func operator() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

func newLanesPauseCmd(g *globals) *cobra.Command {
	var f laneFlags
	var yes bool
	c := &cobra.Command{
		Use:   "pause [STREAM]",
		Short: "Pause a lane for every engine of the domain: nothing new starts on it; its entries wait, pending or unread",
		Long: "Every engine of the domain stops reading and starting the lane's entries within a second;\n" +
			"handlers in flight finish. Nothing is acked or lost: the entries wait until `laneway lanes\n" +
			"resume`. The pause is kept in Redis, so it outlives engine restarts. Pausing a primary\n" +
			"lane stops production traffic and asks for confirmation (--yes to skip).\n\n" +
			"Examples:\n  laneway lanes pause customer:backfill\n  laneway lanes pause --category customer --lane backfill --handler CustomerProjector\n  laneway lanes pause --all-backfill",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.onSelected(ctx, &f, args, func(i *inspection, store *lanecontrol.Store, sel []selected) error {
				var primaries []string
				for _, s := range sel {
					if s.lane == lanes.Primary {
						primaries = append(primaries, s.stream)
					}
				}
				if len(primaries) > 0 {
					fmt.Fprintf(g.stderr, "WARNING: %s is a primary lane: production events on it will wait until it is resumed.\n", strings.Join(primaries, ", "))
					if err := g.confirm(yes, "pause a primary lane", "Pause production traffic?"); err != nil {
						return err
					}
				}
				for _, s := range sel {
					already, err := store.Pause(ctx, lanecontrol.Pause{Stream: s.stream, Handler: f.handler, By: operator()})
					if err != nil {
						return err
					}
					who := "every handler"
					if f.handler != "" {
						who = "handler " + f.handler
					}
					state := "paused"
					if already {
						state = "already paused"
					}
					if s.lane == lanes.Backfill && !i.topo.Lanes.Enabled {
						state += " (lanes are disabled: no engine reads it anyway)"
					}
					fmt.Fprintf(g.stdout, "%s %s for %s; engines stop starting its entries within 1s. Resume: laneway lanes resume %s%s\n",
						s.stream, state, who, s.stream, handlerFlag(f.handler))
				}
				return nil
			})
		},
	}
	f.add(c, true)
	c.Flags().BoolVar(&yes, "yes", false, "do not ask before pausing a primary lane")
	return c
}

func handlerFlag(h string) string {
	if h == "" {
		return ""
	}
	return " --handler " + h
}

func newLanesResumeCmd(g *globals) *cobra.Command {
	var f laneFlags
	c := &cobra.Command{
		Use:   "resume [STREAM]",
		Short: "Resume a paused lane: every engine starts its waiting entries again within a second",
		Long: "Without --handler, every pause of the lane is lifted (the lane's and each handler's);\n" +
			"with --handler, that handler's own pause only.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.onSelected(ctx, &f, args, func(i *inspection, store *lanecontrol.Store, sel []selected) error {
				for _, s := range sel {
					gone, err := store.Resume(ctx, s.stream, f.handler)
					if err != nil {
						return err
					}
					if len(gone) == 0 {
						fmt.Fprintf(g.stdout, "%s was not paused%s\n", s.stream, forHandler(f.handler))
						continue
					}
					for _, p := range gone {
						fmt.Fprintf(g.stdout, "%s resumed%s after %s\n", s.stream, forHandler(strings.TrimPrefix(p.Handler, lanecontrol.AllHandlers)),
							(time.Duration(p.PausedForSeconds) * time.Second).String())
					}
					if f.handler != "" {
						snap, err := store.Load(ctx)
						if err != nil {
							return err
						}
						if _, still := snap.PauseOf(s.stream, f.handler); still {
							fmt.Fprintf(g.stdout, "%s is still paused for every handler: laneway lanes resume %s\n", s.stream, s.stream)
						}
					}
				}
				return nil
			})
		},
	}
	f.add(c, true)
	return c
}

func forHandler(h string) string {
	if h == "" {
		return ""
	}
	return " for handler " + h
}

func newLanesThrottleCmd(g *globals) *cobra.Command {
	var f laneFlags
	var clearRate bool
	c := &cobra.Command{
		Use:   "throttle [STREAM] [RATE]",
		Short: "Hold a backfill lane to a rate shared by every engine (e.g. 500/s), or --clear it",
		Long: "RATE is messages per second per handler, across every engine of the domain: 500/s, 500,\n" +
			"or 30/m. It overrides backfill_rate_per_second for the lane until --clear. Primary lanes\n" +
			"are never throttled.\n\n" +
			"Examples:\n  laneway lanes throttle customer:backfill 500/s\n  laneway lanes throttle --all-backfill 200/s\n  laneway lanes throttle customer:backfill --clear",
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rate float64
			var err error
			switch {
			case clearRate && (len(args) == 2 || len(args) == 1 && looksLikeRate(args[0])):
				return fmt.Errorf("--clear takes no RATE")
			case clearRate:
			case len(args) == 0:
				return fmt.Errorf("give a RATE such as 500/s (or --clear)")
			default:
				rate, err = parseRate(args[len(args)-1])
				if err != nil {
					return err
				}
				args = args[:len(args)-1]
			}
			ctx := cmd.Context()
			return g.onSelected(ctx, &f, args, func(i *inspection, store *lanecontrol.Store, sel []selected) error {
				for _, s := range sel {
					if s.lane != lanes.Backfill {
						return fmt.Errorf("%s is a primary lane, which is never throttled: throttle its backfill lane %s", s.stream, i.topo.Backfill(s.stream))
					}
				}
				for _, s := range sel {
					if clearRate {
						had, err := store.ClearThrottle(ctx, s.stream)
						if err != nil {
							return err
						}
						back := "unlimited"
						if r := i.cfg.Server.PriorityLanes.BackfillRatePerSecond; r > 0 {
							back = formatRate(r) + " (backfill_rate_per_second)"
						}
						if !had {
							fmt.Fprintf(g.stdout, "%s had no throttle; its rate is %s\n", s.stream, back)
							continue
						}
						fmt.Fprintf(g.stdout, "%s throttle cleared; its rate is %s within 1s\n", s.stream, back)
						continue
					}
					if err := store.Throttle(ctx, lanecontrol.Throttle{Stream: s.stream, PerSecond: rate, By: operator()}); err != nil {
						return err
					}
					fmt.Fprintf(g.stdout, "%s throttled to %s per handler across every engine, within 1s. Undo: laneway lanes throttle %s --clear\n",
						s.stream, formatRate(rate), s.stream)
				}
				return nil
			})
		},
	}
	f.add(c, false)
	c.Flags().BoolVar(&clearRate, "clear", false, "remove the lane's throttle (back to backfill_rate_per_second)")
	return c
}

func looksLikeRate(s string) bool { _, err := parseRate(s); return err == nil }

// parseRate reads "500/s", "500", "30/m" (per minute) as messages per
// second.
func parseRate(s string) (float64, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), "/")
	div := 1.0
	switch unit {
	case "", "s", "sec", "second":
	case "m", "min", "minute":
		div = 60
	default:
		return 0, fmt.Errorf("rate %q: use messages per second such as 500/s, or per minute such as 30/m", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("rate %q: use a positive number such as 500/s (to lift a throttle: --clearRate)", s)
	}
	return v / div, nil
}

func formatRate(r float64) string {
	return strconv.FormatFloat(math.Round(r*100)/100, 'f', -1, 64) + "/s"
}

// printControls writes the controls in force under lanes status and watch.
func printControls(w io.Writer, st inspect.Status, prefix string) {
	ctl := st.Controls
	if ctl == nil {
		return
	}
	var lines []string
	for _, p := range ctl.Pauses {
		who := "every handler"
		if p.Handler != lanecontrol.AllHandlers {
			who = "handler " + p.Handler
		}
		lines = append(lines, fmt.Sprintf("PAUSED %s for %s, %s (since %s by %s); resume: laneway lanes resume %s%s",
			p.Stream, who, (time.Duration(p.PausedForSeconds)*time.Second).String(), p.Since.UTC().Format(time.RFC3339), p.By,
			p.Stream, handlerFlag(strings.TrimPrefix(p.Handler, lanecontrol.AllHandlers))))
	}
	for _, t := range ctl.Throttles {
		lines = append(lines, fmt.Sprintf("THROTTLED %s to %s per handler (since %s by %s)", t.Stream, formatRate(t.PerSecond), t.Since.UTC().Format(time.RFC3339), t.By))
	}
	if ctl.ConfigRatePerSecond > 0 {
		lines = append(lines, fmt.Sprintf("backfill rate %s per handler and lane (backfill_rate_per_second)", formatRate(ctl.ConfigRatePerSecond)))
	}
	if ctl.GovernorTargetMS > 0 {
		if gs := ctl.Governor; gs != nil {
			lines = append(lines, fmt.Sprintf("governor: backfill allowance %.0f%%, primary p99 %.1fms, target %dms (%d samples; %s; changed %s)",
				gs.Allowance*100, gs.PrimaryP99MS, ctl.GovernorTargetMS, gs.Samples, gs.Reason, gs.ChangedAt.UTC().Format(time.RFC3339)))
		} else {
			lines = append(lines, fmt.Sprintf("governor: target %dms, no decision yet (no engine has measured)", ctl.GovernorTargetMS))
		}
	}
	if len(lines) == 0 {
		return
	}
	if prefix == "" {
		fmt.Fprintln(w)
	}
	for _, l := range lines {
		fmt.Fprintln(w, prefix+l)
	}
}
