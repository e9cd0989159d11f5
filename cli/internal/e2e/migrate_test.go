package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/tools/syncio"
)

// laneSampler records XLEN of both lanes every few milliseconds until
// stopped: the backlog a user watches with redis-cli.
type laneSampler struct {
	e    *env
	stop chan struct{}
	done chan struct{}

	mu                      sync.Mutex
	samples                 int
	maxPrimary, maxBackfill int64
	err                     error
}

func (e *env) sampleLanes() *laneSampler {
	s := &laneSampler{e: e, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		ctx := context.Background()
		for {
			select {
			case <-s.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			p, perr := e.rdb.XLen(ctx, stream).Result()
			b, berr := e.rdb.XLen(ctx, backfill).Result()
			s.mu.Lock()
			if perr != nil || berr != nil {
				if s.err == nil {
					s.err = firstErr(perr, berr)
				}
			} else {
				s.samples++
				s.maxPrimary = max(s.maxPrimary, p)
				s.maxBackfill = max(s.maxBackfill, b)
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// finish stops sampling and returns the maxima seen.
func (s *laneSampler) finish(t *testing.T) (maxPrimary, maxBackfill int64) {
	t.Helper()
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NoError(t, s.err)
	require.Positive(t, s.samples)
	t.Logf("%d XLEN samples: max %s %d, max %s %d", s.samples, stream, s.maxPrimary, backfill, s.maxBackfill)
	return s.maxPrimary, s.maxBackfill
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// migrateTiers runs `laneway example migrate-tiers` as a subprocess and
// returns its stdout; it fails the test unless the command exits 0.
func (e *env) migrateTiers(args ...string) string {
	e.t.Helper()
	cmd := exec.Command(binPath, append([]string{"example", "migrate-tiers", "--domain", e.dir}, args...)...)
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LANEWAY_ENV=") {
			environ = append(environ, kv)
		}
	}
	cmd.Env = environ
	var stdout, stderr syncio.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(e.t, err, "migrate-tiers %v failed:\nstdout: %s\nstderr: %s", args, stdout.String(), tail(stderr.String(), 4000))
	e.t.Logf("migrate-tiers %v:\n%s", args, stdout.String())
	return stdout.String()
}

// TestMigrateTiersAgainstServer is the guide's verification, end to end:
// a running `laneway server` with lanes on, the migration run as a separate
// process, and only redis-cli's and SQL's view of the result.
//
// "XLEN customer stays near 0" means: the migration itself adds nothing to
// the primary lane. On an empty database migrate-tiers first registers the
// missing customers at NORMAL priority; those registrations are production
// writes and do travel through "customer" (so its XLEN is at most the
// number registered, until handled and trimmed). Once the customers exist,
// a migration run keeps XLEN customer at exactly 0 from start to end.
func TestMigrateTiersAgainstServer(t *testing.T) {
	const n = 5000
	e := newEnv(t, envParams{Lanes: true})
	eng := e.startEngine()

	// Run 1, empty database: registrations (primary), then updates (backfill).
	s := e.sampleLanes()
	out := e.migrateTiers("--count", "5000", "--priority", "low")
	assert.Contains(t, out, "registered first: 5000 at priority NORMAL (0)")
	assert.Contains(t, out, "count 5000  updated 5000  errors 0")

	groups := e.groupInfo(backfill)
	assert.Contains(t, groups, customers.ProjectorName, "XINFO GROUPS customer:backfill lists the projector")
	assert.Contains(t, groups, customers.NotificationName)

	e.waitMigrated(n)
	require.Eventually(t, func() bool { return e.rdbLen(backfill) == 0 && e.rdbLen(stream) == 0 }, wait, tick,
		"both lanes drain to 0 (handled entries are trimmed)")
	maxPrimary, maxBackfill := s.finish(t)
	assert.Positive(t, maxBackfill, "XLEN customer:backfill grew during the migration")
	assert.LessOrEqual(t, maxPrimary, int64(n), "the primary lane carried the registrations only")

	// Where every row went, from the outbox.
	assert.Equal(t, n, e.count(`SELECT count(*) FROM outbox WHERE published_stream = 'customer'`))
	assert.Equal(t, n, e.count(`SELECT count(*) FROM outbox WHERE published_stream = 'customer' AND priority = 0 AND type = 'Customers.CustomerRegistered.v1'`))
	assert.Equal(t, n, e.count(`SELECT count(*) FROM outbox WHERE published_stream = 'customer:backfill' AND priority = -50 AND type = 'Customers.CustomerUpdated.v2'`))
	e.assertSeedQuery(-50, backfill)

	// Run 2, the customers exist: nothing is registered, and the primary
	// lane stays at 0 for the whole run while the backfill grows and drains.
	s = e.sampleLanes()
	out = e.migrateTiers("--count", "5000", "--priority", "bulk", "--batch", "100")
	assert.NotContains(t, out, "registered first")
	assert.Contains(t, out, "count 5000  updated 5000  errors 0")
	require.Eventually(t, func() bool {
		return e.count(`SELECT count(*) FROM outbox WHERE priority = -100 AND published_stream = 'customer:backfill'`) == n
	}, wait, tick)
	e.waitMigrated(n)
	require.Eventually(t, func() bool { return e.rdbLen(backfill) == 0 }, wait, tick)
	maxPrimary, maxBackfill = s.finish(t)
	assert.Zero(t, maxPrimary, "XLEN customer stayed at 0 during the migration")
	assert.Positive(t, maxBackfill, "XLEN customer:backfill grew during the migration")
	assert.Equal(t, int64(0), e.rdbLen(stream))
	e.assertSeedQuery(-100, backfill)

	eng.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, eng.wait(t, wait))
}

// waitMigrated waits until every outbox row is published and projected
// (one laneway_processed marker each), the read model holds n customers and
// none of them has the registration's default tier any more.
func (e *env) waitMigrated(n int) {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		return e.count(`SELECT count(*) FROM outbox WHERE status <> 'published'`) == 0 &&
			e.count(`SELECT count(*) FROM laneway_processed WHERE handler = $1`, customers.ProjectorName) == e.count(`SELECT count(*) FROM outbox`) &&
			e.summaryCount() == n &&
			e.count(`SELECT count(*) FROM customer_summary WHERE loyalty_tier = $1`, customers.DefaultTier) == 0
	}, wait, 100*time.Millisecond, "the projector should see all %d customers migrated", n)
}

// assertSeedQuery runs the guide's outbox query (with published_stream, the
// lane each row went to) and checks the ten newest rows.
func (e *env) assertSeedQuery(priority int, lane string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pgMu.Lock()
	defer e.pgMu.Unlock()
	rows, err := e.pg.Query(ctx, `SELECT message_id, priority, published_stream FROM outbox ORDER BY created_at DESC LIMIT 10`)
	require.NoError(e.t, err)
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var id, published string
		var p int
		require.NoError(e.t, rows.Scan(&id, &p, &published))
		assert.Equal(e.t, priority, p, id)
		assert.Equal(e.t, lane, published, id)
		seen++
	}
	require.NoError(e.t, rows.Err())
	assert.Equal(e.t, 10, seen)
}
