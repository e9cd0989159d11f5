// Package consumer runs one consumer-group loop: one handler on one
// category's primary and backfill lanes, with the priority scheduler of
// docs/architecture.md (block on both lanes when idle, primary first,
// preemption between backfill messages, capacity isolation), durable attempt
// counts from Redis delivery counts, non-blocking retries, DLQ, reclaim of
// dead consumers' entries and graceful shutdown.
//
// One goroutine (the dispatcher) owns all scheduling state; handlers run on
// Concurrency long-lived worker goroutines and report back over a channel;
// the one blocking read runs on a helper goroutine, which also decodes what
// it read, so finished handlers are acked while it waits and decoding
// overlaps handling. An idle consumer's primary reader runs a lone entry's
// handler itself (inline.go).
package consumer

import (
	"context"
	"errors"
	"fmt"
	"github.com/laneway/laneway/internal/instance"
	mrand "math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/laneway/laneway/lanewaybroker"
)

const (
	// ackFlushEvery bounds how long a handled entry waits for its batched ack.
	ackFlushEvery = 20 * time.Millisecond
	// opTimeout bounds one broker call made by the dispatcher.
	opTimeout = 10 * time.Second
)

type state int

const (
	stQueued    state = iota // read, not started
	stRunning                // handler in flight
	stWaiting                // failed, waiting in the retry heap
	stDLQWait                // exhausted, DLQ publish failed, waiting to try again
	stCancelled              // handler cancelled by shutdown: not an attempt
)

// tracked is an entry pending on this consumer.
type tracked struct {
	key        string // stream + "\x00" + id
	lane       Lane
	entry      lanewaybroker.Entry
	msg        Message
	deliveries int64 // Redis delivery count as last set
	lastTouch  time.Time
	st         state
	failedAt   time.Time
	lastErr    string
}

type result struct {
	t         *tracked
	err       error
	d         time.Duration
	cancelled bool
}

// run is work for one handler slot: one message, or at Concurrency 1 a
// run of consecutive messages of one lane that the worker handles back to
// back (see dispatch).
type run struct {
	lane   Lane
	ts     []*tracked
	budget time.Duration // a run stops starting messages after this long
}

// runResult reports a finished run: the handled messages, and those the
// worker did not start (preempted, over budget, or stopping), in order.
type runResult struct {
	lane      Lane
	done      []result
	unstarted []*tracked
	outage    error // Config.Outage's verdict on the first unstarted one's error
	lent      bool  // the slot was lent to primary while the worker paused (lend.go)
	inline    bool  // run by the primary reader (inline.go)
}

type readResult struct {
	kind    ReadMode
	streams []lanewaybroker.StreamEntries
	decoded []decoded // parallel to streams
	err     error
	cut     bool // cancelled before it returned (it says nothing of what waits)
	full    int  // the entries that make it a full read (primary reader)
	// arrival is the primary read's arrival when it was not sent ahead
	// (a reply of less than a full read: primaryreader.go).
	arrival *primaryArrival
	// inlined is the reply's entry when the primary reader started it
	// itself (inline.go).
	inlined *tracked
}

// decoded is the outcome of Config.Decode for one stream's entries of a
// read: ts[j] is entry j's record with its envelope in place (the
// record the consumer keeps, so the envelope is not copied again), errs[j]
// its decode error (errs nil when every entry decoded).
type decoded struct {
	ts   []tracked
	errs []error
}

// Consumer is one consumer-group loop. Create with New, run with Start,
// end with Stop.
type Consumer struct {
	b     lanewaybroker.Broker
	cfg   Config
	lanes bool
	bfCap int

	started  atomic.Bool
	stopOnce sync.Once
	stopReq  chan struct{}
	hardStop chan struct{}
	hardOnce sync.Once
	done     chan struct{}

	handlerCtx    context.Context
	handlerCancel context.CancelFunc
	readCtx       context.Context
	readCancelAll context.CancelFunc
	opCtx         context.Context
	opCancel      context.CancelFunc // cut every broker call short: Stop gave up waiting
	hwg, rwg      sync.WaitGroup

	results chan runResult
	ackDone chan error  // the ack in flight has completed
	work    [2]chan run // to the handler workers, by lane (workers.go)
	// preempt tells a worker in a backfill run that primary entries are
	// queued; halt that the consumer is stopping. Both end runs early.
	preempt, halt atomic.Bool
	yield         yielder // Config.BackfillYield (yield.go)
	// lends: a pausing backfill worker's slot may be lent to primary
	// (concurrency 1, lanes on, BackfillYield); lendState is the slot's
	// handshake (lend.go).
	lends     bool
	lendState atomic.Int32
	// inlines: an idle consumer's primary reader may start one entry
	// itself (concurrency 1, lanes on, a primary reader, no gate); inline
	// is the handshake, inlineRunning says the dispatcher has counted the
	// inline run (inline.go).
	inlines       bool
	inline        atomic.Int32
	inlineRunning bool
	readDone      chan readResult

	// dispatcher state
	owned      map[string]*tracked
	queue      [2][]*tracked
	busy       map[string]int
	sl         slots
	credit     shareCredit
	retries    retryHeap
	acks       map[string][]string
	ackN       int
	ackSending []lanewaybroker.AckParams // the acks in flight, nil when none
	ackSince   time.Time
	reading    ReadMode
	readCancel context.CancelFunc
	// primaryReader: the primary lane has a read of its own (primaryreader.go);
	// preading while it is outstanding.
	primaryReader bool
	// inRuns counts per lane the entries handed to workers in runs and not
	// yet back: with them the read-ahead counts what it has read.
	inRuns    [2]int
	preading  bool // a primary read is at the broker
	pCancel   context.CancelFunc
	pReadDone chan readResult
	// The primary read pipeline (primaryreader.go): pPending reads sent
	// whose results are not queued yet, pDecoding entries in replies not
	// yet queued, pSent closed once the last read sent has delivered its
	// result, pLastFull the last reply was a full batch, pHold a failed
	// read holds the next until its result is counted.
	pArrived  chan primaryArrival
	pPending  int
	pDecoding int
	pSent     chan struct{}
	pLastFull bool
	pHold     bool
	lastProbe time.Time
	readSent  time.Time // when the read in flight was sent
	// lastBackfillDone is when the last backfill run ended.
	lastBackfillDone time.Time
	lastReclaim      time.Time
	lastTouch        time.Time
	claimCursor      [2]string
	tk               takeoverState
	bo               backoff
	retryAt          time.Time
	down             bool
	// ownCheck: a broker failure may have lost a reply that delivered
	// entries to this consumer (ownpending.go).
	ownCheck   bool
	ownCheckAt time.Time
	stopping   bool
	// database outage (Config.Outage): handlers pause until dbRetryAt
	dbBo      backoff
	dbRetryAt time.Time
	dbDown    bool
	ctl       control // Config.Control's state (control.go)
	// gate is this consumer's place in Config.Gate (nil without one);
	// primaryUnknown says no read has shown primary to be drained yet.
	gate           *gateMember
	primaryUnknown bool

	reads, entries [numReadModes]atomic.Int64
	handled        [2]atomic.Int64
	failed         [2]atomic.Int64
	nRetries       atomic.Int64
	nDLQ           atomic.Int64
	nDecode        atomic.Int64
	nInline        atomic.Int64
}

// New validates cfg and returns a Consumer that has not started.
func New(b lanewaybroker.Broker, cfg Config) (*Consumer, error) {
	if b == nil {
		return nil, errors.New("consumer: nil broker")
	}
	if err := cfg.validateAndDefault(); err != nil {
		return nil, err
	}
	if cfg.Consumer == "" {
		cfg.Consumer = DefaultName(cfg.Group)
	}
	c := &Consumer{
		b: b, cfg: cfg, lanes: cfg.Backfill != "",
		bfCap:     backfillCap(cfg.Concurrency, cfg.BackfillConcurrency),
		stopReq:   make(chan struct{}),
		hardStop:  make(chan struct{}),
		done:      make(chan struct{}),
		results:   make(chan runResult, cfg.Concurrency),
		work:      [2]chan run{make(chan run, cfg.Concurrency), make(chan run, cfg.Concurrency)},
		ackDone:   make(chan error, 1),
		readDone:  make(chan readResult, 1),
		pReadDone: make(chan readResult, 1),
		pArrived:  make(chan primaryArrival, maxPrimaryReads),
		pSent:     closedChan(),
		owned:     map[string]*tracked{},
		busy:      map[string]int{},
		acks:      map[string][]string{},
		bo:        backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second},
		dbBo:      backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second},
	}
	c.sl = slots{Concurrency: cfg.Concurrency, BackfillCap: c.bfCap}
	c.lends = cfg.Concurrency == 1 && c.lanes && cfg.BackfillYield
	c.primaryReader = cfg.PrimaryReader && c.lanes
	c.primaryUnknown = c.primaryReader // until its first read says
	c.credit = shareCredit{Share: cfg.MinBackfillShare}
	c.claimCursor = [2]string{"0-0", "0-0"}
	if cfg.Gate != nil {
		c.gate, c.primaryUnknown = cfg.Gate.join(), true
	}
	c.inlines = cfg.Concurrency == 1 && c.primaryReader && c.gate == nil
	return c, nil
}

// DefaultName is "<group>-<hostname>-<pid>-<6 hex>".
func DefaultName(group string) string {
	return instance.ID(group)
}

// Name is the consumer name in use.
func (c *Consumer) Name() string { return c.cfg.Consumer }

// Start creates the consumer groups and starts the loop. It does not block;
// it fails fast when the broker is unreachable.
func (c *Consumer) Start(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("consumer: already started")
	}
	if err := c.ensureGroups(ctx); err != nil {
		return err
	}
	if c.lanes {
		c.cfg.Logger.Debug(fmt.Sprintf("Initialized priority lanes for %s: primary='%s', backfill='%s'", c.cfg.Group, c.cfg.Primary, c.cfg.Backfill))
	}
	base := context.WithoutCancel(ctx)
	c.opCtx, c.opCancel = context.WithCancel(base)
	c.handlerCtx, c.handlerCancel = context.WithCancel(base)
	c.readCtx, c.readCancelAll = context.WithCancel(base)
	c.tk.after = time.Now().Add(c.cfg.StartGrace)
	c.tk.reclaimAfter = c.tk.after
	c.startWorkers()
	go c.run()
	return nil
}

func (c *Consumer) ensureGroups(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := c.b.EnsureGroup(ctx, c.cfg.Primary, c.cfg.Group); err != nil {
		return fmt.Errorf("consumer: ensure group %q on %q: %w", c.cfg.Group, c.cfg.Primary, err)
	}
	if c.lanes {
		if err := c.b.EnsureGroup(ctx, c.cfg.Backfill, c.cfg.Group); err != nil {
			return fmt.Errorf("consumer: ensure backfill group %q on %q: %w", c.cfg.Group, c.cfg.Backfill, err)
		}
	}
	return nil
}

// Stop stops reading, waits for in-flight handlers (at most
// ShutdownTimeout, or until ctx is done, then cancels them), acks the
// finished ones and hands every unfinished entry back to the group without
// counting it as an attempt. Stop before Start is a no-op.
func (c *Consumer) Stop(ctx context.Context) error {
	if !c.started.Load() {
		if c.gate != nil {
			c.gate.leave()
		}
		return nil
	}
	c.stopOnce.Do(func() { close(c.stopReq) })
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		// The caller will not wait longer: cancel the handlers and every
		// broker call, so an unreachable or blackholed Redis cannot hold
		// the stop (what is not acked or handed back stays pending and is
		// taken over by the next engine).
		c.hardOnce.Do(func() { close(c.hardStop); c.opCancel() })
		<-c.done
		return ctx.Err()
	}
}

// Stats returns a snapshot of the counters.
func (c *Consumer) Stats() Stats {
	s := Stats{
		Reads: map[ReadMode]int64{}, Entries: map[ReadMode]int64{},
		Handled: map[Lane]int64{}, Failed: map[Lane]int64{},
		Retries: c.nRetries.Load(), DeadLettered: c.nDLQ.Load(), DecodeErrors: c.nDecode.Load(),
		Inline: c.nInline.Load(),
	}
	for k := ReadBlockingBoth; k < numReadModes; k++ {
		s.Reads[k] = c.reads[k].Load()
		s.Entries[k] = c.entries[k].Load()
	}
	for l := Primary; l <= Backfill; l++ {
		s.Handled[l] = c.handled[l].Load()
		s.Failed[l] = c.failed[l].Load()
	}
	return s
}

func (c *Consumer) stream(l Lane) string {
	if l == Backfill {
		return c.cfg.Backfill
	}
	return c.cfg.Primary
}

func (c *Consumer) laneOf(stream string) Lane {
	if c.lanes && stream == c.cfg.Backfill {
		return Backfill
	}
	return Primary
}

func (c *Consumer) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.opCtx, opTimeout)
}

func (c *Consumer) countRead(k ReadMode, n int) {
	c.reads[k].Add(1)
	c.entries[k].Add(int64(n))
	if c.cfg.Observer != nil {
		c.cfg.Observer.Read(k, n)
	}
}

// run is the dispatcher.
func (c *Consumer) run() {
	defer c.opCancel()
	defer close(c.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	c.loadControl()
	for {
		select {
		case <-c.stopReq:
			c.shutdown()
			return
		default:
		}
		now := time.Now()
		c.maintain(now)
		if c.dispatch() && !c.pLastFull {
			// Let the primary worker just handed a run go first. The
			// goroutine made ready last runs next on this thread, but only
			// once the dispatcher parks: without the yield, the rest of
			// this round (acks, reads, the next read's goroutine, which
			// then goes ahead of the worker) came first. The dispatcher
			// goes on on the other core, or after the handler. Not while
			// primary is read in full batches (a backlog): its entries
			// wait in the queue anyway, and the yield's trip through the
			// scheduler's lock cost throughput there.
			runtime.Gosched()
		}
		c.maybeFlushAcks(false)
		c.maybeRead()
		c.maybeReadPrimary()
		c.reportGate()
		c.armInline()

		timer.Reset(c.nextWake(time.Now()))
		select {
		case r := <-c.results:
			c.onRunResult(r)
			c.drainResults()
		case rr := <-c.readDone:
			c.onRead(rr)
		case a := <-c.pArrived:
			c.onPrimaryArrived(a)
		case rr := <-c.pReadDone:
			c.onPrimaryRead(rr)
		case err := <-c.ackDone:
			c.onAcked(err)
		case <-timer.C:
		case <-c.ctlChanged():
			c.loadControl()
		case <-c.gateWake():
		case <-c.stopReq:
			c.shutdown()
			return
		}
	}
}

func (c *Consumer) drainResults() {
	for {
		select {
		case r := <-c.results:
			c.onRunResult(r)
		default:
			return
		}
	}
}

func (c *Consumer) touchEvery() time.Duration { return max(c.cfg.ClaimIdle/4, time.Millisecond) }

func (c *Consumer) reclaimEvery() time.Duration {
	return min(max(c.cfg.ClaimIdle/2, 10*time.Millisecond), 5*time.Second)
}

func (c *Consumer) nextWake(now time.Time) time.Duration {
	wake := now.Add(time.Hour)
	at := func(t time.Time) {
		if t.Before(wake) {
			wake = t
		}
	}
	if t, ok := c.retries.next(); ok {
		at(t)
	}
	if c.ackN > 0 && c.ackSending == nil {
		at(maxTime(c.ackSince.Add(ackFlushEvery), c.retryAt))
	}
	if len(c.owned) > 0 {
		at(c.lastTouch.Add(c.touchEvery()))
	}
	at(c.lastReclaim.Add(c.reclaimEvery()))
	if c.cfg.Alive != nil {
		at(maxTime(c.tk.last.Add(takeoverEvery), c.tk.after))
	}
	if c.down && (c.reading == 0 || (c.primaryReader && !c.preading)) && c.retryAt.After(now) {
		at(c.retryAt)
	}
	if c.dbDown && c.dbRetryAt.After(now) {
		at(c.dbRetryAt)
	}
	if c.ownCheck {
		at(maxTime(c.ownCheckAt, c.retryAt))
	}
	if t := c.controlWake(); !t.IsZero() {
		at(t)
	}
	return max(wake.Sub(now), 0)
}

func closedChan() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// brokerFailed records a broker error: back off with jitter, log once per
// state change.
func (c *Consumer) brokerFailed(what string, err error) {
	if errors.Is(err, lanewaybroker.ErrNoGroup) {
		ctx, cancel := c.op()
		if gerr := c.ensureGroups(ctx); gerr != nil {
			err = gerr
		}
		cancel()
	}
	c.ownCheck, c.ownCheckAt = true, time.Now().Add(takeoverMinIdle)
	if !c.down {
		c.cfg.Logger.Warn("broker unavailable; backing off", "group", c.cfg.Group, "consumer", c.cfg.Consumer, "op", what, "error", err)
		c.down = true
	}
	c.retryAt = time.Now().Add(c.bo.next(mrand.Float64()))
}

func (c *Consumer) brokerOK() {
	if c.down {
		c.cfg.Logger.Info("broker available again", "group", c.cfg.Group, "consumer", c.cfg.Consumer)
		c.down = false
		c.bo.reset()
		c.retryAt = time.Time{}
		c.tk.after = time.Now().Add(c.cfg.TakeoverGrace)
		c.tk.reclaimAfter = time.Now().Add(c.cfg.ReclaimGrace)
		// Touch what this consumer holds at once: no touch got through
		// during the outage, and the other consumers' reclaim resumes
		// when their grace ends.
		c.lastTouch = time.Time{}
	}
}

// dbFailed and dbOK are brokerFailed and brokerOK for Config.Outage.
func (c *Consumer) dbFailed(err error) {
	if !c.dbDown {
		c.cfg.Logger.Warn("database unavailable; pausing handlers and backing off", "group", c.cfg.Group, "consumer", c.cfg.Consumer, "error", err)
		c.dbDown = true
	}
	c.dbRetryAt = time.Now().Add(c.dbBo.next(mrand.Float64()))
}

func (c *Consumer) dbOK() {
	if c.dbDown {
		c.cfg.Logger.Info("database available again; resuming handlers", "group", c.cfg.Group, "consumer", c.cfg.Consumer)
		c.dbDown = false
		c.dbBo.reset()
		c.dbRetryAt = time.Time{}
	}
}
