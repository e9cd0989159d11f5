// Package consumer runs one consumer-group loop: one handler on one
// category's primary and backfill lanes, with the priority scheduler of
// DESIGN.md section 5 (block on both lanes when idle, primary first,
// preemption between backfill messages, capacity isolation), durable attempt
// counts from Redis delivery counts, non-blocking retries, DLQ, reclaim of
// dead consumers' entries and graceful shutdown.
//
// One goroutine (the dispatcher) owns all scheduling state; handlers run on
// Concurrency long-lived worker goroutines and report back over a channel;
// the one blocking read runs on a helper goroutine, which also decodes what
// it read, so finished handlers are acked while it waits and decoding
// overlaps handling.
package consumer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/laneway/laneway/internal/envelope"
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
// back (see dispatch). msgs are the handler's copies of ts[i].msg.
type run struct {
	lane   Lane
	ts     []*tracked
	msgs   []Message
	budget time.Duration // a run stops starting messages after this long
}

// runResult reports a finished run: the handled messages, and those the
// worker did not start (preempted, over budget, or stopping), in order.
type runResult struct {
	lane      Lane
	done      []result
	unstarted []*tracked
	outage    error // Config.Outage's verdict on the first unstarted one's error
}

type readResult struct {
	kind    ReadKind
	streams []lanewaybroker.StreamEntries
	decoded [][]decoded // parallel to streams[i].Entries
	err     error
}

// decoded is the outcome of Config.Decode for one entry.
type decoded struct {
	env envelope.Envelope
	err error
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
	ackDone chan error // the ack in flight has completed
	work    chan run   // to the handler workers
	// preempt tells a worker in a backfill run that primary entries are
	// queued; halt that the consumer is stopping. Both end runs early.
	preempt, halt atomic.Bool
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
	reading    ReadKind
	readCancel context.CancelFunc
	lastProbe  time.Time
	readSent   time.Time // when the read in flight was sent
	// lastBackfillDone is when the last backfill run ended.
	lastBackfillDone time.Time
	lastReclaim      time.Time
	lastTouch        time.Time
	claimCursor      [2]string
	tk               takeoverState
	bo               backoff
	retryAt          time.Time
	down             bool
	stopping         bool
	// database outage (Config.Outage): handlers pause until dbRetryAt
	dbBo      backoff
	dbRetryAt time.Time
	dbDown    bool

	reads, entries [numReadKinds]atomic.Int64
	handled        [2]atomic.Int64
	failed         [2]atomic.Int64
	nRetries       atomic.Int64
	nDLQ           atomic.Int64
	nDecode        atomic.Int64
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
		bfCap:    backfillCap(cfg.Concurrency, cfg.BackfillConcurrency),
		stopReq:  make(chan struct{}),
		hardStop: make(chan struct{}),
		done:     make(chan struct{}),
		results:  make(chan runResult, cfg.Concurrency),
		work:     make(chan run, cfg.Concurrency),
		ackDone:  make(chan error, 1),
		readDone: make(chan readResult, 1),
		owned:    map[string]*tracked{},
		busy:     map[string]int{},
		acks:     map[string][]string{},
		bo:       backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second},
		dbBo:     backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second},
	}
	c.sl = slots{Concurrency: cfg.Concurrency, BackfillCap: c.bfCap}
	c.credit = shareCredit{Share: cfg.MinBackfillShare}
	c.claimCursor = [2]string{"0-0", "0-0"}
	return c, nil
}

// DefaultName is "<group>-<hostname>-<pid>-<6 hex>".
func DefaultName(group string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s-%d-%s", group, host, os.Getpid(), hex.EncodeToString(b))
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
	c.hwg.Add(c.cfg.Concurrency)
	for range c.cfg.Concurrency {
		go c.worker()
	}
	go c.run()
	return nil
}

// worker runs handlers until the dispatcher closes work. Long-lived workers
// (rather than a goroutine per message) keep their grown stacks: a fresh
// goroutine grew its stack again for every message a real handler ran.
func (c *Consumer) worker() {
	defer c.hwg.Done()
	for r := range c.work {
		out := runResult{lane: r.lane, done: make([]result, 0, len(r.ts))}
		began := time.Now()
		for i, t := range r.ts {
			if i > 0 && (c.halt.Load() || time.Since(began) >= r.budget || (r.lane == Backfill && c.preempt.Load())) {
				out.unstarted = r.ts[i:]
				break
			}
			begin := time.Now()
			err := c.safeHandle(&r.msgs[i])
			cancelled := err != nil && c.handlerCtx.Err() != nil
			if err != nil && !cancelled && c.cfg.Outage != nil && c.cfg.Outage(err) {
				// The database is down: not an attempt. This message and the
				// rest of the run go back, in order, with their delivery counts.
				out.outage, out.unstarted = err, r.ts[i:]
				break
			}
			out.done = append(out.done, result{t: t, err: err, d: time.Since(begin), cancelled: cancelled})
		}
		c.results <- out
	}
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
		Reads: map[ReadKind]int64{}, Entries: map[ReadKind]int64{},
		Handled: map[Lane]int64{}, Failed: map[Lane]int64{},
		Retries: c.nRetries.Load(), DeadLettered: c.nDLQ.Load(), DecodeErrors: c.nDecode.Load(),
	}
	for k := ReadBlockingBoth; k < numReadKinds; k++ {
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

func (c *Consumer) countRead(k ReadKind, n int) {
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
	for {
		select {
		case <-c.stopReq:
			c.shutdown()
			return
		default:
		}
		now := time.Now()
		c.maintain(now)
		c.dispatch()
		c.maybeFlushAcks(false)
		c.maybeRead()

		timer.Reset(c.nextWake(time.Now()))
		select {
		case r := <-c.results:
			c.onRunResult(r)
			c.drainResults()
		case rr := <-c.readDone:
			c.onRead(rr)
		case err := <-c.ackDone:
			c.onAcked(err)
		case <-timer.C:
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
	if c.down && c.reading == 0 && c.retryAt.After(now) {
		at(c.retryAt)
	}
	if c.dbDown && c.dbRetryAt.After(now) {
		at(c.dbRetryAt)
	}
	return max(wake.Sub(now), 0)
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

// ---- reading ----

func (c *Consumer) maybeRead() {
	if c.stopping || time.Now().Before(c.retryAt) {
		return
	}
	plan := planRead(c.sl, len(c.queue[Primary]), len(c.queue[Backfill]), c.cfg.Count, c.lanes)
	if c.reading != 0 {
		// A primary-only read while backfill could now be read too: cut it
		// short (it returns at once, with whatever it read) and re-plan.
		if c.reading == ReadBlockingPrimary && plan.Kind == ReadBlockingBoth && c.readCancel != nil {
			c.readCancel()
			c.readCancel = nil
		}
		return
	}
	if plan.Kind == 0 {
		return
	}
	c.maybeFlushAcks(true) // never hold acks across a blocking read (sent on the side, not awaited)
	streams := []string{c.cfg.Primary}
	if plan.Kind == ReadBlockingBoth {
		streams = append(streams, c.cfg.Backfill)
	}
	ctx, cancel := context.WithCancel(c.readCtx)
	c.reading, c.readCancel, c.readSent = plan.Kind, cancel, time.Now()
	p := lanewaybroker.ReadParams{Group: c.cfg.Group, Consumer: c.cfg.Consumer, Streams: streams, Count: plan.Count, Block: c.cfg.Block}
	kind := plan.Kind
	c.rwg.Add(1)
	go func() {
		defer c.rwg.Done()
		defer cancel()
		res, err := c.b.ReadGroup(ctx, p)
		if err != nil && ctx.Err() != nil {
			err = nil // cancelled on purpose
		}
		c.readDone <- readResult{kind: kind, streams: res, decoded: c.decodeAll(res), err: err}
	}()
}

func (c *Consumer) onRead(rr readResult) {
	c.reading, c.readCancel = 0, nil
	if rr.err != nil {
		c.brokerFailed("read", rr.err)
		return
	}
	c.brokerOK()
	n := 0
	for _, s := range rr.streams {
		n += len(s.Entries)
	}
	c.countRead(rr.kind, n)
	if c.lanes && rr.kind == ReadBlockingBoth {
		// This read looked at primary too. It stands for a probe only if no
		// backfill handler ran since it was sent: a read-ahead answered in
		// the middle of a backfill handler says nothing about a primary
		// entry that arrived after it, and the next backfill message must
		// not start on its word.
		if c.sl.BackfillInflight == 0 && !c.readSent.Before(c.lastBackfillDone) {
			c.lastProbe = time.Now()
		}
	}
	c.addDecoded(rr.streams, nil, rr.decoded)
}

// decodeAll decodes read entries, off the dispatcher.
func (c *Consumer) decodeAll(streams []lanewaybroker.StreamEntries) [][]decoded {
	if len(streams) == 0 {
		return nil
	}
	out := make([][]decoded, len(streams))
	for i, s := range streams {
		out[i] = make([]decoded, len(s.Entries))
		for j, e := range s.Entries {
			out[i][j].env, out[i][j].err = c.cfg.Decode(e)
		}
	}
	return out
}

// addStreams queues read entries, primary first. deliveries gives counts
// of claimed entries (nil: fresh reads, count 1).
func (c *Consumer) addStreams(streams []lanewaybroker.StreamEntries, deliveries map[string]int64) {
	c.addDecoded(streams, deliveries, nil)
}

// addDecoded is addStreams with the entries already decoded (dec parallel
// to streams), or decoded here when dec is nil.
func (c *Consumer) addDecoded(streams []lanewaybroker.StreamEntries, deliveries map[string]int64, dec [][]decoded) {
	for _, lane := range []Lane{Primary, Backfill} {
		for i, s := range streams {
			if c.laneOf(s.Stream) != lane {
				continue
			}
			for j, e := range s.Entries {
				d := int64(1)
				if deliveries != nil {
					if v, ok := deliveries[e.ID]; ok {
						d = v
					}
				}
				var pre *decoded
				if dec != nil {
					pre = &dec[i][j]
				}
				c.addEntry(lane, s.Stream, e, d, pre)
			}
		}
	}
}

func (c *Consumer) addEntry(lane Lane, stream string, e lanewaybroker.Entry, deliveries int64, pre *decoded) {
	key := stream + "\x00" + e.ID
	if deliveries > 1 && c.ackPending(stream, e.ID) {
		// Handled here, its ack not sent yet, and reclaimed by our own
		// XAUTOCLAIM meanwhile: the ack on its way settles it.
		return
	}
	if t, ok := c.owned[key]; ok {
		// Already ours (a reclaim raced our own touch): keep its state and
		// put the delivery count back where it was.
		c.touch([]*tracked{t})
		return
	}
	t := &tracked{key: key, lane: lane, entry: e, deliveries: deliveries, lastTouch: time.Now(),
		msg: Message{Stream: stream, EntryID: e.ID, Lane: lane, Attempt: deliveries}}
	c.owned[key] = t
	var env envelope.Envelope
	var err error
	if pre != nil {
		env, err = pre.env, pre.err
	} else {
		env, err = c.cfg.Decode(e)
	}
	if err != nil {
		c.nDecode.Add(1)
		c.cfg.Logger.Error("undecodable entry; moving to DLQ", "group", c.cfg.Group, "stream", stream, "id", e.ID, "error", err)
		t.failedAt, t.lastErr = time.Now(), err.Error()
		c.deadLetter(t)
		return
	}
	t.msg.Envelope = env
	if t.msg.Attempt > int64(c.cfg.MaxRetries) {
		// Its attempts ran out on a consumer that died before moving it:
		// this delivery is not an attempt.
		t.failedAt, t.lastErr = time.Now(), fmt.Sprintf("exhausted %d attempts (delivery count %d)", c.cfg.MaxRetries, t.deliveries)
		t.msg.Attempt = t.deliveries - 1
		c.deadLetter(t)
		return
	}
	t.st = stQueued
	c.queue[lane] = append(c.queue[lane], t)
	if lane == Primary {
		c.preempt.Store(true)
	}
}

// probe is the non-blocking check of primary before a backfill message.
//
// At Concurrency 1 the probe also tops up the backfill queue once it is down
// to half a batch (XREADGROUP over both lanes, without BLOCK): backfill work
// does no read-ahead there (planRead), so without it every batch would cost
// the probe's round trip and then a read's.
func (c *Consumer) probe() int {
	c.lastProbe = time.Now()
	count := c.cfg.Count
	streams := []string{c.cfg.Primary}
	if c.cfg.Concurrency > 1 {
		count = max(1, min(count, c.sl.free()-len(c.queue[Primary])))
	} else if c.lanes && len(c.queue[Backfill]) <= c.cfg.Count/2 {
		streams = append(streams, c.cfg.Backfill)
	}
	ctx, cancel := c.op()
	defer cancel()
	res, err := c.b.ReadGroup(ctx, lanewaybroker.ReadParams{Group: c.cfg.Group, Consumer: c.cfg.Consumer, Streams: streams, Count: count})
	if err != nil {
		c.brokerFailed("probe", err)
		return 0
	}
	n := 0
	for _, s := range res {
		n += len(s.Entries)
	}
	c.brokerOK()
	c.countRead(ReadProbe, n)
	c.addStreams(res, nil)
	return n
}

// ---- dispatching ----

func msgKey(t *tracked) string { return t.msg.Envelope.Metadata.Headers.Stream }

// ready is the index of the first queued entry of lane whose aggregate has
// nothing in flight, or -1. Entries of a busy aggregate wait in order.
func (c *Consumer) ready(l Lane) int {
	for i, t := range c.queue[l] {
		if k := msgKey(t); k == "" || c.busy[k] == 0 {
			return i
		}
	}
	return -1
}

func (c *Consumer) dispatch() {
	for !c.stopping {
		if c.dbDown && (time.Now().Before(c.dbRetryAt) || c.sl.PrimaryInflight+c.sl.BackfillInflight > 0) {
			return // database outage: one handler at a time probes it, after the backoff
		}
		pi, bi := c.ready(Primary), -1
		if c.lanes {
			bi = c.ready(Backfill)
		}
		pr := pi >= 0 && c.sl.canStart(Primary)
		br := bi >= 0 && c.sl.canStart(Backfill)
		if br && !pr && c.reading == 0 && time.Since(c.lastProbe) >= c.cfg.ProbeInterval && !time.Now().Before(c.retryAt) {
			if c.probe() > 0 {
				continue
			}
		}
		lane, ok := c.credit.pick(pr, br)
		if !ok {
			return
		}
		idx := pi
		if lane == Backfill {
			idx = bi
		}
		c.start(lane, c.takeRun(lane, idx))
	}
}

// maxRun bounds a run above concurrency 1, so queued work spreads over the
// free slots.
const maxRun = 16

// takeRun removes from lane's queue the entry at idx and the queued entries
// that may run after it on the same slot, in queue order, and returns them.
// Handing a worker a run of messages instead of one saves a dispatcher
// round trip (two goroutine hand-offs) per message. An entry joins the run
// when its aggregate has nothing in flight elsewhere (or is already in this
// run, behind its predecessors), so per-aggregate order holds; at
// concurrency 1 nothing else is in flight and the run is the lane's queue in
// FIFO order. With MinBackfillShare the share is decided per message, so
// runs are single messages.
func (c *Consumer) takeRun(lane Lane, idx int) []*tracked {
	q := c.queue[lane]
	first := q[idx]
	limit := len(q)
	if c.cfg.MinBackfillShare > 0 {
		limit = 1
	} else if c.cfg.Concurrency > 1 {
		limit = min(max(len(q)/max(c.sl.free(), 1), 1), maxRun)
	}
	if limit == 1 {
		c.queue[lane] = slices.Delete(q, idx, idx+1)
		return []*tracked{first}
	}
	run := []*tracked{first}
	mine := map[string]bool{msgKey(first): true}
	rest := q[:idx:idx] // the entries before idx stay (their aggregates are busy)
	for _, t := range q[idx+1:] {
		if len(run) < limit {
			k := msgKey(t)
			if k == "" || mine[k] || c.busy[k] == 0 {
				run = append(run, t)
				mine[k] = true
				continue
			}
		}
		rest = append(rest, t)
	}
	c.queue[lane] = rest
	return run
}

// start hands ts (one message, or a run at Concurrency 1) to a worker. A
// backfill run stops at the next message once primary entries are queued or
// after ProbeInterval (preemption: primary waits at most one backfill
// handler, or a few ms); a primary run after ackFlushEvery, so acks and
// results flow while primary is saturated.
func (c *Consumer) start(lane Lane, ts []*tracked) {
	r := run{lane: lane, ts: ts, msgs: make([]Message, len(ts)), budget: ackFlushEvery}
	for i, t := range ts {
		t.st = stRunning
		if k := msgKey(t); k != "" {
			c.busy[k]++
		}
		r.msgs[i] = t.msg // the handler gets a copy
	}
	if lane == Backfill {
		c.sl.BackfillInflight++
		c.preempt.Store(len(c.queue[Primary]) > 0)
		r.budget = c.cfg.ProbeInterval
	} else {
		c.sl.PrimaryInflight++
	}
	c.work <- r // never blocks: at most Concurrency runs are in flight
}

// onRunResult frees the run's slot, settles what it handled and queues what
// it did not start again, at the front of its lane.
func (c *Consumer) onRunResult(rr runResult) {
	if rr.lane == Backfill {
		c.lastBackfillDone = time.Now()
		c.sl.BackfillInflight--
	} else {
		c.sl.PrimaryInflight--
	}
	for _, r := range rr.done {
		c.onResult(r)
	}
	if rr.outage != nil {
		c.dbFailed(rr.outage)
	}
	for _, t := range rr.unstarted {
		c.unbusy(t)
		t.st = stQueued
	}
	if len(rr.unstarted) > 0 {
		c.queue[rr.lane] = append(slices.Clone(rr.unstarted), c.queue[rr.lane]...)
	}
}

func (c *Consumer) unbusy(t *tracked) {
	if k := msgKey(t); k != "" {
		if c.busy[k]--; c.busy[k] <= 0 {
			delete(c.busy, k)
		}
	}
}

func (c *Consumer) onResult(r result) {
	t := r.t
	c.unbusy(t)
	if r.err == nil {
		c.dbOK()
		c.handled[t.lane].Add(1)
		if c.cfg.Observer != nil {
			c.cfg.Observer.Handled(t.lane, OutcomeOK, r.d, &t.msg)
		}
		c.ack(t)
		return
	}
	if r.cancelled {
		t.st = stCancelled // handed back at shutdown, not an attempt
		return
	}
	c.dbOK() // Outage said no: the database answers
	c.failed[t.lane].Add(1)
	if c.cfg.Observer != nil {
		c.cfg.Observer.Handled(t.lane, OutcomeError, r.d, &t.msg)
	}
	t.failedAt, t.lastErr = time.Now(), r.err.Error()
	if t.msg.Attempt < int64(c.cfg.MaxRetries) && !isPermanent(r.err) {
		c.cfg.Logger.Warn("handler failed; will retry", "group", c.cfg.Group, "stream", t.msg.Stream, "id", t.msg.EntryID, "attempt", t.msg.Attempt, "error", r.err)
		t.st = stWaiting
		c.retries.add(retryItem{due: time.Now().Add(c.cfg.RetryDelay), key: t.key})
		c.nRetries.Add(1)
		if c.cfg.Observer != nil {
			c.cfg.Observer.Retried(t.lane)
		}
		return
	}
	c.cfg.Logger.Warn("handler failed; attempts exhausted", "group", c.cfg.Group, "stream", t.msg.Stream, "id", t.msg.EntryID, "attempts", t.msg.Attempt, "error", r.err)
	c.deadLetter(t)
}

// ---- acks and DLQ ----

func (c *Consumer) ack(t *tracked) {
	delete(c.owned, t.key)
	if c.ackN == 0 {
		c.ackSince = time.Now()
	}
	c.acks[t.msg.Stream] = append(c.acks[t.msg.Stream], t.msg.EntryID)
	c.ackN++
}

// maybeFlushAcks sends the collected acks in one pipelined call when forced,
// when a batch is full, when they have waited ackFlushEvery, or when the
// consumer has nothing else to do. The call runs on its own goroutine, one
// at a time, so the dispatcher keeps starting handlers meanwhile; acks
// collected while one is in flight go out when it completes.
func (c *Consumer) maybeFlushAcks(force bool) {
	if c.ackN == 0 || c.ackSending != nil {
		return
	}
	idle := c.sl.PrimaryInflight+c.sl.BackfillInflight == 0
	if !force && !idle && c.ackN < c.cfg.Count && time.Since(c.ackSince) < ackFlushEvery {
		return
	}
	if !force && time.Now().Before(c.retryAt) {
		return
	}
	params := c.takeAcks()
	c.ackSending = params
	go func() {
		ctx, cancel := c.op()
		defer cancel()
		c.ackDone <- c.b.Ack(ctx, params)
	}()
}

// takeAcks empties the collected acks into AckParams.
func (c *Consumer) takeAcks() []lanewaybroker.AckParams {
	params := make([]lanewaybroker.AckParams, 0, len(c.acks))
	for s, ids := range c.acks {
		params = append(params, lanewaybroker.AckParams{Stream: s, Group: c.cfg.Group, IDs: ids})
	}
	c.acks = map[string][]string{}
	c.ackN = 0
	return params
}

// onAcked settles the ack in flight; failed acks are collected again.
func (c *Consumer) onAcked(err error) {
	sent := c.ackSending
	c.ackSending = nil
	if err == nil {
		c.brokerOK()
		return
	}
	for _, a := range sent {
		if c.ackN == 0 {
			c.ackSince = time.Now()
		}
		c.acks[a.Stream] = append(c.acks[a.Stream], a.IDs...)
		c.ackN += len(a.IDs)
	}
	c.brokerFailed("ack", err)
}

// flushAcksNow waits for the ack in flight and sends the rest, for
// shutdown and before a reclaim.
func (c *Consumer) flushAcksNow() {
	if c.ackSending != nil {
		c.onAcked(<-c.ackDone)
	}
	if c.ackN == 0 {
		return
	}
	params := c.takeAcks()
	c.ackSending = params
	ctx, cancel := c.op()
	err := c.b.Ack(ctx, params)
	cancel()
	c.onAcked(err)
}

// ackPending reports whether id of stream is handled and waiting for its ack.
func (c *Consumer) ackPending(stream, id string) bool {
	if slices.Contains(c.acks[stream], id) {
		return true
	}
	for _, a := range c.ackSending {
		if a.Stream == stream && slices.Contains(a.IDs, id) {
			return true
		}
	}
	return false
}

// deadLetter publishes t to its lane's DLQ and acks it; when the publish
// fails t stays pending and is tried again after RetryDelay.
func (c *Consumer) deadLetter(t *tracked) {
	dlq := t.msg.Stream + ":dlq"
	if !c.cfg.EnableDLQ {
		c.cfg.Logger.Warn("dropping message (DLQ disabled)", "group", c.cfg.Group, "stream", t.msg.Stream, "id", t.msg.EntryID, "reason", t.lastErr)
		c.nDLQ.Add(1)
		c.ack(t)
		return
	}
	meta := envelope.DLQMetadata{
		OriginalStream: t.msg.Stream, OriginalID: t.msg.EntryID,
		ConsumerGroup: c.cfg.Group, Consumer: c.cfg.Consumer,
		FailedAt:   t.failedAt.UTC().Format(time.RFC3339Nano),
		RetryCount: t.msg.Attempt, FailureReason: t.lastErr,
	}
	var data []byte
	var err error
	if _, hasData := t.entry.Fields["data"]; !hasData && t.entry.Fields != nil {
		raw, _ := json.Marshal(t.entry.Fields)
		data, err = envelope.NewDLQRaw(string(raw), meta)
	} else {
		data, err = envelope.NewDLQFromEntry([]byte(t.entry.Data), meta)
	}
	if err == nil {
		ctx, cancel := c.op()
		_, err = c.b.Publish(ctx, []lanewaybroker.Publication{{Stream: dlq, Data: string(data)}})
		cancel()
	}
	if err != nil {
		c.cfg.Logger.Error("DLQ publish failed; message stays pending", "group", c.cfg.Group, "stream", t.msg.Stream, "id", t.msg.EntryID, "dlq", dlq, "error", err)
		t.st = stDLQWait
		c.retries.add(retryItem{due: time.Now().Add(c.cfg.RetryDelay), key: t.key})
		return
	}
	c.cfg.Logger.Info("moved message to DLQ", "group", c.cfg.Group, "id", t.msg.EntryID, "dlq", dlq)
	c.nDLQ.Add(1)
	if c.cfg.Observer != nil {
		c.cfg.Observer.DeadLettered(t.lane, dlq)
	}
	c.ack(t)
}

// ---- periodic work: retries, touches, reclaim ----

func (c *Consumer) maintain(now time.Time) {
	if due := c.retries.popDue(now); len(due) > 0 {
		c.runRetries(due)
	}
	if len(c.owned) > 0 && now.Sub(c.lastTouch) >= c.touchEvery() {
		c.lastTouch = now
		var stale []*tracked
		for _, t := range c.owned {
			if now.Sub(t.lastTouch) >= c.cfg.ClaimIdle/2 {
				stale = append(stale, t)
			}
		}
		if len(stale) > 0 {
			c.touch(stale)
		}
	}
	c.maybeTakeover(now)
	if !c.stopping && now.Sub(c.lastReclaim) >= c.reclaimEvery() {
		c.lastReclaim = now // also when skipped, so a backoff does not spin the loop
		if !now.Before(c.retryAt) {
			// Handled entries waiting for their batched ack look idle to
			// XAUTOCLAIM: send the acks first.
			c.flushAcksNow()
			c.reclaim()
		}
	}
}

// runRetries claims due entries back to this consumer (which counts the new
// delivery) and queues them ahead of their lane.
func (c *Consumer) runRetries(due []retryItem) {
	byStream := map[string][]*tracked{}
	for _, it := range due {
		t, ok := c.owned[it.key]
		if !ok {
			continue
		}
		switch t.st {
		case stDLQWait:
			c.deadLetter(t)
		case stWaiting:
			byStream[t.msg.Stream] = append(byStream[t.msg.Stream], t)
		}
	}
	for stream, ts := range byStream {
		ids := make([]string, len(ts))
		for i, t := range ts {
			ids[i] = t.msg.EntryID
		}
		ctx, cancel := c.op()
		got, err := c.b.Claim(ctx, lanewaybroker.ClaimParams{Stream: stream, Group: c.cfg.Group, Consumer: c.cfg.Consumer, IDs: ids, RetryCount: -1, Idle: -1})
		cancel()
		if err != nil {
			c.brokerFailed("claim retry", err)
			for _, t := range ts {
				c.retries.add(retryItem{due: time.Now().Add(c.cfg.RetryDelay), key: t.key})
			}
			continue
		}
		present := map[string]bool{}
		for _, e := range got {
			present[e.ID] = true
		}
		var front []*tracked
		for _, t := range ts {
			if !present[t.msg.EntryID] {
				c.cfg.Logger.Warn("entry vanished before its retry", "stream", stream, "id", t.msg.EntryID)
				delete(c.owned, t.key)
				continue
			}
			t.deliveries++
			t.msg.Attempt = t.deliveries
			t.lastTouch = time.Now()
			t.st = stQueued
			front = append(front, t)
		}
		if len(front) > 0 {
			l := ts[0].lane
			c.queue[l] = append(front, c.queue[l]...)
		}
	}
}

// touch resets the idle time of entries this consumer holds (without
// counting a delivery) so another consumer's reclaim does not take them.
func (c *Consumer) touch(ts []*tracked) {
	type grp struct {
		stream string
		count  int64
	}
	groups := map[grp][]*tracked{}
	for _, t := range ts {
		g := grp{t.msg.Stream, t.deliveries}
		groups[g] = append(groups[g], t)
	}
	for g, list := range groups {
		ids := make([]string, len(list))
		for i, t := range list {
			ids[i] = t.msg.EntryID
		}
		ctx, cancel := c.op()
		_, err := c.b.Claim(ctx, lanewaybroker.ClaimParams{Stream: g.stream, Group: c.cfg.Group, Consumer: c.cfg.Consumer, IDs: ids, RetryCount: g.count, Idle: -1})
		cancel()
		if err != nil {
			c.brokerFailed("touch", err)
			return
		}
		now := time.Now()
		for _, t := range list {
			t.lastTouch = now
		}
	}
}

// reclaim takes over entries idle at least ClaimIdle on either lane
// (primary first) and queues them with their durable attempt counts.
func (c *Consumer) reclaim() {
	// An entry handled here whose ack is still batched or in flight is
	// pending and may be idle past ClaimIdle: XAUTOCLAIM would hand it back
	// and it would run twice. Flush first; reclaim once nothing is unacked.
	c.maybeFlushAcks(true)
	if c.ackN > 0 || c.ackSending != nil {
		return
	}
	lanes := []Lane{Primary}
	if c.lanes {
		lanes = append(lanes, Backfill)
	}
	for _, l := range lanes {
		// Page through the whole pending list in this tick (up to what this
		// consumer may hold): a page per tick left a large backlog of
		// orphaned entries waiting minutes.
		for c.reclaimPage(l) && len(c.owned) < c.holdLimit() {
		}
		if c.down {
			return
		}
	}
}

// reclaimPage claims one page of idle entries of lane and reports whether
// the scan has more to look at.
func (c *Consumer) reclaimPage(l Lane) bool {
	{
		stream := c.stream(l)
		ctx, cancel := c.op()
		res, err := c.b.AutoClaim(ctx, lanewaybroker.AutoClaimParams{Stream: stream, Group: c.cfg.Group, Consumer: c.cfg.Consumer, MinIdle: c.cfg.ClaimIdle, Start: c.claimCursor[l], Count: c.cfg.Count})
		cancel()
		if err != nil {
			c.brokerFailed("autoclaim", err)
			return false
		}
		c.claimCursor[l] = res.Next
		if res.Next == "" {
			c.claimCursor[l] = "0-0"
		}
		c.countRead(ReadClaim, len(res.Entries))
		if len(res.Entries) == 0 {
			return false
		}
		c.cfg.Logger.Info("reclaimed idle entries", "group", c.cfg.Group, "stream", stream, "n", len(res.Entries))
		ctx, cancel = c.op()
		pend, err := c.b.Pending(ctx, lanewaybroker.PendingParams{Stream: stream, Group: c.cfg.Group,
			Start: res.Entries[0].ID, End: res.Entries[len(res.Entries)-1].ID,
			Count: len(res.Entries) + len(c.owned) + 16, Consumer: c.cfg.Consumer})
		cancel()
		deliveries := map[string]int64{}
		if err != nil {
			c.brokerFailed("pending", err)
		} else {
			for _, p := range pend {
				deliveries[p.ID] = p.Deliveries
			}
		}
		c.addStreams([]lanewaybroker.StreamEntries{{Stream: stream, Entries: res.Entries}}, deliveries)
		return c.claimCursor[l] != "0-0"
	}
}

// ---- shutdown ----

func (c *Consumer) shutdown() {
	c.stopping = true
	c.halt.Store(true)
	c.readCancelAll()
	began := time.Now()
	timeout := time.NewTimer(c.cfg.ShutdownTimeout)
	defer timeout.Stop()
	cancelHandlers := func() {
		c.handlerCancel()
	}
	for c.sl.PrimaryInflight+c.sl.BackfillInflight > 0 || c.reading != 0 {
		select {
		case r := <-c.results:
			c.onRunResult(r)
		case rr := <-c.readDone:
			c.reading = 0
			if rr.err == nil {
				c.addDecoded(rr.streams, nil, rr.decoded) // pending on us now: handed back below
			}
		case <-timeout.C:
			cancelHandlers()
		case <-c.hardStop:
			cancelHandlers()
		}
	}
	c.handlerCancel()
	c.flushAcksAtStop(began.Add(c.cfg.ShutdownTimeout))
	c.release()
	c.deleteSelfIfEmpty()
	close(c.work)
	c.hwg.Wait()
	c.rwg.Wait()
}

// release hands every entry still held back to the group with its idle time
// set to ClaimIdle, so the next consumer claims it at once. Entries whose
// current delivery was never (fully) attempted get their count lowered by
// one, so the claim that follows does not count an attempt.
func (c *Consumer) release() {
	type grp struct {
		stream string
		count  int64
	}
	groups := map[grp][]string{}
	for _, t := range c.owned {
		rc := t.deliveries
		if t.st == stQueued || t.st == stCancelled {
			rc = max(rc-1, 0)
		}
		g := grp{t.msg.Stream, rc}
		groups[g] = append(groups[g], t.msg.EntryID)
	}
	for g, ids := range groups {
		ctx, cancel := c.op()
		_, err := c.b.Claim(ctx, lanewaybroker.ClaimParams{Stream: g.stream, Group: c.cfg.Group, Consumer: c.cfg.Consumer, IDs: ids, RetryCount: g.count, Idle: c.cfg.ClaimIdle})
		cancel()
		if err != nil {
			c.cfg.Logger.Warn("could not hand entries back at shutdown; they stay pending", "stream", g.stream, "n", len(ids), "error", err)
		}
	}
}
