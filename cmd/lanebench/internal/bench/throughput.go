package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the raw SQLite ceiling opens its own connection

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/outbox"
	"github.com/laneway/laneway/internal/tools/latency"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// throughput measures each stage beside its raw ceiling, all on one
// database and broker so the ceilings and the stages share the machine's
// state: the raw insert, Process, the relay of the rows Process wrote,
// pipelined XADD, XREADGROUP+XACK, the engine's consumer (concurrency 1 and
// --concurrency) and the whole pipeline end to end.
func (r *Runner) throughput(ctx context.Context) (err error) {
	n, callers := r.p.Events, r.p.Callers
	e, err := r.openEnv(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := e.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	pr := &probe{}
	dom, err := newDomain(pr)
	if err != nil {
		return err
	}
	cfg := engineConfig(false, 1, 1)
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: e.db.Store})
	if err != nil {
		return err
	}
	defer app.Close()

	r.progress("throughput: raw single-row INSERT, %d rows, %d callers", n, callers)
	insertRate, err := rawInsert(ctx, e, n, callers)
	if err != nil {
		return fmt.Errorf("raw insert ceiling: %w", err)
	}
	r.progress("throughput: Process, %d commands, %d callers", n, callers)
	d, err := parallel(ctx, n, callers, func(ctx context.Context, _, i int) error {
		return app.Process(ctx, Submit{ID: fmt.Sprintf("t-%d", i)})
	})
	if err != nil {
		return fmt.Errorf("process: %w", err)
	}
	processRate := rate(n, d)
	if err := r.emit(stageResult("process", processRate, insertRate, "raw single-row INSERT, same callers", n, n, func(res *Result) { res.Callers = callers })); err != nil {
		return err
	}

	r.progress("throughput: relay of the %d rows, and pipelined XADD", n)
	relayCfg, err := outbox.ConfigFrom(cfg, DomainName)
	if err != nil {
		return err
	}
	relayRate, err := relayAll(ctx, outbox.New(e.db.Store, e.br, relayCfg), n)
	if err != nil {
		return err
	}
	batch := relayCfg.BatchSize
	if batch <= 0 {
		batch = outbox.BatchSizeDefault
	}
	xaddRate, err := rawXAdd(ctx, e.br, n, batch)
	if err != nil {
		return fmt.Errorf("raw XADD ceiling: %w", err)
	}
	if err := r.emit(stageResult("relay", relayRate, xaddRate, fmt.Sprintf("pipelined XADD, batches of %d", batch), n, n, nil)); err != nil {
		return err
	}

	r.progress("throughput: XREADGROUP COUNT 100 + pipelined XACK, and the engine's consumer")
	readRate, err := rawReadAck(ctx, e.br, n)
	if err != nil {
		return fmt.Errorf("raw XREADGROUP+XACK ceiling: %w", err)
	}
	for _, conc := range []int{1, r.p.Concurrency} {
		consumeRate, handled, err := r.consumeRun(ctx, e, conc, n)
		if err != nil {
			return err
		}
		if err := r.emit(stageResult("consume", consumeRate, readRate, "XREADGROUP COUNT 100 + pipelined XACK", n, handled, func(res *Result) { res.Concurrency = conc })); err != nil {
			return err
		}
	}

	// Diagnostic: the lane consumer alone (decode, schedule, batched acks)
	// with a no-op handler and no engine dispatch, which runs every event
	// in a database transaction. The gap between this and consume is the
	// dispatch; the gap between this and the ceiling is the consumer.
	onlyRate, handled, err := consumerOnly(ctx, e, n, r.log)
	if err != nil {
		return err
	}
	if err := r.emit(stageResult("consumer_only", onlyRate, readRate, "XREADGROUP COUNT 100 + pipelined XACK", n, handled, func(res *Result) { res.Concurrency = 1 })); err != nil {
		return err
	}

	r.progress("throughput: end to end, %d commands from %d callers through a running engine", n, callers)
	e2e, handled, err := r.endToEnd(ctx, e, n, callers)
	if err != nil {
		return err
	}
	ceiling := min(insertRate, xaddRate, readRate)
	return r.emit(stageResult("end_to_end", e2e, ceiling, "the lowest of the three raw ceilings", n, handled, func(res *Result) {
		res.Callers, res.Concurrency = callers, 1
	}))
}

// stageResult is one throughput line: n events offered, handled of them
// done (committed, published or handled, by stage).
func stageResult(stage string, rate, ceiling float64, what string, n, handled int, more func(*Result)) Result {
	res := Result{Scenario: "throughput", Stage: stage, RatePerS: f64(latency.Round3(rate)), CeilingPerS: f64(latency.Round3(ceiling)),
		Ratio: f64(latency.Ratio(rate, ceiling)), Ceiling: what, Count: n, Handled: handled}
	if more != nil {
		more(&res)
	}
	return res
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// consumeRun drains n pre-loaded events with a fresh engine (no-op handler)
// and returns events/s from Start to the last handler's end.
func (r *Runner) consumeRun(ctx context.Context, e *env, conc, n int) (float64, int, error) {
	if err := e.br.DeleteKey(ctx, Category); err != nil {
		return 0, 0, err
	}
	if err := loadBacklog(ctx, e.br, Category, laneway.Normal, n, fmt.Sprintf("c%d", conc)); err != nil {
		return 0, 0, err
	}
	pr := &probe{}
	app, eng, err := r.engine(ctx, e, pr, engineConfig(false, conc, 1))
	if err != nil {
		return 0, 0, err
	}
	defer app.Close()
	start := time.Now()
	if err := eng.Start(ctx); err != nil {
		return 0, 0, err
	}
	werr := waitFor(ctx, 10*time.Minute, "the consumer to drain the stream", func() bool { return pr.handled() >= int64(n) })
	serr := stopEngine(ctx, eng)
	if werr != nil {
		return 0, 0, fmt.Errorf("consume (concurrency %d): %w (%d of %d handled)", conc, werr, pr.handled(), n)
	}
	if serr != nil {
		return 0, 0, serr
	}
	return rate(n, time.Unix(0, pr.lastAny.Load()).Sub(start)), int(pr.handled()), nil
}

// consumerOnly drains n pre-loaded events with internal/consumer alone.
func consumerOnly(ctx context.Context, e *env, n int, log *slog.Logger) (float64, int, error) {
	if err := e.br.DeleteKey(ctx, Category); err != nil {
		return 0, 0, err
	}
	if err := loadBacklog(ctx, e.br, Category, laneway.Normal, n, "co"); err != nil {
		return 0, 0, err
	}
	var handled, last atomic.Int64
	c, err := consumer.New(e.br, consumer.Config{Group: "ConsumerOnly", Primary: Category, Logger: log,
		Handle: func(context.Context, *consumer.Message) error {
			handled.Add(1)
			last.Store(time.Now().UnixNano())
			return nil
		}})
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := c.Start(ctx); err != nil {
		return 0, 0, err
	}
	werr := waitFor(ctx, 10*time.Minute, "the consumer to drain the stream", func() bool { return handled.Load() >= int64(n) })
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 40*time.Second)
	serr := c.Stop(sctx)
	cancel()
	if werr != nil {
		return 0, 0, fmt.Errorf("consumer only: %w (%d of %d handled)", werr, handled.Load(), n)
	}
	if serr != nil {
		return 0, 0, serr
	}
	return rate(n, time.Unix(0, last.Load()).Sub(start)), int(handled.Load()), nil
}

// endToEnd runs Process from callers goroutines into a running engine and
// returns events/s from the first Process to the last handler's end.
func (r *Runner) endToEnd(ctx context.Context, e *env, n, callers int) (float64, int, error) {
	if err := e.br.DeleteKey(ctx, Category); err != nil {
		return 0, 0, err
	}
	pr := &probe{}
	app, eng, err := r.engine(ctx, e, pr, engineConfig(false, 1, 1))
	if err != nil {
		return 0, 0, err
	}
	defer app.Close()
	if err := eng.Start(ctx); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	_, perr := parallel(ctx, n, callers, func(ctx context.Context, _, i int) error {
		return app.Process(ctx, Submit{ID: fmt.Sprintf("e-%d", i)})
	})
	var werr error
	if perr == nil {
		werr = waitFor(ctx, 10*time.Minute, "every event handled", func() bool { return pr.handled() >= int64(n) })
	}
	serr := stopEngine(ctx, eng)
	switch {
	case perr != nil:
		return 0, 0, fmt.Errorf("end to end: %w", perr)
	case werr != nil:
		return 0, 0, fmt.Errorf("end to end: %w (%d of %d handled)", werr, pr.handled(), n)
	case serr != nil:
		return 0, 0, serr
	}
	return rate(n, time.Unix(0, pr.lastAny.Load()).Sub(start)), int(pr.handled()), nil
}

// engine opens an App for the bench domain on e and an engine on e's broker.
func (r *Runner) engine(ctx context.Context, e *env, pr *probe, cfg *lanewayconfig.Config) (*laneway.App, *laneway.Engine, error) {
	dom, err := newDomain(pr)
	if err != nil {
		return nil, nil, err
	}
	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{Store: e.db.Store})
	if err != nil {
		return nil, nil, err
	}
	return app, laneway.NewEngine(app, laneway.EngineOptions{Broker: e.br, Logger: r.log, DisableHTTP: true}), nil
}

// parallel runs op(i) for i in [0,n) from callers goroutines and returns
// the elapsed time; the first error stops it.
func parallel(ctx context.Context, n, callers int, op func(ctx context.Context, caller, i int) error) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	start := time.Now()
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := op(ctx, c, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), first
}

// rawInsert is the database's single-row autocommit INSERT rate from
// callers goroutines, on a connection of its own to the same database (one
// writer connection on SQLite, as the store has; a pool of callers on
// PostgreSQL).
func rawInsert(ctx context.Context, e *env, n, callers int) (float64, error) {
	const ddl = `CREATE TABLE lanebench_raw (id BIGINT PRIMARY KEY, v TEXT NOT NULL)`
	const ins = `INSERT INTO lanebench_raw (id, v) VALUES ($1, $2)`
	v := `{"id":"t-0","at":"2026-01-01T00:00:00.000000Z","pad":"` + pad + `"}`
	if e.db.SQLitePath != "" {
		db, err := sql.Open("sqlite", e.db.SQLitePath+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
		if err != nil {
			return 0, err
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return 0, err
		}
		d, err := parallel(ctx, n, callers, func(ctx context.Context, _, i int) error {
			_, err := db.ExecContext(ctx, ins, i, v)
			return err
		})
		return rate(n, d), err
	}
	conns := make([]*pgx.Conn, callers)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close(context.WithoutCancel(ctx))
			}
		}
	}()
	for i := range conns {
		c, err := pgx.Connect(ctx, e.db.PostgresURL)
		if err != nil {
			return 0, err
		}
		conns[i] = c
	}
	if _, err := conns[0].Exec(ctx, ddl); err != nil {
		return 0, err
	}
	d, err := parallel(ctx, n, callers, func(ctx context.Context, c, i int) error {
		_, err := conns[c].Exec(ctx, ins, i, v)
		return err
	})
	return rate(n, d), err
}

// relayAll runs the relay as the engine does (Start: woken once, claim,
// publish and mark of consecutive batches overlapped) until it has published
// the n pending rows, and returns its rate.
func relayAll(ctx context.Context, relay *outbox.Relay, n int) (float64, error) {
	start := time.Now()
	if err := relay.Start(ctx); err != nil {
		return 0, fmt.Errorf("relay: %w", err)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var waitErr error
	for relay.Stats().Published < int64(n) && waitErr == nil {
		select {
		case <-ctx.Done():
			waitErr = ctx.Err()
		case <-tick.C:
		}
	}
	d := time.Since(start)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := errors.Join(waitErr, relay.Stop(stopCtx)); err != nil {
		return 0, fmt.Errorf("relay: %w", err)
	}
	if got := relay.Stats().Published; got != int64(n) {
		return 0, fmt.Errorf("relay published %d rows, want %d", got, n)
	}
	return rate(n, d), nil
}

// rawXAdd appends n entries of the bench event's size to the raw stream in
// pipelined batches of the relay's size from one goroutine (one relay
// publishes from one goroutine too).
func rawXAdd(ctx context.Context, br lanewaybroker.Broker, n, batch int) (float64, error) {
	pubs, err := envelopes(rawStream, laneway.Normal, batch, "raw")
	if err != nil {
		return 0, err
	}
	if err := br.DeleteKey(ctx, rawStream); err != nil {
		return 0, err
	}
	start := time.Now()
	for i := 0; i < n; i += len(pubs) {
		if _, err := br.Publish(ctx, pubs[:min(len(pubs), n-i)]); err != nil {
			return 0, err
		}
	}
	return rate(n, time.Since(start)), nil
}

// rawReadAck reads the raw stream with XREADGROUP COUNT 100 and acks each
// batch with one pipelined XACK: a consumer with no scheduling, decoding or
// handler at all.
func rawReadAck(ctx context.Context, br lanewaybroker.Broker, n int) (float64, error) {
	const group = "raw"
	if err := br.EnsureGroup(ctx, rawStream, group); err != nil {
		return 0, err
	}
	start, read := time.Now(), 0
	for read < n {
		res, err := br.ReadGroup(ctx, lanewaybroker.ReadParams{Group: group, Consumer: "raw-1", Streams: []string{rawStream}, Count: 100})
		if err != nil {
			return 0, err
		}
		if len(res) == 0 || len(res[0].Entries) == 0 {
			return 0, fmt.Errorf("raw stream drained after %d of %d entries", read, n)
		}
		ids := make([]string, len(res[0].Entries))
		for i, en := range res[0].Entries {
			ids[i] = en.ID
		}
		if err := br.Ack(ctx, []lanewaybroker.AckParams{{Stream: rawStream, Group: group, IDs: ids}}); err != nil {
			return 0, err
		}
		read += len(ids)
	}
	d := time.Since(start)
	return rate(read, d), br.DeleteKey(ctx, rawStream)
}
