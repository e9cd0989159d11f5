// Package brokertest is the conformance suite of lanewaybroker.Broker: every
// implementation calls Exercise from its tests, in a few lines, against each
// server it supports. It also holds Faulty, a fault-injecting wrapper for
// engine tests.
package brokertest

import (
	"testing"
	"time"

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
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			t.Cleanup(func() { _ = b.Close() })
			c.run(t, &suite{t: t, b: b, ctx: t.Context(), p: slotPrefix()})
		})
	}
}

// slotPrefix is a unique key prefix holding a hash tag ("t{3f9a1c2}_",
// still starting with "t" like every test key, so ACL key patterns match):
// every stream of one case hashes to one slot, so the reads over several
// streams run on a Redis Cluster too, and the cases still spread over its
// masters.
func slotPrefix() string { return "t{" + testsvc.RandomSuffix(4) + "}_" }

// cases is the conformance suite: one named case per behaviour a Broker
// must have. The cases live in the files named after their topic.
var cases = []struct {
	name string
	run  func(t *testing.T, s *suite)
}{
	// Publishing and reading: ids, groups, blocking reads and delivery counts.
	{"Ping", testPing},
	{"PublishBatchReturnsIDsInOrder", testPublishBatchReturnsIDsInOrder},
	{"LenOfMissingStreamIsZero", testLenOfMissingStreamIsZero},
	{"EnsureGroupCreatesStreamAndIsIdempotent", testEnsureGroupCreatesStreamAndIsIdempotent},
	{"GroupStartsAtZero", testGroupStartsAtZero},
	{"ReadWithoutBlockOnEmptyStreamsReturnsNothing", testReadWithoutBlockOnEmptyStreamsReturnsNothing},
	{"ReadWithSubMillisecondBlockDoesNotWaitForever", testReadWithSubMillisecondBlockDoesNotWaitForever},
	{"BlockedReadWakesOnSecondStream", testBlockedReadWakesOnSecondStream},
	{"BlockedReadWakesOnFirstStream", testBlockedReadWakesOnFirstStream},
	{"ReadBothStreamsWithCount", testReadBothStreamsWithCount},
	{"PipelinedReads", testPipelinedReads},
	{"BlockingReadReturnsAvailableEntriesAtOnce", testBlockingReadReturnsAvailableEntriesAtOnce},
	{"DeliveryCounts", testDeliveryCounts},
	// Pending entries: claims, auto-claims and acks.
	{"ClaimIdleAndMinIdle", testClaimIdleAndMinIdle},
	{"ClaimOfDeletedEntry", testClaimOfDeletedEntry},
	{"AutoClaimFromDeadConsumer", testAutoClaimFromDeadConsumer},
	{"AutoClaimPagesWithCursor", testAutoClaimPagesWithCursor},
	{"AutoClaimReportsDeletedEntries", testAutoClaimReportsDeletedEntries},
	{"AckRemovesFromPending", testAckRemovesFromPending},
	{"PendingFilters", testPendingFilters},
	// Inspection and housekeeping: groups, lag, trimming, deletion, ranges, scans, consumers and keys.
	{"GroupsAndConsumersWithLag", testGroupsAndConsumersWithLag},
	{"LagOfLargeStream", testLagOfLargeStream},
	{"TrimMinID", testTrimMinID},
	{"Delete", testDelete},
	{"RangeWithCount", testRangeWithCount},
	{"StreamsByPattern", testStreamsByPattern},
	{"DeleteConsumerRefusesWithPending", testDeleteConsumerRefusesWithPending},
	{"KeysWithTTL", testKeysWithTTL},
	{"NoGroup", testNoGroup},
	// Cancellation, deadlines and concurrent consumers.
	{"CancelBlockedRead", testCancelBlockedRead},
	{"DeadlineEndsBlockedRead", testDeadlineEndsBlockedRead},
	{"ReadAfterCancelledContextFails", testReadAfterCancelledContextFails},
	{"ConcurrentConsumersShareTheWork", testConcurrentConsumersShareTheWork},
}
