package outbox

import (
	"context"
	"time"

	"github.com/laneway/laneway/lanewaystore"
)

// Watching a store's commits. SQLite cannot wake a relay in another
// process, so a relay on it used to poll with a claim every 25 ms per claim
// loop: on an idle engine with lanes on, 80 write transactions a second
// that found nothing, and most of the process's CPU. A store that can say
// cheaply whether another process has committed (lanewaystore.CommitWatcher,
// SQLite's data_version) is watched instead: one goroutine reads its
// commit mark every CommitPollInterval and wakes the claim loops when it
// moved, as PostgreSQL's notification does. The loops then back off to
// MaxTickInterval like on PostgreSQL, which still finds the rows that
// become claimable with no commit (a failed row's retry time, a dead
// worker's lease) and those written in this process outside a unit of
// work (an operator's retry from the dashboard).
//
// This process's own commits do not move the mark: its units of work wake
// the loops themselves, and the relay's claims and marks need no wake-up.
// A mark that cannot be read wakes the loops, whose claims then report the
// database's state.

// CommitPollInterval is how often the commit mark of a CommitWatcher store
// is read: the longest a row another process commits waits to be claimed.
const CommitPollInterval = 25 * time.Millisecond

// watchCommits starts the goroutine that wakes the claim loops when cw's
// commit mark moves. The first mark is read before it returns, so a commit
// after it wakes them and one before it is found by their first claim.
func (r *Relay) watchCommits(ctx context.Context, cw lanewaystore.CommitWatcher) {
	last, err := cw.CommitMark(ctx)
	known := err == nil
	r.life.GoEvery(ctx, CommitPollInterval, func(ctx context.Context) {
		mark, err := cw.CommitMark(ctx)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				r.listenNotify()
			}
			known = false
			return
		case !known || mark != last:
			r.listenNotify()
		}
		last, known = mark, true
	})
}
