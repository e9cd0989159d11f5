package consumer

// Lending a pausing backfill slot to primary (concurrency 1).
//
// While production flows, a backfill worker pauses between messages to
// give way (yield.go). At concurrency 1 its run holds the only slot
// meanwhile, so a production entry queued during the pause waited for the
// worker: the worker was woken, handed its run back, and the dispatcher was
// woken again before a worker could take the entry. Three hand-offs where
// one is needed, each waiting for a core on a busy machine. Instead the
// dispatcher lends the pausing worker's slot to primary and starts the
// entry at once; the worker sleeps out its pause, finds its slot lent and
// hands the rest of its run back without starting another message.
//
// The handshake is one atomic: the worker offers the slot before it pauses
// (slotOffered) and takes it back after (slotFree); the dispatcher lends it
// by moving it from offered to lent. Whichever moves it first wins, so a
// backfill handler never runs beside a lent slot's primary handler. The
// worker offers the slot before it reads preempt, and the dispatcher sets
// preempt before it tries to lend, so an entry queued while the worker goes
// into its pause is either seen by the worker (no pause) or lent the slot.
//
// A lent slot's pause is not cut short by the production entry, as it is
// above concurrency 1 (where primary has slots of its own and the pause
// ends to give its slot back): cutting it only added the worker's wake-up
// and its run's hand-back to the cores' work while the entry ran.

const (
	slotFree    int32 = iota // the backfill worker runs, or no backfill run is in flight
	slotOffered              // the worker pauses: the dispatcher may lend the slot
	slotLent                 // lent to primary until the worker's run comes back
)

// offerSlot is the worker's: its slot may be lent while it pauses.
func (c *Consumer) offerSlot() {
	if c.lends {
		c.lendState.Store(slotOffered)
	}
}

// reclaimSlot is the worker's, after its pause: false when the slot was lent
// meanwhile, and the run must go back unfinished.
func (c *Consumer) reclaimSlot() bool {
	return !c.lends || c.lendState.CompareAndSwap(slotOffered, slotFree)
}

// lendSlot is the dispatcher's: it lends a pausing backfill worker's slot to
// primary, and reports whether it did.
func (c *Consumer) lendSlot() bool {
	if !c.lends || c.sl.Lent > 0 || c.sl.BackfillInflight == 0 || !c.lendState.CompareAndSwap(slotOffered, slotLent) {
		return false
	}
	c.sl.Lent++
	return true
}

// slotReturned is the dispatcher's, when a run that found its slot lent
// comes back.
func (c *Consumer) slotReturned() {
	c.sl.Lent--
	c.lendState.Store(slotFree)
}
