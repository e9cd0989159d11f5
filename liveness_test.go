package laneway

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaybroker/redisbroker"
)

// A consumer is dead only when a Laneway engine registered it and that
// engine's heartbeat is gone: a live engine's consumers, consumers of a
// previous release (matched on host and pid) and another service's
// consumers in a shared group (no registration) are never taken over.
func TestLivenessNamesOnlyRegisteredDeadEngines(t *testing.T) {
	ctx := context.Background()
	b, err := redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	defer b.Close()
	set := func(k string, v any, ttl time.Duration) {
		s, ok := v.(string)
		if !ok {
			raw, err := json.Marshal(v)
			require.NoError(t, err)
			s = string(raw)
		}
		require.NoError(t, b.SetKey(ctx, k, s, ttl))
	}
	set(HeartbeatPrefix+"h1-10-aaaaaa", Heartbeat{ID: "h1-10-aaaaaa", Host: "h1", PID: 10, ConsumerSuffix: "-h1-10-aaaaaa"}, time.Minute)
	set(registryPrefix+"h1-10-aaaaaa", "-h1-10-aaaaaa", time.Hour)
	set(registryPrefix+"h2-20-bbbbbb", "-h2-20-bbbbbb", time.Hour)                                       // registered, heartbeat gone
	set(HeartbeatPrefix+"h3-30-cccccc", Heartbeat{ID: "h3-30-cccccc", Host: "h3", PID: 30}, time.Minute) // a previous release
	set(relayLeasesPrefix+"h1-10-aaaaaa", "relay-h1-10-aaaaaa", time.Minute)                             // alive
	set(relayLeasesPrefix+"h2-20-bbbbbb", "relay-h2-20-bbbbbb", time.Minute)                             // stopped, its leases may hold
	set(registryPrefix+"h4-40-dddddd", "-h4-40-dddddd", time.Hour)                                       // stopped, its leases ran out

	live := newLiveness(b)
	alive, err := live.alive(ctx)
	require.NoError(t, err)
	stopped, err := live.stopped(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"relay-h2-20-bbbbbb"}, stopped, "only the relay of a stopped engine whose leases may hold")
	assert.True(t, alive("Projector-h1-10-aaaaaa"), "live engine")
	assert.False(t, alive("Projector-h2-20-bbbbbb"), "registered engine without heartbeat")
	assert.True(t, alive("Projector-h3-30-dddddd"), "previous release, same host and pid")
	assert.True(t, alive("protean_customers.CustomerProjector-vm7-31337-a1b2c3"), "another service's consumer")

	// While this engine's own heartbeat fails, and for outageGrace after it
	// is written again, nobody is dead: the outage may have been everyone's.
	l := newLiveness(b)
	now := time.Now()
	l.now = func() time.Time { return now }
	assert.True(t, l.beat(assert.AnError), "the first failure")
	assert.False(t, l.beat(assert.AnError), "a second failure in a row")
	nobodyDead := func(msg string) {
		t.Helper()
		alive, err := l.alive(ctx)
		require.NoError(t, err)
		assert.True(t, alive("Projector-h2-20-bbbbbb"), msg)
		stopped, err := l.stopped(ctx)
		require.NoError(t, err)
		assert.Empty(t, stopped, msg)
	}
	nobodyDead("while this engine's heartbeat fails")
	now = now.Add(time.Hour)
	nobodyDead("however long it fails")
	assert.False(t, l.beat(nil), "written again")
	now = now.Add(outageGrace - time.Millisecond)
	nobodyDead("within the grace after it is written again")
	now = now.Add(time.Millisecond)
	alive, err = l.alive(ctx)
	require.NoError(t, err)
	assert.False(t, alive("Projector-h2-20-bbbbbb"), "after the grace")
	stopped, err = l.stopped(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"relay-h2-20-bbbbbb"}, stopped, "after the grace")
	assert.True(t, l.beat(assert.AnError), "the first failure after a success")
}
