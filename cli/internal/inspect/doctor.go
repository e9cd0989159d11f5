package inspect

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/laneway/laneway/lanewayconfig"
)

// Check outcomes.
const (
	Pass = "PASS"
	Warn = "WARN"
	Fail = "FAIL"
)

// Check is one doctor check: what it looked at, what it found, and the fix
// when it did not pass.
type Check struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// DoctorParams configure Doctor.
type DoctorParams struct {
	Config *lanewayconfig.Config
	// DomainDir is the --domain directory, quoted in fix texts.
	DomainDir string
	// Sample is the time between the two snapshots of the draining check.
	// Defaults to 2s.
	Sample time.Duration
	// BrokerErr, when set, is why the broker could not be reached (the
	// Inspector is then nil): the configuration checks still run, the
	// others report it.
	BrokerErr error
	// Topology is the domain's, for the permission fix when the Inspector
	// is nil.
	Topology Topology
}

// Doctor runs the seed guide's troubleshooting list as checks, in order:
// lanes enabled, engine running with the file's lanes configuration,
// backfill consumer groups, backfill draining, DLQ entries, upcasters for
// dead-lettered versions, backfill leftovers, pending entries nobody takes
// over, embedded broker in production.
// in may be nil when p.BrokerErr says why.
func Doctor(ctx context.Context, in *Inspector, p DoctorParams) ([]Check, error) {
	cfg := p.Config
	if p.Sample <= 0 {
		p.Sample = 2 * time.Second
	}
	dir := p.DomainDir
	if dir == "" {
		dir = "."
	}
	checks := []Check{lanesEnabled(cfg)}
	if in == nil {
		acl, ok := aclCheckUnreachable(p.BrokerErr, cfg, p.Topology)
		if !ok {
			acl = Check{ID: "redis_acl", Title: "Redis permissions", Status: Warn,
				Detail: "not checked: the broker is not reachable", Fix: "make the broker reachable, then run laneway doctor again"}
		}
		checks = append(checks, acl, Check{ID: "engine", Title: "running engine", Status: Fail,
			Detail: "cannot reach the broker: " + p.BrokerErr.Error(),
			Fix:    fmt.Sprintf("start the engine (laneway server --domain %s) so the broker can be inspected", dir)})
		for _, c := range []Check{{ID: "backfill_groups", Title: "backfill consumer groups"}, {ID: "lane_paused", Title: "paused lanes"}, {ID: "backfill_draining", Title: "backfill draining"},
			{ID: "dlq", Title: "dead-letter queues"}, {ID: "upcasters", Title: "upcasters for dead-lettered versions"},
			{ID: "backfill_leftovers", Title: "backfill leftovers"}, {ID: "stuck_pending", Title: "pending entries nobody takes over"}} {
			c.Status, c.Detail, c.Fix = Warn, "not checked: the broker is not reachable", "make the broker reachable, then run laneway doctor again"
			checks = append(checks, c)
		}
		return append(checks, embeddedInProduction(cfg)), nil
	}

	acl, err := aclCheck(ctx, in, cfg)
	if err != nil {
		return nil, err
	}
	checks = append(checks, acl)
	if acl.Status == Fail {
		// The other checks would stop at the first refused command.
		for _, c := range []Check{{ID: "engine", Title: "running engine"}, {ID: "backfill_groups", Title: "backfill consumer groups"},
			{ID: "backfill_draining", Title: "backfill draining"}, {ID: "dlq", Title: "dead-letter queues"},
			{ID: "upcasters", Title: "upcasters for dead-lettered versions"}, {ID: "backfill_leftovers", Title: "backfill leftovers"},
			{ID: "stuck_pending", Title: "pending entries nobody takes over"}} {
			c.Status, c.Detail, c.Fix = Warn, "not checked: the Redis user lacks permissions (see Redis permissions)", "grant them, then run laneway doctor again"
			checks = append(checks, c)
		}
		return append(checks, embeddedInProduction(cfg)), nil
	}
	first, err := in.Status(ctx, cfg)
	if err != nil {
		return nil, err
	}
	checks = append(checks, engineCheck(first, cfg, dir), backfillGroups(in.topo, first), pausedCheck(first, dir))
	if in.topo.Lanes.Enabled {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(p.Sample):
		}
		second, err := in.Status(ctx, cfg)
		if err != nil {
			return nil, err
		}
		checks = append(checks, Draining(first, second, p.Sample, dir))
	} else {
		checks = append(checks, Check{ID: "backfill_draining", Title: "backfill draining", Status: Pass,
			Detail: "lanes are disabled: no backfill lane is read (see backfill leftovers)"})
	}
	sums, err := in.DLQSummaries(ctx, 0)
	if err != nil {
		return nil, err
	}
	stuckIdle := StuckIdle(cfg)
	stuck, err := in.StuckPending(ctx, stuckIdle)
	if err != nil {
		return nil, err
	}
	checks = append(checks, dlqCheck(sums, len(in.topo.DLQStreams())), upcastCheck(sums), leftovers(first),
		stuckCheck(stuck, stuckIdle), embeddedInProduction(cfg))
	return checks, nil
}

func lanesEnabled(cfg *lanewayconfig.Config) Check {
	c := Check{ID: "lanes_enabled", Title: "lanes enabled"}
	l := cfg.Server.PriorityLanes
	env := cfg.EnvName()
	envText := "no environment overlay (LANEWAY_ENV unset)"
	if env != "" {
		envText = "LANEWAY_ENV=" + env
	}
	if l.Enabled {
		c.Status, c.Detail = Pass, fmt.Sprintf("priority lanes are enabled with %s (threshold %d, backfill suffix %q)", envText, l.Threshold, l.BackfillSuffix)
		return c
	}
	c.Status, c.Detail = Warn, fmt.Sprintf("priority lanes are disabled with %s in %s: every message goes to the primary stream", envText, cfg.Source())
	table := "[server.priority_lanes]"
	if env != "" {
		table = "[" + env + ".server.priority_lanes]"
	}
	c.Fix = fmt.Sprintf("set enabled = true under %s in %s, then restart the engine", table, cfg.Source())
	return c
}

func engineCheck(st Status, cfg *lanewayconfig.Config, dir string) Check {
	c := Check{ID: "engine", Title: "running engine"}
	fp := cfg.LanesFingerprint()
	if len(st.Engines) == 0 {
		c.Status = Fail
		c.Detail = fmt.Sprintf("no running engine of domain %s (no heartbeat key laneway:engine:*)", st.Domain)
		c.Fix = fmt.Sprintf("start the engine: laneway server --domain %s", dir)
		return c
	}
	var stale []string
	for _, e := range st.Engines {
		if !e.FingerprintMatches {
			stale = append(stale, fmt.Sprintf("%s (pid %d on %s, started %s) runs lanes fingerprint %s",
				e.ID, e.PID, e.Host, e.StartedAt.Format(time.RFC3339), e.LanesFingerprint))
		}
	}
	if len(stale) > 0 {
		c.Status = Fail
		c.Detail = fmt.Sprintf("%s; %s has %s", strings.Join(stale, "; "), cfg.Source(), fp)
		c.Fix = "restart the engine: it still runs the lanes configuration it read when it started"
		return c
	}
	c.Status = Pass
	c.Detail = fmt.Sprintf("%d engine(s) running with the file's lanes configuration (fingerprint %s)", len(st.Engines), fp)
	return c
}

func backfillGroups(t Topology, st Status) Check {
	c := Check{ID: "backfill_groups", Title: "backfill consumer groups"}
	if !t.Lanes.Enabled {
		c.Status, c.Detail = Pass, "lanes are disabled: backfill streams need no consumer groups"
		return c
	}
	var missing, cmds []string
	subs := 0
	for _, cs := range st.Categories {
		b := cs.Lanes[1]
		subs += len(cs.Subscriptions)
		for _, g := range b.MissingGroups {
			missing = append(missing, g+" on "+b.Stream)
			cmds = append(cmds, fmt.Sprintf("redis-cli XGROUP CREATE %s %s 0 MKSTREAM", b.Stream, g))
		}
	}
	if len(missing) == 0 {
		c.Status, c.Detail = Pass, fmt.Sprintf("all %d subscriptions have their consumer group on the backfill stream", subs)
		return c
	}
	c.Status = Fail
	c.Detail = "missing consumer groups: " + strings.Join(missing, ", ")
	c.Fix = "restart the engine with lanes enabled (it creates the groups at start), or create them: " + strings.Join(cmds, "; ")
	return c
}

// Draining compares two snapshots of the backfill lanes: a lane with work
// left fails when no running engine reads backfill lanes, or when one of
// its groups handled nothing between the snapshots.
func Draining(before, after Status, sample time.Duration, dir string) Check {
	c := Check{ID: "backfill_draining", Title: "backfill draining"}
	if !after.LanesEnabled {
		c.Status, c.Detail = Pass, "lanes are disabled: no backfill lane is read (see backfill leftovers)"
		return c
	}
	prev := map[string]LaneStatus{}
	for _, cs := range before.Categories {
		prev[cs.Lanes[1].Stream] = cs.Lanes[1]
	}
	// Whether a lane is read is told by the heartbeats, not by consumer
	// idle times: a consumer that gets no entries looks idle on Redis 7.0
	// although it is blocked reading the lane.
	readers := 0
	for _, e := range after.Engines {
		if e.LanesEnabled {
			readers++
		}
	}
	var idle, stuck, draining []string
	for _, cs := range after.Categories {
		now := cs.Lanes[1]
		was := prev[now.Stream]
		if now.Unhandled == 0 || pausedLane(now) {
			continue // a paused lane is the paused-lanes check's WARN
		}
		if readers == 0 {
			growth := ""
			if now.Length > was.Length {
				growth = fmt.Sprintf(", grew by %d in %s,", now.Length-was.Length, sample)
			}
			idle = append(idle, fmt.Sprintf("%s: %d unhandled%s and no running engine reads backfill lanes", now.Stream, now.Unhandled, growth))
			continue
		}
		wasGroups := map[string]GroupStatus{}
		for _, g := range was.Groups {
			wasGroups[g.Name] = g
		}
		progressed := true
		for _, g := range now.Groups {
			w, ok := wasGroups[g.Name]
			if !g.Expected || !ok || g.Pending+g.Lag == 0 || w.Pending+w.Lag == 0 {
				continue
			}
			if g.LastDeliveredID == w.LastDeliveredID && g.OldestPendingID == w.OldestPendingID && g.Pending >= w.Pending {
				progressed = false
				stuck = append(stuck, fmt.Sprintf("%s on %s: %d unhandled and nothing handled in %s (oldest unhandled %s, %.0fs old)",
					g.Name, now.Stream, g.Pending+g.Lag, sample, g.OldestUnhandledID, g.OldestUnhandledAge))
			}
		}
		if progressed {
			draining = append(draining, fmt.Sprintf("%s: %d unhandled (was %d)", now.Stream, now.Unhandled, was.Unhandled))
		}
	}
	switch {
	case len(idle) > 0:
		c.Status = Fail
		c.Detail = strings.Join(append(idle, stuck...), "; ")
		c.Fix = fmt.Sprintf("start the engine with lanes enabled (laneway server --domain %s); it drains the backfill when primary is idle", dir)
	case len(stuck) > 0:
		c.Status = Fail
		c.Detail = strings.Join(stuck, "; ")
		c.Fix = "a handler is hung or its dependency is down: check the engine's log for that handler; entries held by a dead consumer are claimed after claim_idle_seconds; restart the engine if it is wedged"
	case len(draining) > 0:
		c.Status = Pass
		c.Detail = "draining: " + strings.Join(draining, "; ")
	default:
		c.Status, c.Detail = Pass, "every backfill lane is empty"
	}
	return c
}

func dlqCheck(sums []DLQSummary, streams int) Check {
	c := Check{ID: "dlq", Title: "dead-letter queues"}
	if len(sums) == 0 {
		c.Status, c.Detail = Pass, fmt.Sprintf("no entries in the %d DLQ streams", streams)
		return c
	}
	var parts, fixes []string
	for _, s := range sums {
		var rs []string
		for _, r := range s.Reasons {
			rs = append(rs, fmt.Sprintf("%d× %q (%s)", r.Count, r.Reason, strings.Join(r.Groups, ", ")))
		}
		more := ""
		if int64(s.Scanned) < s.Depth {
			more = fmt.Sprintf(", first %d read", s.Scanned)
		}
		parts = append(parts, fmt.Sprintf("%s: %d entries%s: %s", s.Stream, s.Depth, more, strings.Join(rs, ", ")))
		fixes = append(fixes, fmt.Sprintf("inspect them with laneway dlq list --stream %[1]s, fix the cause, then laneway dlq replay-all --stream %[1]s", s.Stream))
	}
	c.Status = Warn
	c.Detail = strings.Join(parts, "; ")
	c.Fix = strings.Join(fixes, "; ")
	return c
}

func upcastCheck(sums []DLQSummary) Check {
	c := Check{ID: "upcasters", Title: "upcasters for dead-lettered versions"}
	var parts, fixes []string
	for _, s := range sums {
		for _, g := range s.Upcast {
			parts = append(parts, fmt.Sprintf("%s: %d entries of %s v%d", s.Stream, g.Count, g.Event, g.Version))
			fixes = append(fixes, g.Fix)
		}
	}
	if len(parts) == 0 {
		c.Status, c.Detail = Pass, "every dead-lettered event version has an upcaster path to the current version"
		return c
	}
	c.Status = Fail
	c.Detail = "no upcaster path to the current version: " + strings.Join(parts, "; ")
	c.Fix = strings.Join(dedupe(fixes), "; ")
	return c
}

func leftovers(st Status) Check {
	c := Check{ID: "backfill_leftovers", Title: "backfill leftovers"}
	if st.LanesEnabled {
		c.Status, c.Detail = Pass, "lanes are enabled: the engine reads every backfill stream"
		return c
	}
	var parts []string
	for _, cs := range st.Categories {
		if b := cs.Lanes[1]; b.Unhandled > 0 {
			parts = append(parts, fmt.Sprintf("%s holds %d unhandled entries", b.Stream, b.Unhandled))
		}
	}
	if len(parts) == 0 {
		c.Status, c.Detail = Pass, "no entries left in backfill streams"
		return c
	}
	c.Status = Warn
	c.Detail = "lanes are disabled and no engine reads them: " + strings.Join(parts, ", ")
	c.Fix = "enable lanes (enabled = true under [server.priority_lanes]) and restart the engine to drain them"
	return c
}

func embeddedInProduction(cfg *lanewayconfig.Config) Check {
	c := Check{ID: "embedded_broker_production", Title: "broker for production"}
	br := cfg.Brokers["default"]
	embedded := br.Provider == lanewayconfig.BrokerProviderEmbedded || br.Provider == ""
	if !strings.EqualFold(cfg.EnvName(), "production") || !embedded {
		c.Status, c.Detail = Pass, fmt.Sprintf("broker %s with LANEWAY_ENV=%q", orDefault(br.Provider, lanewayconfig.BrokerProviderEmbedded), cfg.EnvName())
		return c
	}
	c.Status = Warn
	c.Detail = "LANEWAY_ENV=" + cfg.EnvName() + " uses the embedded broker: its streams live in the engine's memory, are lost when it stops, and no second engine can share them"
	c.Fix = fmt.Sprintf("set provider = \"redis\" and url = \"redis://HOST:6379/0\" under [%s.brokers.default] in %s", cfg.EnvName(), cfg.Source())
	return c
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Failed reports whether any check failed.
func Failed(checks []Check) bool {
	for _, c := range checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}
