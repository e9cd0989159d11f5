package redisbroker_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
)

// A redis:// URL with user:password logs in as that ACL user. The user may
// only touch keys under its own prefix, so a write outside it failing with
// NOPERM proves the connection is that user, not the default one.
func TestOpenWithACLUser(t *testing.T) {
	t.Parallel()
	base := testsvc.RedisURL(t)
	admin := redis.NewClient(mustParse(t, base))
	t.Cleanup(func() { _ = admin.Close() })
	ctx := t.Context()

	user := "laneway_test_" + testsvc.RandomSuffix(4)
	pass := testsvc.RandomSuffix(12)
	prefix := testsvc.Prefix()
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", user, "reset", "on", ">"+pass, "~"+prefix+"*", "+@all").Err())
	t.Cleanup(func() { _ = admin.Do(context.Background(), "ACL", "DELUSER", user).Err() })

	u, err := url.Parse(base)
	require.NoError(t, err)
	u.User = url.UserPassword(user, pass)
	u.Path = "/0"
	b, err := redisbroker.Open(ctx, u.String(), redisbroker.Options{})
	require.NoError(t, err, "login as %s", user)
	t.Cleanup(func() { _ = b.Close() })

	stream := prefix + "customer"
	t.Cleanup(func() { _ = admin.Del(context.Background(), stream).Err() })
	_, err = b.Publish(ctx, []lanewaybroker.Publication{{Stream: stream, Data: "x"}})
	require.NoError(t, err)
	n, err := b.Len(ctx, stream)
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)

	_, err = b.Publish(ctx, []lanewaybroker.Publication{{Stream: "not_" + stream, Data: "x"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NOPERM")

	who, err := admin.Do(ctx, "CLIENT", "LIST").Text()
	require.NoError(t, err)
	assert.Contains(t, who, "user="+user)
}
