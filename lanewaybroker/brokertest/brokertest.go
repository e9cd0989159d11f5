// Package brokertest is the conformance suite of lanewaybroker.Broker: every
// implementation calls Exercise from its tests, in a few lines, against each
// server it supports. It also holds Faulty, a fault-injecting wrapper for
// engine tests.
package brokertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
)

// waitFor bounds every wait on a condition. It is generous on purpose: the
// suite never asserts durations, it only fails when a condition never holds.
const waitFor = 15 * time.Second

// longBlock is the BLOCK of reads that must be woken or cancelled; far longer
// than waitFor, so a read that returns proves the wake-up or cancellation.
const longBlock = 60 * time.Second

// Exercise runs the conformance suite. open returns a fresh Broker for one
// subtest; Exercise closes it when the subtest ends. Subtests run in
// parallel and use unique stream names, so they may share a server.
func Exercise(t *testing.T, open func(t *testing.T) lanewaybroker.Broker) {
	t.Helper()
	run := func(name string, f func(t *testing.T, s *suite)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			t.Cleanup(func() { _ = b.Close() })
			f(t, &suite{t: t, b: b, ctx: t.Context(), p: testsvc.Prefix()})
		})
	}

	run("Ping", func(t *testing.T, s *suite) {
		require.NoError(t, s.b.Ping(s.ctx))
	})

	run("PublishBatchReturnsIDsInOrder", func(t *testing.T, s *suite) {
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
		assert.Equal(t, map[string]string{"data": `{"n":3}`}, got[1].Fields)

		none, err := s.b.Publish(s.ctx, nil)
		require.NoError(t, err)
		assert.Empty(t, none)
	})

	run("LenOfMissingStreamIsZero", func(t *testing.T, s *suite) {
		assert.Equal(t, int64(0), s.len(s.name("missing")))
	})

	run("EnsureGroupCreatesStreamAndIsIdempotent", func(t *testing.T, s *suite) {
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
	})

	run("GroupStartsAtZero", func(t *testing.T, s *suite) {
		st := s.name("customer")
		ids := s.publish(st, 2)
		require.NoError(t, s.b.EnsureGroup(s.ctx, st, "G"))
		res := s.read("G", "c1", 0, 0, st)
		assert.Equal(t, ids, entryIDs(entriesOf(res, st)), "a group created after the entries still reads them")
	})

	run("ReadWithoutBlockOnEmptyStreamsReturnsNothing", func(t *testing.T, s *suite) {
		a, b := s.name("primary"), s.name("backfill")
		s.ensure("G", a, b)
		res, err := s.b.ReadGroup(s.ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{a, b}, Count: 10})
		require.NoError(t, err)
		assert.Empty(t, res)
	})

	run("ReadWithSubMillisecondBlockDoesNotWaitForever", func(t *testing.T, s *suite) {
		st := s.name("customer")
		s.ensure("G", st)
		done := s.readAsync(s.ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{st}, Block: 100 * time.Microsecond})
		r := s.await(done, "a read with a 100µs block must return (a BLOCK of 0 would wait forever)")
		require.NoError(t, r.err)
		assert.Empty(t, r.res)
	})

	run("BlockedReadWakesOnSecondStream", func(t *testing.T, s *suite) {
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
	})

	run("BlockedReadWakesOnFirstStream", func(t *testing.T, s *suite) {
		a, b := s.name("primary"), s.name("backfill")
		s.ensure("G", a, b)
		done := s.readAsync(s.ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{a, b}, Block: longBlock})
		s.stillBlocked(done)
		s.publish(a, 1)
		r := s.await(done, "a read blocked on two streams must wake when the first one gets an entry")
		require.NoError(t, r.err)
		require.Len(t, r.res, 1)
		assert.Equal(t, a, r.res[0].Stream)
	})

	run("ReadBothStreamsWithCount", func(t *testing.T, s *suite) {
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
	})

	run("BlockingReadReturnsAvailableEntriesAtOnce", func(t *testing.T, s *suite) {
		st := s.name("customer")
		s.ensure("G", st)
		ids := s.publish(st, 2)
		done := s.readAsync(s.ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{st}, Block: longBlock})
		r := s.await(done, "a blocking read with entries available returns them")
		require.NoError(t, r.err)
		assert.Equal(t, ids, entryIDs(entriesOf(r.res, st)))
	})

	run("DeliveryCounts", func(t *testing.T, s *suite) {
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
	})

	run("ClaimIdleAndMinIdle", func(t *testing.T, s *suite) {
		st := s.name("customer")
		s.ensure("G", st)
		id := s.publish(st, 1)[0]
		s.read("G", "dead", 0, 0, st)

		got, err := s.b.Claim(s.ctx, lanewaybroker.ClaimParams{Stream: st, Group: "G", Consumer: "thief", MinIdle: time.Hour, IDs: []string{id}, RetryCount: -1, Idle: -1})
		require.NoError(t, err)
		assert.Empty(t, got, "an entry idle less than MinIdle is not claimed")
		pe := s.pendingOne(st, "G", id)
		assert.Equal(t, "dead", pe.Consumer)
		assert.Equal(t, int64(1), pe.Deliveries)

		// Hand the entry back as if idle for two hours, keeping its count.
		got, err = s.b.Claim(s.ctx, lanewaybroker.ClaimParams{Stream: st, Group: "G", Consumer: "dead", IDs: []string{id}, RetryCount: 1, Idle: 2 * time.Hour})
		require.NoError(t, err)
		require.Len(t, got, 1)
		idle, err := s.b.Pending(s.ctx, lanewaybroker.PendingParams{Stream: st, Group: "G", MinIdle: time.Hour})
		require.NoError(t, err)
		require.Len(t, idle, 1, "IDLE set the entry's idle time")
		assert.GreaterOrEqual(t, idle[0].Idle, 2*time.Hour)

		got, err = s.b.Claim(s.ctx, lanewaybroker.ClaimParams{Stream: st, Group: "G", Consumer: "alive", MinIdle: time.Hour, IDs: []string{id}, RetryCount: -1, Idle: -1})
		require.NoError(t, err)
		assert.Equal(t, []string{id}, entryIDs(got), "an entry idle past MinIdle is claimed")
		pe = s.pendingOne(st, "G", id)
		assert.Equal(t, "alive", pe.Consumer)
		assert.Equal(t, int64(2), pe.Deliveries)
		assert.Less(t, pe.Idle, time.Hour, "a claim resets the idle time")

		none, err := s.b.Claim(s.ctx, lanewaybroker.ClaimParams{Stream: st, Group: "G", Consumer: "alive", RetryCount: -1, Idle: -1})
		require.NoError(t, err)
		assert.Empty(t, none)
	})

	run("ClaimOfDeletedEntry", func(t *testing.T, s *suite) {
		st := s.name("customer")
		s.ensure("G", st)
		ids := s.publish(st, 2)
		s.read("G", "c1", 0, 0, st)
		s.del(st, ids[0])
		got, err := s.b.Claim(s.ctx, lanewaybroker.ClaimParams{Stream: st, Group: "G", Consumer: "c2", IDs: ids, RetryCount: -1, Idle: -1})
		require.NoError(t, err)
		assert.Equal(t, ids[1:], entryIDs(got), "a deleted entry is not returned")
		assert.Equal(t, ids[1:], pendingIDs(s.pending(st, "G", "")), "and leaves the pending list")
	})

	run("AutoClaimFromDeadConsumer", func(t *testing.T, s *suite) {
		st := s.name("customer")
		s.ensure("G", st)
		id := s.publish(st, 1)[0]
		s.read("G", "dead", 0, 0, st)

		res, err := s.b.AutoClaim(s.ctx, lanewaybroker.AutoClaimParams{Stream: st, Group: "G", Consumer: "alive", MinIdle: time.Hour, Start: "0-0"})
		require.NoError(t, err)
		assert.Empty(t, res.Entries, "not before MinIdle")
		assert.Equal(t, "0-0", res.Next)
		assert.Equal(t, "dead", s.pendingOne(st, "G", id).Consumer)

		require.Eventually(t, func() bool {
			res, err = s.b.AutoClaim(s.ctx, lanewaybroker.AutoClaimParams{Stream: st, Group: "G", Consumer: "alive", MinIdle: 50 * time.Millisecond})
			require.NoError(t, err)
			return len(res.Entries) > 0
		}, waitFor, 10*time.Millisecond, "claimed once idle past MinIdle")
		assert.Equal(t, []string{id}, entryIDs(res.Entries))
		assert.Equal(t, "0", res.Entries[0].Data)
		assert.Equal(t, "0-0", res.Next)
		assert.Empty(t, res.Deleted)
		pe := s.pendingOne(st, "G", id)
		assert.Equal(t, "alive", pe.Consumer)
		assert.Equal(t, int64(2), pe.Deliveries, "an autoclaim counts a delivery")
	})

	run("AutoClaimPagesWithCursor", func(t *testing.T, s *suite) {
		st := s.name("customer")
		s.ensure("G", st)
		ids := s.publish(st, 3)
		s.read("G", "dead", 0, 0, st)

		res, err := s.b.AutoClaim(s.ctx, lanewaybroker.AutoClaimParams{Stream: st, Group: "G", Consumer: "alive", Start: "0-0", Count: 2})
		require.NoError(t, err)
		assert.Equal(t, ids[:2], entryIDs(res.Entries))
		require.NotEqual(t, "0-0", res.Next, "more pending entries: the scan is not complete")

		res, err = s.b.AutoClaim(s.ctx, lanewaybroker.AutoClaimParams{Stream: st, Group: "G", Consumer: "alive", Start: res.Next, Count: 2})
		require.NoError(t, err)
		assert.Equal(t, ids[2:], entryIDs(res.Entries))
		assert.Equal(t, "0-0", res.Next)
	})

	run("AutoClaimReportsDeletedEntries", func(t *testing.T, s *suite) {
		st := s.name("customer")
		s.ensure("G", st)
		ids := s.publish(st, 2)
		s.read("G", "dead", 0, 0, st)
		s.del(st, ids[0])

		res, err := s.b.AutoClaim(s.ctx, lanewaybroker.AutoClaimParams{Stream: st, Group: "G", Consumer: "alive", Start: "0-0"})
		require.NoError(t, err)
		assert.Equal(t, ids[1:], entryIDs(res.Entries))
		assert.Equal(t, ids[:1], res.Deleted)
		assert.Equal(t, ids[1:], pendingIDs(s.pending(st, "G", "")), "the deleted entry left the pending list")
	})

	run("AckRemovesFromPending", func(t *testing.T, s *suite) {
		a, b := s.name("primary"), s.name("backfill")
		s.ensure("G", a, b)
		idsA := s.publish(a, 3)
		idsB := s.publish(b, 1)
		s.read("G", "c1", 0, 0, a, b)

		require.NoError(t, s.b.Ack(s.ctx, []lanewaybroker.AckParams{
			{Stream: a, Group: "G", IDs: idsA[:2]},
			{Stream: b, Group: "G", IDs: idsB},
			{Stream: a, Group: "G"}, // nothing to ack
		}))
		assert.Equal(t, idsA[2:], pendingIDs(s.pending(a, "G", "")))
		assert.Empty(t, s.pending(b, "G", ""))
		require.NoError(t, s.b.Ack(s.ctx, nil))
		assert.Equal(t, int64(3), s.len(a), "ack does not delete the entry")
	})

	run("PendingFilters", func(t *testing.T, s *suite) {
		st := s.name("customer")
		s.ensure("G", st)
		ids := s.publish(st, 3)
		s.read("G", "c1", 2, 0, st)
		s.read("G", "c2", 1, 0, st)

		assert.Equal(t, ids, pendingIDs(s.pending(st, "G", "")))
		assert.Equal(t, ids[:2], pendingIDs(s.pending(st, "G", "c1")))
		c2 := s.pending(st, "G", "c2")
		assert.Equal(t, ids[2:], pendingIDs(c2))
		assert.Equal(t, "c2", c2[0].Consumer)

		page, err := s.b.Pending(s.ctx, lanewaybroker.PendingParams{Stream: st, Group: "G", Start: ids[1], End: "+", Count: 1})
		require.NoError(t, err)
		assert.Equal(t, ids[1:2], pendingIDs(page), "Start and Count")

		idle, err := s.b.Pending(s.ctx, lanewaybroker.PendingParams{Stream: st, Group: "G", MinIdle: time.Hour})
		require.NoError(t, err)
		assert.Empty(t, idle, "nothing idle for an hour")
	})

	run("GroupsAndConsumersWithLag", func(t *testing.T, s *suite) {
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
	})

	run("LagOfLargeStream", func(t *testing.T, s *suite) {
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
	})

	// Exact: the entries below minID go, those from minID on stay, also
	// across more entries than one chunk of the embedded broker's trim.
	run("TrimMinID", func(t *testing.T, s *suite) {
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
	})

	run("Delete", func(t *testing.T, s *suite) {
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
	})

	run("RangeWithCount", func(t *testing.T, s *suite) {
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
	})

	run("StreamsByPattern", func(t *testing.T, s *suite) {
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
	})

	run("DeleteConsumerRefusesWithPending", func(t *testing.T, s *suite) {
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
	})

	run("KeysWithTTL", func(t *testing.T, s *suite) {
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
	})

	run("NoGroup", func(t *testing.T, s *suite) {
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
	})

	run("CancelBlockedRead", func(t *testing.T, s *suite) {
		a, b := s.name("primary"), s.name("backfill")
		s.ensure("G", a, b)
		ctx, cancel := context.WithCancel(s.ctx)
		defer cancel()
		done := s.readAsync(ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{a, b}, Block: longBlock})
		s.stillBlocked(done)
		cancel()
		r := s.await(done, "a blocked read returns when its context is cancelled")
		assert.ErrorIs(t, r.err, context.Canceled)
		assert.Empty(t, r.res)

		// The cancelled read took nothing: a later entry goes to the next read.
		ids := s.publish(b, 1)
		assert.Empty(t, s.pending(b, "G", ""), "nothing was delivered to the cancelled reader")
		res := s.read("G", "c2", 0, 0, a, b)
		assert.Equal(t, ids, entryIDs(entriesOf(res, b)))
	})

	run("DeadlineEndsBlockedRead", func(t *testing.T, s *suite) {
		st := s.name("customer")
		s.ensure("G", st)
		ctx, cancel := context.WithTimeout(s.ctx, 200*time.Millisecond)
		defer cancel()
		done := s.readAsync(ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{st}, Block: longBlock})
		r := s.await(done, "a blocked read returns at its context's deadline")
		assert.ErrorIs(t, r.err, context.DeadlineExceeded)

		// The broker still works after a cancelled read.
		ids := s.publish(st, 1)
		assert.Equal(t, ids, entryIDs(entriesOf(s.read("G", "c1", 0, 0, st), st)))
	})

	run("ReadAfterCancelledContextFails", func(t *testing.T, s *suite) {
		st := s.name("customer")
		s.ensure("G", st)
		s.publish(st, 1)
		ctx, cancel := context.WithCancel(s.ctx)
		cancel()
		_, err := s.b.ReadGroup(ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{st}, Block: longBlock})
		assert.ErrorIs(t, err, context.Canceled)
	})

	run("ConcurrentConsumersShareTheWork", func(t *testing.T, s *suite) {
		a, b := s.name("primary"), s.name("backfill")
		s.ensure("G", a, b)
		const perStream = 150
		var mu sync.Mutex
		seen := map[string]int{}
		ctx, cancel := context.WithCancel(s.ctx)
		defer cancel()
		var wg sync.WaitGroup
		for c := range 4 {
			wg.Go(func() {
				for ctx.Err() == nil {
					res, err := s.b.ReadGroup(ctx, lanewaybroker.ReadParams{Group: "G", Consumer: fmt.Sprintf("c%d", c), Streams: []string{a, b}, Count: 7, Block: time.Second})
					if err != nil {
						if ctx.Err() == nil {
							t.Errorf("read: %v", err)
						}
						return
					}
					var acks []lanewaybroker.AckParams
					for _, se := range res {
						ids := entryIDs(se.Entries)
						acks = append(acks, lanewaybroker.AckParams{Stream: se.Stream, Group: "G", IDs: ids})
						mu.Lock()
						for _, id := range ids {
							seen[se.Stream+"/"+id]++
						}
						mu.Unlock()
					}
					if err := s.b.Ack(context.WithoutCancel(ctx), acks); err != nil {
						t.Errorf("ack: %v", err)
						return
					}
				}
			})
		}
		var pubWG sync.WaitGroup
		for _, st := range []string{a, b} {
			pubWG.Go(func() {
				for i := 0; i < perStream; i += 10 {
					var pubs []lanewaybroker.Publication
					for j := range 10 {
						pubs = append(pubs, lanewaybroker.Publication{Stream: st, Data: fmt.Sprint(i + j)})
					}
					if _, err := s.b.Publish(ctx, pubs); err != nil {
						t.Errorf("publish: %v", err)
						return
					}
				}
			})
		}
		pubWG.Wait()
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) == 2*perStream
		}, waitFor, 10*time.Millisecond, "every entry is read")
		cancel()
		wg.Wait()
		for k, n := range seen {
			assert.Equal(t, 1, n, "entry %s delivered once", k)
		}
		assert.Empty(t, s.pending(a, "G", ""))
		assert.Empty(t, s.pending(b, "G", ""))
	})
}

// suite is the bundle of one subtest.
type suite struct {
	t   *testing.T
	b   lanewaybroker.Broker
	ctx context.Context
	p   string
}

func (s *suite) name(n string) string { return s.p + n }

func (s *suite) len(stream string) int64 {
	s.t.Helper()
	n, err := s.b.Len(s.ctx, stream)
	require.NoError(s.t, err)
	return n
}

func (s *suite) ensure(group string, streams ...string) {
	s.t.Helper()
	for _, st := range streams {
		require.NoError(s.t, s.b.EnsureGroup(s.ctx, st, group))
	}
}

// publish appends n entries with data "0", "1", ... and returns their ids.
func (s *suite) publish(stream string, n int) []string {
	s.t.Helper()
	pubs := make([]lanewaybroker.Publication, n)
	for i := range pubs {
		pubs[i] = lanewaybroker.Publication{Stream: stream, Data: fmt.Sprint(i)}
	}
	ids, err := s.b.Publish(s.ctx, pubs)
	require.NoError(s.t, err)
	require.Len(s.t, ids, n)
	return ids
}

func (s *suite) read(group, consumer string, count int, block time.Duration, streams ...string) []lanewaybroker.StreamEntries {
	s.t.Helper()
	res, err := s.b.ReadGroup(s.ctx, lanewaybroker.ReadParams{Group: group, Consumer: consumer, Streams: streams, Count: count, Block: block})
	require.NoError(s.t, err)
	return res
}

func (s *suite) del(stream string, ids ...string) {
	s.t.Helper()
	n, err := s.b.Delete(s.ctx, stream, ids...)
	require.NoError(s.t, err)
	require.Equal(s.t, int64(len(ids)), n)
}

func (s *suite) groups(stream string) []lanewaybroker.GroupInfo {
	s.t.Helper()
	g, err := s.b.Groups(s.ctx, stream)
	require.NoError(s.t, err)
	return g
}

func (s *suite) pending(stream, group, consumer string) []lanewaybroker.PendingEntry {
	s.t.Helper()
	p, err := s.b.Pending(s.ctx, lanewaybroker.PendingParams{Stream: stream, Group: group, Start: "-", End: "+", Count: 1000, Consumer: consumer})
	require.NoError(s.t, err)
	return p
}

func (s *suite) pendingOne(stream, group, id string) lanewaybroker.PendingEntry {
	s.t.Helper()
	p, err := s.b.Pending(s.ctx, lanewaybroker.PendingParams{Stream: stream, Group: group, Start: id, End: id, Count: 1})
	require.NoError(s.t, err)
	require.Len(s.t, p, 1, "entry %s is pending", id)
	return p[0]
}

type readResult struct {
	res []lanewaybroker.StreamEntries
	err error
}

// readAsync starts a read in a goroutine that the subtest waits for.
func (s *suite) readAsync(ctx context.Context, p lanewaybroker.ReadParams) <-chan readResult {
	done := make(chan readResult, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		res, err := s.b.ReadGroup(ctx, p)
		done <- readResult{res, err}
	})
	s.t.Cleanup(wg.Wait)
	return done
}

// stillBlocked checks for a while that the read has not returned: a read
// with a long BLOCK on empty streams must wait. After it, the read is
// blocked on the server (it has had ample time to get there).
func (s *suite) stillBlocked(done <-chan readResult) {
	s.t.Helper()
	require.Never(s.t, func() bool { return len(done) > 0 }, 150*time.Millisecond, 10*time.Millisecond,
		"a read with a long BLOCK on empty streams returned early")
}

func (s *suite) await(done <-chan readResult, msg string) readResult {
	s.t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(waitFor):
		s.t.Fatal(msg)
		return readResult{}
	}
}

func entriesOf(res []lanewaybroker.StreamEntries, stream string) []lanewaybroker.Entry {
	for _, se := range res {
		if se.Stream == stream {
			return se.Entries
		}
	}
	return nil
}

func entryIDs(es []lanewaybroker.Entry) []string {
	if len(es) == 0 {
		return nil
	}
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	return ids
}

func pendingIDs(ps []lanewaybroker.PendingEntry) []string {
	if len(ps) == 0 {
		return nil
	}
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}
