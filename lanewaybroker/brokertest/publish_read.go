package brokertest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewaybroker"
)

func testPing(t *testing.T, s *suite) {
	require.NoError(t, s.b.Ping(s.ctx))
}

func testPublishBatchReturnsIDsInOrder(t *testing.T, s *suite) {
	a, b := s.name("a"), s.name("b")
	ids, err := s.b.Publish(s.ctx, []lanewaybroker.Publication{
		{Stream: a, Data: `{"n":1}`},
		{Stream: b, Data: `{"n":2}`},
		{Stream: a, Data: `{"n":3}`},
	})
	require.NoError(t, err)
	require.Len(t, ids, 3)
	assert.Less(t, lanes.CompareIDs(ids[0], ids[2]), 0, "ids of one stream increase in publication order")

	assert.Equal(t, int64(2), s.len(a))
	assert.Equal(t, int64(1), s.len(b))

	got, err := s.b.Range(s.ctx, a, "-", "+", 0)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, []string{ids[0], ids[2]}, entryIDs(got))
	assert.Equal(t, `{"n":1}`, got[0].Data)
	assert.Equal(t, `{"n":3}`, got[1].Data)
	assert.Nil(t, got[1].Fields, "an entry whose only field is data has no Fields")

	none, err := s.b.Publish(s.ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, none)
}

func testLenOfMissingStreamIsZero(t *testing.T, s *suite) {
	assert.Equal(t, int64(0), s.len(s.name("missing")))
}

func testEnsureGroupCreatesStreamAndIsIdempotent(t *testing.T, s *suite) {
	st := s.name("customer")
	require.NoError(t, s.b.EnsureGroup(s.ctx, st, "G"))
	require.NoError(t, s.b.EnsureGroup(s.ctx, st, "G"), "an existing group is success")

	streams, err := s.b.Streams(s.ctx, s.p+"*")
	require.NoError(t, err)
	assert.Equal(t, []string{st}, streams, "MKSTREAM created the stream")
	assert.Equal(t, int64(0), s.len(st))

	groups := s.groups(st)
	require.Len(t, groups, 1)
	assert.Equal(t, "G", groups[0].Name)
	assert.Equal(t, "0-0", groups[0].LastDeliveredID)
}

func testGroupStartsAtZero(t *testing.T, s *suite) {
	st := s.name("customer")
	ids := s.publish(st, 2)
	require.NoError(t, s.b.EnsureGroup(s.ctx, st, "G"))
	res := s.read("G", "c1", 0, 0, st)
	assert.Equal(t, ids, entryIDs(entriesOf(res, st)), "a group created after the entries still reads them")
}

func testReadWithoutBlockOnEmptyStreamsReturnsNothing(t *testing.T, s *suite) {
	a, b := s.name("primary"), s.name("backfill")
	s.ensure("G", a, b)
	res, err := s.b.ReadGroup(s.ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{a, b}, Count: 10})
	require.NoError(t, err)
	assert.Empty(t, res)
}

func testReadWithSubMillisecondBlockDoesNotWaitForever(t *testing.T, s *suite) {
	st := s.name("customer")
	s.ensure("G", st)
	done := s.readAsync(s.ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{st}, Block: 100 * time.Microsecond})
	r := s.await(done, "a read with a 100µs block must return (a BLOCK of 0 would wait forever)")
	require.NoError(t, r.err)
	assert.Empty(t, r.res)
}

func testBlockedReadWakesOnSecondStream(t *testing.T, s *suite) {
	a, b := s.name("primary"), s.name("backfill")
	s.ensure("G", a, b)
	done := s.readAsync(s.ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{a, b}, Count: 10, Block: longBlock})
	s.stillBlocked(done)

	ids, err := s.b.Publish(s.ctx, []lanewaybroker.Publication{{Stream: b, Data: "wake"}})
	require.NoError(t, err)

	r := s.await(done, "a read blocked on two streams must wake when the second one gets an entry")
	require.NoError(t, r.err)
	require.Len(t, r.res, 1)
	assert.Equal(t, b, r.res[0].Stream)
	require.Len(t, r.res[0].Entries, 1)
	assert.Equal(t, ids[0], r.res[0].Entries[0].ID)
	assert.Equal(t, "wake", r.res[0].Entries[0].Data)
}

func testBlockedReadWakesOnFirstStream(t *testing.T, s *suite) {
	a, b := s.name("primary"), s.name("backfill")
	s.ensure("G", a, b)
	done := s.readAsync(s.ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{a, b}, Block: longBlock})
	s.stillBlocked(done)
	s.publish(a, 1)
	r := s.await(done, "a read blocked on two streams must wake when the first one gets an entry")
	require.NoError(t, r.err)
	require.Len(t, r.res, 1)
	assert.Equal(t, a, r.res[0].Stream)
}

func testReadBothStreamsWithCount(t *testing.T, s *suite) {
	a, b := s.name("primary"), s.name("backfill")
	s.ensure("G", a, b)
	idsA := s.publish(a, 3)
	idsB := s.publish(b, 3)
	res := s.read("G", "c1", 2, 0, a, b)
	require.Len(t, res, 2, "entries from both streams")
	assert.Equal(t, a, res[0].Stream, "streams come back in the order asked")
	assert.Equal(t, idsA[:2], entryIDs(res[0].Entries), "COUNT applies per stream")
	assert.Equal(t, idsB[:2], entryIDs(res[1].Entries))

	res = s.read("G", "c1", 10, 0, a, b)
	assert.Equal(t, idsA[2:], entryIDs(entriesOf(res, a)))
	assert.Equal(t, idsB[2:], entryIDs(entriesOf(res, b)))
	assert.Empty(t, s.read("G", "c1", 10, 0, a, b), "each entry is delivered to the group once")
}

func testPipelinedReads(t *testing.T, s *suite) {
	st := s.name("customer")
	s.ensure("G", st)
	ids := s.publish(st, 7)
	p := lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{st}, Count: 3, Batches: 2}
	res, err := s.b.ReadGroup(s.ctx, p)
	require.NoError(t, err)
	assert.Equal(t, ids[:6], entryIDs(entriesOf(res, st)), "two reads of 3 in one round trip, in stream order")
	res, err = s.b.ReadGroup(s.ctx, p)
	require.NoError(t, err)
	assert.Equal(t, ids[6:], entryIDs(entriesOf(res, st)), "the second of them found nothing: no error")
	res, err = s.b.ReadGroup(s.ctx, p)
	require.NoError(t, err)
	assert.Empty(t, res)

	p.Block = longBlock
	_, err = s.b.ReadGroup(s.ctx, p)
	require.Error(t, err, "pipelined reads cannot block")
}

func testBlockingReadReturnsAvailableEntriesAtOnce(t *testing.T, s *suite) {
	st := s.name("customer")
	s.ensure("G", st)
	ids := s.publish(st, 2)
	done := s.readAsync(s.ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{st}, Block: longBlock})
	r := s.await(done, "a blocking read with entries available returns them")
	require.NoError(t, r.err)
	assert.Equal(t, ids, entryIDs(entriesOf(r.res, st)))
}

func testDeliveryCounts(t *testing.T, s *suite) {
	st := s.name("customer")
	s.ensure("G", st)
	id := s.publish(st, 1)[0]
	s.read("G", "c1", 0, 0, st)
	assert.Equal(t, int64(1), s.pendingOne(st, "G", id).Deliveries, "first read")

	got, err := s.b.Claim(s.ctx, lanewaybroker.ClaimParams{Stream: st, Group: "G", Consumer: "c1", IDs: []string{id}, RetryCount: -1, Idle: -1})
	require.NoError(t, err)
	require.Equal(t, []string{id}, entryIDs(got))
	assert.Equal(t, "0", got[0].Data)
	assert.Equal(t, int64(2), s.pendingOne(st, "G", id).Deliveries, "a claim without RETRYCOUNT counts a delivery")

	_, err = s.b.Claim(s.ctx, lanewaybroker.ClaimParams{Stream: st, Group: "G", Consumer: "c1", IDs: []string{id}, RetryCount: 7, Idle: -1})
	require.NoError(t, err)
	assert.Equal(t, int64(7), s.pendingOne(st, "G", id).Deliveries, "RETRYCOUNT sets the counter")

	_, err = s.b.Claim(s.ctx, lanewaybroker.ClaimParams{Stream: st, Group: "G", Consumer: "c1", IDs: []string{id}, RetryCount: 0, Idle: 0})
	require.NoError(t, err)
	assert.Equal(t, int64(0), s.pendingOne(st, "G", id).Deliveries, "RetryCount 0 (the zero value) sets the counter to 0")
}
