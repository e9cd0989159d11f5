// Package lanecontrol holds the operator's controls over a domain's lanes,
// shared by every engine of the domain through Redis: pauses, a backfill
// rate limit per lane, and the governor that lowers the backfill's allowance
// while production latency is over its target.
//
// Keys (all of one domain; docs/operations.md lists them for operators):
//
//	laneway:lanes:<domain>:control          hash: "pause|<stream>|<handler or *>" and "rate|<stream>", JSON values
//	laneway:lanes:<domain>:governor         string: the governor's state, JSON
//	laneway:lanes:<domain>:latency:<second> hash: each engine's primary latency histogram and backfill counts of that second (short TTL)
//	rate:laneway:lanes:<domain>:limit:<stream>|<handler>  the shared GCRA limiter of one handler on one backfill lane
//
// The control hash has no TTL: a pause or a throttle outlives every engine
// restart until an operator lifts it.
package lanecontrol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// AllHandlers is the handler of a pause that applies to every handler of
// the lane.
const AllHandlers = "*"

// Pause is one paused lane (for one handler, or all).
type Pause struct {
	Stream string `json:"stream"`
	// Handler is the consumer group paused, AllHandlers for every one.
	Handler string    `json:"handler"`
	Since   time.Time `json:"since"`
	By      string    `json:"by,omitempty"`
	// PausedForSeconds is filled in when read (how long it has been paused).
	PausedForSeconds float64 `json:"paused_for_seconds"`
}

// Throttle is an operator's backfill rate for one lane, overriding the
// configured backfill_rate_per_second.
type Throttle struct {
	Stream    string    `json:"stream"`
	PerSecond float64   `json:"per_second"`
	Since     time.Time `json:"since"`
	By        string    `json:"by,omitempty"`
}

// Snapshot is every control of a domain as stored in Redis.
type Snapshot struct {
	Pauses    []Pause        `json:"pauses"`
	Throttles []Throttle     `json:"throttles"`
	Governor  *GovernorState `json:"governor,omitempty"`
}

// PauseOf returns the pause that applies to handler on stream: its own, or
// the lane's pause of every handler.
func (s Snapshot) PauseOf(stream, handler string) (Pause, bool) {
	var all *Pause
	for i, p := range s.Pauses {
		if p.Stream != stream {
			continue
		}
		if p.Handler == handler {
			return p, true
		}
		if p.Handler == AllHandlers {
			all = &s.Pauses[i]
		}
	}
	if all != nil {
		return *all, true
	}
	return Pause{}, false
}

// ThrottleOf returns the operator's rate for stream, if any.
func (s Snapshot) ThrottleOf(stream string) (Throttle, bool) {
	for _, t := range s.Throttles {
		if t.Stream == stream {
			return t, true
		}
	}
	return Throttle{}, false
}

// Store reads and writes a domain's controls.
type Store struct {
	rdb    redis.UniversalClient
	domain string
	now    func() time.Time
}

// NewStore returns the Store of domain's controls.
func NewStore(rdb redis.UniversalClient, domain string) *Store {
	return &Store{rdb: rdb, domain: domain, now: time.Now}
}

func (s *Store) prefix() string      { return "laneway:lanes:" + s.domain + ":" }
func (s *Store) controlKey() string  { return s.prefix() + "control" }
func (s *Store) governorKey() string { return s.prefix() + "governor" }
func (s *Store) latencyKey(sec int64) string {
	return fmt.Sprintf("%slatency:%d", s.prefix(), sec)
}

// limitKey names the limiter of handler on a backfill stream ("rate:" is
// added by the limiter).
func (s *Store) limitKey(stream, handler string) string {
	return s.prefix() + "limit:" + stream + "|" + handler
}

func pauseField(stream, handler string) string { return "pause|" + stream + "|" + handler }
func rateField(stream string) string           { return "rate|" + stream }

// Load reads every control in one round trip.
func (s *Store) Load(ctx context.Context) (Snapshot, error) {
	pipe := s.rdb.Pipeline()
	all := pipe.HGetAll(ctx, s.controlKey())
	gov := pipe.Get(ctx, s.governorKey())
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Snapshot{}, fmt.Errorf("read lane controls: %w", err)
	}
	snap := Snapshot{Pauses: []Pause{}, Throttles: []Throttle{}}
	now := s.now()
	for field, v := range all.Val() {
		kind, _, _ := strings.Cut(field, "|")
		switch kind {
		case "pause":
			var p Pause
			if json.Unmarshal([]byte(v), &p) != nil {
				continue
			}
			p.PausedForSeconds = max(now.Sub(p.Since).Seconds(), 0)
			snap.Pauses = append(snap.Pauses, p)
		case "rate":
			var t Throttle
			if json.Unmarshal([]byte(v), &t) != nil {
				continue
			}
			snap.Throttles = append(snap.Throttles, t)
		}
	}
	sort.Slice(snap.Pauses, func(i, j int) bool {
		a, b := snap.Pauses[i], snap.Pauses[j]
		return a.Stream < b.Stream || a.Stream == b.Stream && a.Handler < b.Handler
	})
	sort.Slice(snap.Throttles, func(i, j int) bool { return snap.Throttles[i].Stream < snap.Throttles[j].Stream })
	if v, err := gov.Result(); err == nil {
		var g GovernorState
		if json.Unmarshal([]byte(v), &g) == nil {
			snap.Governor = &g
		}
	}
	return snap, nil
}

// Pause stores p (Since defaults to now). Pausing again keeps the first
// Since, so "paused for" counts from the first pause.
func (s *Store) Pause(ctx context.Context, p Pause) (already bool, err error) {
	if p.Handler == "" {
		p.Handler = AllHandlers
	}
	if p.Since.IsZero() {
		p.Since = s.now().UTC()
	}
	v, _ := json.Marshal(p)
	n, err := s.rdb.HSetNX(ctx, s.controlKey(), pauseField(p.Stream, p.Handler), string(v)).Result()
	if err != nil {
		return false, fmt.Errorf("pause %s: %w", p.Stream, err)
	}
	return !n, nil
}

// Resume lifts the pause of handler on stream; handler "" lifts every pause
// of the stream (the lane's and each handler's). It returns the pauses
// removed.
func (s *Store) Resume(ctx context.Context, stream, handler string) ([]Pause, error) {
	snap, err := s.Load(ctx)
	if err != nil {
		return nil, err
	}
	var gone []Pause
	var fields []string
	for _, p := range snap.Pauses {
		if p.Stream == stream && (handler == "" || p.Handler == handler) {
			gone = append(gone, p)
			fields = append(fields, pauseField(p.Stream, p.Handler))
		}
	}
	if len(fields) == 0 {
		return nil, nil
	}
	if err := s.rdb.HDel(ctx, s.controlKey(), fields...).Err(); err != nil {
		return nil, fmt.Errorf("resume %s: %w", stream, err)
	}
	return gone, nil
}

// Throttle stores t (Since defaults to now).
func (s *Store) Throttle(ctx context.Context, t Throttle) error {
	if t.Since.IsZero() {
		t.Since = s.now().UTC()
	}
	v, _ := json.Marshal(t)
	if err := s.rdb.HSet(ctx, s.controlKey(), rateField(t.Stream), string(v)).Err(); err != nil {
		return fmt.Errorf("throttle %s: %w", t.Stream, err)
	}
	return nil
}

// ClearThrottle removes the operator's rate of stream; it reports whether
// there was one.
func (s *Store) ClearThrottle(ctx context.Context, stream string) (bool, error) {
	n, err := s.rdb.HDel(ctx, s.controlKey(), rateField(stream)).Result()
	if err != nil {
		return false, fmt.Errorf("clear throttle of %s: %w", stream, err)
	}
	return n > 0, nil
}
