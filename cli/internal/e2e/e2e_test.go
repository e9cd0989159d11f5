package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/testsvc"
)

const (
	stream   = "customer"
	backfill = "customer:backfill"
	// wait is the generous deadline of every eventual condition.
	wait = 60 * time.Second
	tick = 25 * time.Millisecond
)

func TestStartupLine(t *testing.T) {
	e := newEnv(t, envParams{Lanes: true})
	eng := e.startEngine()

	assert.Contains(t, eng.stderr.String(),
		`Initialized priority lanes for CustomerProjector: primary='customer', backfill='customer:backfill'`)
	groups := e.groupInfo(backfill)
	assert.Contains(t, groups, customers.ProjectorName)
	assert.Contains(t, groups, customers.NotificationName)

	eng.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng.wait(t, wait))
}

// TestSIGTERMDuringFlood: a graceful stop in the middle of a backlog loses
// nothing and counts nothing as an attempt; a second engine finishes it.
func TestSIGTERMDuringFlood(t *testing.T) {
	const n = 2000
	e := newEnv(t, envParams{Lanes: true})
	app := e.openApp()
	eng := e.startEngine()

	produced := make(chan error, 1)
	go func() { produced <- registerErr(app, 0, n, 8) }()
	// SIGTERM once handling has visibly started, while the flood is on.
	require.Eventually(t, func() bool { return e.summaryCount() >= 200 }, wait, 5*time.Millisecond)
	eng.signal(t, syscall.SIGTERM)
	code := eng.wait(t, wait)
	require.NoError(t, <-produced)
	require.Equal(t, 0, code, "graceful shutdown must exit 0")
	handled := e.summaryCount()
	t.Logf("handled before SIGTERM completed: %d of %d", handled, n)
	require.Zero(t, e.count(`SELECT count(*) FROM outbox WHERE status = 'processing'`),
		"a graceful stop finishes the relay's claimed batch: no row is left leased (and later published twice)")

	for _, group := range []string{customers.ProjectorName, customers.NotificationName} {
		pend := e.pendingExt(stream, group)
		t.Logf("%s: %d pending after SIGTERM", group, len(pend))
		for _, p := range pend {
			assert.Equal(t, int64(0), p.RetryCount, "%s: pending %s was counted as an attempt", group, p.ID)
		}
		if group == customers.ProjectorName {
			// Every entry the group read is acked (and projected) or pending
			// uncounted: read - pending == projected.
			g := e.groupInfo(stream)[group]
			assert.Equal(t, int(g.EntriesRead)-len(pend), handled,
				"entries read by the group minus pending must equal customers projected")
			assert.Equal(t, int64(len(pend)), g.Pending)
			for _, p := range pend {
				assert.Zero(t, e.count(`SELECT count(*) FROM customer_summary WHERE customer_id = $1`, customerOf(t, e, p.ID)),
					"pending %s is uncounted, so it must not have been projected", p.ID)
			}
		}
	}
	assert.Equal(t, handled, e.count(`SELECT count(*) FROM laneway_processed WHERE handler = $1`, customers.ProjectorName))

	eng2 := e.startEngine()
	require.Eventually(t, func() bool { return e.summaryCount() == n }, wait, tick)
	require.Eventually(t, func() bool { return len(e.pendingExt(stream, customers.ProjectorName)) == 0 }, wait, tick)
	assert.Equal(t, n, e.count(`SELECT count(*) FROM laneway_processed WHERE handler = $1`, customers.ProjectorName))
	// At-least-once: a relay cycle cut by SIGTERM may have published rows
	// it could not mark, and the next engine publishes them again.
	t.Logf("entries read by %s over both runs: %d for %d events", customers.ProjectorName,
		e.groupInfo(stream)[customers.ProjectorName].EntriesRead, n)
	eng2.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng2.wait(t, wait))
}

// TestSIGKILLReclaim: entries held by a killed engine are claimed by the next
// one after claim_idle_seconds and handled exactly once.
func TestSIGKILLReclaim(t *testing.T) {
	const n = 20
	ctx := context.Background()
	// Concurrency n: the consumer reads all n entries while the projector
	// is blocked on the table lock (at concurrency 1 it reads only when
	// its queue is empty).
	e := newEnv(t, envParams{Lanes: true, Concurrency: n, PoolMaxConns: 3 * n})
	app := e.openApp()
	require.NoError(t, customers.Migrate(ctx, app))

	lockTx, err := e.pg.Begin(ctx)
	require.NoError(t, err)
	_, err = lockTx.Exec(ctx, `LOCK TABLE customer_summary IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	locked := true
	t.Cleanup(func() {
		if locked {
			_ = lockTx.Rollback(context.Background())
		}
	})

	eng := e.startEngine()
	register(t, app, 0, n, 4)

	var dead string
	require.Eventually(t, func() bool {
		// All rows marked published too, so no relay cycle is cut by
		// the kill (its rows would be republished as duplicates).
		p := e.pendingExt(stream, customers.ProjectorName)
		if len(p) != n || e.count(`SELECT count(*) FROM outbox WHERE status = 'published'`) != n {
			return false
		}
		dead = p[0].Consumer
		for _, x := range p {
			if x.Consumer != dead {
				return false
			}
		}
		return true
	}, wait, tick, "the projector should hold all %d entries while blocked on the lock", n)
	require.Contains(t, dead, customers.ProjectorName)

	eng.signal(t, syscall.SIGKILL)
	eng.wait(t, wait)
	require.NoError(t, lockTx.Rollback(ctx))
	locked = false
	require.Equal(t, 0, e.summaryCount(), "nothing may be projected while the table is locked")

	// One entry was "already tried twice" on the dead consumer, and its
	// projection keeps failing (a CHECK constraint rejects its customer).
	// Attempts carry over: the next engine makes only the third and last
	// attempt, then dead-letters it; a reset counter would make three.
	pend := e.pendingExt(stream, customers.ProjectorName)
	require.Len(t, pend, n)
	twice := pend[0].ID
	require.NoError(t, e.rdb.Do(ctx, "XCLAIM", stream, customers.ProjectorName, dead, 0, twice, "RETRYCOUNT", 2, "JUSTID").Err())
	for _, p := range e.pendingExt(stream, customers.ProjectorName) {
		if p.ID == twice {
			require.Equal(t, int64(2), p.RetryCount)
		}
	}
	failing := customerOf(t, e, twice)
	_, err = e.pg.Exec(ctx, `ALTER TABLE customer_summary ADD CONSTRAINT e2e_reject CHECK (customer_id <> '`+failing+`')`)
	require.NoError(t, err)

	eng2 := e.startEngine()
	require.Eventually(t, func() bool { return e.summaryCount() == n-1 }, wait, tick)
	require.Eventually(t, func() bool { return e.rdbLen(stream+":dlq") == 1 }, wait, tick)
	require.Eventually(t, func() bool { return len(e.pendingExt(stream, customers.ProjectorName)) == 0 }, wait, tick)
	assert.Equal(t, n-1, e.count(`SELECT count(*) FROM laneway_processed WHERE handler = $1`, customers.ProjectorName))
	assert.Zero(t, e.count(`SELECT count(*) FROM customer_summary WHERE customer_id = $1`, failing))

	eng2.logged(t, `handler failed; attempts exhausted" group=`+customers.ProjectorName+` .*id=`+twice)
	var failures []string
	for _, line := range strings.Split(eng2.stderr.String(), "\n") {
		if strings.Contains(line, "handler failed") && strings.Contains(line, "group="+customers.ProjectorName) && strings.Contains(line, "id="+twice) {
			failures = append(failures, line)
		}
	}
	require.Len(t, failures, 1, "the entry tried twice gets exactly one more attempt: %v", failures)
	assert.Contains(t, failures[0], "attempts exhausted")
	assert.Contains(t, failures[0], "attempts=3")

	consumers, err := e.rdb.XInfoConsumers(ctx, stream, customers.ProjectorName).Result()
	require.NoError(t, err)
	var names []string
	for _, c := range consumers {
		names = append(names, c.Name)
	}
	assert.Contains(t, names, dead)
	assert.Len(t, names, 2, "the second engine's consumer has a different name: %v", names)
	eng2.logged(t, "reclaimed idle entries") // the second engine logs its reclaim

	eng2.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng2.wait(t, wait))
}

// TestTwoEnginesShareWork: two engines on one configuration handle every
// event exactly once between them. At-least-once delivery allows duplicates
// after a crash or a lost ack; this run has neither, so any duplicate is a
// bug (a reclaim stealing a live consumer's entry, a double publish). The
// projector is idempotent and would hide one, so runs are counted where
// nothing deduplicates: each engine's handled counters (NotificationHandler
// has no processed marker), the relays' published counters, and the entries
// each consumer group read from the stream.
//
// No engine dies here, so claim_idle_seconds and the outbox lease are large:
// with the 1 s and 2 s of the crash tests, a live engine starved of CPU on a
// loaded machine (race detector, two engines and PostgreSQL on two cores)
// can fail to refresh its entries within the margin and lose some to the
// other engine's reclaim, which runs them again (see docs/operations.md,
// choosing claim_idle_seconds), or hold a claimed outbox batch past its
// lease, which the other relay then claims and publishes again (a run
// published 20,002 entries for 20,000 rows that way, when this test had 20,000).
// The read model is created first: two engines creating it at once race in
// PostgreSQL's catalog (a unique violation on pg_type), a failed attempt
// that is the example projector's, not the engine's.
func TestTwoEnginesShareWork(t *testing.T) {
	const n = 10000
	e := newEnv(t, envParams{Lanes: true, HTTP: true, ClaimIdleSeconds: 60, LeaseSeconds: 60})
	app := e.openApp()
	require.NoError(t, customers.Migrate(context.Background(), app))
	eng1 := e.startEngine()
	eng2 := e.startEngine()

	register(t, app, 0, n, 8)

	require.Eventually(t, func() bool { return e.summaryCount() == n }, 2*wait, 100*time.Millisecond)
	require.Eventually(t, func() bool {
		return e.count(`SELECT count(*) FROM outbox WHERE status = 'published'`) == n
	}, wait, tick)
	require.Eventually(t, func() bool {
		g := e.groupInfo(stream)[customers.ProjectorName]
		return g.Pending == 0
	}, wait, tick)
	assert.Equal(t, n, e.count(`SELECT count(*) FROM outbox`))
	assert.Equal(t, n, e.count(`SELECT count(*) FROM laneway_processed WHERE handler = $1`, customers.ProjectorName))
	assert.Equal(t, n, e.summaryCount())

	consumers, err := e.rdb.XInfoConsumers(context.Background(), stream, customers.ProjectorName).Result()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(consumers), 2, "each engine has its own consumer")
	for _, c := range consumers {
		t.Logf("consumer %s: pending %d", c.Name, c.Pending)
	}

	// Stream side: n entries published, each read once per group, none
	// left, none dead-lettered.
	for _, group := range []string{customers.ProjectorName, customers.NotificationName} {
		require.Eventually(t, func() bool { return e.groupInfo(stream)[group].Pending == 0 }, wait, tick)
		g := e.groupInfo(stream)[group]
		assert.Equal(t, int64(n), g.EntriesRead, "%s: entries read by the group", group)
		assert.Equal(t, int64(0), g.Lag, group)
	}
	assert.Zero(t, e.rdbLen(stream+":dlq"))
	assert.Zero(t, e.rdbLen(backfill+":dlq"))

	// Handler side: handler runs summed over both engines. Counters lag the
	// ack by nothing (they are counted first), the relay's by its mark.
	sum := func(name string, labels map[string]string) float64 {
		var v float64
		for _, g := range []*engine{eng1, eng2} {
			x, _ := testsvc.Scrape(t, g.httpAddr(t)).Get(t, name, labels)
			v += x
		}
		return v
	}
	require.Eventually(t, func() bool {
		return sum("laneway_relay_published_total", map[string]string{"stream": stream, "lane": "primary"}) == n
	}, wait, tick)
	for _, h := range []string{customers.ProjectorName, customers.NotificationName} {
		runs := sum("laneway_messages_handled_total", map[string]string{"handler": h, "lane": "primary", "outcome": "ok"})
		assert.Equal(t, float64(n), runs, "%s: handler runs over both engines", h)
		assert.Zero(t, sum("laneway_messages_handled_total", map[string]string{"handler": h, "lane": "primary", "outcome": "error"}), h)
		assert.Zero(t, sum("laneway_retries_total", map[string]string{"handler": h, "lane": "primary"}), h)
		for _, g := range []*engine{eng1, eng2} {
			x := testsvc.Scrape(t, g.httpAddr(t)).Must(t, "laneway_messages_handled_total", map[string]string{"handler": h, "lane": "primary", "outcome": "ok"})
			t.Logf("%s on %s: %v runs", h, g.httpAddr(t), x)
			assert.Positive(t, x, "%s: each engine takes a share of the work", h)
		}
	}

	eng1.signal(t, syscall.SIGTERM)
	eng2.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng1.wait(t, wait))
	assert.Equal(t, 0, eng2.wait(t, wait))
}

// TestLanesOffLeavesBackfillUntouched: with lanes off the engine reads only
// the primary stream; leftovers in a backfill stream are not consumed, and
// the engine warns about them at start.
func TestLanesOffLeavesBackfillUntouched(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envParams{Lanes: false})
	for i := 0; i < 3; i++ {
		require.NoError(t, e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: backfill, Values: map[string]any{"data": "left over"}}).Err())
	}
	app := e.openApp()
	eng := e.startEngine()
	assert.NotContains(t, eng.stderr.String(), "Initialized priority lanes")
	assert.Contains(t, eng.stderr.String(), "customer:backfill holds 3 entries and priority lanes are disabled, so nothing reads them", "the start says so")

	register(t, app, 0, 1, 1)
	require.Eventually(t, func() bool { return e.summaryCount() == 1 }, wait, tick)

	assert.Equal(t, int64(3), e.rdbLen(backfill))
	assert.Empty(t, e.groupInfo(backfill))

	eng.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng.wait(t, wait))
}

// customerOf returns the customer id in the event of a stream entry.
func customerOf(t *testing.T, e *env, id string) string {
	t.Helper()
	msgs, err := e.rdb.XRange(context.Background(), stream, id, id).Result()
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	var entry struct {
		Data struct {
			CustomerID string `json:"customer_id"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(msgs[0].Values["data"].(string)), &entry))
	require.NotEmpty(t, entry.Data.CustomerID)
	return entry.Data.CustomerID
}

func (e *env) rdbLen(key string) int64 {
	e.t.Helper()
	n, err := e.rdb.XLen(context.Background(), key).Result()
	require.NoError(e.t, err)
	return n
}

// TestServerJSONLogsProductionEnv: `laneway server --log-format json --env
// production` logs JSON only, runs the production overlay (lanes on) and
// exits 0 on SIGINT.
func TestServerJSONLogsProductionEnv(t *testing.T) {
	e := newEnv(t, envParams{ProductionLanes: true})
	app := e.openApp()
	eng := e.startEngine("--log-format", "json", "--env", "production")

	register(t, app, 0, 1, 1)
	require.Eventually(t, func() bool { return e.summaryCount() == 1 }, wait, tick)
	assert.Contains(t, e.groupInfo(backfill), customers.ProjectorName, "backfill groups exist: lanes are on")

	keys, err := e.rdb.Keys(context.Background(), laneway.HeartbeatPrefix+"*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 1)
	raw, err := e.rdb.Get(context.Background(), keys[0]).Result()
	require.NoError(t, err)
	var hb laneway.Heartbeat
	require.NoError(t, json.Unmarshal([]byte(raw), &hb))
	assert.Equal(t, "production", hb.Env)
	assert.True(t, hb.LanesEnabled)

	eng.signal(t, syscall.SIGINT)
	require.Equal(t, 0, eng.wait(t, wait), "SIGINT is a graceful stop")

	type line struct {
		Time  string `json:"time"`
		Level string `json:"level"`
		Msg   string `json:"msg"`
		Lanes *bool  `json:"lanes"`
	}
	var msgs []line
	for _, l := range strings.Split(strings.TrimSpace(eng.stderr.String()), "\n") {
		var x line
		require.NoError(t, json.Unmarshal([]byte(l), &x), "every line is one JSON object: %q", l)
		require.NotEmpty(t, x.Time, l)
		require.NotEmpty(t, x.Level, l)
		msgs = append(msgs, x)
	}
	find := func(msg string) *line {
		for i := range msgs {
			if msgs[i].Msg == msg {
				return &msgs[i]
			}
		}
		t.Fatalf("no log line %q in:\n%s", msg, eng.stderr.String())
		return nil
	}
	initLine := find("Initialized priority lanes for CustomerProjector: primary='customer', backfill='customer:backfill'")
	assert.Equal(t, "DEBUG", initLine.Level)
	started := find("laneway engine started")
	require.NotNil(t, started.Lanes)
	assert.True(t, *started.Lanes, "the production overlay turns lanes on")
	find("shutting down: finishing in-flight handlers")
	find("engine stopped")
}
