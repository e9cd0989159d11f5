package brokertest_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/brokertest"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openEmbedded(t *testing.T) lanewaybroker.Broker {
	t.Helper()
	b, err := redisbroker.OpenEmbedded(t.Context(), redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	return b
}

// TestFaultyWithoutFaultsConforms: the wrapper is transparent until told
// otherwise.
func TestFaultyWithoutFaultsConforms(t *testing.T) {
	t.Parallel()
	brokertest.Exercise(t, func(t *testing.T) lanewaybroker.Broker {
		return brokertest.NewFaulty(openEmbedded(t))
	})
}

func TestFaulty(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inner := openEmbedded(t)
	defer inner.Close()
	f := &brokertest.Faulty{Broker: inner}
	boom := errors.New("boom")
	pub := []lanewaybroker.Publication{{Stream: "customer", Data: "x"}}
	length := func() int64 {
		n, err := inner.Len(ctx, "customer")
		require.NoError(t, err)
		return n
	}
	require.NoError(t, f.EnsureGroup(ctx, "customer", "G"))

	f.FailPublish(boom)
	_, err := f.Publish(ctx, pub)
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, int64(0), length(), "nothing appended")

	f.FailPublishAfterAppend(boom)
	_, err = f.Publish(ctx, pub)
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, int64(1), length(), "appended, then failed")

	f.Heal()
	ids, err := f.Publish(ctx, pub)
	require.NoError(t, err)
	assert.Len(t, ids, 1)

	f.FailReadGroup(boom)
	_, err = f.ReadGroup(ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{"customer"}})
	assert.ErrorIs(t, err, boom)
	f.Heal()
	res, err := f.ReadGroup(ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{"customer"}})
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.Len(t, res[0].Entries, 2)

	acks := []lanewaybroker.AckParams{{Stream: "customer", Group: "G", IDs: []string{res[0].Entries[0].ID, res[0].Entries[1].ID}}}
	f.FailAck(boom)
	assert.ErrorIs(t, f.Ack(ctx, acks), boom)
	pending, err := f.Pending(ctx, lanewaybroker.PendingParams{Stream: "customer", Group: "G"})
	require.NoError(t, err)
	assert.Len(t, pending, 2, "a failed ack leaves the entries pending")

	f.Heal()
	require.NoError(t, f.Ack(ctx, acks))
	pending, err = f.Pending(ctx, lanewaybroker.PendingParams{Stream: "customer", Group: "G"})
	require.NoError(t, err)
	assert.Empty(t, pending)

	assert.Equal(t, int64(4), f.Injected())
}
