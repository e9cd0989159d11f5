package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/tools/latency"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// The headline scenarios (issue 14) compare Laneway with what a user would
// write instead: a raw go-redis consumer reading the same entries, in the
// same run. This file holds what both sides share (the event, the probe,
// the entries, the paced producer) and the raw consumer itself.

const (
	// rawFIFOStream is the raw consumer's stream: a copy of the entries
	// Laneway reads, or for the flood the one FIFO stream holding backfill
	// and production alike.
	rawFIFOStream = Category + ":rawfifo"
	rawGroup      = "RawFIFO"
	// rawBatch and rawBlock are the raw consumer's XREADGROUP COUNT and
	// BLOCK.
	rawBatch = 100
	rawBlock = time.Second
	// payloadBytes is the user payload every entry carries (a JSON byte
	// field, so base64 in the entry).
	payloadBytes = 256
	// seqKey is the payload field holding a production entry's sample
	// number; the raw consumer finds it with a byte search, as a hand-written
	// consumer reading one field would.
	seqKey = `"bench_seq":`
)

// Stamped is the headline event: Seq is the production sample number
// (1-based; 0 for backfill entries), whose send time the probe holds, so
// the stamp is taken just before the XADD (or Process) and no encoding sits
// between the stamp and the write.
type Stamped struct {
	ID   string `json:"id"`
	Seq  int    `json:"bench_seq"`
	Data []byte `json:"data"`
}

func (Stamped) Kind() string { return "Stamped" }

// Stamp creates an Item raising Stamped (the end-to-end scenario).
type Stamp struct {
	ID  string `json:"id"`
	Seq int    `json:"seq"`
}

func (Stamp) Kind() string       { return "Stamp" }
func (c Stamp) TargetID() string { return c.ID }

var payload = func() []byte {
	b := make([]byte, payloadBytes)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// headProbe is what both consumers' handlers report to. sentAt[i] is the
// UnixNano taken just before production sample i+1 was written.
type headProbe struct {
	cost time.Duration
	// backfillIO, when set, runs first in each backfill handler, and
	// backfillCost replaces cost there (busycores: a handler that waits).
	backfillIO   func() error
	backfillCost time.Duration
	firstIOErr   atomic.Pointer[error]
	sentAt       []atomic.Int64
	rec          latency.Recorder
	// writes is each production write's own time, from the stamp to the
	// producer's reply: the broker's round trip (XADD), or the Process call
	// (end to end, the commit). A consumer's blocked read is answered about
	// when the XADD's reply goes out, so that round trip is the part of the
	// latency the machine and the broker take before any consumer can see
	// the entry.
	writes            latency.Recorder
	nPrimary, nBack   atomic.Int64
	lastBack, lastAny atomic.Int64
}

func newHeadProbe(cost time.Duration, samples int) *headProbe {
	return &headProbe{cost: cost, sentAt: make([]atomic.Int64, samples)}
}

func (p *headProbe) handled() int64 { return p.nPrimary.Load() + p.nBack.Load() }

// stamp records that sample seq is about to be written.
func (p *headProbe) stamp(seq int) { p.sentAt[seq-1].Store(time.Now().UnixNano()) }

// wrote records that sample seq's write has returned.
func (p *headProbe) wrote(seq int) {
	p.writes.Add(time.Since(time.Unix(0, p.sentAt[seq-1].Load())))
}

// writeSummary is the writes' summary, nil when none was recorded.
func (p *headProbe) writeSummary() *latency.Summary {
	if p.writes.Len() == 0 {
		return nil
	}
	s := p.writes.Summary()
	return &s
}

// handle is the handler body of both consumers: the latency of a
// production sample at the handler's start, then the CPU cost (a busy
// loop: exact below the timer granularity).
func (p *headProbe) handle(seq int) {
	start := time.Now()
	if seq > 0 && seq <= len(p.sentAt) {
		p.rec.Add(start.Sub(time.Unix(0, p.sentAt[seq-1].Load())))
	}
	cost := p.cost
	if seq == 0 && p.backfillIO != nil {
		if err := p.backfillIO(); err != nil {
			p.firstIOErr.CompareAndSwap(nil, &err)
		}
		cost = p.backfillCost
	}
	if cost > 0 {
		for deadline := time.Now().Add(cost); time.Now().Before(deadline); {
		}
	}
	now := time.Now().UnixNano()
	if seq > 0 {
		p.nPrimary.Add(1)
	} else {
		p.nBack.Add(1)
		p.lastBack.Store(now)
	}
	p.lastAny.Store(now)
}

// ioErr is the first error of a backfill handler's I/O, if any.
func (p *headProbe) ioErr() error {
	if err := p.firstIOErr.Load(); err != nil {
		return fmt.Errorf("a backfill handler's round trip: %w", *err)
	}
	return nil
}

// drainSeconds is the time from start to the last backfill handler's end.
func (p *headProbe) drainSeconds(start time.Time) float64 {
	if p.lastBack.Load() == 0 {
		return 0
	}
	return latency.Round3(time.Unix(0, p.lastBack.Load()).Sub(start).Seconds())
}

// headConfig is the engine's configuration in the headline scenarios: the
// defaults `laneway server` runs with, lanes on.
func headConfig() *lanewayconfig.Config {
	cfg := lanewayconfig.Default()
	cfg.Name = DomainName
	cfg.Server.PriorityLanes.Enabled = true
	cfg.Server.HTTP.Listen = ""
	return cfg
}

// headConfig is headConfig with the run's backfill_nice (--backfill-nice).
func (r *Runner) headConfig() *lanewayconfig.Config {
	cfg := headConfig()
	cfg.Server.PriorityLanes.BackfillNice = r.p.BackfillNice
	return cfg
}

// newHeadDomain is the headline domain: Stamped on the bench category, one
// handler feeding p, and the Stamp command for the end-to-end scenario.
func newHeadDomain(p *headProbe) (*laneway.Domain, error) {
	b := laneway.NewDomain(DomainName)
	laneway.RegisterAggregate[Item](b, laneway.AggregateOptions{Category: Category})
	laneway.RegisterEvent[Item, Stamped](b)
	laneway.RegisterCommand[Item](b, func(ctx context.Context, tx *laneway.Tx, cmd Stamp) error {
		it := laneway.New[Item](cmd.ID)
		it.Raise(Stamped{ID: cmd.ID, Seq: cmd.Seq, Data: payload})
		return tx.Save(ctx, it)
	})
	h := laneway.NewHandler(HandlerName)
	laneway.On(h, func(_ context.Context, _ *laneway.Tx, ev Stamped, _ laneway.Meta) error {
		p.handle(ev.Seq)
		return nil
	})
	b.AddHandler(h)
	return b.Build()
}

// stampedEntries encodes entries first..first+n-1 with the public encoder
// at priority prio. seq0 > 0 numbers them as production samples seq0,
// seq0+1, ...; 0 makes them backfill. stream overrides the routed stream
// when not empty (the raw consumer's copy).
func stampedEntries(cfg *lanewayconfig.Config, stream string, prio laneway.Priority, first, n, seq0 int, tag string) ([]lanewaybroker.Publication, error) {
	pubs := make([]lanewaybroker.Publication, n)
	now := time.Now().UTC()
	for i := range pubs {
		id := fmt.Sprintf("%s-%d", tag, first+i)
		seq := 0
		if seq0 > 0 {
			seq = seq0 + i
		}
		pub, err := laneway.EncodeEvent(laneway.EventEntry{
			Domain: DomainName, Category: Category, AggregateID: id, Kind: "Stamped", Sequence: "1.1",
			ID: "m-" + id, Priority: prio, Time: now, Payload: Stamped{ID: id, Seq: seq, Data: payload},
		}, cfg)
		if err != nil {
			return nil, err
		}
		if stream != "" {
			pub.Stream = stream
		}
		pubs[i] = pub
	}
	return pubs, nil
}

// loadStamped appends n backfill-numbered (seq 0) entries at prio in
// pipelined batches of 1000, built a batch at a time.
func loadStamped(ctx context.Context, br lanewaybroker.Broker, cfg *lanewayconfig.Config, stream string, prio laneway.Priority, n int, tag string) error {
	for i := 0; i < n; i += 1000 {
		pubs, err := stampedEntries(cfg, stream, prio, i, min(1000, n-i), 0, tag)
		if err != nil {
			return err
		}
		if _, err := br.Publish(ctx, pubs); err != nil {
			return fmt.Errorf("load %d entries: %w", n, err)
		}
	}
	return nil
}

// paced calls send(i) for i in [0,n) at rate per second from one
// goroutine, each call at its due time (a late call is not skipped), and
// returns how many succeeded; the first error stops it.
func paced(ctx context.Context, n int, rate float64, send func(ctx context.Context, i int) error) (int, error) {
	begin := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for i := range n {
		if d := time.Until(begin.Add(time.Duration(float64(i) * float64(time.Second) / rate))); d > 0 {
			t.Reset(d)
			select {
			case <-ctx.Done():
				return i, ctx.Err()
			case <-t.C:
			}
		}
		if err := send(ctx, i); err != nil {
			return i, err
		}
	}
	return n, nil
}

// produce writes the pre-encoded production entries pubs at rate, each
// stamped just before its XADD, its round trip recorded after.
func produce(ctx context.Context, c *redis.Client, p *headProbe, pubs []lanewaybroker.Publication, rate float64) (int, error) {
	return paced(ctx, len(pubs), rate, func(ctx context.Context, i int) error {
		p.stamp(i + 1)
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: pubs[i].Stream, Values: []string{"data", pubs[i].Data}}).Err(); err != nil {
			return err
		}
		p.wrote(i + 1)
		return nil
	})
}

func newRedisClient(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("broker URL: %w", err)
	}
	return redis.NewClient(opt), nil
}

// rawConsumer is the baseline a user would write with go-redis alone: one
// goroutine, XREADGROUP COUNT 100 (BLOCK while the stream is empty), the
// handler inline, one synchronous XACK per batch. No decoding, no
// checksum, no scheduling, no database.
type rawConsumer struct {
	c      *redis.Client
	stream string
	// handle gets each entry's data field.
	handle func(data string)
}

func (rc rawConsumer) ensureGroup(ctx context.Context) error {
	err := rc.c.XGroupCreateMkStream(ctx, rc.stream, rawGroup, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("raw consumer: create group: %w", err)
	}
	return nil
}

// run consumes until done reports true after a batch, or ctx ends.
func (rc rawConsumer) run(ctx context.Context, done func() bool) error {
	ids := make([]string, 0, rawBatch)
	for !done() {
		res, err := rc.c.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: rawGroup, Consumer: "raw-1", Streams: []string{rc.stream, ">"}, Count: rawBatch, Block: rawBlock,
		}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return fmt.Errorf("raw consumer: XREADGROUP: %w", err)
		}
		for _, s := range res {
			ids = ids[:0]
			for _, m := range s.Messages {
				data, _ := m.Values["data"].(string)
				rc.handle(data)
				ids = append(ids, m.ID)
			}
			if len(ids) > 0 {
				if err := rc.c.XAck(ctx, rc.stream, rawGroup, ids...).Err(); err != nil {
					return fmt.Errorf("raw consumer: XACK: %w", err)
				}
			}
		}
	}
	return nil
}

// startRaw runs rc in a goroutine until done; wait returns its error.
func startRaw(ctx context.Context, rc rawConsumer, done func() bool) (wait func() error) {
	errc := make(chan error, 1)
	go func() { errc <- rc.run(ctx, done) }()
	return func() error { return <-errc }
}

// parseSeq finds the sample number in an entry's data: the raw consumer's
// whole "decoding".
func parseSeq(data string) int {
	i := strings.Index(data, seqKey)
	if i < 0 {
		return 0
	}
	rest := data[i+len(seqKey):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, _ := strconv.Atoi(rest[:j])
	return n
}

// openRaw opens a fresh environment and a plain go-redis client of its
// broker for the raw consumer; the caller closes both.
func (r *Runner) openRaw(ctx context.Context) (*env, *redis.Client, error) {
	e, err := r.openEnv(ctx)
	if err != nil {
		return nil, nil, err
	}
	c, err := newRedisClient(e.brokerURL)
	if err != nil {
		return nil, nil, errors.Join(err, e.close())
	}
	return e, c, nil
}
