//go:build chaos

package chaos_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/chaos/chaosdomain"
)

// held lists the entries pending on the consumers of engine pid, by stream.
func (c *kase) held(pid int) map[string][]string {
	r := c.w.redis.client(c.redisDB)
	defer r.Close()
	ctx := context.Background()
	out := map[string][]string{}
	for _, stream := range []string{primaryStream, backfillStream} {
		cons, err := r.XInfoConsumers(ctx, stream, "Counter").Result()
		if err != nil {
			continue
		}
		for _, cn := range cons {
			if !strings.Contains(cn.Name, fmt.Sprintf("-%d-", pid)) || cn.Pending == 0 {
				continue
			}
			ps, err := r.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: "Counter", Start: "-", End: "+", Count: 100000, Consumer: cn.Name}).Result()
			require.NoError(c.t, err)
			for _, p := range ps {
				out[stream] = append(out[stream], p.ID)
			}
		}
	}
	return out
}

// consumersOf counts the group's consumers of engine pid on both lanes.
func (c *kase) consumersOf(pid int) int {
	r := c.w.redis.client(c.redisDB)
	defer r.Close()
	n := 0
	for _, stream := range []string{primaryStream, backfillStream} {
		cons, _ := r.XInfoConsumers(context.Background(), stream, "Counter").Result()
		for _, cn := range cons {
			if strings.Contains(cn.Name, fmt.Sprintf("-%d-", pid)) {
				n++
			}
		}
	}
	return n
}

// itemsOf maps stream entry ids to the items of their events.
func (c *kase) itemsOf(stream string, ids []string) []string {
	r := c.w.redis.client(c.redisDB)
	defer r.Close()
	var items []string
	for _, id := range ids {
		es, err := r.XRange(context.Background(), stream, id, id).Result()
		require.NoError(c.t, err)
		for _, e := range es {
			data, _ := e.Values["data"].(string)
			if i := strings.Index(data, `"item_id":"`); i >= 0 {
				rest := data[i+len(`"item_id":"`):]
				items = append(items, rest[:strings.IndexByte(rest, '"')])
			}
		}
	}
	return items
}

func (c *kase) handledAll(items []string) bool {
	rows, err := c.conn.Query(context.Background(), "SELECT DISTINCT item_id FROM chaos_effects WHERE item_id = ANY($1)", items)
	if err != nil {
		return false
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n == len(items)
}

// killAndRestart kills engine 0 once it holds what enough says, restarts
// it restartAfter later (as a supervisor would), and checks that the
// survivors handled every primary entry it held within the heartbeat TTL
// + 5 s of the kill, then all of them, and deleted its consumers.
func (c *kase) killAndRestart(enough func(held map[string][]string) bool, restartAfter time.Duration) time.Time {
	t := c.t
	victim := c.engines[0]
	var held map[string][]string
	require.Eventually(t, func() bool {
		held = c.held(victim.pid())
		return enough(held)
	}, 60*time.Second, 5*time.Millisecond, "the engine to kill never held enough entries")
	victim.kill()
	killed := time.Now()
	held = c.held(victim.pid()) // what it held when it died
	primary := c.itemsOf(primaryStream, held[primaryStream])
	all := append(primary, c.itemsOf(backfillStream, held[backfillStream])...)
	// Recovery is watched from the kill on, beside the restart: the
	// survivor may well recover before the restarted engine is up.
	deadline := killed.Add(heartbeatTTL + 5*time.Second)
	recovered := make(chan time.Time, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(recovered)
		for time.Now().Before(deadline) {
			if c.handledAll(primary) && c.missing("prod", killed) == 0 {
				recovered <- time.Now()
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	time.Sleep(restartAfter)
	c.engines[0] = startEngine(t, c.w.bin, c.dir, "e1-restarted")
	at, ok := <-recovered
	require.True(t, ok, "the dead engine's %d primary entries were not all handled within the heartbeat TTL + 5 s", len(primary))
	c.recovered = at
	require.Eventually(t, func() bool { return c.handledAll(all) }, recoverWithin, 20*time.Millisecond)
	tookOver := time.Since(killed)
	require.Eventually(t, func() bool { return c.consumersOf(victim.pid()) == 0 }, recoverWithin, 100*time.Millisecond, "the dead engine's consumers were not deleted")
	require.Eventually(t, c.engines[0].ready, 60*time.Second, 50*time.Millisecond)
	c.note = fmt.Sprintf("the dead engine held %d entries (%d primary); its primary ones and every production event issued before the kill were handled %.1f s after it, all %d after %.1f s; its consumers were deleted; it was restarted %.0f s after the kill.",
		len(all), len(primary), c.recovered.Sub(killed).Seconds(), len(all), tookOver.Seconds(), restartAfter.Seconds())
	return killed
}

// a. SIGKILL one of two engines mid-drain, restarted 3 s later as a
// supervisor would: the bulk drain must stay within convergeWithin of the
// no-fault one (asserted by run).
func faultKillEngine(c *kase) time.Time {
	return c.killAndRestart(func(held map[string][]string) bool {
		return len(held[primaryStream])+len(held[backfillStream]) >= 100
	}, 3*time.Second)
}

// a2. SIGKILL an engine holding at least 2,000 entries (messages_per_tick
// 1500), at least 10 of them production entries of the bursts: every primary entry
// it held must be handled within the heartbeat TTL + 5 s whatever their
// number.
func faultKillHoarder(c *kase) time.Time {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // bursts of production events, 100 per batch, until the kill
		defer close(done)
		for b := 0; ctx.Err() == nil; b++ {
			if b > 0 {
				// A quiet machine handles a burst in tens of milliseconds:
				// keep them coming so the engine is caught holding some.
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
			cmds := make([]laneway.Command, 0, 100)
			items := make([]string, 0, 100)
			for i := range 100 {
				item := fmt.Sprintf("burst-%d", b*100+i)
				cmds = append(cmds, chaosdomain.Touch{ItemID: item, Lane: "prod", CreatedNS: time.Now().UnixNano()})
				items = append(items, item)
			}
			if c.app.ProcessBatch(laneway.WithPriority(ctx, laneway.Normal), cmds) == nil {
				c.mu.Lock()
				for _, it := range items {
					c.issued[it] = issue{"prod", time.Now()}
				}
				c.mu.Unlock()
			}
		}
	}()
	defer func() { cancel(); <-done }()
	since := time.Now()
	return c.killAndRestart(func(held map[string][]string) bool {
		// Production entries are held only for the milliseconds before
		// their handler starts, so sampling may keep missing them: after
		// 8 s a kill with the 2,000+ entries alone is taken (the case's
		// larger bulk keeps both engines' read-ahead full well past that).
		enoughPrimary := len(held[primaryStream]) >= 10 || time.Since(since) > 8*time.Second
		return enoughPrimary && len(held[primaryStream])+len(held[backfillStream]) >= 2000
	}, 3*time.Second)
}

// duplicateSources says where the duplicate effects came from: an event
// published twice (two stream entries, the relay's retry of a batch whose
// reply was lost), an entry run again after a failed run whose commit went
// through anyway (the connection was cut between the commit and its reply:
// the engine saw an error and retried, as at-least-once must), or one
// entry delivered twice, split by when its first run was: before the fault
// (handled, not acked when the fault hit), during it (acks kept across the
// fault, then lost with a killed engine), after it. redelivered counts
// only the last kind: those are the ones a lost ack explains.
func (c *kase) duplicateSources() (note string, redelivered int) {
	ctx := context.Background()
	rows, err := c.conn.Query(ctx, `SELECT item_id, min(handled_ns) FROM chaos_effects GROUP BY item_id HAVING count(*) > 1`)
	require.NoError(c.t, err)
	first := map[string]int64{}
	for rows.Next() {
		var item string
		var ns int64
		require.NoError(c.t, rows.Scan(&item, &ns))
		first[item] = ns
	}
	rows.Close()
	if len(first) == 0 {
		return "", 0
	}
	entries := map[string][]string{} // item -> its entry IDs
	r := c.w.redis.client(c.redisDB)
	defer r.Close()
	for _, stream := range []string{primaryStream, backfillStream} {
		for start := "-"; ; {
			es, err := r.XRangeN(ctx, stream, start, "+", 1000).Result()
			require.NoError(c.t, err)
			for _, e := range es {
				data, _ := e.Values["data"].(string)
				if i := strings.Index(data, `"item_id":"`); i >= 0 {
					rest := data[i+len(`"item_id":"`):]
					if item := rest[:strings.IndexByte(rest, '"')]; first[item] != 0 {
						entries[item] = append(entries[item], e.ID)
					}
				}
			}
			if len(es) < 1000 {
				break
			}
			start = "(" + es[len(es)-1].ID
		}
	}
	failed := c.failedRuns()
	var republished, retried, before, during, after int
	var examples, twice []string
	from := c.faultFrom.UnixNano()
	for item, ns := range first {
		require.NotEmpty(c.t, entries[item], "item %s has no stream entry: the audit group keeps them all", item)
		switch {
		case len(entries[item]) > 1:
			republished++
			if len(twice) < 3 {
				twice = append(twice, fmt.Sprintf("item %s entries %v", item, entries[item]))
			}
			continue
		case failed[entries[item][0]]:
			retried++
			continue
		}
		if len(examples) < 5 {
			examples = append(examples, fmt.Sprintf("item %s entry %v", item, entries[item]))
		}
		switch {
		case ns < from:
			before++
		case c.recovered.IsZero() || ns < c.recovered.UnixNano():
			during++
		default:
			after++
		}
	}
	note = fmt.Sprintf("%d events published twice; %d entries run again after a failed run that had committed; "+
		"entries delivered twice, first run before the fault %d, during it %d, after recovery %d",
		republished, retried, before, during, after)
	if len(twice) > 0 {
		note += " (published twice: " + strings.Join(twice, "; ") + ")"
	}
	if len(examples) > 0 {
		note += " (" + strings.Join(examples, "; ") + ")"
	}
	return note, before + during + after
}

// failedRuns returns the entry IDs whose handler run failed and was
// retried, from the engines' logs.
func (c *kase) failedRuns() map[string]bool {
	failed := map[string]bool{}
	c.logLines("handler failed; will retry", func(line string) {
		if id := logField(line, "id"); id != "" {
			failed[id] = true
		}
	})
	return failed
}

// foundAppended sums, from the engines' logs, the outbox rows their relays
// found already appended by an unsettled attempt and did not append again.
func (c *kase) foundAppended() int {
	total := 0
	c.logLines("marked published without a second copy", func(line string) {
		n, err := strconv.Atoi(logField(line, "rows"))
		require.NoError(c.t, err, "rows in %q", line)
		total += n
	})
	return total
}

// logLines calls fn with each line of the engines' logs that contains msg.
func (c *kase) logLines(msg string, fn func(line string)) {
	logs, err := filepath.Glob(filepath.Join(c.dir, "*.log"))
	require.NoError(c.t, err)
	for _, name := range logs {
		f, err := os.Open(name)
		require.NoError(c.t, err)
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if line := sc.Text(); strings.Contains(line, msg) {
				fn(line)
			}
		}
		f.Close()
		require.NoError(c.t, sc.Err())
	}
}

// logField returns key's value in a log line, in slog's text (key=value)
// or JSON ("key":"value") form.
func logField(line, key string) string {
	for _, prefix := range []string{" " + key + "=", `"` + key + `":`} {
		if i := strings.Index(line, prefix); i >= 0 {
			rest := strings.TrimPrefix(line[i+len(prefix):], `"`)
			if j := strings.IndexAny(rest, ` ",}`); j >= 0 {
				rest = rest[:j]
			}
			return rest
		}
	}
	return ""
}

// b. SIGKILL Redis and restart it from its append-only file.
func faultKillRedis(c *kase) time.Time {
	c.w.redis.kill()
	time.Sleep(3 * time.Second)
	c.w.redis.start(c.t)
	return time.Now()
}

// c. Redis unreachable (connections closed and refused) for much longer
// than the whole outbox retry schedule; /readyz says not ready meanwhile.
func faultRedisUnreachable(c *kase) time.Time {
	c.w.px.redis.Stop()
	require.Eventually(c.t, func() bool { return !c.engines[0].ready() && !c.engines[1].ready() }, 30*time.Second, 50*time.Millisecond,
		"/readyz still ready with Redis unreachable")
	time.Sleep(90 * time.Second)
	require.NoError(c.t, c.w.px.redis.Start())
	return time.Now()
}

// d. PostgreSQL fast shutdown and start, during Process calls, the relay
// and handlers.
func faultPGRestart(c *kase) time.Time {
	c.w.pg.restart(c.t)
	return time.Now()
}

// e. Every connection cut: CLIENT KILL on Redis, pg_terminate_backend on
// PostgreSQL, twice.
func faultCutConnections(c *kase) time.Time {
	ctx := context.Background()
	r := c.w.redis.client(0)
	defer r.Close()
	for range 2 {
		require.NoError(c.t, r.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err())
		_, err := c.conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", c.db)
		require.NoError(c.t, err)
		time.Sleep(time.Second)
	}
	return time.Now()
}

// f. 200 ms of latency for 5 s, then a 30 s blackhole (data dropped, no
// reset) on the Redis link and the database link. One engine gets SIGTERM
// in the middle of the blackhole: its shutdown must not wedge.
func faultBlackhole(c *kase) time.Time {
	t := c.t
	for _, p := range []*toxiProxy{c.w.px.redis, c.w.px.pg} {
		addToxic(t, p, "lat", "latency", "downstream", `{"latency":200}`)
	}
	time.Sleep(5 * time.Second)
	for _, p := range []*toxiProxy{c.w.px.redis, c.w.px.pg} {
		removeToxic(t, p, "lat")
		addToxic(t, p, "hole-down", "timeout", "downstream", `{"timeout":0}`)
		addToxic(t, p, "hole-up", "timeout", "upstream", `{"timeout":0}`)
	}
	time.Sleep(10 * time.Second)
	stopping := c.engines[1]
	start := time.Now()
	stopping.terminate()
	select {
	case <-stopping.exited:
		stopping.exited <- nil
	case <-time.After(40 * time.Second):
		t.Fatalf("an engine stopped during the blackhole had not exited after 40 s (wedged); log %s", stopping.log)
	}
	c.note = fmt.Sprintf("an engine sent SIGTERM during the blackhole exited after %.1f s.", time.Since(start).Seconds())
	time.Sleep(max(0, 20*time.Second-time.Since(start)))
	for _, p := range []*toxiProxy{c.w.px.redis, c.w.px.pg} {
		removeToxic(t, p, "hole-down")
		removeToxic(t, p, "hole-up")
	}
	healed := time.Now()
	c.engines[1] = startEngine(t, c.w.bin, c.dir, "e2-restarted")
	require.Eventually(t, c.engines[1].ready, 60*time.Second, 50*time.Millisecond)
	return healed
}

// g. Handlers that panic and handlers that hang, among the traffic: they
// go to the DLQ (their own fault) after their attempts, and nothing else
// waits for them.
func faultPoison(c *kase) time.Time {
	for i := range 5 {
		for _, kind := range []string{"poison", "hang"} {
			item := fmt.Sprintf("%s-%d", kind, i)
			c.mu.Lock()
			c.poison[item] = true
			c.mu.Unlock()
			c.process(context.Background(), item, "prod", laneway.Normal)
		}
	}
	healed := time.Now()
	require.Eventually(c.t, func() bool { return c.dlqDepth() == len(c.poison) }, recoverWithin, 50*time.Millisecond, "poison entries not dead-lettered")
	assert.Zero(c.t, c.missing("prod", healed))
	return healed
}
