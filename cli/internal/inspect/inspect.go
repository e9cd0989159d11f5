// Package inspect reads, and never changes, what a domain's engine leaves
// in Redis: its streams per category and lane, their consumer groups,
// backlogs and DLQs, and the heartbeats of running engines. The operator
// commands (lanes status and watch, doctor, dlq) are thin views over it, so
// they all discover streams and count backlogs the same way.
package inspect

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/metrics"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// Topology is every stream a domain's engine reads or leaves behind, as
// resolved from the domain and its configuration, with the domain's
// upcaster chains (for DLQ entries of old versions).
type Topology struct {
	lanes.Topology
	Upcasts Upcasts
}

// NewTopology lists the domain's streams: one event category per aggregate
// (whether or not a handler reads it: the relay publishes every event), and
// one command category per aggregate with commands.
func NewTopology(dom *laneway.Domain, cfg *lanewayconfig.Config) (Topology, error) {
	groups, err := dom.ConsumerGroups(cfg)
	if err != nil {
		return Topology{}, err
	}
	lc, err := lanes.FromConfig(cfg, dom.Name())
	if err != nil {
		return Topology{}, err
	}
	spec := lanes.Spec{Domain: dom.Name(), Categories: dom.AllCategories(), CommandCategories: dom.CommandCategories()}
	for _, h := range dom.Handlers() {
		spec.Readers = append(spec.Readers, lanes.Reader{Group: groups[h.Name()], Categories: dom.Categories(h)})
	}
	return Topology{Topology: lanes.New(spec, lc), Upcasts: dom}, nil
}

// Filter keeps the categories named by s (see lanes.Topology.Filter).
func (t Topology) Filter(s string) (Topology, error) {
	f, err := t.Topology.Filter(s)
	return Topology{Topology: f, Upcasts: t.Upcasts}, err
}

// Inspector reads a domain's streams through a broker.
type Inspector struct {
	broker lanewaybroker.Broker
	topo   Topology
	// activeIdle: a consumer idle longer than this is not counted as
	// active (a dead engine's consumers stay registered).
	activeIdle time.Duration
	now        func() time.Time
}

// Options configure New. The zero value is ready to use.
type Options struct {
	// ActiveIdle is the idle time after which a registered consumer no
	// longer counts as active. Defaults to 30s (engines read at least every
	// blocking_timeout_ms, 5s by default).
	ActiveIdle time.Duration
}

// New returns an Inspector over the streams of topo.
func New(b lanewaybroker.Broker, topo Topology, opts Options) *Inspector {
	if opts.ActiveIdle <= 0 {
		opts.ActiveIdle = 30 * time.Second
	}
	return &Inspector{broker: b, topo: topo, activeIdle: opts.ActiveIdle, now: time.Now}
}

// Topology returns the topology the Inspector reads.
func (in *Inspector) Topology() Topology { return in.topo }

// Status is one snapshot of every category and lane.
type Status struct {
	Domain         string           `json:"domain"`
	Env            string           `json:"env"`
	LanesEnabled   bool             `json:"lanes_enabled"`
	BackfillSuffix string           `json:"backfill_suffix"`
	TakenAt        time.Time        `json:"taken_at"`
	Engines        []Engine         `json:"engines"`
	Categories     []CategoryStatus `json:"categories"`
	Warnings       []string         `json:"warnings"`
	// Controls are the lane controls in force (controls.go); nil when the
	// broker keeps none.
	Controls *Controls `json:"controls,omitempty"`
}

// Engine is a running engine of the domain, from its heartbeat.
type Engine struct {
	laneway.Heartbeat
	// FingerprintMatches: the engine's lanes fingerprint equals the
	// configuration's (false: it was not restarted after a change).
	FingerprintMatches bool `json:"fingerprint_matches"`
}

// CategoryStatus is one category with its lanes (primary first).
type CategoryStatus struct {
	Category      string       `json:"category"`
	Class         lanes.Class  `json:"kind"`
	Subscriptions []string     `json:"subscriptions"`
	Lanes         []LaneStatus `json:"lanes"`
}

// LaneStatus is one lane's stream. Backlog figures are entries not handled
// by the slowest group, since handled entries are trimmed.
type LaneStatus struct {
	Lane    lanes.Lane `json:"lane"`
	Stream  string     `json:"stream"`
	Enabled bool       `json:"enabled"` // the engine reads this lane under the resolved config
	Exists  bool       `json:"exists"`
	Length  int64      `json:"length"`
	// Pending and Lag are the largest of the groups' (Lag is Length when
	// the stream has no group: nobody has read anything).
	Pending int64 `json:"pending"`
	Lag     int64 `json:"lag"`
	// Unhandled is the largest pending + lag of the groups: what is left
	// to do for the slowest subscription.
	Unhandled int64 `json:"unhandled"`
	// OldestUnhandledID is the oldest entry some group has not acked
	// (pending or not yet delivered); "" when all is handled.
	OldestUnhandledID  string        `json:"oldest_unhandled_id"`
	OldestUnhandledAge float64       `json:"oldest_unhandled_age_seconds"`
	Consumers          int64         `json:"consumers"`
	ActiveConsumers    int64         `json:"active_consumers"`
	DLQStream          string        `json:"dlq_stream"`
	DLQDepth           int64         `json:"dlq_depth"`
	Groups             []GroupStatus `json:"groups"`
	// MissingGroups are subscriptions whose group does not exist on the
	// stream although the engine needs it there.
	MissingGroups []string `json:"missing_groups"`
	Warning       string   `json:"warning,omitempty"`
	// Control is the lane's pause and rate (controls.go).
	Control *LaneControl `json:"control,omitempty"`
}

// GroupStatus is one consumer group of a lane's stream.
type GroupStatus struct {
	Name               string  `json:"name"`
	Expected           bool    `json:"expected"` // a subscription of this domain
	Consumers          int64   `json:"consumers"`
	ActiveConsumers    int64   `json:"active_consumers"`
	Pending            int64   `json:"pending"`
	Lag                int64   `json:"lag"`
	LastDeliveredID    string  `json:"last_delivered_id"`
	OldestPendingID    string  `json:"oldest_pending_id"`
	OldestUnhandledID  string  `json:"oldest_unhandled_id"`
	OldestUnhandledAge float64 `json:"oldest_unhandled_age_seconds"`
}

// Engines returns the running engines of the domain (heartbeats), oldest
// first, each compared with fingerprint.
func (in *Inspector) Engines(ctx context.Context, fingerprint string) ([]Engine, error) {
	keys, err := in.broker.GetKeys(ctx, laneway.HeartbeatPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("read engine heartbeats: %w", err)
	}
	out := []Engine{}
	for _, v := range keys {
		var hb laneway.Heartbeat
		if json.Unmarshal([]byte(v), &hb) != nil || hb.Domain != in.topo.Domain {
			continue
		}
		out = append(out, Engine{Heartbeat: hb, FingerprintMatches: hb.LanesFingerprint == fingerprint})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.Before(out[j].StartedAt) })
	return out, nil
}

// Status takes a snapshot of every category and lane of the topology, and
// the running engines. cfg names the environment and fingerprint.
func (in *Inspector) Status(ctx context.Context, cfg *lanewayconfig.Config) (Status, error) {
	st := Status{
		Domain: in.topo.Domain, Env: cfg.EnvName(), LanesEnabled: in.topo.Lanes.Enabled,
		BackfillSuffix: in.topo.Naming().Suffix(), TakenAt: in.now().UTC(), Warnings: []string{},
	}
	var err error
	if st.Engines, err = in.Engines(ctx, cfg.LanesFingerprint()); err != nil {
		return st, err
	}
	// Only consumers of running engines count: a stopped engine's consumer
	// stays listed by Redis until it is taken over and deleted.
	live := func(name string) bool {
		for _, e := range st.Engines {
			if e.OwnsConsumer(name) {
				return true
			}
		}
		return false
	}
	for _, c := range in.topo.Categories {
		cs := CategoryStatus{Category: c.Name, Class: c.Class, Subscriptions: append([]string{}, c.Groups...)}
		for _, lane := range []lanes.Lane{lanes.Primary, lanes.Backfill} {
			name, enabled := c.Name, true
			if lane == lanes.Backfill {
				name, enabled = in.topo.Backfill(c.Name), in.topo.Lanes.Enabled
			}
			ls, err := in.lane(ctx, name, lane, enabled, c.Groups, live)
			if err != nil {
				return st, err
			}
			if ls.Warning != "" {
				st.Warnings = append(st.Warnings, ls.Warning)
			}
			cs.Lanes = append(cs.Lanes, ls)
		}
		st.Categories = append(st.Categories, cs)
	}
	if err := in.addControls(ctx, &st, cfg); err != nil {
		return st, err
	}
	for _, e := range st.Engines {
		if !e.FingerprintMatches {
			st.Warnings = append(st.Warnings, fmt.Sprintf("engine %s runs an older lanes configuration (fingerprint %s, file %s): restart the engine",
				e.ID, e.LanesFingerprint, cfg.LanesFingerprint()))
		}
	}
	return st, nil
}

// Lane inspects one lane's stream. expected are the groups the engine
// needs on it when enabled.
func (in *Inspector) Lane(ctx context.Context, stream string, lane lanes.Lane, enabled bool, expected []string) (LaneStatus, error) {
	return in.lane(ctx, stream, lane, enabled, expected, nil)
}

// lane is Lane counting only the consumers live accepts (all when nil).
func (in *Inspector) lane(ctx context.Context, stream string, lane lanes.Lane, enabled bool, expected []string, live func(string) bool) (LaneStatus, error) {
	ls := LaneStatus{Lane: lane, Stream: stream, Enabled: enabled, DLQStream: in.topo.Naming().DLQ(stream), Groups: []GroupStatus{}, MissingGroups: []string{}}
	var err error
	if ls.Length, err = in.broker.Len(ctx, stream); err != nil {
		return ls, err
	}
	if ls.DLQDepth, err = in.broker.Len(ctx, ls.DLQStream); err != nil {
		return ls, err
	}
	groups, err := in.broker.Groups(ctx, stream)
	if err != nil {
		return ls, err
	}
	ls.Exists = ls.Length > 0 || len(groups) > 0
	want := map[string]bool{}
	for _, g := range expected {
		want[g] = true
	}
	have := map[string]bool{}
	for _, g := range groups {
		have[g.Name] = true
		gs, err := in.group(ctx, stream, g, live)
		if err != nil {
			return ls, err
		}
		gs.Expected = want[g.Name]
		ls.Groups = append(ls.Groups, gs)
		ls.Pending = max(ls.Pending, gs.Pending)
		ls.Lag = max(ls.Lag, gs.Lag)
		ls.Unhandled = max(ls.Unhandled, gs.Pending+gs.Lag)
		ls.Consumers += gs.Consumers
		ls.ActiveConsumers += gs.ActiveConsumers
		if gs.OldestUnhandledID != "" && (ls.OldestUnhandledID == "" || idLess(gs.OldestUnhandledID, ls.OldestUnhandledID)) {
			ls.OldestUnhandledID = gs.OldestUnhandledID
		}
	}
	if len(groups) == 0 && ls.Length > 0 {
		ls.Lag, ls.Unhandled = ls.Length, ls.Length
		if es, err := in.broker.Range(ctx, stream, "-", "+", 1); err != nil {
			return ls, err
		} else if len(es) == 1 {
			ls.OldestUnhandledID = es[0].ID
		}
	}
	ls.OldestUnhandledAge = in.age(ls.OldestUnhandledID)
	if enabled {
		for _, g := range expected {
			if !have[g] {
				ls.MissingGroups = append(ls.MissingGroups, g)
			}
		}
	}
	// Handled entries wait for the trimmer, so the leftovers are the
	// unhandled ones, not the length.
	if !enabled && ls.Unhandled > 0 {
		ls.Warning = fmt.Sprintf("lanes are disabled but %s holds %d unhandled entries that no engine will read: enable [server.priority_lanes] and restart the engine to drain them", stream, ls.Unhandled)
	}
	return ls, nil
}

func (in *Inspector) group(ctx context.Context, stream string, g lanewaybroker.GroupInfo, live func(string) bool) (GroupStatus, error) {
	gs := GroupStatus{Name: g.Name, Consumers: g.Consumers, Pending: g.Pending, Lag: g.Lag, LastDeliveredID: g.LastDeliveredID}
	if g.Consumers > 0 {
		cons, err := in.broker.Consumers(ctx, stream, g.Name)
		if err != nil {
			return gs, err
		}
		if live != nil {
			gs.Consumers = 0
		}
		for _, c := range cons {
			if live != nil {
				if !live(c.Name) {
					continue
				}
				gs.Consumers++
			}
			if c.Idle < in.activeIdle {
				gs.ActiveConsumers++
			}
		}
	}
	if g.Pending > 0 {
		p, err := in.broker.Pending(ctx, lanewaybroker.PendingParams{Stream: stream, Group: g.Name, Start: "-", End: "+", Count: 1})
		if err != nil {
			return gs, err
		}
		if len(p) == 1 {
			gs.OldestPendingID = p[0].ID
			gs.OldestUnhandledID = p[0].ID
		}
	}
	if gs.OldestUnhandledID == "" && g.Lag > 0 {
		es, err := in.broker.Range(ctx, stream, "("+g.LastDeliveredID, "+", 1)
		if err != nil {
			return gs, err
		}
		if len(es) == 1 {
			gs.OldestUnhandledID = es[0].ID
		}
	}
	gs.OldestUnhandledAge = in.age(gs.OldestUnhandledID)
	return gs, nil
}

func (in *Inspector) age(id string) float64 {
	if id == "" {
		return 0
	}
	return max(metrics.IDAge(id).Seconds(), 0)
}

// idLess orders stream ids ("ms-seq") numerically.
func idLess(a, b string) bool {
	am, as := splitID(a)
	bm, bs := splitID(b)
	if am != bm {
		return am < bm
	}
	return as < bs
}

func splitID(id string) (ms, seq uint64) {
	m, s, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(m, 10, 64)
	seq, _ = strconv.ParseUint(s, 10, 64)
	return ms, seq
}
