package redisbroker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
)

// A dedicated blocking-read connection to a server that was demoted to a
// replica (as Sentinel does to a returning primary) is dropped, not kept
// for the next read: otherwise the reader would keep asking the replica,
// which answers READONLY forever, after the failover client has moved on.
func TestDemotedServerDropsBlockConn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, other := testsvc.StartRedis(t), testsvc.StartRedis(t)
	b, err := Open(ctx, "redis://"+a.Addr()+"/0", Options{})
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.EnsureGroup(ctx, "s", "g"))
	read := func() error {
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		_, err := b.ReadGroup(rctx, lanewaybroker.ReadParams{Group: "g", Consumer: "c", Streams: []string{"s"}, Count: 1, Block: 10 * time.Millisecond})
		return err
	}
	require.NoError(t, read())
	b.blockMu.Lock()
	require.Equal(t, 1, idleBlockConns(b), "a healthy connection is kept")
	b.blockMu.Unlock()

	admin := redis.NewClient(&redis.Options{Addr: a.Addr()})
	defer admin.Close()
	require.NoError(t, admin.Do(ctx, "REPLICAOF", "127.0.0.1", fmt.Sprint(other.Port)).Err())
	err = read()
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "READONLY") || strings.Contains(err.Error(), "READONLY"), err.Error())
	b.blockMu.Lock()
	assert.Zero(t, idleBlockConns(b), "the connection to the demoted server is dropped")
	b.blockMu.Unlock()
}

// idleBlockConns counts the idle dedicated connections of every node;
// the caller holds blockMu.
func idleBlockConns(b *Broker) int {
	n := 0
	for _, conns := range b.idleBlock {
		n += len(conns)
	}
	return n
}
