package brokertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaybroker"
)

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
