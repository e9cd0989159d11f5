package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/laneway/laneway/lanewaystore"
)

// A relay that stops without settling its rows (its process was killed,
// or lost the database) leaves them leased: the rows it had claimed, and
// the production rows its own units of work leased to it at insert for the
// hand-off. Any relay may claim them once the lease runs out (Lease, 30 s
// by default). When the engine can tell that relay has stopped (its
// heartbeat expired), its leases are ended at once instead, so a killed
// engine's rows wait about as long as its stream entries do. The claim
// then records the end as the rows' lapsed lease, and the rows are looked
// for in their streams before they are appended again (lapsed.go).

// stoppedCheckTimeout bounds one EndLeases statement.
const stoppedCheckTimeout = 10 * time.Second

// endStoppedLeases ends the leases of the relays cfg.StoppedRelays names,
// once per relay: a stopped relay takes no new lease.
func (r *Relay) endStoppedLeases(ctx context.Context) {
	ids, err := r.cfg.StoppedRelays(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Debug("could not tell which relays stopped", "error", err)
		}
		return
	}
	named := make(map[string]bool, len(ids))
	var fresh []string
	for _, id := range ids {
		if id == r.cfg.WorkerID || named[id] {
			continue
		}
		named[id] = true
		if !r.leasesEnded[id] {
			fresh = append(fresh, id)
		}
	}
	// A relay no longer named is forgotten, so the set stays as small as
	// the list: mostly its key expired with its last lease; if it was
	// left out for a while (the engine's own heartbeat in doubt), its
	// leases are ended again when it is named again, which is harmless.
	for id := range r.leasesEnded {
		if !named[id] {
			delete(r.leasesEnded, id)
		}
	}
	if len(fresh) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, stoppedCheckTimeout)
	defer cancel()
	n, err := r.ender.EndLeases(sctx, lanewaystore.EndLeasesParams{WorkerIDs: fresh, Now: r.cfg.Now()})
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("could not end the outbox leases of stopped relays; trying again", "relays", fresh, "error", err)
		}
		return
	}
	for _, id := range fresh {
		r.leasesEnded[id] = true
	}
	if n > 0 {
		r.endedLeases.Add(n)
		r.log.Warn("outbox rows leased to a stopped relay are claimable again", "rows", n, "relays", fresh)
		r.Notify()
	}
}

// ErrCannotEndLeases is returned by EndOwnLeases when the store has no
// way to end leases (it does not implement lanewaystore.LeaseEnder).
var ErrCannotEndLeases = errors.New("outbox: the store cannot end leases")

// EndOwnLeases ends the leases this relay still holds, after Stop returned
// nil: a stop that could not publish or hand back every row it held (the
// database or the broker failed meanwhile) leaves those rows leased to it.
// Ending them here lets any relay claim them at once, as the engines do
// for a relay whose engine died, and tells the engine that nothing is
// leased to this relay any more. It returns the number of rows whose lease
// it ended. Called while the relay still runs, it could end the lease of a
// row being published, and another relay could append it again; so the
// caller must not call it unless Stop succeeded.
func (r *Relay) EndOwnLeases(ctx context.Context) (int64, error) {
	le, ok := r.store.(lanewaystore.LeaseEnder)
	if !ok {
		return 0, ErrCannotEndLeases
	}
	ctx, cancel := context.WithTimeout(ctx, stoppedCheckTimeout)
	defer cancel()
	n, err := le.EndLeases(ctx, lanewaystore.EndLeasesParams{WorkerIDs: []string{r.cfg.WorkerID}, Now: r.cfg.Now()})
	if err != nil {
		return 0, fmt.Errorf("outbox: end the relay's own leases: %w", err)
	}
	if n > 0 {
		r.log.Warn("outbox rows this stopped relay still held are claimable again", "rows", n)
	}
	return n, nil
}
