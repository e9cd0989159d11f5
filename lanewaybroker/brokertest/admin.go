package brokertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaybroker"
)

func testGroupsAndConsumersWithLag(t *testing.T, s *suite) {
	st := s.name("customer")
	s.ensure("G1", st)
	s.ensure("G2", st)
	ids := s.publish(st, 5)
	s.read("G1", "c1", 2, 0, st)

	groups := s.groups(st)
	require.Len(t, groups, 2)
	assert.Equal(t, lanewaybroker.GroupInfo{Name: "G1", Consumers: 1, Pending: 2, LastDeliveredID: ids[1], Lag: 3}, groups[0])
	assert.Equal(t, lanewaybroker.GroupInfo{Name: "G2", Consumers: 0, Pending: 0, LastDeliveredID: "0-0", Lag: 5}, groups[1])

	// A deletion past the group's position: Redis can no longer compute
	// lag itself, the broker must still report it.
	s.del(st, ids[4])
	assert.Equal(t, int64(2), s.groups(st)[0].Lag)

	cons, err := s.b.Consumers(s.ctx, st, "G1")
	require.NoError(t, err)
	require.Len(t, cons, 1)
	assert.Equal(t, "c1", cons[0].Name)
	assert.Equal(t, int64(2), cons[0].Pending)
	assert.Less(t, cons[0].Idle, time.Hour)
	require.Eventually(t, func() bool {
		cons, err := s.b.Consumers(s.ctx, st, "G1")
		require.NoError(t, err)
		return cons[0].Idle >= 50*time.Millisecond
	}, waitFor, 10*time.Millisecond, "a consumer's idle time grows while it does nothing")

	s.read("G1", "c1", 0, 0, st)
	assert.Equal(t, int64(0), s.groups(st)[0].Lag, "caught up")

	none, err := s.b.Groups(s.ctx, s.name("missing"))
	require.NoError(t, err)
	assert.Empty(t, none, "a missing stream has no groups")

	_, err = s.b.Consumers(s.ctx, st, "nope")
	assert.ErrorIs(t, err, lanewaybroker.ErrNoGroup)
}

func testLagOfLargeStream(t *testing.T, s *suite) {
	// More entries than one page of any paged count, on both sides of
	// the group's position.
	st := s.name("customer")
	s.ensure("G", st)
	var pubs []lanewaybroker.Publication
	for i := range 2500 {
		pubs = append(pubs, lanewaybroker.Publication{Stream: st, Data: fmt.Sprint(i)})
	}
	_, err := s.b.Publish(s.ctx, pubs)
	require.NoError(t, err)
	res := s.read("G", "c1", 1200, 0, st)
	require.Len(t, entriesOf(res, st), 1200)
	assert.Equal(t, int64(1300), s.groups(st)[0].Lag)
}

// Exact: the entries below minID go, those from minID on stay, also
// across more entries than one chunk of the embedded broker's trim.
func testTrimMinID(t *testing.T, s *suite) {
	for _, tc := range []struct{ entries, cut int }{{5, 2}, {1234, 1100}} {
		st := s.name(fmt.Sprintf("customer-%d", tc.entries))
		ids := s.publish(st, tc.entries)
		n, err := s.b.TrimMinID(s.ctx, st, ids[tc.cut])
		require.NoError(t, err)
		assert.Equal(t, int64(tc.cut), n)
		got, err := s.b.Range(s.ctx, st, "-", "+", 0)
		require.NoError(t, err)
		assert.Equal(t, ids[tc.cut:], entryIDs(got), "entries from minID on are kept")

		for _, minID := range []string{ids[tc.cut], "0-1"} {
			n, err = s.b.TrimMinID(s.ctx, st, minID)
			require.NoError(t, err)
			assert.Equal(t, int64(0), n, "nothing below %s", minID)
		}
		n, err = s.b.TrimMinID(s.ctx, st, "18446744073709551615-18446744073709551615")
		require.NoError(t, err)
		assert.Equal(t, int64(tc.entries-tc.cut), n, "an id past the end: all")
		assert.Zero(t, s.len(st))
	}

	n, err := s.b.TrimMinID(s.ctx, s.name("missing"), "1-0")
	require.NoError(t, err)
	assert.Equal(t, int64(0), n)
}

func testDelete(t *testing.T, s *suite) {
	st := s.name("customer")
	ids := s.publish(st, 3)
	n, err := s.b.Delete(s.ctx, st, ids[0], ids[2])
	require.NoError(t, err)
	assert.Equal(t, int64(2), n)
	n, err = s.b.Delete(s.ctx, st, ids[0])
	require.NoError(t, err)
	assert.Equal(t, int64(0), n, "already deleted")
	n, err = s.b.Delete(s.ctx, st)
	require.NoError(t, err)
	assert.Equal(t, int64(0), n)
	assert.Equal(t, int64(1), s.len(st))
}

func testRangeWithCount(t *testing.T, s *suite) {
	st := s.name("customer")
	ids := s.publish(st, 5)
	got, err := s.b.Range(s.ctx, st, "-", "+", 2)
	require.NoError(t, err)
	assert.Equal(t, ids[:2], entryIDs(got))
	got, err = s.b.Range(s.ctx, st, ids[3], "+", 0)
	require.NoError(t, err)
	assert.Equal(t, ids[3:], entryIDs(got))
	got, err = s.b.Range(s.ctx, st, ids[1], ids[2], 10)
	require.NoError(t, err)
	assert.Equal(t, ids[1:3], entryIDs(got))
	got, err = s.b.Range(s.ctx, s.name("missing"), "-", "+", 0)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func testStreamsByPattern(t *testing.T, s *suite) {
	a, b, c := s.name("customer"), s.name("customer:backfill"), s.name("order")
	s.publish(a, 1)
	s.publish(b, 1)
	s.publish(c, 1)
	require.NoError(t, s.b.SetKey(s.ctx, s.name("customer:heartbeat"), "x", time.Minute))

	got, err := s.b.Streams(s.ctx, s.p+"*")
	require.NoError(t, err)
	assert.Equal(t, []string{a, b, c}, got, "sorted, streams only")

	got, err = s.b.Streams(s.ctx, s.p+"customer*")
	require.NoError(t, err)
	assert.Equal(t, []string{a, b}, got)

	got, err = s.b.Streams(s.ctx, s.p+"nothing*")
	require.NoError(t, err)
	assert.Empty(t, got)
}

func testDeleteConsumerRefusesWithPending(t *testing.T, s *suite) {
	st := s.name("customer")
	s.ensure("G", st)
	ids := s.publish(st, 2)
	s.read("G", "c1", 0, 0, st)

	err := s.b.DeleteConsumer(s.ctx, st, "G", "c1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "2 pending")
	assert.Len(t, s.pending(st, "G", "c1"), 2, "nothing was orphaned")

	require.NoError(t, s.b.Ack(s.ctx, []lanewaybroker.AckParams{{Stream: st, Group: "G", IDs: ids}}))
	require.NoError(t, s.b.DeleteConsumer(s.ctx, st, "G", "c1"))
	cons, err := s.b.Consumers(s.ctx, st, "G")
	require.NoError(t, err)
	assert.Empty(t, cons)

	require.NoError(t, s.b.DeleteConsumer(s.ctx, st, "G", "never-existed"))
	assert.ErrorIs(t, s.b.DeleteConsumer(s.ctx, st, "nope", "c1"), lanewaybroker.ErrNoGroup)
}

func testKeysWithTTL(t *testing.T, s *suite) {
	k1, k2, k3 := s.name("engine:1"), s.name("engine:2"), s.name("engine:3")
	require.NoError(t, s.b.SetKey(s.ctx, k1, "one", time.Hour))
	require.NoError(t, s.b.SetKey(s.ctx, k2, "two", 100*time.Millisecond))
	require.NoError(t, s.b.SetKey(s.ctx, k3, "three", 0))
	s.publish(s.name("engine:stream"), 1) // not a string key

	got, err := s.b.GetKeys(s.ctx, s.name("engine:*"))
	require.NoError(t, err)
	assert.Equal(t, "one", got[k1])
	assert.Equal(t, "three", got[k3])
	assert.NotContains(t, got, s.name("engine:stream"))

	require.Eventually(t, func() bool {
		got, err := s.b.GetKeys(s.ctx, s.name("engine:*"))
		require.NoError(t, err)
		_, ok := got[k2]
		return !ok
	}, waitFor, 20*time.Millisecond, "a key expires after its TTL")

	require.NoError(t, s.b.SetKey(s.ctx, k1, "uno", time.Hour))
	require.NoError(t, s.b.DeleteKey(s.ctx, k3))
	got, err = s.b.GetKeys(s.ctx, s.name("engine:*"))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{k1: "uno"}, got)
	require.NoError(t, s.b.DeleteKey(s.ctx, k3), "deleting a missing key is fine")
}

func testNoGroup(t *testing.T, s *suite) {
	st := s.name("customer")
	s.publish(st, 1)
	_, err := s.b.ReadGroup(s.ctx, lanewaybroker.ReadParams{Group: "nope", Consumer: "c1", Streams: []string{st}})
	assert.ErrorIs(t, err, lanewaybroker.ErrNoGroup)
	_, err = s.b.ReadGroup(s.ctx, lanewaybroker.ReadParams{Group: "nope", Consumer: "c1", Streams: []string{st}, Block: time.Second})
	assert.ErrorIs(t, err, lanewaybroker.ErrNoGroup, "blocking read")
	_, err = s.b.ReadGroup(s.ctx, lanewaybroker.ReadParams{Group: "nope", Consumer: "c1", Streams: []string{s.name("missing")}})
	assert.ErrorIs(t, err, lanewaybroker.ErrNoGroup, "missing stream")

	s.ensure("G", st)
	_, err = s.b.ReadGroup(s.ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{st, s.name("other")}})
	assert.ErrorIs(t, err, lanewaybroker.ErrNoGroup, "one of several streams lacks the group")

	_, err = s.b.Pending(s.ctx, lanewaybroker.PendingParams{Stream: st, Group: "nope"})
	assert.ErrorIs(t, err, lanewaybroker.ErrNoGroup)
	_, err = s.b.Claim(s.ctx, lanewaybroker.ClaimParams{Stream: st, Group: "nope", Consumer: "c1", IDs: []string{"1-1"}, RetryCount: -1, Idle: -1})
	assert.ErrorIs(t, err, lanewaybroker.ErrNoGroup)
	_, err = s.b.AutoClaim(s.ctx, lanewaybroker.AutoClaimParams{Stream: st, Group: "nope", Consumer: "c1"})
	assert.ErrorIs(t, err, lanewaybroker.ErrNoGroup)
}
