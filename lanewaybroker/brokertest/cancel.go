package brokertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaybroker"
)

func testCancelBlockedRead(t *testing.T, s *suite) {
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
}

func testDeadlineEndsBlockedRead(t *testing.T, s *suite) {
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
}

func testReadAfterCancelledContextFails(t *testing.T, s *suite) {
	st := s.name("customer")
	s.ensure("G", st)
	s.publish(st, 1)
	ctx, cancel := context.WithCancel(s.ctx)
	cancel()
	_, err := s.b.ReadGroup(ctx, lanewaybroker.ReadParams{Group: "G", Consumer: "c1", Streams: []string{st}, Block: longBlock})
	assert.ErrorIs(t, err, context.Canceled)
}

func testConcurrentConsumersShareTheWork(t *testing.T, s *suite) {
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
}
