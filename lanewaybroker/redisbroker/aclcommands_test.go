package redisbroker_test

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
	"github.com/laneway/laneway/lanewaybroker/brokertest"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
)

// aclServer starts a Redis of the test's own (ACL users are global to a
// server) and creates user with the given rules.
func aclServer(t *testing.T, user, pass string, rules string) *testsvc.RedisServer {
	t.Helper()
	srv := testsvc.StartRedis(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	args := []any{"ACL", "SETUSER", user, "on", ">" + pass}
	for _, r := range strings.Fields(rules) {
		args = append(args, r)
	}
	require.NoError(t, admin.Do(context.Background(), args...).Err())
	return srv
}

// Every Broker method works for a user granted exactly ACLCommands (and
// the suite's keys): the conformance suite runs as that user, on database
// 2 so SELECT is exercised too.
func TestACLCommandsSuffice(t *testing.T) {
	t.Parallel()
	srv := aclServer(t, "lw", "pw", "resetkeys ~t* ~laneway:* ~rate:laneway:* resetchannels "+redisbroker.ACLCommands)
	url := fmt.Sprintf("redis://lw:pw@%s/2", srv.Addr())
	brokertest.Exercise(t, func(t *testing.T) lanewaybroker.Broker {
		b, err := redisbroker.Open(t.Context(), url, redisbroker.Options{})
		require.NoError(t, err)
		return b
	})
	t.Run("PublishReplicated", func(t *testing.T) {
		b, err := redisbroker.Open(t.Context(), url, redisbroker.Options{})
		require.NoError(t, err)
		defer b.Close()
		_, err = b.PublishReplicated(t.Context(), []lanewaybroker.Publication{{Stream: "t_acl", Data: "x"}}, 1, time.Second/100)
		require.ErrorIs(t, err, lanewaybroker.ErrNotReplicated, "no replica: WAIT runs and reports 0")
	})
	t.Run("MissingPermissions finds none", func(t *testing.T) {
		b, err := redisbroker.Open(t.Context(), url, redisbroker.Options{})
		require.NoError(t, err)
		defer b.Close()
		refused, err := b.MissingPermissions(t.Context(), []string{"t_customer", "t_product"}, "laneway:acl-probe")
		require.NoError(t, err)
		assert.Empty(t, refused)
	})
}

// MissingPermissions names each command and key the user may not use.
func TestMissingPermissions(t *testing.T) {
	t.Parallel()
	rules := strings.Replace(redisbroker.ACLCommands, " +xautoclaim", "", 1)
	srv := aclServer(t, "lw", "pw", "resetkeys ~customer ~customer:* ~laneway:* ~rate:laneway:* "+rules)
	b, err := redisbroker.Open(t.Context(), fmt.Sprintf("redis://lw:pw@%s/0", srv.Addr()), redisbroker.Options{})
	require.NoError(t, err)
	defer b.Close()
	refused, err := b.MissingPermissions(t.Context(), []string{"customer", "product"}, "laneway:acl-probe")
	require.NoError(t, err)
	var got []string
	for _, r := range refused {
		got = append(got, r.Command+" "+r.Key)
		assert.Contains(t, r.Err, "NOPERM")
	}
	assert.ElementsMatch(t, []string{"xautoclaim customer:laneway-acl-probe", "xlen product", "xack product"}, got)

	// Nothing was written: the probes change nothing.
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	keys, err := admin.Keys(t.Context(), "*").Result()
	require.NoError(t, err)
	assert.Empty(t, keys)
}
