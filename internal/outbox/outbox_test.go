package outbox_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/brokertest"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore"
)

func TestRetryDelay(t *testing.T) {
	p := outbox.Retry{BaseDelay: time.Second, MaxBackoff: 3 * time.Second}
	assert.Equal(t, time.Second, outbox.RetryDelay(p, 1))
	assert.Equal(t, 2*time.Second, outbox.RetryDelay(p, 2))
	assert.Equal(t, 3*time.Second, outbox.RetryDelay(p, 3))
	assert.Equal(t, 3*time.Second, outbox.RetryDelay(p, 60))
	p.Jitter = true
	for range 200 {
		d := outbox.RetryDelay(p, 1)
		require.GreaterOrEqual(t, d, 750*time.Millisecond)
		require.LessOrEqual(t, d, 1250*time.Millisecond)
		require.LessOrEqual(t, outbox.RetryDelay(p, 5), 3*time.Second)
	}
}

func TestMixedBatchRoutesRowByRow(t *testing.T) {
	brokers := map[string]func(testing.TB) lanewaybroker.Broker{"embedded": openEmbedded, "redis": openRedis}
	for name, open := range brokers {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, b := openSQLite(t), open(t)
			cat := testsvc.Prefix() + "customer"
			type want struct {
				row    lanewaystore.OutboxRow
				md     envelope.Metadata
				stream string
			}
			var wants []want
			add := func(category string, prio int, stream string) {
				r, md := newRow(t, category, prio, stream)
				wants = append(wants, want{r, md, stream})
			}
			add(cat, 0, cat)
			add(cat, -50, cat+":backfill")
			add(cat+":command", -50, cat+":command:backfill")
			add(cat+":command", 50, cat+":command")
			add(cat, -1, cat+":backfill")
			add(cat, 100, cat)
			rows := make([]lanewaystore.OutboxRow, len(wants))
			for i, w := range wants {
				rows[i] = w.row
			}
			insert(t, s, rows...)

			r := outbox.New(s, b, outbox.Config{Lanes: lanes.Config{Enabled: true}})
			n, err := r.RunOnce(ctx)
			require.NoError(t, err)
			require.Equal(t, len(rows), n)

			byStream := map[string][]envelope.Envelope{}
			for _, st := range []string{cat, cat + ":backfill", cat + ":command", cat + ":command:backfill"} {
				dropStream(t, b, st)
				byStream[st] = decodeStream(t, b, st)
			}
			found := 0
			for _, w := range wants {
				var got *envelope.Envelope
				for i, e := range byStream[w.stream] {
					if e.Metadata.Headers.ID == w.row.MessageID {
						got = &byStream[w.stream][i]
					}
				}
				require.NotNil(t, got, "message %s (priority %d) not in %s", w.row.MessageID, w.row.Priority, w.stream)
				found++
				assert.JSONEq(t, string(w.row.Data), string(got.Data))
				assert.Equal(t, w.md, got.Metadata)
				assert.Equal(t, w.stream, publishedStream(t, s, w.row.MessageID))
			}
			total := 0
			for _, es := range byStream {
				total += len(es)
			}
			assert.Equal(t, found, total, "no extra entries")
			assert.EqualValues(t, len(rows), r.Stats().Published)
		})
	}
}

func TestClaimOrderEndToEnd(t *testing.T) {
	stores := map[string]func(testing.TB) lanewaystore.Store{
		"sqlite":   openSQLite,
		"postgres": func(t testing.TB) lanewaystore.Store { return openPG(t, testsvc.PostgresURL(t)) },
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, b := open(t), openEmbedded(t)
			cat := testsvc.Prefix() + "customer"
			// Interleaved: L0 N0 H0 L1 N1 L2 H1 N2 L3 L4, one transaction each.
			seq := []struct {
				prio int
				tag  string
			}{{-50, "L0"}, {0, "N0"}, {50, "H0"}, {-50, "L1"}, {0, "N1"}, {-50, "L2"}, {50, "H1"}, {0, "N2"}, {-50, "L3"}, {-50, "L4"}}
			for _, x := range seq {
				r, _ := newRow(t, cat, x.prio, x.tag)
				insert(t, s, r)
			}
			r := outbox.New(s, b, outbox.Config{BatchSize: 4})
			total := 0
			for {
				n, err := r.RunOnce(ctx)
				require.NoError(t, err)
				if n == 0 {
					break
				}
				total += n
			}
			require.Equal(t, 10, total)
			var tags []string
			for _, e := range decodeStream(t, b, cat) {
				var p struct{ Tag string }
				require.NoError(t, jsonUnmarshal(e.Data, &p))
				tags = append(tags, p.Tag)
			}
			assert.Equal(t, []string{"H0", "H1", "N0", "N1", "N2", "L0", "L1", "L2", "L3", "L4"}, tags)
		})
	}
}

func TestThreeRelaysOnePostgresOutbox(t *testing.T) {
	const total = 10000
	ctx := context.Background()
	url := testsvc.PostgresURL(t)
	s := openPG(t, url)
	b := openRedis(t)
	cat := testsvc.Prefix() + "customer"
	dropStream(t, b, cat)
	want := map[string]bool{}
	for i := 0; i < total; i += 1000 {
		rows := make([]lanewaystore.OutboxRow, 1000)
		for j := range rows {
			rows[j], _ = newRow(t, cat, (j%3-1)*50, "x")
			want[rows[j].MessageID] = true
		}
		insert(t, s, rows...)
	}
	var relays []*outbox.Relay
	for range 3 {
		// Each relay its own store (own pool), as three processes would.
		r := outbox.New(openPG(t, url), b, outbox.Config{BatchSize: 100})
		require.NoError(t, r.Start(ctx))
		relays = append(relays, r)
	}
	require.Eventually(t, func() bool {
		st, err := s.OutboxStats(ctx)
		if err != nil {
			return false
		}
		for _, c := range st.Counts {
			if c.Status != lanewaystore.StatusPublished && c.Count > 0 {
				return false
			}
		}
		return true
	}, 60*time.Second, 20*time.Millisecond)
	for _, r := range relays {
		stop(t, r)
	}
	seen := map[string]int{}
	for _, e := range decodeStream(t, b, cat) {
		seen[e.Metadata.Headers.ID]++
	}
	require.Len(t, seen, total)
	for id, n := range seen {
		require.True(t, want[id], "unknown message %s", id)
		require.Equal(t, 1, n, "message %s published %d times", id, n)
	}
	var sum int64
	for _, r := range relays {
		sum += r.Stats().Published
	}
	assert.EqualValues(t, total, sum)
	st, err := s.OutboxStats(ctx)
	require.NoError(t, err)
	var published int64
	for _, c := range st.Counts {
		if c.Status == lanewaystore.StatusPublished {
			published += c.Count
		}
	}
	assert.EqualValues(t, total, published)
	assert.Nil(t, st.OldestPending)
}

func TestBrokerFailureRetriesThenAbandons(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	f := brokertest.NewFaulty(openEmbedded(t))
	clk := newClock()
	cat := testsvc.Prefix() + "customer"
	r := outbox.New(s, f, outbox.Config{
		Now:   clk.Now,
		Retry: outbox.Retry{MaxAttempts: 3, BaseDelay: time.Second, MaxBackoff: time.Minute},
	})
	var ids []string
	for range 4 {
		row, _ := newRow(t, cat, 0, "r")
		insert(t, s, row)
		ids = append(ids, row.MessageID)
	}

	// A failure of the rows themselves (the broker answers): an attempt.
	f.FailPublish(errors.New("ERR value too large"))
	_, err := r.RunOnce(ctx)
	require.Error(t, err)
	rows := listAll(t, s)
	for _, id := range ids {
		row := rows[id]
		assert.Equal(t, lanewaystore.StatusFailed, row.Status)
		assert.Equal(t, 1, row.RetryCount)
		require.NotNil(t, row.NextRetryAt)
		assert.True(t, row.NextRetryAt.After(clk.Now()), "next_retry_at %v is in the future of %v", row.NextRetryAt, clk.Now())
		assert.WithinDuration(t, clk.Now().Add(time.Second), *row.NextRetryAt, time.Millisecond)
		assert.Contains(t, row.LastError, "value too large")
	}
	// Not yet due: nothing is claimed, even with the broker healed.
	f.Heal()
	n, err := r.RunOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	clk.Advance(2 * time.Second)
	n, err = r.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	for _, id := range ids {
		assert.Equal(t, lanewaystore.StatusPublished, listAll(t, s)[id].Status)
	}
	l, err := f.Len(ctx, cat)
	require.NoError(t, err)
	assert.EqualValues(t, 4, l)
	assert.Zero(t, r.Stats().Abandoned)

	// A row that keeps failing: delays double, then it is abandoned.
	row, _ := newRow(t, cat, 0, "doomed")
	insert(t, s, row)
	f.FailPublish(errors.New("WRONGTYPE Operation against a key holding the wrong kind of value"))
	wantDelay := []time.Duration{time.Second, 2 * time.Second}
	for attempt := 1; attempt <= 3; attempt++ {
		_, err := r.RunOnce(ctx)
		require.Error(t, err)
		got := listAll(t, s)[row.MessageID]
		require.Equal(t, attempt, got.RetryCount)
		if attempt < 3 {
			require.Equal(t, lanewaystore.StatusFailed, got.Status)
			require.WithinDuration(t, clk.Now().Add(wantDelay[attempt-1]), *got.NextRetryAt, time.Millisecond)
		} else {
			require.Equal(t, lanewaystore.StatusAbandoned, got.Status)
			require.Contains(t, got.LastError, "WRONGTYPE")
		}
		clk.Advance(time.Hour)
	}
	n, err = r.RunOnce(ctx)
	require.NoError(t, err, "an abandoned row is not claimed again")
	require.Zero(t, n)
	st := r.Stats()
	assert.EqualValues(t, 1, st.Abandoned)
	assert.EqualValues(t, 4+2, st.Failed)
	assert.EqualValues(t, 4, st.Published)
}

func TestLoopSurvivesBrokerOutage(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	f := brokertest.NewFaulty(openEmbedded(t))
	clk := newClock()
	cat := testsvc.Prefix() + "customer"
	r := outbox.New(s, f, outbox.Config{Now: clk.Now, Retry: outbox.Retry{MaxAttempts: 10, BaseDelay: time.Second}})
	f.FailPublish(errors.New("redis down"))
	require.NoError(t, r.Start(ctx))
	defer stop(t, r)
	row, _ := newRow(t, cat, 0, "a")
	insert(t, s, row)
	r.Notify()
	require.Eventually(t, func() bool { return listAll(t, s)[row.MessageID].Status == lanewaystore.StatusFailed }, 10*time.Second, 5*time.Millisecond)
	f.Heal()
	clk.Advance(time.Minute)
	require.Eventually(t, func() bool { return listAll(t, s)[row.MessageID].Status == lanewaystore.StatusPublished }, 20*time.Second, 10*time.Millisecond)
	assert.Zero(t, r.Stats().Abandoned)
}

// stuckBroker hangs in Publish until its context ends: a relay that dies
// mid-publish.
type stuckBroker struct {
	lanewaybroker.Broker
	entered chan struct{}
}

func (b *stuckBroker) Publish(ctx context.Context, _ []lanewaybroker.Publication) ([]string, error) {
	close(b.entered)
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestLeaseOfDeadRelayExpires(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	real := openEmbedded(t)
	clk := newClock()
	cat := testsvc.Prefix() + "customer"
	for range 3 {
		row, _ := newRow(t, cat, 0, "l")
		insert(t, s, row)
	}
	stuck := &stuckBroker{Broker: real, entered: make(chan struct{})}
	dead := outbox.New(s, stuck, outbox.Config{WorkerID: "relay-dead", Now: clk.Now, Lease: 30 * time.Second})
	live := outbox.New(s, real, outbox.Config{WorkerID: "relay-live", Now: clk.Now, Lease: 30 * time.Second})

	dctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = dead.RunOnce(dctx)
	}()
	<-stuck.entered
	cancel() // dies holding the lease: its MarkFailed cannot run either
	wg.Wait()
	for _, row := range listAll(t, s) {
		require.Equal(t, lanewaystore.StatusProcessing, row.Status)
		require.Equal(t, "relay-dead", row.LockedBy)
	}

	n, err := live.RunOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "the lease still holds")

	clk.Advance(31 * time.Second)
	n, err = live.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	l, err := real.Len(ctx, cat)
	require.NoError(t, err)
	assert.EqualValues(t, 3, l)
}

func TestInProcessNotify(t *testing.T) {
	ctx := context.Background()
	s, b := openSQLite(t), openEmbedded(t)
	cat := testsvc.Prefix() + "customer"
	r := outbox.New(s, b, outbox.Config{})
	require.NoError(t, r.Start(ctx))
	defer stop(t, r)
	require.Error(t, r.Start(ctx), "second start")
	row, _ := newRow(t, cat, 0, "n")
	insert(t, s, row)
	r.Notify()
	r.Notify() // never blocks
	require.Eventually(t, func() bool {
		l, err := b.Len(ctx, cat)
		return err == nil && l == 1 && r.Stats().Wakeups.Notify >= 1
	}, 10*time.Second, 5*time.Millisecond)
}

func TestCrossProcessWakeUpViaListen(t *testing.T) {
	ctx := context.Background()
	url := testsvc.PostgresURL(t)
	s := openPG(t, url)
	b := openEmbedded(t)
	cat := testsvc.Prefix() + "customer"
	r := outbox.New(s, b, outbox.Config{TickInterval: time.Minute, MaxTickInterval: time.Minute})
	require.NoError(t, r.Start(ctx))
	defer stop(t, r)

	other := openPG(t, url) // another process's store
	row, _ := newRow(t, cat, 0, "x")
	insert(t, other, row)

	// The relay's first claim, at its start, may publish the row before
	// the notification of its commit arrives; the wake-up comes either way.
	require.Eventually(t, func() bool {
		l, err := b.Len(ctx, cat)
		st := r.Stats()
		return err == nil && l == 1 && st.Published == 1 && st.Wakeups.Listen >= 1
	}, 30*time.Second, 5*time.Millisecond, "the row published and marked, and the relay woken by the other store's notification")
	st := r.Stats()
	assert.Zero(t, st.Wakeups.Poll)
	assert.Zero(t, st.Wakeups.Notify)
	assert.Equal(t, cat, publishedStream(t, s, row.MessageID))
}

func TestCleanup(t *testing.T) {
	ctx := context.Background()
	s, b := openSQLite(t), openEmbedded(t)
	clk := newClock()
	cat := testsvc.Prefix() + "customer"
	for range 7 {
		row, _ := newRow(t, cat, 0, "c")
		insert(t, s, row)
	}
	r := outbox.New(s, b, outbox.Config{Now: clk.Now, CleanupLimit: 2, PublishedRetention: time.Hour})
	n, err := r.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 7, n)
	deleted, err := r.Cleanup(ctx)
	require.NoError(t, err)
	require.Zero(t, deleted, "within retention")
	clk.Advance(2 * time.Hour)
	deleted, err = r.Cleanup(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 7, deleted, "deleted in bounded batches until done")
	require.Empty(t, listAll(t, s))
}

func TestObserver(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	f := brokertest.NewFaulty(openEmbedded(t))
	cat := testsvc.Prefix() + "customer"
	obs := &recorder{}
	r := outbox.New(s, f, outbox.Config{Observer: obs, Lanes: lanes.Config{Enabled: true}, Retry: outbox.Retry{MaxAttempts: 1}})
	a, _ := newRow(t, cat, 0, "a")
	bf, _ := newRow(t, cat, -100, "b")
	insert(t, s, a, bf)
	_, err := r.RunOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{cat: 1, cat + ":backfill": 1}, obs.published)
	c, _ := newRow(t, cat, 0, "c")
	insert(t, s, c)
	f.FailPublish(errors.New("boom"))
	_, err = r.RunOnce(ctx)
	require.Error(t, err)
	assert.Equal(t, 1, obs.abandoned)
	assert.True(t, strings.Contains(listAll(t, s)[c.MessageID].LastError, "boom"))
}

type recorder struct {
	mu        sync.Mutex
	published map[string]int
	failed    int
	abandoned int
}

func (r *recorder) Published(stream string, n int, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.published == nil {
		r.published = map[string]int{}
	}
	r.published[stream] += n
}
func (r *recorder) Failed(n int)    { r.mu.Lock(); r.failed += n; r.mu.Unlock() }
func (r *recorder) Abandoned(n int) { r.mu.Lock(); r.abandoned += n; r.mu.Unlock() }

func TestConfigFrom(t *testing.T) {
	c := lanewayconfig.Default()
	c.Server.PriorityLanes.Enabled = true
	c.Server.PriorityLanes.Threshold = -25
	c.Server.PriorityLanes.BackfillSuffix = "migration"
	c.Outbox.Retry.MaxAttempts = 7
	c.Outbox.Retry.MaxBackoffSeconds = 90
	got, err := outbox.ConfigFrom(c, "Customers")
	require.NoError(t, err)
	assert.Equal(t, lanes.Config{Enabled: true, Threshold: -25, Naming: lanes.Naming{BackfillSuffix: "migration"}}, got.Lanes)
	assert.Equal(t, 500, got.BatchSize)
	assert.Equal(t, 30*time.Second, got.Lease)
	assert.Equal(t, 10*time.Millisecond, got.TickInterval)
	assert.Equal(t, time.Second, got.MaxTickInterval)
	assert.Equal(t, outbox.Retry{MaxAttempts: 7, BaseDelay: time.Second, MaxBackoff: 90 * time.Second, Jitter: true}, got.Retry)
	assert.Equal(t, 168*time.Hour, got.PublishedRetention)
	assert.Equal(t, 720*time.Hour, got.AbandonedRetention)
	assert.Equal(t, "customer:migration", got.Lanes.Route("customer", -50))
}

func TestLogsOncePerStateChange(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	f := brokertest.NewFaulty(openEmbedded(t))
	clk := newClock()
	cat := testsvc.Prefix() + "customer"
	h := &countHandler{}
	r := outbox.New(s, f, outbox.Config{Now: clk.Now, Logger: slog.New(h), Retry: outbox.Retry{MaxAttempts: 100}})
	f.FailPublish(errors.New("down"))
	for range 3 {
		row, _ := newRow(t, cat, 0, "l")
		insert(t, s, row)
		_, err := r.RunOnce(ctx)
		require.Error(t, err)
	}
	assert.Equal(t, 1, h.count(slog.LevelWarn), "one warning for healthy -> failing")
	f.Heal()
	clk.Advance(time.Hour)
	n, err := r.RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	_, err = r.RunOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, h.count(slog.LevelInfo), "one info for failing -> healthy")
	assert.Equal(t, 1, h.count(slog.LevelWarn))
}

type countHandler struct {
	mu     sync.Mutex
	levels map[slog.Level]int
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.levels == nil {
		h.levels = map[slog.Level]int{}
	}
	h.levels[r.Level]++
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }
func (h *countHandler) count(l slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.levels[l]
}
