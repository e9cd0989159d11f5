package lanecontrol

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
)

func redisClient(t *testing.T) redis.UniversalClient {
	opt, err := redis.ParseURL(testsvc.RedisURL(t))
	require.NoError(t, err)
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// Two engines' latencies merge in Redis; of two engines deciding the same
// step, exactly one wins; the next step waits for a full second measured
// under the new allowance.
func TestGovernorSharedThroughRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redisClient(t)
	s := NewStore(rdb, "Gov"+testsvc.RandomSuffix(4))
	g := Governor{Target: 50 * time.Millisecond}
	t0 := time.Unix(time.Now().Unix(), 0).Add(-time.Minute) // a whole second, in the past

	st, changed, err := s.stepGovernor(ctx, g, t0)
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, 1.0, st.Allowance, "starts at the full allowance")

	// In the next second engine a is fast and engine b slow: the fleet's
	// p99 is b's.
	sec := t0.Unix()
	fast, slow := Histogram{}, Histogram{}
	for range 50 {
		fast.Add(5 * time.Millisecond)
		slow.Add(200 * time.Millisecond)
	}
	require.NoError(t, s.publishSeconds(ctx, "a", map[int64]*secondStats{sec: {Primary: fast, Backfill: map[string]int64{"c:backfill|H": 300}}}))
	require.NoError(t, s.publishSeconds(ctx, "b", map[int64]*secondStats{sec: {Primary: slow, Backfill: map[string]int64{"c:backfill|H": 100}}}))

	at := t0.Add(time.Second + publishLag + time.Millisecond)
	var wg sync.WaitGroup
	wins := make(chan bool, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, changed, err := s.stepGovernor(ctx, g, at)
			assert.NoError(t, err)
			wins <- changed
		}()
	}
	wg.Wait()
	close(wins)
	n := 0
	for w := range wins {
		if w {
			n++
		}
	}
	assert.Equal(t, 1, n, "one engine takes the step")
	snap, err := s.Load(ctx)
	require.NoError(t, err)
	require.NotNil(t, snap.Governor)
	assert.Equal(t, 0.25, snap.Governor.Allowance, "p99 ~4x the target: cut to a quarter")
	assert.Greater(t, snap.Governor.PrimaryP99MS, 150.0)
	assert.EqualValues(t, 100, snap.Governor.Samples)
	assert.Nil(t, snap.Governor.References, "no reference from a window at the full allowance (a drain starting up)")

	// Within the second of the change nothing more is decided.
	_, changed, err = s.stepGovernor(ctx, g, at.Add(200*time.Millisecond))
	require.NoError(t, err)
	assert.False(t, changed)
	// A whole quiet second later (no primary traffic) it grows back; the
	// backfill's drain in that second at a quarter of the allowance, scaled
	// up, is the reference its rate is a share of from then on.
	cutSec := snap.Governor.WindowFrom
	require.NoError(t, s.publishSeconds(ctx, "a", map[int64]*secondStats{cutSec: {Backfill: map[string]int64{"c:backfill|H": 240}}}))
	require.NoError(t, s.publishSeconds(ctx, "b", map[int64]*secondStats{cutSec: {Backfill: map[string]int64{"c:backfill|H": 160}}}))
	st, changed, err = s.stepGovernor(ctx, g, at.Add(2*time.Second))
	require.NoError(t, err)
	assert.True(t, changed)
	assert.InDelta(t, 0.3, st.Allowance, 1e-9)
	assert.Equal(t, "primary idle", st.Reason)
	assert.Equal(t, map[string]float64{"c:backfill|H": 400}, st.References, "the fleet's busiest second after the cut")
}

// After a cut, a second still over the target but better than the one that
// caused the cut is held once (grace), and the decision after it looks only
// at the seconds after the held one; a second cut moves the ceiling down.
func TestGovernorGraceThroughRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewStore(redisClient(t), "Grace"+testsvc.RandomSuffix(4))
	g := Governor{Target: 50 * time.Millisecond}
	t0 := time.Unix(time.Now().Unix(), 0).Add(-time.Minute)
	_, _, err := s.stepGovernor(ctx, g, t0)
	require.NoError(t, err)
	second := func(sec int64, d time.Duration) {
		h := Histogram{}
		for range 100 {
			h.Add(d)
		}
		require.NoError(t, s.publishSeconds(ctx, "a", map[int64]*secondStats{sec: {Primary: h}}))
	}
	at := func(sec int64) time.Time { return time.Unix(sec+1, 0).Add(publishLag + time.Millisecond) }

	sec := t0.Unix()
	second(sec, time.Second)
	st, changed, err := s.stepGovernor(ctx, g, at(sec))
	require.NoError(t, err)
	require.True(t, changed)
	assert.InDelta(t, 0.25, st.Allowance, 1e-9)
	assert.True(t, st.LastCut)
	assert.InDelta(t, 1, st.Ceiling, 1e-9)

	// The second of the change is skipped; the next one is over the target
	// but falling: held.
	sec = st.WindowFrom
	second(sec-1, 5*time.Second) // would cut if it were read
	second(sec, 80*time.Millisecond)
	st, changed, err = s.stepGovernor(ctx, g, at(sec))
	require.NoError(t, err)
	assert.False(t, changed)
	assert.InDelta(t, 0.25, st.Allowance, 1e-9)
	assert.False(t, st.LastCut)
	assert.Contains(t, st.Reason, "falling")
	assert.Equal(t, sec+1, st.WindowFrom, "the held second is not judged again")

	// Still over the target the second after: no second grace, but a
	// moderate excess on 100 messages waits for a second second.
	second(sec+1, 70*time.Millisecond)
	st, changed, err = s.stepGovernor(ctx, g, at(sec+1))
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, sec+1, st.WindowFrom)
	second(sec+2, 70*time.Millisecond)
	st, changed, err = s.stepGovernor(ctx, g, at(sec+2))
	require.NoError(t, err)
	assert.True(t, changed, "two seconds, 200 messages: enough to cut")
	assert.InDelta(t, 0.125, st.Allowance, 1e-9)
	assert.InDelta(t, 0.25, st.Ceiling, 1e-9)
}

// The pause and throttle records: a second pause keeps the first time, a
// handler's own pause and the lane's are told apart, resume without a
// handler lifts both.
func TestStorePauseThrottle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewStore(redisClient(t), "St"+testsvc.RandomSuffix(4))
	first := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	already, err := s.Pause(ctx, Pause{Stream: "c:backfill", Since: first, By: "op"})
	require.NoError(t, err)
	assert.False(t, already)
	already, err = s.Pause(ctx, Pause{Stream: "c:backfill"})
	require.NoError(t, err)
	assert.True(t, already)
	_, err = s.Pause(ctx, Pause{Stream: "c", Handler: "H"})
	require.NoError(t, err)
	require.NoError(t, s.Throttle(ctx, Throttle{Stream: "c:backfill", PerSecond: 25}))

	snap, err := s.Load(ctx)
	require.NoError(t, err)
	p, ok := snap.PauseOf("c:backfill", "Other")
	require.True(t, ok, "the lane's pause applies to every handler")
	assert.True(t, p.Since.Equal(first))
	assert.GreaterOrEqual(t, p.PausedForSeconds, 59.0)
	_, ok = snap.PauseOf("c", "Other")
	assert.False(t, ok)
	_, ok = snap.PauseOf("c", "H")
	assert.True(t, ok)
	th, ok := snap.ThrottleOf("c:backfill")
	require.True(t, ok)
	assert.Equal(t, 25.0, th.PerSecond)

	gone, err := s.Resume(ctx, "c", "")
	require.NoError(t, err)
	assert.Len(t, gone, 1)
	had, err := s.ClearThrottle(ctx, "c:backfill")
	require.NoError(t, err)
	assert.True(t, had)
	snap, err = s.Load(ctx)
	require.NoError(t, err)
	assert.Len(t, snap.Pauses, 1)
	assert.Empty(t, snap.Throttles)
}

// The shared limiter also runs on the embedded broker (its Lua), so a
// throttle works in the default setup.
func TestLimiterOnEmbeddedBroker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	defer b.Close()
	c := New(Params{Client: b.RedisClient(), Domain: "Emb", Engine: "e", RatePerSecond: 20})
	ctl := c.Consumer("H", "c", "c:backfill", 1)
	require.NoError(t, c.Start(ctx))
	defer c.Stop()
	require.True(t, ctl.State().Throttled)
	got := 0
	began := time.Now()
	for range 10 {
		n, _ := ctl.TakeBackfill(ctx, 5)
		got += n
	}
	elapsed := time.Since(began)
	assert.Positive(t, got)
	assert.LessOrEqual(t, float64(got), 2+1+20*elapsed.Seconds(), "a 20/s limit grants its burst of 2, then 20 a second")
}
