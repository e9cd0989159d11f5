package redisbroker_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/brokertest"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
)

func openCluster(t testing.TB) *redisbroker.Broker {
	t.Helper()
	b, err := redisbroker.Open(t.Context(), testsvc.Cluster(t).URL(), redisbroker.Options{})
	require.NoError(t, err)
	return b
}

// TestCluster runs the conformance suite on a real three-master Redis
// Cluster: every case's streams share a hash tag, so the cases spread over
// the masters while the reads over several streams stay in one slot.
func TestCluster(t *testing.T) {
	t.Parallel()
	b := openCluster(t)
	require.True(t, b.Cluster())
	_ = b.Close()
	brokertest.Exercise(t, func(t *testing.T) lanewaybroker.Broker { return openCluster(t) })
}

func TestParseClusterURL(t *testing.T) {
	t.Parallel()
	o, err := redisbroker.ParseClusterURL("redis+cluster://u:secret@10.0.0.1:7000,10.0.0.2:7001/0?dial_timeout=2s")
	require.NoError(t, err)
	assert.Equal(t, []string{"10.0.0.1:7000", "10.0.0.2:7001"}, o.Addrs)
	assert.Equal(t, "u", o.Username)
	assert.Equal(t, "secret", o.Password)
	assert.Equal(t, 2*time.Second, o.DialTimeout)
	assert.Nil(t, o.TLSConfig)

	o, err = redisbroker.ParseClusterURL("rediss+cluster://10.0.0.1:7000")
	require.NoError(t, err)
	assert.NotNil(t, o.TLSConfig)

	for raw, want := range map[string]string{
		"redis+cluster://10.0.0.1:7000/3":          "only database 0",
		"redis+cluster://":                         "no nodes",
		"redis+cluster://10.0.0.1":                 "expected host:port",
		"redis+cluster://u:secret@10.0.0.1,b:7000": "expected host:port",
		"redis://10.0.0.1:7000":                    "redis+cluster://",
	} {
		_, err := redisbroker.ParseClusterURL(raw)
		require.Error(t, err, raw)
		assert.Contains(t, err.Error(), want, raw)
		assert.NotContains(t, err.Error(), "secret", raw)
	}
}

func TestClusterOpenRefusesStandalone(t *testing.T) {
	t.Parallel()
	u := testsvc.RedisURL(t)
	host := strings.TrimPrefix(strings.SplitN(strings.TrimPrefix(u, "redis://"), "/", 2)[0], "")
	_, err := redisbroker.Open(t.Context(), "redis+cluster://"+host, redisbroker.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redis://")
}

// TestClusterScansEveryMaster: Streams and GetKeys find keys on every
// master, not only on the node the client happens to ask.
func TestClusterScansEveryMaster(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openCluster(t)
	defer b.Close()
	p := testsvc.Prefix()
	masters := map[string]bool{}
	var streams []string
	for i := 0; len(masters) < testsvc.ClusterMasters; i++ {
		require.Less(t, i, 1000)
		s := fmt.Sprintf("%ss%d", p, i)
		m, err := b.MasterOf(ctx, s)
		require.NoError(t, err)
		if masters[m] {
			continue
		}
		masters[m] = true
		streams = append(streams, s)
		_, err = b.Publish(ctx, []lanewaybroker.Publication{{Stream: s, Data: "x"}})
		require.NoError(t, err)
		require.NoError(t, b.SetKey(ctx, s+"-hb", "v"+s, time.Minute))
	}
	got, err := b.Streams(ctx, p+"*")
	require.NoError(t, err)
	assert.ElementsMatch(t, streams, got)
	keys, err := b.GetKeys(ctx, p+"*-hb")
	require.NoError(t, err)
	assert.Len(t, keys, testsvc.ClusterMasters)
	for _, s := range streams {
		assert.Equal(t, "v"+s, keys[s+"-hb"])
	}
}

// TestClusterSlotMigrationDuringDrain moves the slot of a lane pair to
// another master (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE of both
// streams with their groups, SETSLOT NODE) while a producer appends and a
// consumer drains with blocking reads over both lanes. The Broker must
// follow the MOVED and ASK redirections: every entry is read and
// acknowledged exactly as published, and the streams end on the new master.
func TestClusterSlotMigrationDuringDrain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cl := testsvc.Cluster(t)
	b := openCluster(t)
	defer b.Close()

	tag := strings.TrimSuffix(testsvc.Prefix(), "_")
	primary, backfill := "{"+tag+"}", "{"+tag+"}:backfill"
	const group, total = "projector", 3000
	require.NoError(t, b.EnsureGroup(ctx, primary, group))
	require.NoError(t, b.EnsureGroup(ctx, backfill, group))

	var wg sync.WaitGroup
	defer wg.Wait()
	pctx, stopProducer := context.WithCancel(ctx)
	defer stopProducer()
	published := make(chan int, 1)
	wg.Add(1)
	go func() { // the producer: total entries, alternating lanes, in batches
		defer wg.Done()
		n := 0
		for n < total && pctx.Err() == nil {
			var pubs []lanewaybroker.Publication
			for range 50 {
				s := primary
				if n%2 == 1 {
					s = backfill
				}
				pubs = append(pubs, lanewaybroker.Publication{Stream: s, Data: strconv.Itoa(n)})
				n++
			}
			if _, err := b.Publish(pctx, pubs); err != nil {
				t.Errorf("publish: %v", err)
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		published <- n
	}()

	seen := map[string]int{}
	read := func() {
		res, err := b.ReadGroup(ctx, lanewaybroker.ReadParams{Group: group, Consumer: "c1",
			Streams: []string{primary, backfill}, Count: 100, Block: 200 * time.Millisecond})
		require.NoError(t, err)
		for _, s := range res {
			ids := make([]string, 0, len(s.Entries))
			for _, e := range s.Entries {
				seen[e.Data]++
				ids = append(ids, e.ID)
			}
			require.NoError(t, b.Ack(ctx, []lanewaybroker.AckParams{{Stream: s.Stream, Group: group, IDs: ids}}))
		}
	}
	for len(seen) < total/3 {
		read()
	}

	// Move the slot while both sides keep going.
	src, err := b.MasterOf(ctx, primary)
	require.NoError(t, err)
	var dst string
	for _, a := range cl.Addrs {
		if a != src {
			dst = a
			break
		}
	}
	migrated := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		migrated <- migrateSlot(ctx, cl, src, dst, []string{primary, backfill})
	}()
	var migErr error
	done := false
	for !done || len(seen) < total {
		select {
		case migErr = <-migrated:
			require.NoError(t, migErr)
			done = true
		default:
		}
		read()
	}
	n := <-published
	require.Equal(t, total, n)
	for i := range total {
		assert.Equal(t, 1, seen[strconv.Itoa(i)], "entry %d", i)
	}
	for _, s := range []string{primary, backfill} {
		// The client learns the new slot map from a MOVED answer and loads
		// it in the background: the reads may all have been served before
		// one came, so touch the key and wait for the reload.
		assert.Eventually(t, func() bool {
			_, _ = b.Len(ctx, s)
			now, err := b.MasterOf(ctx, s)
			return err == nil && now == dst
		}, 10*time.Second, 20*time.Millisecond, "%s: not served by %s after the move", s, dst)
		assert.Empty(t, pendingOf(t, b, s, group), s)
	}
}

func pendingOf(t *testing.T, b *redisbroker.Broker, stream, group string) []lanewaybroker.PendingEntry {
	t.Helper()
	p, err := b.Pending(t.Context(), lanewaybroker.PendingParams{Stream: stream, Group: group, Count: 1000})
	require.NoError(t, err)
	return p
}

// migrateSlot moves the slot of keys (one slot) from master src to master
// dst, the way `redis-cli --cluster reshard` does: IMPORTING on dst,
// MIGRATING on src, MIGRATE of the keys, then SETSLOT NODE on every master.
func migrateSlot(ctx context.Context, cl *testsvc.RedisCluster, src, dst string, keys []string) error {
	s, d := cl.Node(src), cl.Node(dst)
	defer s.Close()
	defer d.Close()
	slot, err := s.ClusterKeySlot(ctx, keys[0]).Result()
	if err != nil {
		return err
	}
	srcID, err := s.ClusterMyID(ctx).Result()
	if err != nil {
		return err
	}
	dstID, err := d.ClusterMyID(ctx).Result()
	if err != nil {
		return err
	}
	if err := d.Do(ctx, "cluster", "setslot", slot, "importing", srcID).Err(); err != nil {
		return fmt.Errorf("importing: %w", err)
	}
	if err := s.Do(ctx, "cluster", "setslot", slot, "migrating", dstID).Err(); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	// Let the drain run against a half-moved slot for a moment.
	time.Sleep(100 * time.Millisecond)
	host, port, _ := strings.Cut(dst, ":")
	for _, k := range keys {
		err := s.Do(ctx, "migrate", host, port, k, 0, 5000).Err()
		if err != nil && !strings.Contains(err.Error(), "NOKEY") {
			return fmt.Errorf("migrate %s: %w", k, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, a := range append([]string{dst, src}, others(cl.Addrs, src, dst)...) {
		n := cl.Node(a)
		err := n.Do(ctx, "cluster", "setslot", slot, "node", dstID).Err()
		_ = n.Close()
		if err != nil {
			return fmt.Errorf("setslot node on %s: %w", a, err)
		}
	}
	return nil
}

func others(all []string, not ...string) []string {
	var out []string
	for _, a := range all {
		skip := false
		for _, n := range not {
			skip = skip || a == n
		}
		if !skip {
			out = append(out, a)
		}
	}
	return out
}
