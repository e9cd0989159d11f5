//go:build chaos

// Package chaos_test is the fault suite: real `laneway server` processes
// (the chaosapp binary, built here) on a real Redis with an append-only
// file and a real PostgreSQL, both started by the suite, reached through a
// fault-injecting TCP proxy. Each case breaks something in the middle of a
// bulk drain while production traffic flows, then checks that every
// event's effect is there, that nothing was dead-lettered or abandoned by
// a fault that was not the handler's, and measures the recovery. Run it
// with `make chaos`; the table it prints is recorded in docs/RELIABILITY.md.
package chaos_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/chaos/chaosdomain"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewayconfig"
)

// The streams of the chaos domain's one category, named by the lanes owner
// (default naming).
var (
	naming         lanes.Naming
	primaryStream  = naming.Primary("item")
	backfillStream = naming.Backfill(primaryStream)
	// auditGroup is the suite's own consumer group, which never reads.
	auditGroup = "chaos-audit"
)

const (
	// bulkEvents at bulkCost each take about 30 s to drain on two engines
	// (two backfill slots each), so every fault lands mid-drain. With the
	// default messages_per_tick (100) each engine holds at most about 200
	// of them read ahead; case a2 raises it to 1500 so that the engine it
	// kills holds thousands, and its bulk to a2BulkEvents: with 6000, the
	// two engines' read-ahead (up to 3000 each) had emptied the stream by
	// the time the drain was under way, and how the rest split between
	// them decided whether the one to kill ever held 2000. The faults
	// whose drain no target compares with the no-fault one (b to g) run
	// half the bulk, shortBulkEvents: the fault lands with about 11 s of
	// drain left, more than any of them takes to heal, and the suite ends
	// minutes sooner.
	bulkEvents      = 6000
	a2BulkEvents    = 10000
	shortBulkEvents = 3000
	bulkCost        = 20 * time.Millisecond
	// heartbeatTTL is the engine's heartbeat lifetime: the kill case's
	// target is every primary entry of the dead engine handled within it
	// plus 5 s.
	heartbeatTTL = 15 * time.Second
	// recoverWithin bounds every wait for convergence; a case that needs
	// longer fails.
	recoverWithin = 120 * time.Second
	// convergeWithin is the kill case's target: the bulk drain takes at
	// most this many times the no-fault drain of the same run.
	convergeWithin = 1.2
)

type world struct {
	t     *testing.T
	bin   string
	redis *redisServer
	pg    *pgServer
	px    *proxies

	mu   sync.Mutex
	rows []row
	// baseline is the no-fault case's bulk drain time.
	baseline time.Duration
	// failures say which step each failed case was at, printed under the
	// table (the part of a long log a CI summary keeps).
	failures []string
}

// row is one line of the printed table.
type row struct {
	fault                        string
	events, lost, dups, dlq, abd int
	recover, p99                 time.Duration
	drain                        time.Duration // bulk issued to all handled
	bulk                         int           // bulk events of the case
	note                         string
	dupNote                      string // where the duplicates came from
}

// drainRatio is the row's drain per bulk event over the no-fault case's.
func (r row) drainRatio(baseline time.Duration) float64 {
	return (r.drain.Seconds() / float64(r.bulk)) / (baseline.Seconds() / bulkEvents)
}

// spec is one case.
type spec struct {
	name  string
	fault func(c *kase) (healed time.Time)
	// messagesPerTick overrides server.messages_per_tick (0: the default).
	messagesPerTick int
	// bulk overrides bulkEvents (0: bulkEvents).
	bulk int
	// converge asserts the bulk drain within convergeWithin × the baseline.
	converge bool
	// noRedelivery asserts that no entry was handled twice: every engine
	// stays alive, so acks that failed must be kept and sent again, not
	// lost (events the relay published twice do not count).
	noRedelivery bool
}

func TestFaults(t *testing.T) {
	w := &world{t: t}
	w.bin = filepath.Join(t.TempDir(), "chaosapp")
	build := exec.Command("go", "build", "-o", w.bin, "./chaosapp")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	require.NoError(t, build.Run(), "build the engine binary")
	w.redis = startRedis(t)
	w.pg = startPostgres(t)
	w.px = startProxies(t, w.redis.port, w.pg.port)
	t.Cleanup(w.printTable)

	cases := []spec{
		// The same workload without a fault: the drain time the others
		// are compared with (select it with -run too, e.g. 'TestFaults/^(0|a)\.',
		// or the table has no ratio).
		{name: "0. no fault (baseline)", fault: func(*kase) time.Time { return time.Now() }},
		{name: "a. SIGKILL one of two engines", fault: faultKillEngine, converge: true},
		{name: "a2. SIGKILL an engine holding 2,000+ entries", fault: faultKillHoarder, messagesPerTick: 1500, bulk: a2BulkEvents},
		{name: "b. SIGKILL Redis, restart from AOF", fault: faultKillRedis, noRedelivery: true, bulk: shortBulkEvents},
		{name: "c. Redis unreachable 90 s", fault: faultRedisUnreachable, bulk: shortBulkEvents},
		{name: "d. PostgreSQL restart", fault: faultPGRestart, bulk: shortBulkEvents},
		{name: "e. connections cut", fault: faultCutConnections, noRedelivery: true, bulk: shortBulkEvents},
		{name: "f. 200 ms latency, then 30 s blackhole", fault: faultBlackhole, bulk: shortBulkEvents},
		{name: "g. poison and hanging handlers", fault: faultPoison, bulk: shortBulkEvents},
	}
	for i, tc := range cases {
		if !t.Run(tc.name, func(t *testing.T) { w.run(t, i+1, tc) }) {
			return // later cases would run on a broken world
		}
	}
}

// kase is one case's state.
type kase struct {
	t       *testing.T
	w       *world
	dir     string
	db      string
	redisDB int
	app     *laneway.App
	conn    *pgxpool.Pool
	engines []*engine

	mu       sync.Mutex
	issued   map[string]issue // item -> its one event, for every Process that returned nil
	poison   map[string]bool  // the handler's own failures (case g)
	procErrs int
	// messagesPerTick overrides server.messages_per_tick (0: the default).
	messagesPerTick int
	bulkN           int // bulk events issued
	faultFrom       time.Time
	recovered       time.Time // set by a fault that measures its own recovery
	note            string
	step            string // what the case is doing, for a failure report
}

// issue is one issued event: each item gets exactly one, so the item
// names the event.
type issue struct {
	lane string
	at   time.Time
}

func (w *world) run(t *testing.T, n int, sp spec) {
	ctx := context.Background()
	name, fault := sp.name, sp.fault
	c := &kase{t: t, w: w, dir: t.TempDir(), db: fmt.Sprintf("chaos%d", n), redisDB: n, issued: map[string]issue{}, poison: map[string]bool{},
		messagesPerTick: sp.messagesPerTick, bulkN: cmp.Or(sp.bulk, bulkEvents), step: "setting up"}
	defer func() {
		if t.Failed() {
			w.mu.Lock()
			w.failures = append(w.failures, fmt.Sprintf("%s: FAILED while %s", name, c.step))
			w.mu.Unlock()
		}
		// Kept for every case, passed or not: a passing case's
		// duplicates are traced from them too.
		if keep := os.Getenv("LANEWAY_CHAOS_LOGS"); keep != "" {
			c.keepLogs(filepath.Join(keep, fmt.Sprintf("case%d-%d", n, time.Now().Unix())))
		}
	}()
	admin, err := pgx.Connect(ctx, w.pg.url(w.pg.port, "postgres"))
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+c.db)
	require.NoError(t, err)
	admin.Close(ctx)
	require.NoError(t, os.WriteFile(filepath.Join(c.dir, "domain.toml"), []byte(c.config()), 0o644))

	dom, err := chaosdomain.New(func() int64 { return time.Now().UnixNano() }, 0, "suite")
	require.NoError(t, err)
	cfg := lanewayconfig.Default()
	cfg.Databases["default"] = lanewayconfig.Database{Provider: lanewayconfig.DatabaseProviderPostgres, URL: w.pg.url(w.pg.port, c.db) + "&connect_timeout=5"}
	c.app, err = laneway.Open(ctx, dom, cfg, laneway.Options{})
	require.NoError(t, err)
	defer c.app.Close()
	c.conn, err = pgxpool.New(ctx, w.pg.url(w.pg.port, c.db))
	require.NoError(t, err)
	defer c.conn.Close()
	_, err = c.conn.Exec(ctx, chaosdomain.EffectsTable)
	require.NoError(t, err)

	// A group that never reads: retention trims only what every group has
	// handled, so this one keeps every entry in the streams, and
	// duplicateSources can tell an event published twice (two entries)
	// from an entry delivered twice.
	audit := w.redis.client(c.redisDB)
	for _, s := range []string{primaryStream, backfillStream} {
		require.NoError(t, audit.XGroupCreateMkStream(ctx, s, auditGroup, "0").Err())
	}
	audit.Close()

	c.step = "starting the engines"
	c.engines = []*engine{startEngine(t, w.bin, c.dir, "e1"), startEngine(t, w.bin, c.dir, "e2")}
	for _, e := range c.engines {
		require.Eventually(t, e.ready, 60*time.Second, 50*time.Millisecond, "engine not ready; log %s", e.log)
	}

	c.step = "waiting for the bulk drain to start"
	stopProd := c.produce()
	bulkFrom := time.Now()
	c.bulk(c.bulkN)
	require.Eventually(t, func() bool { return c.effects() >= c.bulkN/4 }, recoverWithin, 20*time.Millisecond, "the drain did not start")

	c.step = "injecting the fault"
	c.faultFrom = time.Now()
	healed := fault(c)
	c.step = "waiting for the production events issued before the heal"

	cut := healed
	// Recovered: every production event issued before the heal has its
	// effect.
	recovered := c.recovered
	require.Eventually(t, func() bool {
		if !recovered.IsZero() {
			return true // measured by the fault itself
		}
		if c.missing("prod", cut) == 0 {
			recovered = time.Now()
			return true
		}
		return false
	}, recoverWithin, 20*time.Millisecond, "production events issued before the heal are missing; logs in %s", c.dir)
	c.recovered = recovered
	time.Sleep(500 * time.Millisecond) // production traffic after the recovery
	stopProd()
	c.step = "waiting for every event's effect"
	require.Eventually(t, func() bool { return c.missing("", time.Now()) == 0 }, recoverWithin, 50*time.Millisecond,
		"events lost: %d of %d have no effect; logs in %s", c.missing("", time.Now()), len(c.issued), c.dir)

	// Every handled entry acked: nothing left pending in the group (an
	// ack lost to the fault would leave its entry there, to be run again
	// by the claim_idle_seconds reclaim).
	c.step = "waiting for nothing left pending (acks lost)"
	require.Eventually(t, func() bool { return c.pendingTotal() == 0 }, 30*time.Second, 100*time.Millisecond,
		"entries still pending after the drain (%d): acks lost; logs in %s", c.pendingTotal(), c.dir)
	r := row{fault: name, events: len(c.issued), recover: recovered.Sub(healed), note: c.note, drain: c.bulkDrain(bulkFrom), bulk: c.bulkN}
	r.lost = c.missing("", time.Now())
	r.dups = c.duplicates()
	r.dlq = c.dlqDepth()
	r.abd = c.abandoned()
	r.p99 = c.prodP99(c.faultFrom, recovered)
	if c.procErrs > 0 {
		r.note = strings.TrimSpace(r.note + fmt.Sprintf(" %d Process calls failed cleanly during the fault", c.procErrs))
	}
	c.step = "checking the counts"
	var redelivered int
	r.dupNote, redelivered = c.duplicateSources()
	if found := c.foundAppended(); found > 0 {
		r.dupNote = strings.TrimPrefix(r.dupNote+fmt.Sprintf(
			"; %d rows an unsettled relay attempt had appended were found in their stream and not published again", found), "; ")
	}
	if sp.noRedelivery {
		assert.Zero(t, redelivered, "entries handled twice with every engine alive: acks lost (%s)", r.dupNote)
	}
	w.mu.Lock()
	if n == 1 {
		w.baseline = r.drain
	}
	baseline := w.baseline
	w.rows = append(w.rows, r)
	w.mu.Unlock()
	if sp.converge {
		require.NotZero(t, baseline, "no baseline: run the no-fault case too (-run 'TestFaults/^(0|a)\\.')")
		ratio := r.drainRatio(baseline)
		if !assert.LessOrEqual(t, ratio, convergeWithin, "the bulk drain took %.1f s, %.2f × the no-fault %.1f s", r.drain.Seconds(), ratio, baseline.Seconds()) {
			t.Logf("bulk events handled per engine, by 2 s from the bulk's issue (fault at %.1f s):\n%s",
				c.faultFrom.Sub(bulkFrom).Seconds(), c.drainTimeline(bulkFrom, 2*time.Second))
		}
	}

	assert.Zero(t, r.lost, "lost")
	assert.Zero(t, r.abd, "abandoned outbox rows")
	assert.Equal(t, len(c.poison), r.dlq, "DLQ entries other than the handler's own failures")
	if !t.Failed() { // the report names the step a check failed at
		c.step = "stopping the engines"
	}
	for _, e := range c.engines {
		e.stop(t, 60*time.Second)
	}
}

// keepLogs copies the engines' logs to dir: the case's own directory is
// removed when the test ends.
func (c *kase) keepLogs(dir string) {
	logs, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Logf("keeping logs: %v", err)
		return
	}
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			_ = os.WriteFile(filepath.Join(dir, filepath.Base(l)), b, 0o644)
		}
	}
	c.t.Logf("engine logs kept in %s", dir)
}

func (c *kase) config() string {
	mpt := ""
	if c.messagesPerTick > 0 {
		mpt = fmt.Sprintf("messages_per_tick = %d\n", c.messagesPerTick)
	}
	return fmt.Sprintf(`name = "Chaos"
[databases.default]
provider = "postgres"
url = %q
[brokers.default]
provider = "redis"
url = "redis://127.0.0.1:%d/%d"
[server]
%s[server.http]
listen = "${CHAOS_HTTP}"
[server.stream_subscription]
concurrency = 4
max_retries = 3
retry_delay_seconds = 0.2
claim_idle_seconds = 60
shutdown_timeout_seconds = 5
handler_timeout_seconds = 2
[server.priority_lanes]
enabled = true
threshold = 0
backfill_concurrency = 2
# The whole retry schedule (3 attempts, 0.2 s then 0.4 s apart) is far
# shorter than every outage below: an outage that used up attempts would
# abandon rows.
[outbox]
lease_seconds = 10
[outbox.retry]
max_attempts = 3
base_delay_seconds = 0.2
max_backoff_seconds = 0.4
`, c.w.pg.url(proxyPort(c.w.px.pg), c.db)+"&connect_timeout=5", proxyPort(c.w.px.redis), c.redisDB, mpt)
}

// produce issues one production (NORMAL priority, primary lane) event every
// 20 ms until stopped.
func (c *kase) produce() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			c.process(ctx, fmt.Sprintf("p-%d", i), "prod", laneway.Normal)
		}
	}()
	return func() { cancel(); <-done }
}

func (c *kase) process(ctx context.Context, item, lane string, p laneway.Priority) {
	pctx, cancel := context.WithTimeout(laneway.WithPriority(ctx, p), 10*time.Second)
	defer cancel()
	at := time.Now()
	err := c.app.Process(pctx, chaosdomain.Touch{ItemID: item, Lane: lane, CreatedNS: at.UnixNano()})
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			c.procErrs++
		}
		return
	}
	c.issued[item] = issue{lane, at}
}

// bulk issues n LOW priority (backfill lane) events in batches of 100.
func (c *kase) bulk(n int) {
	ctx := laneway.WithPriority(context.Background(), laneway.Low)
	for start := 0; start < n; start += 100 {
		var cmds []laneway.Command
		for i := start; i < min(start+100, n); i++ {
			cmds = append(cmds, chaosdomain.Touch{ItemID: fmt.Sprintf("b-%d", i), Lane: "bulk", CreatedNS: time.Now().UnixNano()})
		}
		require.NoError(c.t, c.app.ProcessBatch(ctx, cmds))
		c.mu.Lock()
		for i := start; i < min(start+100, n); i++ {
			c.issued[fmt.Sprintf("b-%d", i)] = issue{"bulk", time.Now()}
		}
		c.mu.Unlock()
	}
}

func (c *kase) effects() int {
	var n int
	_ = c.conn.QueryRow(context.Background(), "SELECT count(DISTINCT item_id) FROM chaos_effects").Scan(&n)
	return n
}

// missing counts the issued events of lane ("" for all) created before cut
// that have no effect.
func (c *kase) missing(lane string, cut time.Time) int {
	rows, err := c.conn.Query(context.Background(), "SELECT DISTINCT item_id FROM chaos_effects")
	if err != nil {
		return -1 // the database is down: not recovered
	}
	have := map[string]bool{}
	for rows.Next() {
		var id string
		if rows.Scan(&id) == nil {
			have[id] = true
		}
	}
	rows.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for item, is := range c.issued {
		if (lane == "" || is.lane == lane) && is.at.Before(cut) && !have[item] && !c.poison[item] {
			n++
		}
	}
	return n
}

// bulkDrain is the time from from (the bulk's first batch) to the first
// effect of the last bulk event handled.
func (c *kase) bulkDrain(from time.Time) time.Duration {
	var last int64
	require.NoError(c.t, c.conn.QueryRow(context.Background(),
		`SELECT coalesce(max(h), 0) FROM (SELECT min(handled_ns) AS h FROM chaos_effects WHERE lane = 'bulk' GROUP BY item_id) f`).Scan(&last))
	return time.Duration(last - from.UnixNano())
}

// drainTimeline tells how many bulk events each engine handled in each
// step from from: a slow drain shows whether one engine stalled (and
// when) or all of them did (the machine).
func (c *kase) drainTimeline(from time.Time, step time.Duration) string {
	rows, err := c.conn.Query(context.Background(), `SELECT ((handled_ns - $1) / $2)::int AS b, handled_by, count(*)
		FROM chaos_effects WHERE lane = 'bulk' GROUP BY b, handled_by ORDER BY b, handled_by`, from.UnixNano(), step.Nanoseconds())
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var out strings.Builder
	last := -1
	for rows.Next() {
		var b, n int
		var by string
		if err := rows.Scan(&b, &by, &n); err != nil {
			return err.Error()
		}
		if b != last {
			if last >= 0 {
				out.WriteByte('\n')
			}
			fmt.Fprintf(&out, "%5.0f s:", (time.Duration(b) * step).Seconds())
			last = b
		}
		fmt.Fprintf(&out, " %s %d", by, n)
	}
	return out.String()
}

func (c *kase) duplicates() int {
	var n int
	require.NoError(c.t, c.conn.QueryRow(context.Background(), "SELECT count(*) - count(DISTINCT item_id) FROM chaos_effects").Scan(&n))
	return n
}

func (c *kase) abandoned() int {
	var n int
	require.NoError(c.t, c.conn.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE status = 'abandoned'").Scan(&n))
	return n
}

// pendingTotal counts the entries pending in the handler's group on both
// lanes.
func (c *kase) pendingTotal() int {
	r := c.w.redis.client(c.redisDB)
	defer r.Close()
	n := 0
	for _, s := range []string{primaryStream, backfillStream} {
		p, err := r.XPending(context.Background(), s, chaosdomain.CounterName).Result()
		if err != nil {
			return -1
		}
		n += int(p.Count)
	}
	return n
}

func (c *kase) dlqDepth() int {
	r := c.w.redis.client(c.redisDB)
	defer r.Close()
	n := 0
	for _, s := range []string{naming.DLQ(primaryStream), naming.DLQ(backfillStream)} {
		l, err := r.XLen(context.Background(), s).Result()
		require.NoError(c.t, err)
		n += int(l)
	}
	return n
}

// prodP99 is the 99th percentile of issue-to-effect latency of the
// production events issued between from and to.
func (c *kase) prodP99(from, to time.Time) time.Duration {
	rows, err := c.conn.Query(context.Background(), `SELECT min(handled_ns) - min(created_ns) FROM chaos_effects
		WHERE lane = 'prod' AND created_ns BETWEEN $1 AND $2 GROUP BY item_id`, from.UnixNano(), to.UnixNano())
	require.NoError(c.t, err)
	defer rows.Close()
	var lat []time.Duration
	for rows.Next() {
		var ns int64
		require.NoError(c.t, rows.Scan(&ns))
		lat = append(lat, time.Duration(ns))
	}
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return lat[min(len(lat)-1, len(lat)*99/100)]
}

func (w *world) printTable() {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "\n| fault | events | lost | duplicates | DLQ | abandoned | time to recover | production p99 during recovery | bulk drain (× no fault, per event) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range w.rows {
		ratio := "no baseline run" // -run left the no-fault case out
		if w.baseline > 0 {
			ratio = fmt.Sprintf("%.2f", r.drainRatio(w.baseline))
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %.1f s | %d ms | %.1f s (%s) |\n", r.fault, r.events, r.lost, r.dups, r.dlq, r.abd,
			r.recover.Seconds(), r.p99.Milliseconds(), r.drain.Seconds(), ratio)
	}
	for _, r := range w.rows {
		if r.note != "" {
			fmt.Fprintf(&b, "\n%s: %s", r.fault, r.note)
		}
		if r.dupNote != "" {
			fmt.Fprintf(&b, "\n%s: duplicates: %s", r.fault, r.dupNote)
		}
	}
	for _, f := range w.failures {
		fmt.Fprintf(&b, "\n%s", f)
	}
	fmt.Println(b.String())
}
