package laneway_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/internal/tools/syncio"
	"github.com/laneway/laneway/lanewaybroker/brokertest"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// An engine whose heartbeat renewals fail keeps trying, warns once, and
// writes its heartbeat again as soon as Redis takes it: the other engines,
// and one started just after the outage, must see it alive before they
// would take its entries for a dead engine's.
func TestHeartbeatRetriedUntilWritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var rec runLog
	dom := laneDomain(t, testsvc.Prefix()+"account", &rec, nil)
	app, err := laneway.Open(ctx, dom, lanewayconfig.Default(), laneway.Options{Store: stores()[0].open(t)})
	require.NoError(t, err)
	br, err := redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	defer br.Close()
	faulty := brokertest.NewFaulty(br)
	var logs syncio.Buffer
	eng := laneway.NewEngine(app, laneway.EngineOptions{Broker: faulty, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, eng.Start(ctx))
	defer func() { require.NoError(t, eng.Stop(context.Background())) }()

	keys, err := br.GetKeys(ctx, laneway.HeartbeatPrefix+"*")
	require.NoError(t, err)
	require.Len(t, keys, 1)
	var key string
	for k := range keys {
		key = k
	}

	// The outage: renewals fail and the key expires meanwhile.
	faulty.FailSetKey(errors.New("dial tcp 127.0.0.1:6379: connect: connection refused"))
	require.NoError(t, br.DeleteKey(ctx, key))
	require.Eventually(t, func() bool { return faulty.Injected() >= 3 }, opsWait, 10*time.Millisecond,
		"failed renewals are retried")
	assert.Equal(t, 1, strings.Count(logs.String(), "heartbeat failed"), "one warning per outage:\n%s", logs.String())

	faulty.Heal()
	require.Eventually(t, func() bool {
		keys, err := br.GetKeys(ctx, key)
		return err == nil && len(keys) == 1
	}, opsWait, 10*time.Millisecond, "the heartbeat is written again")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "heartbeat written again") }, opsWait, 10*time.Millisecond)
}
