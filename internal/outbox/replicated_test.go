package outbox_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
)

// With MinReplicasAcked, a batch no replica acknowledged stays unpublished
// (marked failed, its outbox copy kept) although its entries reached the
// primary; a retry finds them there but waits for a replica too; once a
// replica is attached the retry marks the rows published without a second
// copy.
func TestMinReplicasAcked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary := testsvc.StartRedis(t)
	b, err := redisbroker.Open(ctx, "redis://"+primary.Addr()+"/0", redisbroker.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	s := openSQLite(t)
	cat := testsvc.Prefix() + "customer"
	row, _ := newRow(t, cat, 0, "A")
	insert(t, s, row)
	clk := newClock()
	r := outbox.New(s, b, outbox.Config{Now: clk.Now, MinReplicasAcked: 1, ReplicasTimeout: 50 * time.Millisecond,
		Retry: outbox.Retry{MaxAttempts: 10, BaseDelay: time.Second}})

	n, err := r.RunOnce(ctx)
	require.ErrorIs(t, err, lanewaybroker.ErrNotReplicated)
	assert.Zero(t, n)
	got := listAll(t, s)[row.MessageID]
	assert.Equal(t, "failed", string(got.Status), "not marked published without a replica")
	assert.Contains(t, got.LastError, "reached 0 of 1 replicas")
	l, err := b.Len(ctx, cat)
	require.NoError(t, err)
	assert.EqualValues(t, 1, l, "the entry reached the primary")

	// A retry finds that entry in the stream, but it is no more replicated
	// than before: the retry fails too, and appends no second copy.
	clk.Advance(time.Minute)
	n, err = r.RunOnce(ctx)
	require.ErrorIs(t, err, lanewaybroker.ErrNotReplicated)
	assert.Zero(t, n)
	assert.Equal(t, "failed", string(listAll(t, s)[row.MessageID].Status), "found on the primary alone: not published")
	l, err = b.Len(ctx, cat)
	require.NoError(t, err)
	assert.EqualValues(t, 1, l, "no second copy")

	testsvc.StartRedis(t, "--replicaof", "127.0.0.1", fmt.Sprint(primary.Port))
	admin := redis.NewClient(&redis.Options{Addr: primary.Addr()})
	defer admin.Close()
	require.Eventually(t, func() bool {
		info, err := admin.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "state=online")
	}, 30*time.Second, 20*time.Millisecond, "the replica did not sync")
	clk.Advance(time.Minute) // past the failed row's retry delay
	// "online" in INFO does not mean the replica answers the next WAIT
	// within 50 ms on a loaded machine (a CI run under -race did not):
	// the retry's relay waits up to 10 s, and WAIT returns at the ack.
	r = outbox.New(s, b, outbox.Config{Now: clk.Now, MinReplicasAcked: 1, ReplicasTimeout: 10 * time.Second,
		Retry: outbox.Retry{MaxAttempts: 10, BaseDelay: time.Second}})
	n, err = r.RunOnce(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, "published", string(listAll(t, s)[row.MessageID].Status))
	// The copy on the primary is the row's, now that a replica holds it:
	// no second copy.
	l, err = b.Len(ctx, cat)
	require.NoError(t, err)
	assert.EqualValues(t, 1, l, "no second copy")
	assert.EqualValues(t, 1, r.Stats().FoundAppended)
}

// A relay asked to wait for replicas refuses to start on a broker that
// cannot, and the embedded broker refuses to pretend it has replicas.
func TestMinReplicasAckedNeedsTheCapability(t *testing.T) {
	t.Parallel()
	r := outbox.New(openSQLite(t), publishOnly{openEmbedded(t)}, outbox.Config{MinReplicasAcked: 1})
	err := r.Start(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "min_replicas_acked = 1")

	emb := openEmbedded(t)
	_, err = emb.(lanewaybroker.ReplicatedPublisher).PublishReplicated(context.Background(),
		[]lanewaybroker.Publication{{Stream: "x", Data: "y"}}, 1, time.Second)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "embedded broker has no replicas")
	err = emb.(lanewaybroker.ReplicaWaiter).WaitReplicated(context.Background(), 1, time.Second)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "embedded broker has no replicas")
}

// publishOnly hides every optional capability of a Broker.
type publishOnly struct{ lanewaybroker.Broker }
