// Package storetest is the conformance suite of lanewaystore.Store: every
// implementation calls Exercise from its tests, in a few lines, so the SQLite
// and PostgreSQL stores are held to one contract.
//
// Time-dependent behaviour (leases, retry times, cleanup cutoffs) is driven
// by the Now / At / Before fields of the params, never by the wall clock, so
// the suite controls time and has no sleeps.
package storetest

import (
	"testing"
	"time"

	"github.com/laneway/laneway/lanewaystore"
)

// Opener returns a fresh, empty store for one subtest (its own SQLite file
// or PostgreSQL schema), without running Migrate. Exercise closes it when the
// subtest ends.
type Opener func(t *testing.T) lanewaystore.Store

// Exercise runs the whole suite against the stores open returns. Subtests
// run in parallel, each on its own store.
func Exercise(t *testing.T, open func(t *testing.T) lanewaystore.Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Migrate", testMigrate},
		{"Aggregate", testAggregate},
		{"AggregateConcurrentSave", testAggregateConcurrentSave},
		{"InTxRollbackOnError", testRollbackOnError},
		{"InTxRollbackOnPanic", testRollbackOnPanic},
		{"CallerSQL", testCallerSQL},
		{"MarkProcessed", testMarkProcessed},
		{"OutboxInsertAndSeedQuery", testOutboxInsert},
		{"OutboxInsertInvalid", testOutboxInsertInvalid},
		{"OutboxInsertLeased", testInsertLeased},
		{"ClaimOrder", testClaimOrder},
		{"ClaimLimit", testClaimLimit},
		{"ClaimLease", testClaimLease},
		{"ClaimRetryTime", testClaimRetryTime},
		{"ClaimPriorities", testClaimPriorities},
		{"MarkPublished", testMarkPublished},
		{"MarkFailed", testMarkFailed},
		{"MarkFailedOutage", testMarkFailedOutage},
		{"LapsedLease", testLapsedLease},
		{"EndLeases", testEndLeases},
		{"Cleanup", testCleanup},
		{"LeaseIsProcessing", testLeaseIsProcessing},
		{"StoredProcessingRows", testStoredProcessingRows},
		{"Stats", testStats},
		{"List", testList},
		{"Retry", testRetry},
		{"ConcurrentClaimers", testConcurrentClaimers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

// t0 is the suite's "now": far from the wall clock, so a store that compares
// with its own clock instead of ClaimParams.Now fails loudly. Microsecond
// precision, which both stores keep.
var t0 = time.Date(2031, 3, 4, 5, 6, 7, 123456000, time.UTC)
