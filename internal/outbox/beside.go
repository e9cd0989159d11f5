package outbox

import (
	"context"
	"errors"
)

// The production worker's claim pass beside the hand-off.
//
// While the hand-off is on, the production rows this process commits are
// published from memory, and what the production worker still claims is
// everything else: rows committed by other processes, and rows whose
// lease ended because the relay holding them died. Nothing orders those
// with the rows handed over: the claim path never promised an order
// between the rows of two processes closer than a poll apart. So the
// claim pass, which on SQLite waits for the one writer behind a
// migration's writes, runs on a goroutine of its own, and the worker goes
// on publishing the rows handed over meanwhile. Run in turn, a row that
// committed while a poll's claim waited for the database (a lock, a slow
// disk, a long transaction) waited with it.
//
// One order must hold: a unit of work of this process refused a lease
// (the hand-off turned off) goes to the claim path, and must not be
// published before the rows handed over by units of work registered
// before it. A claim pass beside the hand-off therefore checks, after
// each claim, that the hand-off is still on. If it is not, the rows it
// claimed may include such rows: it gives them back unpublished and ends,
// and the worker claims again at once, after publishing what was handed
// over, as when the hand-off is off. The check cannot miss such a row: a
// unit of work is refused before it inserts, so before any claim can
// return its rows, and only the worker turns the hand-off on again, after
// the pass has ended.
//
// A claim pass in turn (the hand-off off) has the same duty, met another
// way: before it publishes each batch it claimed, it publishes the rows
// handed over that have committed (drain). A row handed over before the
// hand-off turned off may commit while the pass waits for its claim.

// errHandoffOff ends a claim pass beside the hand-off that found it off.
var errHandoffOff = errors.New("outbox: claimed beside the hand-off as it turned off; claimed again in order")

// claimPass is the outcome of a claim pass: rows published, first error.
type claimPass struct {
	n   int
	err error
}

// besideClaim is the claim pass running beside the hand-off, owned by the
// production worker's loop, which waits for it before it returns.
type besideClaim struct {
	done  chan claimPass // nil while none runs
	again bool           // a wake-up to claim arrived while it ran
}

func (b *besideClaim) running() bool { return b.done != nil }

// start runs pass on a goroutine of its own; its outcome arrives on done.
func (b *besideClaim) start(pass func() (int, error)) {
	done := make(chan claimPass, 1)
	b.done, b.again = done, false
	go func() {
		n, err := pass()
		done <- claimPass{n, err}
	}()
}

// ended records that the outcome arrived; it reports whether a wake-up to
// claim arrived while the pass ran.
func (b *besideClaim) ended() (again bool) {
	again = b.again
	b.done, b.again = nil, false
	return again
}

// wait waits for a pass still running.
func (b *besideClaim) wait() {
	if b.done != nil {
		<-b.done
		b.ended()
	}
}

// claimBeside is the production worker's claim pass while the hand-off is
// on. since is the hand-off's sequence number when the pass began.
func (r *Relay) claimBeside(ctx context.Context, w *worker, since uint64) (int, error) {
	n, err := r.drain(ctx, w, true)
	if err == nil {
		w.handoff.resume(since, r.brokerDown.Load())
	}
	return n, err
}

// isOn reports whether leases are granted.
func (ho *handoff) isOn() bool {
	ho.mu.Lock()
	defer ho.mu.Unlock()
	return ho.on
}
